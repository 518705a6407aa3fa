"""Model cards gathered over the in-memory app, from a real model, dataset and evaluation."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.linear_model import LogisticRegression

from loopml.bootstrap import Loopml
from loopml.client import Client
from loopml.domain.card_sections import INTENDED_USE
from loopml.domain.errors import NotFound
from loopml.domain.gate_file import policy_from_toml
from loopml.domain.tracking import DatasetRef
from loopml.services.model_cards import summarize_column
from loopml.stats.profile import profile_table

POLICY = """
[gates.default.staging.thresholds]
accuracy = 0.8

[gates.default.staging.fairness]
demographic_parity_difference = 0.2
"""


def churn() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 400
    frame = pd.DataFrame(
        {
            "tenure": rng.normal(24, 8, n),
            "region": rng.choice(["north", "south", "east"], n),
            "active": rng.random(n) < 0.7,
        }
    )
    frame["churned"] = (frame["tenure"] + rng.normal(0, 2, n) < 22).astype(int)
    return frame


@pytest.fixture
def trained(client: Client) -> str:
    """models:/churn/1, trained in a run that logged dataset customers@1, and evaluated."""
    data = churn()
    with client.start_run("churn", "train") as run:
        run.log_dataset("customers", data, message="first export")
    model = LogisticRegression().fit(data[["tenure"]], data["churned"])
    mv = client.register_model(model, "churn", run_id=run.id, sample=data[["tenure"]])
    assert [i.name for i in mv.inputs] == ["customers"]  # the run's input followed
    client.app.evaluations.evaluate(
        mv.uri,
        "customers@1",
        label="churned",
        actor="t",
        slices=["region"],
        sensitive=["region"],
    )
    return mv.uri


def test_a_card_gathers_data_evaluation_gates_and_lineage(app: Loopml, trained: str) -> None:
    app.registry.gates = policy_from_toml(POLICY, "loopml.toml")
    card = app.cards.card(trained, "## Intended use\nRetention offers.\n", sections_file="c.md")

    assert (card.details.model, card.details.version, card.details.flavor) == (
        "churn",
        1,
        "sklearn",
    )
    assert card.details.inputs == ("tenure (double)",)
    [data] = card.training
    assert (data.ref, data.rows, data.column_count, data.message) == (
        "customers@1",
        400,
        4,
        "first export",
    )
    columns = {c.name: c for c in data.columns}
    assert re.fullmatch(r"-?[\d.]+ to [\d.]+; mean 2[\d.]+, std [\d.]+", columns["tenure"].summary)
    assert columns["region"].distinct == 3 and columns["region"].summary.startswith("top: ")
    assert columns["active"].summary.endswith("% true")

    e = card.evaluation
    assert e is not None
    assert (e.dataset, e.label, e.rows, e.task) == ("customers@1", "churned", 400, "classification")
    assert 0.8 < e.metrics["accuracy"] <= 1.0
    assert sorted(s.name for s in e.slices) == ["region=east", "region=north", "region=south"]
    assert [f.column for f in e.fairness] == ["region"]
    assert e.latency_p99_ms is not None

    [gates] = card.gates  # production has no policy: only staging is shown
    assert gates.stage == "staging" and gates.passed
    assert {c.name for c in gates.checks} >= {"min:accuracy"}
    assert card.lineage[0].startswith("models:/churn/1")
    assert any("dataset customers@1" in line for line in card.lineage)

    assert card.section(INTENDED_USE) is not None and card.sections_found
    assert card.missing == ("no '## Limitations' section in c.md",)


def test_a_version_never_evaluated_still_gets_a_card(client: Client) -> None:
    model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    mv = client.register_model(model, "m", metrics={"accuracy": 0.5})
    card = client.app.cards.card(mv.uri, None)
    assert card.evaluation is None and card.training == () and card.gates == ()
    assert card.sections_file == "cards/m.md" and not card.sections_found
    hint = "not evaluated yet: run 'loopml evaluate models:/m/1"
    assert any(m.startswith(hint) for m in card.missing)
    assert "| `accuracy` | 0.5 |" in card.to_markdown()  # the metrics it was registered with


def test_a_dataset_not_in_the_workspace_is_named_not_fatal(client: Client) -> None:
    model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    mv = client.register_model(model, "m", inputs=[DatasetRef("elsewhere", 4, "blake2b:00")])
    [data] = client.app.cards.card(mv.uri, None).training
    assert (data.ref, data.rows) == ("elsewhere@4", None)
    assert "not in this workspace" in data.note


def test_an_unknown_version_is_not_found(app: Loopml) -> None:
    with pytest.raises(NotFound):
        app.cards.card("models:/nope/1", None)


def test_a_column_summary_is_one_short_line_per_kind() -> None:
    profile = profile_table(
        pa.table(
            {
                "n": [1.0, 2.0, None, float("inf")],
                "c": ["a", "a", "b", None],
                "b": [True, False, True, True],
                "empty": pa.array([None, None, None, None], pa.float64()),
            }
        )
    )
    summaries = {c.name: summarize_column(c) for c in profile.columns}
    assert summaries["n"].missing == 1 and "1 infinite" in summaries["n"].summary
    assert summaries["c"].summary == "top: a 66.7%, b 33.3%"
    assert summaries["b"].summary == "75.0% true"
    assert summaries["empty"].summary == "no values"
