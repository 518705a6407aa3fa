"""Alert rules: N consecutive windows, thresholds above and below, de-duplication of one
episode, cooldown, a condition that clears and comes back, the stored record, and the
``[alerts]`` table of loopml.toml (the documented example and every refused mistake)."""

from __future__ import annotations

import math
import re
import textwrap
import tomllib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loopml.domain import alert_config
from loopml.domain.alert_config import (
    AlertsConfig,
    EmailSinkConfig,
    HttpSinkConfig,
    LogSinkConfig,
    SinkType,
    alerts_from_config,
    rules_from_config,
    sinks_from_config,
)
from loopml.domain.alerts import (
    Alert,
    AlertRule,
    Comparison,
    Delivery,
    Observation,
    RuleAction,
    Severity,
    alert_id,
    evaluate,
    evaluate_all,
    validate_metric,
)
from loopml.domain.errors import InvalidInput

HOUR_MS = 3_600_000


def drift_rule(**changes: Any) -> AlertRule:
    values: dict[str, Any] = {
        "name": "drift",
        "metric": "drift_score",
        "comparison": "above",
        "threshold": 1.0,
        "for_windows": 3,
        "cooldown_s": 3600,
    }
    values.update(changes)
    return AlertRule(**values)


def hourly(
    values: list[float], deployment: str = "api", metric: str = "drift_score"
) -> list[Observation]:
    """One observation per hourly window, window i at i hours, keyed w<i>."""
    return [Observation(i * HOUR_MS, deployment, metric, v, f"w{i}") for i, v in enumerate(values)]


def fired(rule: AlertRule, seen: list[Observation], last: Alert | None = None, **kw: Any) -> Alert:
    firing = evaluate(rule, seen, last, **kw)
    assert firing is not None
    return firing.alert


# --- N consecutive windows -----------------------------------------------------------------


def test_fires_only_once_the_last_n_windows_all_breach() -> None:
    rule = drift_rule()
    assert evaluate(rule, hourly([1.2, 1.5, 1.6]), None) is not None
    assert evaluate(rule, hourly([0.2, 1.5, 1.6]), None) is None
    assert evaluate(rule, hourly([1.5, 1.6]), None) is None  # only two windows
    assert evaluate(rule, hourly([1.5, 0.9, 1.6, 1.7]), None) is None  # broken by w1
    firing = evaluate(rule, hourly([1.5, 0.9, 1.6, 1.7, 1.8]), None)
    assert firing is not None
    assert [o.window for o in firing.observations] == ["w2", "w3", "w4"]
    assert firing.alert.windows == 3
    assert firing.alert.window == "w4"
    assert firing.alert.value == 1.8
    assert firing.alert.observed_ms == 4 * HOUR_MS


def test_the_newest_window_must_breach() -> None:
    assert evaluate(drift_rule(for_windows=1), hourly([1.5, 1.5, 0.5]), None) is None


def test_the_streak_counts_every_breaching_window_not_only_n() -> None:
    alert = fired(drift_rule(for_windows=2), hourly([0.1, 1.2, 1.3, 1.4, 1.5]))
    assert alert.windows == 4
    assert "4 consecutive windows" in alert.message


def test_a_value_equal_to_the_threshold_is_fine_on_both_sides() -> None:
    above = drift_rule(for_windows=1)
    assert evaluate(above, hourly([1.0]), None) is None
    assert evaluate(above, hourly([1.0000001]), None) is not None
    below = AlertRule("acc", "performance:accuracy", Comparison.BELOW, 0.8)
    accuracy = "performance:accuracy"
    assert evaluate(below, hourly([0.8], metric=accuracy), None) is None
    assert evaluate(below, hourly([0.79], metric=accuracy), None) is not None
    assert evaluate(below, hourly([0.95], metric=accuracy), None) is None


