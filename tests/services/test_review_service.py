"""ReviewService on a real workspace: unsure rows of a real prediction log queued once,
answers stored, audited and joined to the log as feedback."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from loopml.domain.errors import InvalidInput, InvalidState, NotFound
from loopml.domain.monitoring import MonitorSpec
from loopml.domain.predictions import Route
from loopml.domain.review import ReviewStatus
from monitoring_support import T0, Workspace, bikes, classifier, open_workspace

if TYPE_CHECKING:
    import pandas as pd

FEATURES = ["temp", "hour"]
BELOW = 0.75


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    workspace = open_workspace(tmp_path, monkeypatch)
    frame = bikes(600, seed=0)
    mv = workspace.train(frame, name="hot", model=classifier(frame), features=FEATURES)
    workspace.deploy(mv, "hot")
    return workspace


def spec(**kwargs: Any) -> MonitorSpec:
    values: dict[str, Any] = {"window_rows": 100, "review_below": BELOW, **kwargs}
    return MonitorSpec("hot", **values)


def unsure(ws: Workspace, rows: pd.DataFrame) -> list[int]:
    """Positions of the rows the deployed classifier is less sure of than BELOW."""
    model: Any = ws.app.registry.load("models:/hot/1")
    proba = model.predict_proba(rows[FEATURES])
    return np.flatnonzero(proba.max(axis=1) < BELOW).tolist()


def test_unsure_rows_are_queued_once(ws: Workspace) -> None:
    live = bikes(200, seed=1)
    ids = ws.serve("hot", live, at_ms=T0 - 100_000, columns=FEATURES)
    expected = unsure(ws, live)
    assert 5 < len(expected) < 150  # the test means something: some, not all

    assert ws.app.reviews.sync(spec()) == len(expected)
    assert ws.app.reviews.sync(spec()) == 0  # the same rows are never queued twice
    items = ws.app.stores.reviews.list_items("hot", ReviewStatus.OPEN, 1000)
    assert sorted(i.request_id for i in items) == sorted(ids[i] for i in expected)
    assert all(i.confidence < BELOW and i.model == "hot" and i.version == 1 for i in items)
    first = ws.app.reviews.next("hot")
    assert first is not None and first.request_id == ids[expected[0]]  # the oldest first
    assert set(first.inputs) == {"temp", "hour"}
    assert first.output in (0, 1)

    more = bikes(100, seed=2)
    later = ws.serve("hot", more, at_ms=T0 - 10_000, columns=FEATURES)
    assert ws.app.reviews.sync(spec()) == len(unsure(ws, more))  # only the new ones
    count, age = ws.app.reviews.stats("hot")
    assert count == len(expected) + len(unsure(ws, more))
    assert age == pytest.approx((ws.clock.ms - (T0 - 100_000 + expected[0])) / 1000, abs=0.01)
    assert later[0] not in {i.request_id for i in items}


def test_no_review_below_no_queue(ws: Workspace) -> None:
    ws.serve("hot", bikes(50, seed=1), at_ms=T0 - 100_000, columns=FEATURES)
    assert ws.app.reviews.sync(MonitorSpec("hot", window_rows=100)) == 0
    assert ws.app.reviews.next("hot") is None


def test_a_label_becomes_feedback_and_agreement_is_counted(ws: Workspace) -> None:
    live = bikes(200, seed=1)
    ws.serve("hot", live, at_ms=T0 - 100_000, columns=FEATURES)
    ws.app.reviews.sync(spec())
    first = ws.app.reviews.next("hot")
    assert first is not None
    answered = ws.app.reviews.label(first.id, first.output, "ana")  # agrees
    assert answered.status is ReviewStatus.LABELLED
    assert (answered.label, answered.reviewer, answered.agrees) == (first.output, "ana", True)
    second = ws.app.reviews.next("hot")
    assert second is not None and second.id != first.id
    ws.app.reviews.label(second.id, 1 - second.output, "bo")  # disagrees

    labels = {
        row["request_id"]: row["label"]
        for row in ws.app.predictions.joined("hot").to_pylist()
        if row["label"] is not None
    }
    assert labels == {first.request_id: first.output, second.request_id: 1 - second.output}
    agreement = ws.app.reviews.agreement("hot")
    assert (agreement.answered, agreement.agreed, agreement.rate) == (2, 1, 0.5)
    assert agreement.by_version == {1: (2, 1)}
    today = datetime.fromtimestamp(ws.clock.now_ms() / 1000, UTC).strftime("%Y-%m-%d")
    assert agreement.by_day == {today: (2, 1)}  # both answered today, by the test's clock
    assert ws.app.reviews.stats("hot")[0] == len(unsure(ws, live)) - 2

    events = [e for e in ws.client.audit_events() if e.action == "review.label"]
    events.sort(key=lambda e: e.seq)
    answers = [(e.actor, (e.after or {})["agrees"]) for e in events]
    assert answers == [("ana", True), ("bo", False)]
    assert ws.client.verify_audit().ok


def test_labelling_twice_is_refused(ws: Workspace) -> None:
    ws.serve("hot", bikes(200, seed=1), at_ms=T0 - 100_000, columns=FEATURES)
    ws.app.reviews.sync(spec())
    item = ws.app.reviews.next("hot")
    assert item is not None
    ws.app.reviews.label(item.id, 1, "ana")
    with pytest.raises(InvalidState, match=rf"review item {item.id} .*answered already by 'ana'"):
        ws.app.reviews.label(item.id, 0, "bo")
    assert ws.app.stores.reviews.get_item(item.id).label == 1  # the first answer stands
    feedback = [r for r in ws.app.predictions.joined("hot").to_pylist() if r["label"] is not None]
    assert [r["label"] for r in feedback] == [1]  # and no second feedback was stored
    with pytest.raises(NotFound, match="review item 9999 does not exist"):
        ws.app.reviews.label(9999, 1, "ana")


def test_a_multi_row_request_is_labelled_on_its_item_only(ws: Workspace) -> None:
    ws.serve("hot", bikes(200, seed=1), at_ms=T0 - 100_000, columns=FEATURES, rows_per_request=4)
    ws.app.reviews.sync(spec())
    item = ws.app.reviews.next("hot")
    assert item is not None and item.request_rows == 4
    ws.app.reviews.label(item.id, 1, "ana")
    # one answer for one row must not label the request's other rows
    joined = ws.app.predictions.joined("hot")
    assert joined.column("label").null_count == joined.num_rows


def test_shadow_answers_are_not_reviewed(ws: Workspace) -> None:
    frame = bikes(600, seed=4)
    shadow = ws.train(frame, name="hot", model=classifier(frame), features=FEATURES)
    ws.app.deployments.shadow("hot", shadow.uri, "tester")
    live = bikes(200, seed=1)
    ids = ws.serve("hot", live, at_ms=T0 - 100_000, columns=FEATURES)
    ws.serve("hot", live, at_ms=T0 - 100_000, columns=FEATURES, route=Route.SHADOW)
    ws.app.reviews.sync(spec())
    items = ws.app.stores.reviews.list_items("hot", ReviewStatus.OPEN, 1000)
    assert {i.version for i in items} == {1}
    assert len(items) == len(unsure(ws, live))
    assert {i.request_id for i in items} <= set(ids)


def test_a_regressor_needs_a_review_function(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = open_workspace(tmp_path, monkeypatch)
    ws.deploy(ws.train(bikes(600, seed=0)))
    ws.serve("demand", bikes(50, seed=1), at_ms=T0 - 100_000)
    regression = MonitorSpec("demand", window_rows=100, review_below=0.5)
    with pytest.raises(InvalidInput, match=r"logs no confidence.*review_function"):
        ws.app.reviews.sync(regression)


def test_a_review_function_scores_the_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = open_workspace(tmp_path, monkeypatch)
    ws.deploy(ws.train(bikes(600, seed=0)))
    (ws.root / "review_rules.py").write_text(
        "def hot_hours(inputs, outputs):\n"
        "    # unsure of late hours and of any prediction above 150\n"
        "    late = inputs['hour'] >= 22\n"
        "    return 1.0 - (late | (outputs['prediction'] > 150)).astype(float)\n"
        "\n"
        "def wrong_shape(inputs, outputs):\n"
        "    return [0.0]\n",
        encoding="utf-8",
    )
    live = bikes(120, seed=1)
    ids = ws.serve("demand", live, at_ms=T0 - 100_000)
    rules = MonitorSpec(
        "demand", window_rows=100, review_below=0.5, review_function="review_rules.py:hot_hours"
    )
    model: Any = ws.app.registry.load("models:/demand/1")
    predicted = model.predict(live[["temp", "hour", "city"]])
    expected = {ids[i] for i in range(120) if live["hour"][i] >= 22 or predicted[i] > 150}
    assert 0 < len(expected) < 120
    assert ws.app.reviews.sync(rules) == len(expected)
    items = ws.app.stores.reviews.list_items("demand", ReviewStatus.OPEN, 1000)
    assert {i.request_id for i in items} == expected
    assert {i.confidence for i in items} == {0.0}
    # numbers agree within 10% of the label
    item = items[0]
    assert ws.app.reviews.label(item.id, item.output * 1.05, "ana").agrees is True

    with pytest.raises(InvalidInput, match=r"returned shape \(1,\) for 120 rows"):
        ws.app.reviews.sync(
            MonitorSpec(
                "demand",
                window_rows=100,
                review_below=0.5,
                review_function="review_rules.py:wrong_shape",
            )
        )
    with pytest.raises(NotFound, match=r"nowhere\.py"):
        ws.app.reviews.sync(
            MonitorSpec("demand", window_rows=100, review_below=0.5, review_function="nowhere.py:f")
        )
