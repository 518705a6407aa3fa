"""Evaluations stored with model versions, read by the gates and by `loopml check`."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from loopml.client import Client
from loopml.domain.approvals import GatesFailed
from loopml.domain.errors import InvalidInput, NotFound
from loopml.domain.gate_file import policy_from_toml
from loopml.domain.tracking import DatasetRef
from loopml.services.model_evaluation import check


def _frame(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    region = np.where(rng.random(n) < 0.5, "north", "south")
    y = (x1 + 0.5 * x2 + rng.normal(scale=0.5, size=n) > 0).astype(int)
    return pd.DataFrame({"x1": x1, "x2": x2, "region": region, "label": y})


@pytest.fixture
def classifier(client: Client) -> Client:
    data = client.add_dataset("labelled", _frame()).version
    frame = _frame()
    model = LogisticRegression().fit(frame[["x1", "x2"]], frame["label"])
    client.register_model(
        model,
        "clf",
        sample=frame[["x1", "x2"]],
        inputs=[DatasetRef(data.name, data.version, data.digest)],
    )
    return client


def test_an_evaluation_is_stored_with_the_version_as_json_and_html(classifier: Client) -> None:
    result = classifier.evaluate_model(
        "models:/clf/1", "labelled@1", label="label", slices=["region"], sensitive=["region"]
    )
    record = classifier.app.evaluations.latest("models:/clf/1")
    assert record == result.record and record.dataset == "labelled@1" and record.rows == 300
    assert record.metrics["accuracy"] == pytest.approx(result.evaluation.metrics["accuracy"])
    assert "slice:region=north/accuracy" in record.metrics
    assert "fairness:region/demographic_parity_difference" in record.metrics
    assert record.latency_p99_ms is not None and record.latency_p99_ms > 0
    stored = json.loads(classifier.app.blobs.get_bytes(record.evaluation))
    assert stored["task"] == "classification" and stored["label"] == "label"
    html = classifier.app.evaluations.report_html(record)
    assert html.lower().startswith("<!doctype html>") and "models:/clf/1" in html
    events = classifier.app.audit.list_events("models:/clf/1", 100, None)
    assert "model_version.evaluate" in [e.action for e in events]


def test_the_gates_read_the_newest_evaluation(classifier: Client) -> None:
    classifier.app.registry.gates = policy_from_toml(
        """
        [gates.default.staging]
        require_data_validation = ["evaluation"]
        max_latency_p99_ms = 10000
        [gates.default.staging.thresholds]
        accuracy = 0.99
        """,
        "loopml.toml",
    )
    before = classifier.gate_report("models:/clf/1", "staging")
    assert {c.name for c in before.failures} >= {"min:accuracy", "latency_p99"}  # not measured
    classifier.evaluate_model("models:/clf/1", "labelled@1", label="label")
    after = classifier.gate_report("models:/clf/1", "staging")
    assert [c.name for c in after.failures] == ["min:accuracy", "data_validation:evaluation"]
    with pytest.raises(GatesFailed, match="accuracy"):
        classifier.promote("clf", 1, "staging")
    assert classifier.get_model_version("models:/clf/1").stage.value == "candidate"


def test_check_validates_training_and_evaluation_data_against_the_schema(
    classifier: Client,
) -> None:
    schema = classifier.infer_schema("labelled@1", label="label")
    verdict = check(
        classifier.app.evaluations,
        "models:/clf/1",
        "staging",
        "labelled@1",
        label="label",
        actor="ci",
        schema=schema,
    )
    assert set(verdict.validation) == {"training", "evaluation"} and verdict.passed
    markdown = verdict.to_markdown()
    assert markdown.startswith("### ✅ loopml check: `models:/clf/1` passed")
    assert "**training data**: ✅ passed" in markdown and "| accuracy |" in markdown


def test_check_fails_when_the_evaluation_data_breaks_the_schema(classifier: Client) -> None:
    schema = classifier.infer_schema("labelled@1", label="label")
    broken = _frame(seed=1)
    broken.loc[:20, "region"] = "atlantis"  # a category the schema never saw
    classifier.add_dataset("labelled", broken)
    verdict = check(
        classifier.app.evaluations,
        "models:/clf/1",
        "staging",
        "labelled@2",
        label="label",
        actor="ci",
        schema=schema,
    )
    assert not verdict.validation["evaluation"].ok and verdict.validation["training"].ok
    assert not verdict.passed and "❌ failed" in verdict.to_markdown()
    assert "atlantis" in verdict.to_markdown()


def test_evaluating_without_the_label_or_the_inputs_is_refused(classifier: Client) -> None:
    with pytest.raises(InvalidInput, match="label column 'target' is not in the evaluation data"):
        classifier.evaluate_model("models:/clf/1", "labelled@1", label="target")
    classifier.add_dataset("partial", _frame().drop(columns=["x2"]))
    with pytest.raises(InvalidInput, match=r"needs input columns \['x2'\]"):
        classifier.evaluate_model("models:/clf/1", "partial@1", label="label")
    with pytest.raises(NotFound, match="has not been evaluated"):
        classifier.app.evaluations.latest("models:/clf/1")  # nothing half-stored


def test_a_regressor_gets_regression_metrics(client: Client) -> None:
    frame = pd.DataFrame({"x": np.arange(50.0), "y": np.arange(50.0) * 2 + 1})
    client.register_model(LinearRegression().fit(frame[["x"]], frame["y"]), "reg")
    result = client.evaluate_model("models:/reg/1", frame, label="y")
    assert result.evaluation.task == "regression"
    assert result.record.metrics["rmse"] == pytest.approx(0.0, abs=1e-9)
    assert result.record.dataset is None  # evaluated on a table, not a stored version