def test_below_rules_count_consecutive_low_windows() -> None:
    rule = AlertRule("acc", "performance:accuracy", "below", 0.8, for_windows=2)
    seen = hourly([0.9, 0.7, 0.85, 0.7, 0.6], metric="performance:accuracy")
    alert = fired(rule, seen)
    assert alert.comparison is Comparison.BELOW
    assert alert.windows == 2
    assert "below the threshold 0.8" in alert.message


def test_other_metrics_and_deployments_are_ignored() -> None:
    rule = drift_rule(for_windows=2, deployment="api")
    noise = [
        Observation(5, "api", "latency_p99_ms", 900.0, "w0"),
        Observation(6, "other", "drift_score", 9.0, "w0"),
    ]
    assert evaluate(rule, [*noise, *hourly([1.1])], None) is None
    assert evaluate(rule, [*noise, *hourly([1.1, 1.2])], None) is not None


def test_nan_values_neither_confirm_nor_clear_a_condition() -> None:
    rule = drift_rule(for_windows=2)
    assert evaluate(rule, hourly([1.2, math.nan, 1.3]), None) is not None
    assert evaluate(rule, hourly([math.nan, 1.3]), None) is None
    assert evaluate(rule, hourly([math.nan]), None) is None


def test_observations_are_ordered_by_time_and_a_window_counts_once() -> None:
    rule = drift_rule(for_windows=2)
    seen = hourly([0.1, 1.5, 1.6])
    assert evaluate(rule, list(reversed(seen)), None) is not None
    # w2 re-measured later and now fine: its newest value counts, once.
    again = Observation(3 * HOUR_MS, "api", "drift_score", 0.4, "w2")
    assert evaluate(rule, [*seen, again], None) is None
    # w1 observed twice does not make two breaching windows.
    twice = hourly([0.1, 1.5])
    assert evaluate(rule, [*twice, twice[1]], None) is None


def test_infinite_drift_breaches_and_survives_storage() -> None:
    alert = fired(drift_rule(for_windows=1), hourly([math.inf]))
    assert Alert.from_dict(alert.to_dict()) == alert
    assert alert.to_dict()["value"] == "inf"


# --- de-duplication, cooldown, clear and return ------------------------------------------------


def test_the_same_window_never_alerts_twice() -> None:
    rule = drift_rule(for_windows=1, cooldown_s=0)
    seen = hourly([1.5])
    first = fired(rule, seen)
    assert evaluate(rule, seen, first, now_ms=10 * HOUR_MS) is None


def test_a_condition_still_breaching_alerts_once_however_long() -> None:
    rule = drift_rule(for_windows=2, cooldown_s=0)
    values = [0.1, 1.5, 1.6]
    first = fired(rule, hourly(values))
    for more in range(1, 30):
        seen = hourly(values + [2.0] * more)
        assert evaluate(rule, seen, first, now_ms=(3 + more) * HOUR_MS) is None


def test_clear_and_return_alerts_again_after_the_cooldown() -> None:
    rule = drift_rule(for_windows=2, cooldown_s=3 * 3600)
    first = fired(rule, hourly([1.5, 1.6]), now_ms=1 * HOUR_MS)
    assert first.time_ms == HOUR_MS
    back = hourly([1.5, 1.6, 0.5, 1.7, 1.8])  # cleared at w2, breaching again at w3, w4
    assert evaluate(rule, back, first, now_ms=4 * HOUR_MS - 1) is None  # in the cooldown
    second = fired(rule, back, first, now_ms=4 * HOUR_MS)
    assert second.window == "w4"
    assert second.windows == 2
    assert second.id != first.id
    # Still breaching when the cooldown ends: it alerts at the next evaluation after.
    rule = drift_rule(for_windows=2, cooldown_s=10 * 3600)
    longer = hourly([1.5, 1.6, 0.5, 1.7, 1.8, 1.9, 2.0])
    assert evaluate(rule, longer, first, now_ms=6 * HOUR_MS) is None
    late = fired(rule, longer, first, now_ms=11 * HOUR_MS)
    assert late.window == "w6"
    assert late.windows == 4


