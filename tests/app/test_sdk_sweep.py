"""``loopml.sweep`` on a real workspace, with real Optuna and real scikit-learn models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.linear_model import LogisticRegression, Ridge

from loopml.client import ActiveRun, Client
from loopml.domain.lifecycle import Stage
from loopml.domain.tracking import RunStatus
from loopml.services.sweep import Trial

X, Y = make_classification(n_samples=120, n_features=5, random_state=0)
X_TRAIN, X_VALID, Y_TRAIN, Y_VALID = X[:80], X[80:], Y[:80], Y[80:]


@pytest.fixture
def client(ws: Path) -> Iterator[Client]:
    c = Client(ws)
    yield c
    c.close()


def logistic(trial: Trial[ActiveRun]) -> tuple[float, LogisticRegression]:
    c = trial.suggest_float("C", 1e-4, 10.0, log=True)
    model = LogisticRegression(C=c).fit(X_TRAIN, Y_TRAIN)
    return float(model.score(X_VALID, Y_VALID)), model


def children(client: Client, sweep_run_id: str) -> list[Any]:
    return list(client.search_runs(f"parent_id = '{sweep_run_id}'", order_by="start_time asc"))


def test_every_trial_is_a_run_and_the_best_model_becomes_a_candidate(client: Client) -> None:
    result = client.sweep(
        logistic,
        name="logreg",
        metric="accuracy",
        n_trials=6,
        register_as="churn",
        sample=X_VALID[:3],
        experiment="tuning",
    )

    sweep_run = client.get_run(result.run_id)
    assert (sweep_run.status, sweep_run.name, sweep_run.experiment) == (
        RunStatus.FINISHED,
        "logreg",
        "tuning",
    )
    trials = children(client, result.run_id)
    assert len(trials) == len(result.trials) == 6
    assert [t.tags["loopml.trial"] for t in trials] == [str(n) for n in range(6)]
    for run, record in zip(trials, result.trials, strict=True):
        assert run.id == record.run_id
        assert run.status is RunStatus.FINISHED
        assert run.tags["loopml.sweep"] == "logreg"
        assert run.tags["loopml.trial_state"] == "complete"
        assert float(run.params["C"]) == record.params["C"]
        assert run.metrics["accuracy"] == record.value

    best_logged = max(run.metrics["accuracy"] for run in trials)
    assert result.best is not None
    assert result.best_value == best_logged
    assert sweep_run.metrics["best_value"] == best_logged
    assert sweep_run.metrics["best_trial"] == result.best.number
    assert sweep_run.metrics["n_complete"] == 6
    assert sweep_run.params["best.C"] == repr(result.best.params["C"])
    assert sweep_run.tags["loopml.best_run"] == result.best.run_id
    assert sweep_run.params["sweep.direction"] == "maximize"

    version = result.model_version
    assert version is not None
    assert (version.model, version.version, version.stage) == ("churn", 1, Stage.CANDIDATE)
    assert version.run_id == result.best.run_id
    assert version.metrics["accuracy"] == result.best_value
    assert version.signature is not None
    loaded = client.load_model("models:/churn/1")
    assert loaded.score(X_VALID, Y_VALID) == result.best_value


def test_the_direction_is_inferred_for_known_metrics_and_space_is_suggested_first(
    client: Client,
) -> None:
    x, y = make_regression(n_samples=60, n_features=4, noise=5.0, random_state=1)
    seen: list[dict[str, Any]] = []

    def ridge(trial: Trial[ActiveRun]) -> float:
        seen.append(trial.params)
        model = Ridge(alpha=trial.params["alpha"], fit_intercept=trial.params["intercept"])
        model.fit(x[:40], y[:40])
        return float(np.sqrt(np.mean((model.predict(x[40:]) - y[40:]) ** 2)))

    result = client.sweep(
        ridge,
        name="ridge",
        metric="rmse",
        n_trials=5,
        space={"alpha": (0.01, 100.0), "intercept": [True, False]},
    )
    assert result.direction.value == "minimize"
    assert all(set(params) == {"alpha", "intercept"} for params in seen)
    values = [t.value for t in result.trials if t.value is not None]
    assert result.best_value == min(values)
    run = client.get_run(result.trials[0].run_id)
    assert set(run.params) == {"alpha", "intercept"}
