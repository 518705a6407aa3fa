from __future__ import annotations

import pytest

from loopml.domain.errors import InvalidInput
from loopml.domain.search import And, Comparison, Or, OrderKey, parse_filter, parse_order_by


def test_the_documented_example() -> None:
    expr = parse_filter("metrics.rmse < 0.3 and params.model = 'gbr' and tags.team = 'x'")
    assert expr == And(
        (
            Comparison("metric", "rmse", "<", 0.3),
            Comparison("param", "model", "=", "gbr"),
            Comparison("tag", "team", "=", "x"),
        )
    )


def test_and_binds_tighter_than_or_and_parentheses_override() -> None:
    a, b, c = (Comparison("metric", k, ">", 1.0) for k in "abc")
    assert parse_filter("metrics.a > 1 or metrics.b > 1 and metrics.c > 1") == Or((a, And((b, c))))
    assert parse_filter("(metrics.a > 1 or metrics.b > 1) and metrics.c > 1") == And(
        (Or((a, b)), c)
    )


def test_lists_backquoted_keys_attributes_and_escapes() -> None:
    assert parse_filter("tags.stage in ('a', \"b\")") == Comparison(
        "tag", "stage", "in", ("a", "b")
    )
    assert parse_filter("params.k not in ('x')") == Comparison("param", "k", "not in", ("x",))
    assert parse_filter("metrics.`val/rmse` <= 1e-3") == Comparison(
        "metric", "val/rmse", "<=", 0.001
    )
    assert parse_filter("status = 'FINISHED'") == Comparison("attr", "status", "=", "FINISHED")
    assert parse_filter("attributes.start_time >= 10") == Comparison(
        "attr", "start_time", ">=", 10.0
    )
    assert parse_filter("params.q = 'it\\'s'") == Comparison("param", "q", "=", "it's")
    assert parse_filter("params.a LIKE 'g%' AND params.b ilike 'X'") is not None


@pytest.mark.parametrize("blank", [None, "", "   "])
def test_blank_filter_means_no_filter(blank: str | None) -> None:
    assert parse_filter(blank) is None


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("metrics.rmse <", "expected a number or a quoted string, found the end"),
        ("metrics.rmse = 'x'", "compares with a number, got 'x'"),
        ("params.alpha < 0.5", "Params and tags are stored as text"),
        ("params.model = 3", "compares with a quoted string"),
        ("foo.bar = 1", "unknown key prefix 'foo'"),
        ("colour = 'red'", "unknown run attribute 'colour'"),
        ("metrics.a > 1 metrics.b > 2", "expected 'and', 'or' or the end"),
        ("(metrics.a > 1", "expected ')'"),
        ("metrics.a ~ 1", "unexpected character '~'"),
        ("metrics.a in (1, 2)", "operator 'in' does not apply to metrics.a"),
    ],
)
def test_errors_say_what_and_where(text: str, fragment: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_filter(text)
    assert fragment in str(info.value)
    assert repr(text) in str(info.value)


def test_order_by() -> None:
    assert parse_order_by(["metrics.rmse", "start_time DESC"]) == (
        OrderKey("metric", "rmse"),
        OrderKey("attr", "start_time", True),
    )
    assert parse_order_by("metrics.a asc, params.b desc") == (
        OrderKey("metric", "a"),
        OrderKey("param", "b", True),
    )
    with pytest.raises(InvalidInput, match="direction 'up' must be asc or desc"):
        parse_order_by(["metrics.a up"])