def test_a_return_shorter_than_n_windows_does_not_alert() -> None:
    rule = drift_rule(for_windows=3, cooldown_s=0)
    first = fired(rule, hourly([1.5, 1.6, 1.7]))
    assert evaluate(rule, hourly([1.5, 1.6, 1.7, 0.2, 1.8, 1.9]), first) is None
    assert evaluate(rule, hourly([1.5, 1.6, 1.7, 0.2, 1.8, 1.9, 2.0]), first) is not None


def test_without_history_back_to_the_alert_a_long_condition_repeats_per_cooldown() -> None:
    """The documented trade-off: too little history alerts again (noisy), never hides."""
    rule = drift_rule(for_windows=2, cooldown_s=3600)
    first = fired(rule, hourly([1.5, 1.6]))
    recent = hourly([1.5, 1.6, 1.7, 1.8, 1.9])[3:]  # only w3 and w4, all breaching
    assert evaluate(rule, recent, first, now_ms=first.time_ms + 3_599_999) is None
    assert evaluate(rule, recent, first, now_ms=first.time_ms + 3_600_000) is not None


def test_cooldown_zero_lets_every_new_episode_alert() -> None:
    rule = drift_rule(for_windows=1, cooldown_s=0)
    first = fired(rule, hourly([1.5]))
    assert fired(rule, hourly([1.5, 0.1, 1.5]), first).window == "w2"


def test_last_alert_of_another_key_is_refused() -> None:
    rule = drift_rule(for_windows=1)
    other = fired(drift_rule(name="other", for_windows=1), hourly([2.0, 3.0]))
    with pytest.raises(InvalidInput, match="pass the newest alert of the same rule"):
        evaluate(rule, hourly([2.0, 3.0]), other)


def test_one_deployment_at_a_time_and_evaluate_all_groups_them() -> None:
    rule = drift_rule(for_windows=1)
    mixed = hourly([2.0], "api") + hourly([3.0], "web")
    with pytest.raises(InvalidInput, match="use evaluate_all"):
        evaluate(rule, mixed, None)
    firings = evaluate_all(rule, mixed + hourly([0.5], "quiet"), {})
    assert sorted(f.alert.deployment for f in firings) == ["api", "web"]
    api = next(f.alert for f in firings if f.alert.deployment == "api")
    assert evaluate_all(rule, mixed, {api.dedup_key: api}) == [
        f for f in firings if f.alert.deployment == "web"
    ]
    only_api = drift_rule(for_windows=1, deployment="api")
    assert [f.alert.deployment for f in evaluate_all(only_api, mixed, {})] == ["api"]


@given(
    breaches=st.lists(st.booleans(), max_size=40),
    n=st.integers(min_value=1, max_value=4),
)
def test_each_long_enough_episode_alerts_exactly_once(breaches: list[bool], n: int) -> None:
    """Evaluated window by window with full history and no cooldown, a rule alerts once
    per run of at least N breaching windows, at its N-th window, and never otherwise."""
    rule = drift_rule(for_windows=n, cooldown_s=0)
    values = [2.0 if b else 0.5 for b in breaches]
    last: Alert | None = None
    alerted_at = []
    for i in range(len(values)):
        firing = evaluate(rule, hourly(values[: i + 1]), last, now_ms=i * HOUR_MS)
        if firing is not None:
            last = firing.alert
            alerted_at.append(i)
    expected = []
    run = 0
    for i, breach in enumerate(breaches):
        run = run + 1 if breach else 0
        if run == n:
            expected.append(i)
    assert alerted_at == expected


# --- the record ------------------------------------------------------------------------------


