"""The gate policy file: the documented example, the round trip, and every bad file."""

from __future__ import annotations

import re
import textwrap
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopml.domain.errors import InvalidInput
from loopml.domain.gate_file import policy_from_mapping, policy_from_toml, policy_to_toml
from loopml.domain.gates import GatePolicy, Limit, Margin, RelativeRule, StagePolicy
from loopml.domain.lifecycle import Stage
from loopml.domain.metric_directions import Direction, MetricDirections

DOCS = Path(__file__).resolve().parents[2] / "docs" / "gates.md"
SOURCE = "policy.toml"


def documented_example() -> str:
    found = re.search(r"```toml\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
    assert found is not None
    return found.group(1)


def read(text: str) -> GatePolicy:
    return policy_from_toml(textwrap.dedent(text), SOURCE)


def refused(text: str) -> str:
    with pytest.raises(InvalidInput) as info:
        read(text)
    message = str(info.value)
    assert message.startswith(f"{SOURCE}: "), message
    return message


# --- the documented example ----------------------------------------------------------------


def test_the_documented_example_reads_as_documented() -> None:
    policy = policy_from_toml(documented_example(), "docs/gates.md")
    assert policy.directions.declared == {
        "revenue_uplift": Direction.HIGHER,
        "calibration_slope": Direction.NONE,
    }
    assert policy.directions.of("calibration_slope") is Direction.NONE
    staging = policy.for_stage("churn", Stage.STAGING)
    assert staging == StagePolicy(
        thresholds=(Limit("accuracy", 0.8),),
        require_data_validation=("training", "evaluation"),
    )
    production = policy.for_stage("churn", Stage.PRODUCTION)
    assert production is not None
    assert production.thresholds == (
        Limit("accuracy", 0.85),
        Limit("roc_auc", 0.8, 0.995),
        Limit("slice:region=eu/recall", 0.7),
        Limit("calibration_slope", 0.9, 1.1),
        Limit("revenue_uplift", 0.0),
    )
    assert production.champion == (
        RelativeRule("accuracy", Margin.MAX_WORSE, 0.01),
        RelativeRule("log_loss", Margin.MAX_WORSE_PCT, 5),
        RelativeRule("f1", Margin.MIN_BETTER, 0),
    )
    assert production.slices == (RelativeRule("recall", Margin.MAX_WORSE, 0.03),)
    assert production.fairness == (
        Limit("demographic_parity_difference", None, 0.1),
        Limit("fairness:sex/equalized_odds_difference", None, 0.05),
    )
    assert production.max_latency_p99_ms == 50.0
    assert production.max_model_size_bytes == 200_000_000
    assert production.require_approval and not production.allow_self_approval
    own = policy.for_stage("bike-demand", "production")
    assert own == StagePolicy(
        thresholds=(Limit("rmse", None, 40.0), Limit("r2", 0.7)),
        champion=(RelativeRule("rmse", Margin.MIN_BETTER_PCT, 1),),
        max_latency_p99_ms=20,
        require_approval=True,
    )
    assert policy.for_stage("bike-demand", "staging") == staging  # the default still applies


def test_the_documented_key_tables_name_every_key_the_reader_knows() -> None:
    from loopml.domain.gate_file import LIMIT_KEYS, MARGIN_KEYS, POLICY_KEYS, STAGE_KEYS

    docs = DOCS.read_text(encoding="utf-8")
    for key in (*POLICY_KEYS, *STAGE_KEYS, *LIMIT_KEYS, *MARGIN_KEYS):
        assert re.search(rf"\b{key}\b", docs), key


def test_a_policy_in_loopml_toml_ignores_the_settings_around_it() -> None:
    text = """\
        [store]
        metadata_url = "sqlite:///x.db"

        [gates.default.staging.thresholds]
        accuracy = 0.8
    """
    assert read(text).for_stage("m", "staging") == StagePolicy(thresholds=(Limit("accuracy", 0.8),))


def test_no_gates_table_is_an_empty_policy() -> None:
    assert read('[store]\nmetadata_url = "x"\n') == GatePolicy()
    assert read("") == GatePolicy()


def test_an_already_parsed_table_reads_the_same() -> None:
    data = tomllib.loads(documented_example())
    assert policy_from_mapping(data["gates"], "x") == policy_from_toml(documented_example(), "x")


# --- writing -------------------------------------------------------------------------------


def test_the_round_trip_of_the_documented_example_is_exact() -> None:
    policy = policy_from_toml(documented_example(), "docs/gates.md")
    text = policy_to_toml(policy)
    assert policy_from_toml(text, "written.toml") == policy
    assert policy_to_toml(policy_from_toml(text, "written.toml")) == text
    assert "[gates.models.bike-demand.production.champion]" in text
    assert "rmse = { min_better_pct = 1.0 }" in text
    assert "max_model_size_bytes = 200_000_000" in text
    assert '"slice:region=eu/recall" = { min = 0.7 }' in text


def test_written_files_explain_the_format_in_comments() -> None:
    comments = "\n".join(line for line in policy_to_toml(GatePolicy()).splitlines() if "#" in line)
    for word in ("directions", "default", "models", "thresholds", "champion", "slices"):
        assert word in comments
    assert "docs/gates.md" in comments


def test_odd_names_are_quoted_so_they_read_back() -> None:
    stage = StagePolicy(thresholds=(Limit('slice:city="São Paulo"/f1', 0.5),))
    policy = GatePolicy(models={"churn.v2": {Stage.PRODUCTION: stage}})
    text = policy_to_toml(policy)
    assert '[gates.models."churn.v2".production.thresholds]' in text
    assert policy_from_toml(text, "x") == policy


_metrics = st.sampled_from(["accuracy", "rmse", "f1", "log_loss", "slice:a=b/r2", "uplift"])
_numbers = st.floats(-1e9, 1e9, allow_nan=False) | st.integers(-1000, 1000)
_amounts = st.floats(0, 1e6, allow_nan=False) | st.integers(0, 1000)


@st.composite
def limits(draw: st.DrawFn, names: st.SearchStrategy[str]) -> Limit:
    low, high = draw(st.one_of(st.none(), _numbers)), draw(st.one_of(st.none(), _numbers))
    if low is None and high is None:
        low = 0
    if low is not None and high is not None and low > high:
        low, high = high, low
    return Limit(draw(names), low, high)


@st.composite
def stage_policies(draw: st.DrawFn) -> StagePolicy:
    approval = draw(st.booleans())
    return StagePolicy(
        thresholds=tuple({r.name: r for r in draw(st.lists(limits(_metrics)))}.values()),
        champion=tuple(
            {
                r.metric: r
                for r in draw(
                    st.lists(st.builds(RelativeRule, _metrics, st.sampled_from(Margin), _amounts))
                )
            }.values()
        ),
        slices=tuple(
            {
                r.metric: r
                for r in draw(
                    st.lists(
                        st.builds(
                            RelativeRule,
                            st.sampled_from(["accuracy", "rmse"]),
                            st.sampled_from([Margin.MAX_WORSE, Margin.MAX_WORSE_PCT]),
                            _amounts,
                        )
                    )
                )
            }.values()
        ),
        fairness=tuple(
            {
                r.name: r
                for r in draw(
                    st.lists(
                        limits(
                            st.sampled_from(["demographic_parity_difference", "fairness:sex/gap"])
                        )
                    )
                )
            }.values()
        ),
        require_data_validation=draw(
            st.sampled_from([(), ("training",), ("evaluation", "training")])
        ),
        max_latency_p99_ms=draw(st.none() | st.floats(1e-3, 1e6)),
        max_model_size_bytes=draw(st.none() | st.integers(1, 2**62)),
        require_approval=approval,
        allow_self_approval=approval and draw(st.booleans()),
    )


@settings(max_examples=60)
@given(
    default=st.dictionaries(st.sampled_from(list(Stage)[1:3]), stage_policies(), max_size=2),
    models=st.dictionaries(
        st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,12}", fullmatch=True),
        st.dictionaries(st.sampled_from(list(Stage)[1:3]), stage_policies(), max_size=2),
        max_size=2,
    ),
)
def test_any_policy_reads_back_equal(
    default: dict[Stage, StagePolicy], models: dict[str, dict[Stage, StagePolicy]]
) -> None:
    policy = GatePolicy(
        default, models, MetricDirections({"uplift": Direction.HIGHER, "gap": Direction.LOWER})
    )
    text = policy_to_toml(policy)
    again = policy_from_toml(text, "x")
    assert again == policy
    assert policy_to_toml(again) == text


