"""Evaluate the run search language over :class:`~loopml.domain.tracking.Run` values.

Stores that keep runs in memory filter and order with :func:`matches` and
:func:`sort_runs`. The SQL adapter (:mod:`loopml.adapters.sql.search`) defines the
semantics and this module reproduces them, as SQL's three-valued logic would have it:

* a condition on ``metrics.K``, ``params.K`` or ``tags.K`` holds only for runs that have
  the key (``!=`` and ``not in`` too); a NaN metric is stored as NULL, so it satisfies no
  comparison and sorts as missing;
* ``parent_id`` and ``end_time`` may be unset, and then no condition on them holds;
* ``status`` compares in lower case, as it is stored;
* ``like`` is case-sensitive SQL LIKE (``%`` any run of characters, ``_`` exactly one,
  a backslash makes the next character literal); ``ilike`` lower-cases both sides first;
* ordering puts runs lacking a key last, whatever the direction, then breaks ties by
  ``start_time`` descending and, last, by creation order descending.
"""

from __future__ import annotations

import functools
import math
import re
from typing import TYPE_CHECKING

from loopml.domain.errors import InvalidInput
from loopml.domain.search import And, Comparison, Expr, Kind, Or, OrderKey, Value

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from loopml.domain.tracking import Run

Field = float | str


def matches(expr: Expr, run: Run) -> bool:
    """True if ``run`` satisfies the filter ``expr``."""
    if isinstance(expr, And):
        return all(matches(item, run) for item in expr.items)
    if isinstance(expr, Or):
        return any(matches(item, run) for item in expr.items)
    return _holds(expr, run)


def sort_runs(runs: Iterable[Run], order: Sequence[OrderKey]) -> list[Run]:
    """Order ``runs``, given oldest first (creation order), by ``order`` and the tiebreaks.

    Python's sort is stable, so sorting by the least significant key first and by each
    more significant key after it yields the combined order.
    """
    result = list(runs)[::-1]  # creation order descending: the last tiebreak
    result.sort(key=lambda run: run.start_ms, reverse=True)
    for key in reversed(order):
        valued = [
            (value, run)
            for run in result
            if (value := _field_value(run, key.kind, key.key)) is not None
        ]
        missing = [run for run in result if _field_value(run, key.kind, key.key) is None]
        valued.sort(key=lambda pair: pair[0], reverse=key.descending)
        result = [run for _, run in valued] + missing
    return result


def _field_value(run: Run, kind: Kind, key: str) -> Field | None:
    """What a condition or order key reads from ``run``; None when SQL would see NULL."""
    if kind == "metric":
        metric = run.metrics.get(key)
        return None if metric is None or math.isnan(metric) else metric
    if kind == "param":
        return run.params.get(key)
    if kind == "tag":
        return run.tags.get(key)
    attributes: dict[str, Field | None] = {
        "status": run.status.value,
        "name": run.name,
        "run_id": run.id,
        "parent_id": run.parent_id,
        "start_time": run.start_ms,
        "end_time": run.end_ms,
    }
    if key not in attributes:
        raise InvalidInput(
            f"unknown run attribute {key!r}; expected one of {', '.join(attributes)}"
        )
    return attributes[key]


def _holds(c: Comparison, run: Run) -> bool:
    actual = _field_value(run, c.kind, c.key)
    if actual is None:
        return False
    value = c.value
    if c.kind == "attr" and c.key == "status":
        value = (
            tuple(str(v).lower() for v in value) if isinstance(value, tuple) else str(value).lower()
        )
    if isinstance(actual, str):
        return _text(actual, c.op, value)
    return _number(actual, c.op, value)


def _text(actual: str, op: str, value: Value) -> bool:
    if op in ("in", "not in"):
        if not isinstance(value, tuple):
            raise InvalidInput(f"operator {op!r} needs a list of values, got {value!r}")
        return (actual in value) == (op == "in")
    if not isinstance(value, str):
        raise InvalidInput(f"text compares with a string, got {value!r}")
    if op == "=":
        return actual == value
    if op == "!=":
        return actual != value
    if op == "like":
        return _like_regex(value).fullmatch(actual) is not None
    if op == "ilike":
        return _like_regex(value.lower()).fullmatch(actual.lower()) is not None
    raise InvalidInput(
        f"operator {op!r} does not apply to text; expected one of =, !=, like, ilike, in, not in"
    )


def _number(actual: float, op: str, value: Value) -> bool:
    if isinstance(value, tuple | str):
        raise InvalidInput(f"numbers compare with a number, got {value!r}")
    if op == "=":
        return actual == value
    if op == "!=":
        return actual != value
    if op == "<":
        return actual < value
    if op == "<=":
        return actual <= value
    if op == ">":
        return actual > value
    if op == ">=":
        return actual >= value
    raise InvalidInput(
        f"operator {op!r} does not apply to numbers; expected one of =, !=, <, <=, >, >="
    )


@functools.lru_cache(maxsize=256)
def _like_regex(pattern: str) -> re.Pattern[str]:
    """Compile a SQL LIKE pattern: ``%`` any characters, ``_`` one, ``\\`` escapes."""
    parts: list[str] = []
    chars = iter(pattern)
    for ch in chars:
        if ch == "\\":
            escaped = next(chars, None)
            if escaped is None:
                raise InvalidInput(
                    f"like pattern {pattern!r} ends with a lone backslash; "
                    "write two backslashes to match one"
                )
            parts.append(re.escape(escaped))
        elif ch == "%":
            parts.append(".*")
        elif ch == "_":
            parts.append(".")
        else:
            parts.append(re.escape(ch))
    return re.compile("".join(parts), re.DOTALL)