def test_alert_record_round_trips_and_its_id_is_the_firing() -> None:
    rule = drift_rule(for_windows=1, severity="critical", action="retrain")
    alert = fired(rule, hourly([1.25]), now_ms=99)
    assert alert.severity is Severity.CRITICAL
    assert alert.action is RuleAction.RETRAIN
    assert alert.time_ms == 99
    assert alert.dedup_key == "drift|api|drift_score"
    assert alert.id == alert_id("drift|api|drift_score", "w0")
    assert alert.id != alert_id("drift|web|drift_score", "w0")
    assert fired(rule, hourly([1.3]), now_ms=12345).id == alert.id  # same window, same id
    assert alert.message == (
        "drift_score of deployment api is 1.25, above the threshold 1 of rule 'drift' in "
        "the newest window (newest: w0); action: retrain"
    )
    assert alert.title == "[loopml critical] drift: drift_score on api"
    assert Alert.from_dict(alert.to_dict()) == alert
    with pytest.raises(InvalidInput, match="stored alert is damaged"):
        Alert.from_dict({**alert.to_dict(), "severity": "loud"})


def test_delivery_round_trips() -> None:
    failed = Delivery("ops", False, 3, "answered 500", 500)
    assert Delivery.from_dict(failed.to_dict()) == failed
    assert Delivery.from_dict(Delivery("log", True, 1).to_dict()).status is None
    with pytest.raises(InvalidInput, match="damaged"):
        Delivery.from_dict({"sink": "x"})


def test_observations_of_a_window() -> None:
    seen = Observation.of_window("api", "w7", 70, {"drift_score": 1.5, "log_dropped": 2})
    assert seen == (
        Observation(70, "api", "drift_score", 1.5, "w7"),
        Observation(70, "api", "log_dropped", 2.0, "w7"),
    )


# --- rule validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "metric",
    ["drift_score", "feature_drift:temp", "performance:rmse", "error_rate", "latency_p99_ms",
     "log_dropped", "review_queue_age_s", "performance:slice:region=eu/accuracy"],
)  # fmt: skip
def test_known_metrics(metric: str) -> None:
    assert validate_metric(metric) == metric


@pytest.mark.parametrize(
    ("metric", "message"),
    [
        ("drift", "did you mean 'drift_score'?"),
        ("performance:", "needs a name after 'performance:'"),
        ("feature_drift: ", "needs a name after 'feature_drift:'"),
        ("performance:a\nb", "no control characters"),
        ("", "non-empty string"),
        ("cpu_load", "expected one of drift_score"),
    ],
)
def test_unknown_metrics_are_refused(metric: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)):
        validate_metric(metric)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"threshold": math.nan}, "threshold must be a finite number, got nan"),
        ({"threshold": "1.0"}, "threshold must be a finite number, got '1.0'"),
        ({"threshold": True}, "threshold must be a finite number"),
        ({"comparison": "over"}, "comparison must be one of 'above', 'below', got 'over'"),
        ({"severity": "page"}, "severity must be one of 'warning', 'critical'"),
        ({"action": "rollback"}, "action must be one of 'retrain'"),
        ({"for_windows": 0}, "for_windows must be at least 1"),
        ({"for_windows": 2.5}, "for_windows must be a whole number"),
        ({"for_windows": True}, "for_windows must be a whole number"),
        ({"cooldown_s": -1}, "cooldown_s must be a number of seconds >= 0"),
        ({"cooldown_s": math.inf}, "cooldown_s must be a number of seconds >= 0"),
        ({"sinks": ()}, "sinks is empty"),
        ({"sinks": "log"}, "sinks must be a list of sink names"),
        ({"sinks": ("log", "log")}, "names a sink twice"),
        ({"sinks": ("bad name",)}, "sink name 'bad name' is not valid"),
        ({"deployment": "../x"}, "deployment '../x' is not valid"),
        ({"name": ""}, "alert rule name must be a non-empty string"),
        ({"metric": "drift"}, "alert rule 'drift': alert metric 'drift' is not known"),
    ],
)
def test_bad_rules_are_refused_with_the_field_and_value(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)):
        drift_rule(**changes)