# --- bad files -----------------------------------------------------------------------------


def test_text_that_is_not_toml() -> None:
    assert refused("[gates\n").startswith("policy.toml: not valid TOML: ")


def test_policy_keys_outside_the_gates_table() -> None:
    message = refused("[default.production]\nrequire_approval = true\n")
    assert message == (
        "policy.toml: 'default' must be inside the [gates] table; start the policy with a "
        "[gates] line and prefix its tables with gates. (e.g. [gates.default.production])"
    )


def test_gates_that_is_not_a_table() -> None:
    assert refused("gates = 1\n") == (
        "policy.toml: gates must be a table, written [gates], got integer 1; fix it in the "
        "file (the format is described in docs/gates.md)"
    )


def test_unknown_keys_suggest_the_closest_one() -> None:
    assert refused("[gates.defaults.production]\n") == (
        "policy.toml: gates: unknown key 'defaults' (did you mean 'default'?); expected only "
        "format_version, directions, default, models. Remove or rename it"
    )
    message = refused("[gates.default.production]\nmax_latency_ms = 5\n")
    assert message.startswith(
        "policy.toml: gates.default.production: unknown key 'max_latency_ms' (did you mean "
        "'max_latency_p99_ms'?)"
    )
    message = refused("[gates.default.production.thresholds]\naccuracy = { minimum = 0.8 }\n")
    assert message.startswith(
        "policy.toml: gates.default.production.thresholds.accuracy: unknown key 'minimum' "
        "(did you mean 'min'?); expected only min, max."
    )


