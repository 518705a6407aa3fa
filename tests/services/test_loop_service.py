"""The retrain loop on a real workspace: labelled production rows appended to the data, a
real model trained and registered, candidate and champion evaluated on one hold-out, the
production gates of loopml.toml, a canary watched in the real prediction log, and the
verdict; resumed after a crash without repeating a stage's effect."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sklearn.dummy import DummyRegressor
from sklearn.linear_model import LinearRegression

from loopml.domain.deployments import Action, Target
from loopml.domain.lifecycle import Stage
from loopml.domain.loop import LoopRun, LoopState
from loopml.domain.monitoring import LoopSpec, MonitorSpec
from loopml.domain.predictions import Route
from loopml.services.loop import HOLDOUT_SHARE
from monitoring_support import (
    FEATURES,
    GATES,
    T0,
    Workspace,
    bikes,
    dataset_ref,
    open_workspace,
    regressor,
)

if TYPE_CHECKING:
    import pandas as pd

LOOP = LoopSpec(canary_share=40.0, watch_s=60, min_canary_rows=40, max_error_ratio=1.2)
SPEC = MonitorSpec("demand", window_rows=100, label="demand", loop=LOOP)


def new_world(n: int, seed: int) -> pd.DataFrame:
    """Demand after the change: hot hours now draw 40 more bikes per unit of temperature."""
    frame = bikes(n, seed=seed)
    frame["demand"] += 40 * frame["temp"]
    return frame


class NewestDataTrainer:
    """Trains on the newest version of the dataset and registers the model from a run that
    read that version; what a workspace pipeline does, without the pipeline."""

    def __init__(
        self,
        ws: Workspace,
        fit: Callable[[pd.DataFrame], Any] = regressor,
        features: Sequence[str] = FEATURES,
    ) -> None:
        self.ws = ws
        self.fit = fit
        self.features = list(features)
        self.reasons: list[str] = []

    def train(self, reason: str) -> str:
        self.reasons.append(reason)
        client = self.ws.client
        version = client.get_dataset("bikes")
        frame = client.read_dataset(version.ref).to_pandas()
        with client.start_run("retrain") as run:
            client.log_inputs(run.id, [dataset_ref(version)])
            mv = client.register_model(
                self.fit(frame), "demand", sample=frame[self.features], run_id=run.id
            )
        return mv.uri


def without_city(frame: pd.DataFrame) -> Any:
    """Ignoring the city: a lenient gate passes it (r2 well above 0.5), yet it errs by
    about 8 bikes where the champion errs by 1."""
    return LinearRegression().fit(frame[["temp", "hour"]], frame["demand"])


class Crash(BaseException):
    """The process dies: nothing catches it, as nothing catches a SIGKILL."""


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    workspace = open_workspace(tmp_path, monkeypatch, GATES)
    workspace.deploy(workspace.train(bikes(600, seed=0)))
    return workspace


def labelled_traffic(ws: Workspace, rows: pd.DataFrame, at_ms: int, **kw: Any) -> list[str]:
    ids = ws.serve("demand", rows, at_ms=at_ms, **kw)
    ws.label(ids, rows["demand"].tolist())
    return ids


def run_until(ws: Workspace, run: LoopRun, trainer: Any, state: LoopState) -> LoopRun:
    while run.state is not state:
        advanced = ws.app.loops.step(run, SPEC, trainer)
        assert advanced.revision == run.revision + 1, advanced.steps[-1].detail
        run = advanced
    return run


def canary_traffic(
    ws: Workspace, world: Callable[[int, int], pd.DataFrame], seed: int
) -> list[str]:
    """60 rows to the canary and 90 to production since the canary started, labelled;
    returns the canary's request ids."""
    ws.clock.advance(1)
    at = ws.clock.ms - 900
    canary = labelled_traffic(ws, world(60, seed), at, step_ms=10, route=Route.CANARY)
    labelled_traffic(ws, world(90, seed + 1), at + 5, step_ms=5)
    return canary


def routes(ws: Workspace) -> tuple[Target | None, Target | None, float]:
    current = ws.app.deployments.get("demand")
    return current.production, current.canary, current.canary_share