def test_rule_enums_accept_their_strings() -> None:
    rule = drift_rule(comparison="below", severity="critical", action="retrain", sinks=["log"])
    assert rule.comparison is Comparison.BELOW
    assert rule.severity is Severity.CRITICAL
    assert rule.action is RuleAction.RETRAIN
    assert rule.sinks == ("log",)
    assert rules_from_config([rule.to_dict()]) == (rule,)


# --- the [alerts] table --------------------------------------------------------------------


def documented_example() -> dict[str, Any]:
    doc = alert_config.__doc__ or ""
    block = doc.split("::\n", 1)[1].split("\nA sink named", 1)[0]
    return tomllib.loads(textwrap.dedent(block))


def test_the_documented_example_reads_as_documented() -> None:
    config = alerts_from_config(documented_example()["alerts"])
    assert config.rules == (
        AlertRule(
            name="drift",
            deployment="bike-demand",
            metric="drift_score",
            comparison=Comparison.ABOVE,
            threshold=1.0,
            for_windows=3,
            cooldown_s=3600,
            severity=Severity.CRITICAL,
            sinks=("log", "ops"),
            action=RuleAction.RETRAIN,
        ),
    )
    assert config.sinks == {
        "log": LogSinkConfig("log"),
        "ops": HttpSinkConfig(
            "ops",
            SinkType.WEBHOOK,
            url="https://hooks.example.com/loopml",
            secret_env="LOOPML_WEBHOOK_SECRET",
            timeout_s=5,
            retries=2,
            backoff_s=1.0,
        ),
        "chat": HttpSinkConfig("chat", SinkType.SLACK, url_env="SLACK_WEBHOOK_URL"),
        "mail": EmailSinkConfig(
            "mail",
            host="smtp.example.com",
            port=587,
            sender="loopml@example.com",
            to=("oncall@example.com",),
            username="loopml",
            password_env="SMTP_PASSWORD",
        ),
    }
    assert config.rules_for("bike-demand") == config.rules
    assert config.rules_for("other") == ()


def test_rules_default_to_every_deployment_and_the_log_sink() -> None:
    (rule,) = rules_from_config(
        [{"name": "slow", "metric": "latency_p99_ms", "comparison": "above", "threshold": 250}]
    )
    assert rule.deployment == "*"
    assert rule.sinks == ("log",)
    assert rule.for_windows == 1
    assert rule.severity is Severity.WARNING
    assert rule.applies_to("anything")
    assert alerts_from_config({}).sinks == {"log": LogSinkConfig("log")}
    assert AlertsConfig().sinks == {"log": LogSinkConfig("log")}


def rule_table(**changes: Any) -> dict[str, Any]:
    table: dict[str, Any] = {
        "name": "drift",
        "metric": "drift_score",
        "comparison": "above",
        "threshold": 1.0,
    }
    table.update(changes)
    return {k: v for k, v in table.items() if v is not None}


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            {"rules": [rule_table(treshold=2)]},
            "loopml.toml: alerts.rules[1]: unknown key 'treshold' (did you mean 'threshold'?)",
        ),
        (
            {"rules": [rule_table(threshold=None)]},
            "alerts.rules[1]: missing key 'threshold': the limit, e.g. threshold = 1.0",
        ),
        (
            {"rules": [rule_table(), rule_table()]},
            "alerts.rules[2]: a rule named 'drift' is defined twice",
        ),
        ({"rules": [rule_table(sinks="log")]}, "alerts.rules[1].sinks must be a list"),
        (
            {"rules": [rule_table(threshold="high")]},
            "alerts.rules[1]: alert rule 'drift': threshold must be a finite number, got 'high'",
        ),
        ({"rules": {"name": "x"}}, "alerts.rules must be an array of tables"),
        ({"rules": ["x"]}, "alerts.rules[1] must be a table"),
        (
            {"rules": [rule_table(sinks=["log", "opps"])], "sinks": {"ops": {"type": "log"}}},
            "sends to sink 'opps' (did you mean 'ops'?), which is not defined",
        ),
        ({"rule": []}, "unknown key 'rule' (did you mean 'rules'?)"),
        ({"sinks": {"x": {"type": "pager"}}}, 'alerts.sinks.x.type must be "webhook", "slack"'),
        ({"sinks": {"x": {"url": "https://a.example"}}}, "alerts.sinks.x.type must be"),
        ({"sinks": {"bad name": {"type": "log"}}}, "sink name 'bad name' is not valid"),
        ({"sinks": {"x": {"type": "log", "file": "a"}}}, "unknown key 'file'"),
        ({"sinks": {"x": "log"}}, "alerts.sinks.x must be a table"),
    ],
)
def test_bad_alert_tables_are_refused_with_the_key_path(
    table: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)):
        alerts_from_config(table)