def test_format_version() -> None:
    assert "gates.format_version must be an integer such as 1, got string '1'" in refused(
        '[gates]\nformat_version = "1"\n'
    )
    assert refused("[gates]\nformat_version = 2\n").startswith(
        "policy.toml: format_version 2 is newer than this loopml understands (1)"
    )


def test_directions() -> None:
    assert refused('[gates.directions]\nuplift = "up"\n') == (
        'policy.toml: gates.directions.uplift must be "higher" or "lower" (which way the '
        "metric gets better), got string 'up'; fix it in the file (the format is described "
        "in docs/gates.md)"
    )
    assert refused('[gates.directions]\nrmse = "higher"\n').startswith(
        "policy.toml: gates.directions: rmse = 'higher' contradicts the built-in direction "
        "of rmse (lower is better)"
    )


def test_stage_names() -> None:
    assert refused("[gates.default.prod]\n") == (
        "policy.toml: gates.default.prod: unknown stage 'prod' (did you mean 'production'?); "
        "expected staging or production"
    )
    assert refused("[gates.models.churn.archived]\n").startswith(
        "policy.toml: gates.models.churn.archived: stage 'archived' takes no gates"
    )
    assert "gates.default must be a table" in refused("[gates]\ndefault = 3\n")


def test_model_names() -> None:
    assert refused('[gates.models."bad name".production]\n').startswith(
        "policy.toml: gates.models.\"bad name\": model name 'bad name' is not valid"
    )


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            'max_latency_p99_ms = "50ms"',
            "policy.toml: gates.default.production.max_latency_p99_ms must be a number of "
            "milliseconds, e.g. 50, got string '50ms'",
        ),
        (
            "max_latency_p99_ms = -5",
            "policy.toml: gates.default.production: max_latency_p99_ms is -5.0; a budget must "
            "be greater than 0 (milliseconds, e.g. 50). Remove the key to have no budget",
        ),
        (
            "max_model_size_bytes = 5e7",
            "policy.toml: gates.default.production.max_model_size_bytes must be a whole number "
            "of bytes, e.g. 50_000_000, got float 50000000.0",
        ),
        (
            "max_model_size_bytes = -1",
            "policy.toml: gates.default.production: max_model_size_bytes is -1; a budget must "
            "be greater than 0",
        ),
        (
            'require_approval = "yes"',
            "policy.toml: gates.default.production.require_approval must be true or false, got "
            "string 'yes'",
        ),
        (
            "allow_self_approval = true",
            "policy.toml: gates.default.production: allow_self_approval = true only matters "
            "when require_approval = true",
        ),
        (
            'require_data_validation = "training"',
            "policy.toml: gates.default.production.require_data_validation must be a list of "
            "data roles",
        ),
        (
            'require_data_validation = ["trainig"]',
            "policy.toml: gates.default.production: require_data_validation: unknown data role "
            "'trainig' (did you mean 'training'?)",
        ),
        (
            "thresholds = 0.8",
            "policy.toml: gates.default.production.thresholds must be a table, written "
            "[gates.default.production.thresholds] or { ... }, got float 0.8",
        ),
    ],
)
def test_bad_stage_keys(line: str, expected: str) -> None:
    assert refused(f"[gates.default.production]\n{line}\n").startswith(expected)