def test_a_better_candidate_is_promoted(ws: Workspace) -> None:
    labelled_traffic(ws, new_world(120, seed=1), T0 - 3_600_000)
    trainer = NewestDataTrainer(ws)
    run = ws.app.loops.start(SPEC, trigger="manual")
    assert (run.state, run.champion, run.model) == (LoopState.STARTED, 1, "demand")
    assert ws.app.loops.start(SPEC, trigger="again") == run  # one loop at a time

    run = ws.app.loops.step(run, SPEC, trainer)
    assert run.state is LoopState.TRAINED, run.steps[-1].detail
    assert run.candidate == 2 and trainer.reasons == [f"loop {run.id}: manual"]
    held_out = int(120 * HOLDOUT_SHARE)
    assert run.facts["labelled_rows"] == 120
    assert run.facts["data"] == "bikes@2" and run.facts["holdout"] == "demand-holdout@1"
    bikes_2 = ws.client.get_dataset("bikes@2")
    assert bikes_2.rows == 600 + 120 - held_out  # the base plus the older labelled rows
    holdout = ws.client.read_dataset("demand-holdout@1").to_pandas()
    assert len(holdout) == held_out
    assert list(holdout.columns) == ["temp", "hour", "city", "demand", "hot"]
    assert holdout["demand"].notna().all()
    [lineage_data] = [
        c
        for c in ws.app.lineage.of_model("models:/demand/2").children[0].children
        if c.kind == "dataset_version"
    ]
    assert lineage_data.id == "datasets:/bikes/2"  # the candidate read the new version

    run = ws.app.loops.step(run, SPEC, trainer)
    assert run.state is LoopState.EVALUATED, run.steps[-1].detail
    scores = run.facts["scores"]
    assert scores["candidate"]["rmse"] < scores["champion"]["rmse"]
    for version in (1, 2):  # both judged on the same data
        assert ws.app.evaluations.latest(f"models:/demand/{version}").dataset == "demand-holdout@1"

    run = ws.app.loops.step(run, SPEC, trainer)
    assert run.state is LoopState.GATED, run.steps[-1].detail
    assert routes(ws) == (Target("demand", 1), None, 0.0)  # gates change no route

    run = ws.app.loops.step(run, SPEC, trainer)
    assert run.state is LoopState.CANARY
    assert routes(ws) == (Target("demand", 1), Target("demand", 2), 40.0)
    assert run.canary_since_ms is not None
    assert run.watch_until_ms == run.canary_since_ms + 60_000

    canary_traffic(ws, new_world, seed=20)
    watching = ws.app.loops.step(run, SPEC, trainer)
    assert watching == run  # held so far, but the watch period is not over

    ws.clock.advance(60)
    run = ws.app.loops.step(run, SPEC, trainer)
    assert run.state is LoopState.PROMOTED, run.steps[-1].detail
    assert run.facts["canary_rows"] == 60
    assert run.facts["canary_error"] < run.facts["production_error"]
    assert routes(ws) == (Target("demand", 2), None, 0.0)
    assert ws.client.get_model("demand").aliases["champion"] == 2
    assert ws.client.get_model_version("models:/demand/2").stage is Stage.PRODUCTION
    assert ws.app.loops.active("demand") is None

    events = sorted(ws.client.audit_events(f"demand/{run.id}"), key=lambda e: e.seq)
    assert [e.action for e in events] == [
        "loop.started",
        "loop.trained",
        "loop.evaluated",
        "loop.gated",
        "loop.canary",
        "loop.promoted",
    ]
    assert ws.client.verify_audit().ok


def test_a_worse_candidate_is_rejected_and_production_unchanged(ws: Workspace) -> None:
    labelled_traffic(ws, bikes(80, seed=1), T0 - 3_600_000)
    trainer = NewestDataTrainer(ws, lambda f: DummyRegressor().fit(f[FEATURES], f["demand"]))
    run = ws.app.loops.run_to_end(ws.app.loops.start(SPEC, "manual"), SPEC, trainer)
    assert run.state is LoopState.REJECTED
    assert "gates refused" in run.steps[-1].detail and "r2" in run.steps[-1].detail
    assert [s.state for s in run.steps] == [
        LoopState.STARTED,
        LoopState.TRAINED,
        LoopState.EVALUATED,
        LoopState.REJECTED,
    ]
    assert routes(ws) == (Target("demand", 1), None, 0.0)
    assert ws.client.get_model_version("models:/demand/2").stage is Stage.CANDIDATE
    assert "champion" not in ws.client.get_model("demand").aliases