def webhook(**spec: Any) -> dict[str, Any]:
    return {"hook": {"type": "webhook", "url": "https://hooks.example.com/x", **spec}}


@pytest.mark.parametrize(
    ("sinks", "message"),
    [
        (webhook(url="ftp://hooks.example.com/x"), "must start with https:// (or http://)"),
        (webhook(url="https://user:pw@hooks.example.com/"), "carries credentials"),
        (webhook(url="https:///path"), "has no host"),
        (webhook(url="https://hooks.example.com:99999/"), "is malformed"),
        (webhook(url_env="HOOK_URL"), "set exactly one of url"),
        (webhook(secret_env="not-a-var"), "secret_env must name an environment variable"),
        (webhook(timeout_s=0), "timeout_s must be a number of seconds in (0, 60]"),
        (webhook(timeout_s=600), "timeout_s must be a number of seconds in (0, 60]"),
        (webhook(retries=-1), "retries must be a whole number from 0 to 10"),
        (webhook(retries=True), "retries must be a whole number"),
        (webhook(backoff_s="1s"), "backoff_s must be a number of seconds"),
        (webhook(allow_private="yes"), "allow_private must be true or false"),
        (webhook(secret="plain"), "unknown key 'secret' (did you mean 'secret_env'?)"),
        (
            {"chat": {"type": "slack", "url": "https://hooks.slack.com/x", "secret_env": "S"}},
            "a slack sink sends no signature",
        ),
        ({"m": {"type": "email", "host": "smtp.example.com", "to": "a@b.c"}}, "missing key 'from'"),
    ],
)
def test_bad_http_and_email_sinks_are_refused(sinks: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)):
        sinks_from_config(sinks)


def email(**spec: Any) -> dict[str, Any]:
    base = {"type": "email", "host": "smtp.example.com", "from": "a@example.com", "to": "b@x.io"}
    return {"mail": {**base, **spec}}


def test_email_sink_defaults_and_ports() -> None:
    plain = sinks_from_config(email())["mail"]
    assert isinstance(plain, EmailSinkConfig)
    assert (plain.port, plain.starttls, plain.ssl, plain.to) == (587, True, False, ("b@x.io",))
    smtps = sinks_from_config(email(ssl=True, starttls=False))["mail"]
    assert isinstance(smtps, EmailSinkConfig)
    assert smtps.port == 465


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"ssl": True}, "starttls and ssl are two ways to encrypt"),
        ({"to": []}, "to must be a list of addresses"),
        ({"to": ["ops"]}, "'ops' is not an email address"),
        ({"from": "a@b.c\nBcc: x@y.z"}, "is not an email address"),
        ({"port": 0}, "port must be between 1 and 65535"),
        ({"port": "25"}, "port must be a whole number"),
        ({"username": "me"}, "set both username and password_env"),
        ({"password_env": "PW"}, "set both username and password_env"),
        ({"host": "smtp example"}, "host must be an SMTP server name"),
        ({"starttls": "no"}, "starttls must be true or false"),
        ({"password": "x"}, "unknown key 'password' (did you mean 'password_env'?)"),
    ],
)
def test_bad_email_sinks_are_refused(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)):
        sinks_from_config(email(**spec))
