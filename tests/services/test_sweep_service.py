"""The sweep service with real Optuna on the in-memory stores: pruning, failures, inputs."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest

import loopml
from loopml.bootstrap import Loopml
from loopml.client import ActiveRun, Client
from loopml.domain.errors import InvalidInput, InvalidState
from loopml.domain.sweep import TrialState
from loopml.domain.tracking import RunStatus
from loopml.services.sweep import Trial


def constant(trial: Trial[ActiveRun]) -> float:
    return trial.suggest_float("x", 0.0, 1.0)


def test_a_trial_reporting_a_bad_intermediate_value_is_pruned(client: Client) -> None:
    def curve(trial: Trial[ActiveRun]) -> float:
        lr = trial.suggest_float("lr", 0.1, 1.0)
        # From trial 5 on (the median pruner's warm-up is 5 trials) the curve is hopeless.
        level = 0.0 if trial.number >= 5 else 0.5 + lr / 4
        for step in range(3):
            trial.report(level + step / 100, step)
        return level + 0.03

    result = client.sweep(curve, name="curves", metric="auc", direction="maximize", n_trials=7)

    assert (result.n_complete, result.n_pruned, result.n_failed) == (5, 2, 0)
    pruned = [t for t in result.trials if t.state is TrialState.PRUNED]
    assert [t.number for t in pruned] == [5, 6]
    for record in pruned:
        assert (record.step, record.value) == (0, 0.0)
        run = client.get_run(record.run_id)
        assert run.status is RunStatus.KILLED
        assert run.tags["loopml.trial_state"] == "pruned"
        assert [m.step for m in client.get_metric_history(run.id, "auc")] == [0]
    complete = client.get_run(result.trials[0].run_id)
    history = client.get_metric_history(complete.id, "auc")
    assert [m.step for m in history] == [0, 1, 2, 3]  # three reports, then the final value
    assert client.get_run(result.run_id).metrics["n_pruned"] == 2


def test_a_failing_trial_is_recorded_failed_and_the_sweep_goes_on(client: Client) -> None:
    def flaky(trial: Trial[ActiveRun]) -> float:
        x = trial.suggest_int("x", 0, 10)
        if trial.number == 1:
            raise ValueError("diverged")
        return float(x)

    result = client.sweep(flaky, name="flaky", metric="score", direction="maximize", n_trials=4)

    assert [t.state for t in result.trials] == [
        TrialState.COMPLETE,
        TrialState.FAILED,
        TrialState.COMPLETE,
        TrialState.COMPLETE,
    ]
    failed = client.get_run(result.trials[1].run_id)
    assert failed.status is RunStatus.FAILED
    assert failed.tags["loopml.trial_state"] == "failed"
    assert failed.tags["loopml.error"] == "ValueError: diverged"
    assert "x" in failed.params  # what it was trying is kept
    assert result.trials[1].error == "ValueError: diverged"
    assert client.get_run(result.run_id).status is RunStatus.FINISHED
    assert client.get_run(result.run_id).metrics["n_failed"] == 1


def test_a_sweep_whose_every_trial_fails_raises_naming_the_first_error(client: Client) -> None:
    def broken(trial: Trial[ActiveRun]) -> float:
        raise KeyError(f"column {trial.number}")

    with pytest.raises(InvalidState, match="every trial of sweep 'broken' failed") as caught:
        client.sweep(broken, name="broken", metric="score", direction="minimize", n_trials=3)
    message = str(caught.value)
    assert "the first, trial 0" in message and "KeyError: 'column 0'" in message
    assert isinstance(caught.value.__cause__, KeyError)
    sweep_run = next(r for r in client.search_runs() if r.name == "broken")
    assert sweep_run.status is RunStatus.FAILED
    assert sweep_run.metrics["n_failed"] == 3


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        ("0.9", "the objective returned str '0.9'; expected a number"),
        (math.nan, "the objective returned score = nan; a trial's value must be finite"),
        (None, "the objective returned NoneType None"),
        ((1.0, 2, 3), "a tuple of 3 items"),
        (True, "the objective returned bool True"),
    ],
)
def test_an_objective_returning_no_finite_number_fails_its_trial(
    client: Client, returned: object, message: str
) -> None:
    with pytest.raises(InvalidState, match="every trial") as caught:
        client.sweep(
            lambda _t: returned, name="bad", metric="score", direction="minimize", n_trials=1
        )
    assert message in str(caught.value)


def test_registering_needs_every_trial_to_return_its_model(client: Client) -> None:
    with pytest.raises(InvalidState, match=r"return \(value, model\)"):
        client.sweep(lambda _t: 0.5, name="s", metric="f1", n_trials=1, register_as="m")
    assert list(client.list_models()) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_trials": 0}, "n_trials must be a whole number of at least 1, got 0"),
        ({"n_trials": 2.5}, "n_trials must be a whole number of at least 1, got 2.5"),
        ({"direction": "up"}, "direction must be 'maximize' or 'minimize', got 'up'"),
        ({"metric": ""}, "metric key must be a non-empty string, got ''"),
        ({"metric": "score", "direction": None}, "cannot tell whether metric 'score' should"),
        ({"register_as": "a/b"}, "model name 'a/b' is not valid"),
        ({"name": ""}, "sweep name must be a non-empty string"),
        ({"pruner": "early"}, "pruner must be one of median, hyperband, none"),
        ({"timeout_s": -1}, "timeout_s must be a positive number of seconds"),
        ({"space": {"alpha": "wide"}}, "space['alpha'] is not a distribution: got str 'wide'"),
        ({"space": {"alpha": (3, 1)}}, "space['alpha'] is not a distribution"),
    ],
)
def test_bad_arguments_fail_before_any_run_starts(
    client: Client, kwargs: dict[str, Any], message: str
) -> None:
    args: dict[str, Any] = {"name": "s", "metric": "accuracy", "n_trials": 2, **kwargs}
    with pytest.raises(InvalidInput) as caught:
        client.sweep(constant, **args)
    assert message in str(caught.value)
    assert list(client.search_runs()) == []


def test_a_non_callable_objective_is_refused(client: Client) -> None:
    with pytest.raises(InvalidInput, match="the objective must be a function of one trial"):
        loopml.sweep("train.py", client=client, name="s", metric="f1", n_trials=1)  # type: ignore[arg-type]


def test_the_fluent_sweep_nests_under_the_active_run_and_makes_each_trial_active(
    app: Loopml,
) -> None:
    loopml.set_client(Client(app=app))
    try:

        def objective(trial: Trial[ActiveRun]) -> float:
            assert loopml.active_run() is trial.run
            loopml.log_metric("seen", trial.number)
            return trial.suggest_float("x", 0.0, 1.0)

        with loopml.start_run("outer-exp") as outer:
            result = loopml.sweep(objective, name="nested", metric="r2", n_trials=2)
        client = loopml.get_client()
        sweep_run = client.get_run(result.run_id)
        assert (sweep_run.parent_id, sweep_run.experiment) == (outer.id, "outer-exp")
        assert client.get_run(result.trials[1].run_id).metrics["seen"] == 1.0
        assert loopml.active_run() is None
    finally:
        default = loopml.get_client()
        loopml.set_client(None)
        default.close()


def test_no_trial_starts_after_the_timeout(client: Client) -> None:
    def slow(trial: Trial[ActiveRun]) -> float:
        time.sleep(0.05)
        return trial.suggest_float("x", 0.0, 1.0)

    result = client.sweep(slow, name="slow", metric="r2", n_trials=100, timeout_s=0.2)
    assert 1 <= len(result.trials) < 100


def test_an_interrupt_stops_the_sweep_and_marks_its_runs_killed(client: Client) -> None:
    def interrupted(trial: Trial[ActiveRun]) -> float:
        if trial.number == 1:
            raise KeyboardInterrupt
        return 1.0

    with pytest.raises(KeyboardInterrupt):
        client.sweep(interrupted, name="stop", metric="r2", n_trials=5)
    runs = {r.name: r for r in client.search_runs()}
    assert set(runs) == {"stop", "stop-0", "stop-1"}
    assert runs["stop"].status is RunStatus.KILLED
    assert runs["stop-1"].status is RunStatus.KILLED
    assert runs["stop-0"].status is RunStatus.FINISHED