def test_a_canary_that_does_worse_is_rolled_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lenient = "\n[gates.models.demand.production.thresholds]\nr2 = 0.5\n"
    ws = open_workspace(tmp_path, monkeypatch, lenient)
    ws.deploy(ws.train(bikes(600, seed=0)))
    labelled_traffic(ws, bikes(80, seed=1), T0 - 3_600_000)
    trainer = NewestDataTrainer(ws, without_city, ["temp", "hour"])
    run = run_until(ws, ws.app.loops.start(SPEC, "manual"), trainer, LoopState.CANARY)
    assert routes(ws)[1] == Target("demand", 2)

    canary_traffic(ws, bikes, seed=30)
    run = ws.app.loops.step(run, SPEC, trainer)  # before the watch ends: clearly worse
    assert run.state is LoopState.ROLLED_BACK
    assert "canary degraded: canary error" in run.steps[-1].detail
    assert run.facts["canary_error"] > 3 * run.facts["production_error"]
    assert routes(ws) == (Target("demand", 1), None, 0.0)
    assert ws.client.get_model_version("models:/demand/1").stage is Stage.CANDIDATE
    assert "champion" not in ws.client.get_model("demand").aliases


def test_a_canary_without_enough_rows_is_not_promoted_unseen(ws: Workspace) -> None:
    labelled_traffic(ws, new_world(120, seed=1), T0 - 3_600_000)
    trainer = NewestDataTrainer(ws)
    run = run_until(ws, ws.app.loops.start(SPEC, "manual"), trainer, LoopState.CANARY)
    ws.clock.advance(61)
    run = ws.app.loops.step(run, SPEC, trainer)
    assert run.state is LoopState.ROLLED_BACK
    assert "answered only 0 rows" in run.steps[-1].detail
    assert routes(ws) == (Target("demand", 1), None, 0.0)


def test_a_trainer_that_raises_fails_the_loop(ws: Workspace) -> None:
    labelled_traffic(ws, bikes(80, seed=1), T0 - 3_600_000)

    class Broken:
        def train(self, reason: str) -> str:
            raise ValueError("the GPU caught fire")

    run = ws.app.loops.run_to_end(ws.app.loops.start(SPEC, "manual"), SPEC, Broken())
    assert run.state is LoopState.FAILED
    assert run.steps[-1].detail == "started failed: ValueError: the GPU caught fire"
    assert routes(ws) == (Target("demand", 1), None, 0.0)
    assert ws.app.loops.active("demand") is None  # a new loop may start
    assert ws.app.loops.start(SPEC, "again").id != run.id


def test_too_few_labelled_rows_fail_with_a_clear_message(ws: Workspace) -> None:
    labelled_traffic(ws, bikes(30, seed=1), T0 - 3_600_000)
    ws.serve("demand", bikes(100, seed=2), at_ms=T0 - 1_000_000)  # never labelled
    trainer = NewestDataTrainer(ws)
    run = ws.app.loops.run_to_end(ws.app.loops.start(SPEC, "manual"), SPEC, trainer)
    assert run.state is LoopState.FAILED
    assert "only 30 production rows have labels; the loop needs at least 40" in (
        run.steps[-1].detail
    )
    assert trainer.reasons == []
    assert routes(ws) == (Target("demand", 1), None, 0.0)


def test_reviewed_rows_count_as_labelled_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = open_workspace(tmp_path, monkeypatch, GATES)
    ws.deploy(ws.train(bikes(600, seed=0)))
    (ws.root / "doubt_all.py").write_text(
        "def unsure(inputs, outputs):\n    return 0 * inputs['temp']\n"
    )
    review = MonitorSpec(
        "demand",
        window_rows=100,
        label="demand",
        loop=LOOP,
        review_below=0.5,
        review_function="doubt_all.py:unsure",
    )
    single, multi = new_world(30, seed=1), new_world(30, seed=2)
    singles = labelled_traffic(ws, single, T0 - 3_600_000)  # labelled by feedback
    groups = ws.serve("demand", multi, at_ms=T0 - 3_000_000, rows_per_request=3)
    truth = {(i, 0): y for i, y in zip(singles, single["demand"], strict=True)}
    values = multi["demand"].tolist()
    truth |= {(i, r): values[3 * k + r] for k, i in enumerate(groups) for r in range(3)}
    assert ws.app.reviews.sync(review) == 60
    while (item := ws.app.reviews.next("demand")) is not None:
        ws.app.reviews.label(item.id, truth[(item.request_id, item.row)], "ana")

    run = ws.app.loops.step(ws.app.loops.start(review, "manual"), review, NewestDataTrainer(ws))
    assert run.state is LoopState.TRAINED, run.steps[-1].detail
    assert run.facts["labelled_rows"] == 60  # 30 by feedback (and review), 30 by review only
    data = ws.client.read_dataset(str(run.facts["data"])).to_pandas().tail(60 - 20)
    assert data["demand"].notna().all() and data["city"].notna().all()


