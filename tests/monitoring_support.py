"""A real workspace for the monitoring tests: SQLite in a temporary folder, a clock the test
moves, real scikit-learn models registered from runs that read a dataset version, and a
prediction log written by the real Parquet sink the way the server writes it (imported by
name: pytest puts ``tests/`` on the path for the suite's conftest).

The clock replaces :class:`~loopml.adapters.clock.SystemClock` in the composition root, so
every store, service and the CLI read the same test time.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder

import loopml.bootstrap
from loopml.client import Client
from loopml.domain.predictions import Feedback, PredictionRecord, Route
from loopml.domain.registry import ModelVersion
from loopml.domain.tracking import DatasetRef
from loopml.services.scoring import Scorer

if TYPE_CHECKING:
    import pytest

T0 = 1_700_000_000_000  # the test clock's start: 2023-11-14T22:13:20Z
FEATURES = ["temp", "hour", "city"]
CITY_EFFECT = {"a": 0.0, "b": 10.0, "c": 20.0}

# Production gates as the quickstart writes them, for the model "demand".
GATES = """
[gates.models.demand.production.thresholds]
r2 = 0.5

[gates.models.demand.production.champion]
rmse = { max_worse_pct = 5 }
"""


class TestClock:
    """Milliseconds that move one per reading (so records stay ordered) and when told."""

    __test__ = False  # not a test class, whatever its name says

    def __init__(self, ms: int = T0) -> None:
        self.ms = ms

    def now_ms(self) -> int:
        self.ms += 1
        return self.ms

    def advance(self, seconds: float) -> int:
        self.ms += int(seconds * 1000)
        return self.ms


def bikes(n: int, seed: int, *, noise: float = 1.0, temp_shift: float = 0.0) -> pd.DataFrame:
    """Demand = 100 temp + 2 hour + a city effect + noise: a linear model fits it."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "temp": rng.random(n) + temp_shift,
            "hour": rng.integers(0, 24, n),
            "city": rng.choice(list(CITY_EFFECT), n),
        }
    )
    frame["demand"] = (
        100 * frame["temp"]
        + 2 * frame["hour"]
        + frame["city"].map(CITY_EFFECT)
        + rng.normal(0, noise, n)
    )
    frame["hot"] = (frame["temp"] > 0.5).astype(int)
    return frame


def regressor(frame: pd.DataFrame) -> Pipeline:
    # Unseen and missing cities are served (as a lenient service would), so the log can
    # hold them and monitoring has to notice.
    encode = ColumnTransformer(
        [("city", OneHotEncoder(handle_unknown="ignore"), ["city"])], remainder="passthrough"
    )
    return make_pipeline(encode, LinearRegression()).fit(frame[FEATURES], frame["demand"])


def classifier(frame: pd.DataFrame) -> LogisticRegression:
    return LogisticRegression().fit(frame[["temp", "hour"]], frame["hot"])


@dataclass
class Workspace:
    client: Client
    clock: TestClock
    root: Path
    _ids: itertools.count[int] = field(default_factory=itertools.count)
    _models: dict[str, Any] = field(default_factory=dict)

    @property
    def app(self) -> loopml.bootstrap.Loopml:
        return self.client.app

    def reopen(self) -> Workspace:
        """A new client (new services, same stores): an agent restarted after a crash."""
        self.client.close()
        return Workspace(Client(self.root), self.clock, self.root, self._ids, {})

    def train(
        self,
        frame: pd.DataFrame,
        *,
        name: str = "demand",
        dataset: str = "bikes",
        model: Any = None,
        features: Sequence[str] = FEATURES,
    ) -> ModelVersion:
        """Version ``frame`` as ``dataset`` and register a model trained on it from a run
        that read that version, so the model's lineage reaches its training data."""
        model = regressor(frame) if model is None else model
        with self.client.start_run("monitoring") as run:
            run.log_dataset(dataset, frame)
            return self.client.register_model(
                model, name, sample=frame[list(features)], run_id=run.id
            )

    def deploy(self, mv: ModelVersion, deployment: str = "demand") -> None:
        self.app.deployments.create(deployment, mv.uri, "tester")

    def serve(
        self,
        deployment: str,
        frame: pd.DataFrame,
        *,
        at_ms: int,
        step_ms: int = 1,
        route: Route = Route.PRODUCTION,
        rows_per_request: int = 1,
        latency_ms: float = 2.0,
        columns: Sequence[str] | None = None,
    ) -> list[str]:
        """Answer ``frame``'s rows with the version on ``route`` and log them as the server
        does (inputs as sent, outputs of the real model); return the request ids."""
        current = self.app.deployments.get(deployment)
        target = {
            Route.PRODUCTION: current.production,
            Route.CANARY: current.canary,
            Route.SHADOW: current.shadow,
        }[route]
        assert target is not None, f"{deployment} has no {route.value} route"
        mv = self.app.registry.resolve(target.uri)
        if mv.uri not in self._models:
            self._models[mv.uri] = self.app.registry.load(mv.uri)
        scorer = Scorer.of(mv, self._models[mv.uri])
        sent = list(columns or [c for c in frame.columns if c not in ("demand", "hot")])
        # One model call for every row (the model answers row by row, so it is the same).
        values, confidence = scorer.predict(frame[list(scorer.columns)], "test requests")
        ids = []
        for start in range(0, len(frame), rows_per_request):
            part = frame.iloc[start : start + rows_per_request]
            end = start + len(part)
            outputs: dict[str, list[Any]] = {"prediction": values[start:end].tolist()}
            if confidence is not None:
                outputs["confidence"] = confidence[start:end].tolist()
            request_id = f"req-{next(self._ids)}"
            record = PredictionRecord(
                request_id=request_id,
                time_ms=at_ms + (start // rows_per_request) * step_ms,
                deployment=deployment,
                model=mv.model,
                version=mv.version,
                route=route,
                inputs={c: _json_values(part[c]) for c in sent},
                outputs=outputs,
                latency_ms=latency_ms,
            )
            assert self.app.prediction_sink.submit(record)
            ids.append(request_id)
        assert self.app.prediction_sink.flush()
        return ids

    def label(self, ids: Sequence[str], labels: Sequence[Any]) -> None:
        now = self.clock.now_ms()
        items = [Feedback(i, now, y) for i, y in zip(ids, labels, strict=True)]
        self.app.predictions.add_feedback(items)


def open_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: str = "") -> Workspace:
    """A new workspace in ``tmp_path / "ws"`` with ``config`` appended to loopml.toml, every
    clock of it the returned workspace's test clock."""
    clock = TestClock()
    monkeypatch.setattr(loopml.bootstrap, "SystemClock", lambda: clock)
    root = tmp_path / "ws"
    loopml.bootstrap.init_workspace(root)
    if config:
        with (root / "loopml.toml").open("a", encoding="utf-8") as handle:
            handle.write(config)
    return Workspace(Client(root), clock, root)


def dataset_ref(version: Any) -> DatasetRef:
    return DatasetRef(version.name, version.version, version.digest)


def _json_values(column: pd.Series) -> list[Any]:
    """A column as a JSON request carries it: NaN is null."""
    return [None if isinstance(v, float) and math.isnan(v) else v for v in column.tolist()]