@pytest.mark.parametrize(
    ("section", "line", "expected"),
    [
        (
            "thresholds",
            "acuracy = 0.8",
            "thresholds.acuracy: metric 'acuracy' has no known direction (did you mean "
            '\'accuracy\'?); declare it under [gates.directions], e.g. "acuracy" = "higher" '
            '(or "lower"), or fix the spelling',
        ),
        (
            "thresholds",
            'accuracy = "0.8"',
            "thresholds.accuracy must be a number (the minimum: higher is better for accuracy) "
            "or a table such as { min = 0.8, max = 0.99 }, got string '0.8'",
        ),
        (
            "thresholds",
            'accuracy = { min = "high" }',
            "thresholds.accuracy.min must be a number, got string 'high'",
        ),
        (
            "thresholds",
            "accuracy = { min = 0.9, max = 0.8 }",
            "thresholds.accuracy: min 0.9 is greater than max 0.8; expected min <= max",
        ),
        (
            "thresholds",
            "accuracy = nan",
            "thresholds.accuracy: min must be a finite number, got nan",
        ),
        (
            "thresholds",
            "bias = 0.5",
            "thresholds.bias: bias has no better direction (neither way is better), so a "
            "single number cannot say which side it bounds; write { min = 0.5 } or "
            "{ max = 0.5 } (or both)",
        ),
        (
            "thresholds",
            "demographic_parity_difference = 0.1",
            "thresholds.demographic_parity_difference: 'demographic_parity_difference' is a "
            "fairness measure; bound it under fairness instead",
        ),
        (
            "thresholds",
            '"slice:region=eu" = 0.8',
            "thresholds.\"slice:region=eu\": metric name 'slice:region=eu' is not valid; "
            "expected slice:<slice>/<metric>, e.g. 'slice:region=eu/accuracy'",
        ),
        (
            "champion",
            "accuracy = { max_worse = 0.01, min_better = 0.0 }",
            "champion.accuracy: sets max_worse, min_better, but a rule takes exactly one "
            "margin: max_worse and min_better contradict each other (a candidate that must be "
            "better is never worse); keep the one you mean",
        ),
        (
            "champion",
            "rmse = { max_worse = 1, max_worse_pct = 5 }",
            "champion.rmse: sets max_worse, max_worse_pct, but a rule takes exactly one "
            "margin: an amount and a percentage of the same kind cannot both apply; keep one",
        ),
        (
            "champion",
            "rmse = {}",
            "champion.rmse: set one margin: max_worse, max_worse_pct, min_better, min_better_pct",
        ),
        (
            "champion",
            "rmse = 5",
            "champion.rmse must be a table with one margin, e.g. { max_worse_pct = 5 }, got "
            "integer 5",
        ),
        (
            "champion",
            "rmse = { worse_by = 5 }",
            "champion.rmse: unknown key 'worse_by' (did you mean 'max_worse'?)",
        ),
        (
            "champion",
            "rmse = { min_better = -1 }",
            "champion.rmse: min_better is -1.0; expected a number >= 0. A negative margin "
            "reads backwards: use max_worse instead",
        ),
        (
            "champion",
            'rmse = { max_worse_pct = "5%" }',
            "champion.rmse.max_worse_pct must be a number >= 0 (percent of the champion's "
            "value), got string '5%'",
        ),
        (
            "champion",
            "score = { max_worse = 1 }",
            "champion.score: metric 'score' has no known direction",
        ),
        (
            "champion",
            "bias = { max_worse = 1 }",
            "champion.bias: 'bias' has no better direction (neither way is better), so it "
            "cannot be compared with the champion",
        ),
        (
            "slices",
            "accuracy = { min_better = 0.01 }",
            "slices.accuracy: min_better is not allowed in slices, which bound how much any "
            "slice may regress; use max_worse or max_worse_pct",
        ),
        (
            "slices",
            '"slice:region=eu/accuracy" = { max_worse = 0.01 }',
            "slices.\"slice:region=eu/accuracy\": 'slice:region=eu/accuracy' names one slice "
            "metric; name the metric alone (e.g. 'accuracy')",
        ),
        (
            "fairness",
            "demographic_parity_diference = 0.1",
            "fairness.demographic_parity_diference: metric 'demographic_parity_diference' has "
            "no known direction (did you mean 'demographic_parity_difference'?)",
        ),
        (
            "fairness",
            "accuracy = 0.1",
            "fairness.accuracy: 'accuracy' is not a fairness measure; expected one of "
            "demographic_parity_difference,",
        ),
    ],
)
def test_bad_rules_name_the_file_and_the_key_path(section: str, line: str, expected: str) -> None:
    message = refused(f"[gates.default.production.{section}]\n{line}\n")
    assert message.startswith(f"policy.toml: gates.default.production.{expected}"), message