@pytest.mark.parametrize("crash_on", [LoopState.CANARY, LoopState.PROMOTED])
def test_a_crash_resumes_from_the_stored_stage_without_repeating_it(
    ws: Workspace, crash_on: LoopState
) -> None:
    labelled_traffic(ws, new_world(120, seed=1), T0 - 3_600_000)
    run = run_until(ws, ws.app.loops.start(SPEC, "manual"), NewestDataTrainer(ws), LoopState.GATED)
    canary: list[str] = []
    if crash_on is LoopState.PROMOTED:
        run = ws.app.loops.step(run, SPEC, NewestDataTrainer(ws))
        canary = canary_traffic(ws, new_world, seed=20)
        ws.clock.advance(61)

    store = ws.app.stores.loops
    real_update = store.update_loop

    def crash_before_recording(nxt: LoopRun, audit: Any) -> None:
        if nxt.state is crash_on:
            raise Crash  # the stage's effect happened; its record did not
        real_update(nxt, audit)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(store, "update_loop", crash_before_recording)
        with pytest.raises(Crash):
            ws.app.loops.step(run, SPEC, NewestDataTrainer(ws))

    ws = ws.reopen()  # a new agent: services rebuilt from the stores
    resumed = ws.app.loops.active("demand")
    assert resumed == run  # the stored state: the crashed stage was never recorded
    trainer = NewestDataTrainer(ws)
    if canary:  # late labels make the canary look bad now: too late, it was promoted
        ws.label(canary, [10_000.0] * len(canary))
    resumed = ws.app.loops.step(resumed, SPEC, trainer)
    assert resumed.state is crash_on, resumed.steps[-1].detail
    if crash_on is LoopState.CANARY:
        canary_traffic(ws, new_world, seed=20)
        ws.clock.advance(61)
        resumed = ws.app.loops.step(resumed, SPEC, trainer)
    assert resumed.state is LoopState.PROMOTED
    actions = [r.action for r in ws.app.deployments.history("demand")]
    assert actions.count(Action.CANARY) == 1  # routed once, whatever crashed
    assert actions.count(Action.PROMOTE) == 1
    assert trainer.reasons == []  # never trained again
    assert routes(ws) == (Target("demand", 2), None, 0.0)
    assert ws.client.verify_audit().ok


def test_a_loop_failing_while_its_canary_serves_removes_the_canary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    approval = GATES.replace(
        "[gates.models.demand.production.thresholds]",
        "[gates.models.demand.production]\nrequire_approval = true\n\n"
        "[gates.models.demand.production.thresholds]",
    )
    ws = open_workspace(tmp_path, monkeypatch, approval)
    ws.deploy(ws.train(bikes(600, seed=0)))
    labelled_traffic(ws, new_world(120, seed=1), T0 - 3_600_000)
    trainer = NewestDataTrainer(ws)
    run = run_until(ws, ws.app.loops.start(SPEC, "manual"), trainer, LoopState.CANARY)
    canary_traffic(ws, new_world, seed=20)
    ws.clock.advance(61)
    run = ws.app.loops.step(run, SPEC, trainer)  # promoting needs a person's approval
    assert run.state is LoopState.FAILED
    assert "approv" in run.steps[-1].detail
    assert run.steps[-1].detail.endswith("; its canary was removed")
    assert routes(ws) == (Target("demand", 1), None, 0.0)


def test_a_trainer_returning_the_champion_fails_the_loop(ws: Workspace) -> None:
    labelled_traffic(ws, bikes(80, seed=1), T0 - 3_600_000)

    class Stale:
        def train(self, reason: str) -> str:
            return "models:/demand/1"  # e.g. a cached register step

    run = ws.app.loops.run_to_end(ws.app.loops.start(SPEC, "manual"), SPEC, Stale())
    assert run.state is LoopState.FAILED
    assert "models:/demand/1, the champion itself" in run.steps[-1].detail
    assert routes(ws) == (Target("demand", 1), None, 0.0)


def test_a_label_the_training_data_lacks_fails_clearly(ws: Workspace) -> None:
    labelled_traffic(ws, bikes(80, seed=1), T0 - 3_600_000)
    spec = MonitorSpec("demand", window_rows=100, label="cnt", loop=LOOP)
    run = ws.app.loops.run_to_end(ws.app.loops.start(spec, "manual"), spec, NewestDataTrainer(ws))
    assert run.state is LoopState.FAILED
    assert "label = 'cnt' is not a column of the training data bikes@1" in run.steps[-1].detail
