"""Monitors: cut a deployment's prediction log into windows and judge each against the
reference, once.

Windows are consecutive and do not overlap: with ``window_s`` they are the fixed
intervals ``[k * window_s, (k + 1) * window_s)`` of wall-clock time; with ``window_rows``
they are blocks of that many production rows in log order (a block is extended to the end
of the millisecond of its last row, so no row is split between windows). Each run of a
monitor judges every *complete* window after the newest stored one and stores one
:class:`~loopml.domain.monitoring.WindowReport` per window, so running it twice, or after a
day of downtime, judges each window exactly once. Only production rows are judged: a
canary or shadow answers other traffic and is watched by the retrain loop.

The reference is the stored profile of the data the production version was trained on
(the dataset version its lineage reaches, or ``reference = "name@version"``), summarised
once per version; prediction drift compares the outputs with the production version's
own predictions on that data, scored and profiled once and stored.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loopml.domain.drift import FeatureDrift
from loopml.domain.errors import InvalidInput, NotFound
from loopml.domain.lineage import LineageNode
from loopml.domain.monitoring import MonitorSpec, WindowReport
from loopml.domain.predictions import Route
from loopml.ports import Clock
from loopml.ports.monitoring import MonitorStore
from loopml.ports.predictions import PredictionReader
from loopml.services.scoring import Scorer
from loopml.stats.drift import DriftThresholds, Reference
from loopml.stats.profile import TableProfile, profile_table

if TYPE_CHECKING:
    from loopml.services.datasets import DatasetService
    from loopml.services.deployments import DeploymentService
    from loopml.services.lineage import LineageService
    from loopml.services.registry import RegistryService

INPUT = "in."
OUTPUT = "out."
MAX_SEGMENTS = 20  # segment values judged per window: the most frequent ones
REFRESH_WINDOWS = 48  # newest windows whose performance follows labels arriving late
# Row windows read the log a slice of time at a time, each slice resized to hold about a
# window: from one minute, between a second and a week.
_FIRST_SLICE_MS, _MIN_SLICE_MS, _MAX_SLICE_MS = 60_000, 1_000, 7 * 86_400_000
_SCORE_ROWS = 200_000  # reference rows scored once for prediction drift (a sample beyond)


@dataclass(frozen=True, slots=True)
class References:
    """What one production version's windows are compared with."""

    dataset: str  # "name@version"
    features: Reference
    outputs: Reference | None


class MonitoringService:
    def __init__(
        self,
        store: MonitorStore,
        reader: PredictionReader,
        deployments: DeploymentService,
        registry: RegistryService,
        lineage: LineageService,
        datasets: DatasetService,
        load_model: Callable[..., Any],  # (uri, *, trusted) -> the model
        clock: Clock,
        thresholds: DriftThresholds | None = None,
    ) -> None:
        self.store = store
        self.reader = reader
        self.deployments = deployments
        self.registry = registry
        self.lineage = lineage
        self.datasets = datasets
        self.load_model = load_model
        self.clock = clock
        self.thresholds = thresholds or DriftThresholds()
        self._references: dict[tuple[str, int, str | None], References] = {}
        self._feedback_seen: dict[str, int] = {}  # feedback rows at the last refresh

    # windows -----------------------------------------------------------------------------

    def run(self, spec: MonitorSpec, *, until_ms: int | None = None) -> list[WindowReport]:
        """Judge and store every complete window not judged yet; return the new reports."""
        deployment = self.deployments.get(spec.deployment)
        now = self.clock.now_ms() if until_ms is None else until_ms
        stored = self.store.list_windows(spec.deployment, limit=1)
        after_ms = stored[-1].end_ms if stored else None
        log = self.reader.stats()  # once per run: it reads every segment's footer
        reports: list[WindowReport] = []
        for key, table in self._windows(spec, after_ms, now):
            report = self.judge(spec, key, table, deployment.production.model, log.dropped)
            if self.store.add_window(report):
                reports.append(report)
        self.refresh_performance(spec, log.feedback_rows)
        return reports

    def refresh_performance(self, spec: MonitorSpec, feedback: int) -> list[WindowReport]:
        """Bring the performance of the newest :data:`REFRESH_WINDOWS` windows up to date
        with labels that arrived after they were judged (ground truth often comes days
        later); return the windows updated. Skipped while the log's ``feedback`` rows are as
        many as at the last refresh (no new labels)."""
        if spec.label is None:
            return []
        if self._feedback_seen.get(spec.deployment) == feedback:
            return []
        self._feedback_seen[spec.deployment] = feedback
        updated = []
        for window in self.store.list_windows(spec.deployment, limit=REFRESH_WINDOWS):
            if window.rows == 0 or window.labelled_rows >= window.rows or window.note:
                continue
            span = self.reader.read(spec.deployment, window.start_ms, window.end_ms + 1)
            table = self._production(span)
            if table.num_rows == 0:
                continue
            outputs = columns_with_prefix(table, OUTPUT)
            performance, labelled = self._performance(spec, table, outputs)
            if labelled > window.labelled_rows:
                newer = replace(window, performance=performance, labelled_rows=labelled)
                self.store.replace_window(newer)
                updated.append(newer)
        return updated

    def windows(self, deployment: str, limit: int = 1000) -> list[WindowReport]:
        return self.store.list_windows(deployment, limit=limit)

    def _windows(
        self, spec: MonitorSpec, after_ms: int | None, now_ms: int
    ) -> Iterator[tuple[str, pa.Table]]:
        since = None if after_ms is None else after_ms + 1
        if spec.window_s is not None:
            width = spec.window_s * 1000
            start = since if since is not None else self._first_ms(spec)
            if start is None:
                return
            start -= start % width
            while start + width <= now_ms:
                table = self._production(self.reader.read(spec.deployment, start, start + width))
                yield f"time:{start}-{start + width}", table
                start += width
            return
        assert spec.window_rows is not None
        yield from self._row_windows(spec, spec.window_rows, since, now_ms)

    def _row_windows(
        self, spec: MonitorSpec, rows: int, since: int | None, now_ms: int
    ) -> Iterator[tuple[str, pa.Table]]:
        """Blocks of ``rows`` production rows, read a slice of log time at a time (each
        slice sized to hold about a window), so a long backlog never sits in memory whole.
        Every row of a slice ``[start, until)`` is read together, across segments, so the
        rows of a millisecond are never split however the slices fall."""
        start = since if since is not None else self._first_ms(spec)
        if start is None:
            return
        step, pending = _FIRST_SLICE_MS, None
        while start < now_ms:
            until = min(start + step, now_ms)
            chunk = self._production(self.reader.read(spec.deployment, start, until))
            if chunk.num_rows:
                pending = (
                    chunk
                    if pending is None
                    else pa.concat_tables([pending, chunk], promote_options="permissive")
                )
                # rows of the newest millisecond may still be arriving in the last slice
                wait_from = now_ms - 1 if until >= now_ms else until
                windows, pending = _cut(pending, rows, wait_from)
                yield from windows
            if chunk.num_rows < rows // 4:
                step = min(step * 4, _MAX_SLICE_MS)
            elif chunk.num_rows > rows * 4:
                step = max(step // 4, _MIN_SLICE_MS)
            start = until

    def _first_ms(self, spec: MonitorSpec) -> int | None:
        for batch in self.reader.scan(spec.deployment):
            if batch.num_rows:
                return int(pc.min(batch.column("time_ms")).as_py())
        return None

    @staticmethod
    def _production(table: pa.Table) -> pa.Table:
        if table.num_rows == 0 or "route" not in table.column_names:
            return table
        return table.filter(pc.equal(table.column("route"), Route.PRODUCTION.value))

    # judging -----------------------------------------------------------------------------

    def judge(
        self, spec: MonitorSpec, key: str, table: pa.Table, model: str, log_dropped: int
    ) -> WindowReport:
        """The report of one window's production rows (``log_dropped``: records the
        prediction log lost so far)."""
        rows = table.num_rows
        start, end = _span(table, key)
        base = WindowReport(
            deployment=spec.deployment,
            window_key=key,
            start_ms=start,
            end_ms=end,
            rows=rows,
            model=model,
            created_ms=self.clock.now_ms(),
            segment_by=spec.segment_by,
            log_dropped=log_dropped,
        )
        if rows == 0:
            return replace(base, note="no production rows in this window: nothing to judge")
        version = _most_common(table.column("version"))
        latency = table.column("latency_ms").to_numpy(zero_copy_only=False)
        base = replace(base, version=version, latency_p99_ms=float(np.percentile(latency, 99)))
        if rows < spec.min_rows:
            return replace(
                base,
                note=f"{rows} rows, fewer than min_rows={spec.min_rows}: drift not judged",
            )
        refs = self.references(spec, model, version)
        features = columns_with_prefix(table, INPUT)
        outputs = columns_with_prefix(table, OUTPUT)
        segments: dict[str, tuple[FeatureDrift, ...]] = {}
        if spec.segment_by is not None:
            segments = self._segments(spec, refs.features, features)
        performance, labelled = self._performance(spec, table, outputs)
        return replace(
            base,
            reference=refs.dataset,
            features=tuple(self._drift(refs.features, features)),
            outputs=tuple(self._drift(refs.outputs, outputs)) if refs.outputs else (),
            segments=segments,
            performance=performance,
            labelled_rows=labelled,
        )

    def _drift(self, reference: Reference, table: pa.Table) -> list[FeatureDrift]:
        window = reference.window()
        window.update(table)
        return window.finish(self.thresholds)

    def _segments(
        self, spec: MonitorSpec, reference: Reference, features: pa.Table
    ) -> dict[str, tuple[FeatureDrift, ...]]:
        column = spec.segment_by
        assert column is not None
        if column not in features.column_names:
            raise InvalidInput(
                f"[monitor.{spec.deployment}] segment_by={column!r} is not an input of the "
                f"deployment; its inputs are {', '.join(features.column_names)}"
            )
        values = features.column(column)
        counts = pc.value_counts(values).to_pylist()
        counts.sort(key=lambda c: -c["counts"])
        result: dict[str, tuple[FeatureDrift, ...]] = {}
        for item in counts[:MAX_SEGMENTS]:
            value = item["values"]
            if value is None:
                continue
            part = features.filter(pc.equal(values, pa.scalar(value, values.type)))
            if part.num_rows >= spec.min_rows:
                result[str(value)] = tuple(self._drift(reference, part))
        return result

    def _performance(
        self, spec: MonitorSpec, table: pa.Table, outputs: pa.Table
    ) -> tuple[dict[str, float], int]:
        if spec.label is None or "prediction" not in outputs.column_names:
            return {}, 0
        ids = table.column("request_id").to_pylist()
        joined = self.reader.joined(spec.deployment, *_bounds(table))
        labels = _labels_by_row(joined)
        predicted = outputs.column("prediction").to_pylist()
        rows = table.column("row").to_pylist() if "row" in table.column_names else [0] * len(ids)
        pairs = [
            (p, labels[(i, r)])
            for i, r, p in zip(ids, rows, predicted, strict=True)
            if (i, r) in labels and p is not None
        ]
        if not pairs:
            return {}, 0
        return performance(pairs, task_of(spec, outputs.column_names)), len(pairs)

    # references --------------------------------------------------------------------------

    def references(self, spec: MonitorSpec, model: str, version: int) -> References:
        key = (model, version, spec.reference)
        if key not in self._references:
            self._references[key] = self._build_references(spec, model, version)
        return self._references[key]

    def reference_dataset(self, spec: MonitorSpec, model: str, version: int) -> str:
        """``name@version`` of the data the version was trained on (or the configured one)."""
        if spec.reference is not None:
            return self.datasets.get(spec.reference).ref
        found = _training_datasets(self.lineage.of_model(f"models:/{model}/{version}"))
        if not found:
            raise NotFound(
                f"models:/{model}/{version} has no dataset version in its lineage, so "
                f"[monitor.{spec.deployment}] has no reference; set reference = "
                "'dataset@version' there, or train through a run that reads a dataset"
            )
        return found[0]

    def _build_references(self, spec: MonitorSpec, model: str, version: int) -> References:
        ref = self.reference_dataset(spec, model, version)
        dataset = self.datasets.get(ref)
        profile = self.datasets.profile(dataset)
        mv = self.registry.resolve(f"models:/{model}/{version}")
        # The model's inputs, not the label or other columns it was never given.
        inputs = None if mv.signature is None else {c.name for c in mv.signature.inputs}
        names = [c.name for c in profile.columns if inputs is None or c.name in inputs]
        features = Reference.from_profile(profile, columns=names)
        stored_key = f"outputs:{model}/{version}:{dataset.ref}:{dataset.digest}"
        stored = self.store.find_reference(stored_key)
        if stored is None:
            predicted = self._output_profile(model, version, dataset.ref, trusted=spec.trusted)
            if predicted is None:
                return References(dataset.ref, features, None)
            stored = predicted.to_dict()
            self.store.put_reference(stored_key, stored)
        outputs = Reference.from_profile(TableProfile.from_dict(stored))
        return References(dataset.ref, features, outputs)

    def _output_profile(
        self, model: str, version: int, ref: str, *, trusted: bool
    ) -> TableProfile | None:
        """The version's predictions on its reference data, profiled (once per version)."""
        mv = self.registry.resolve(f"models:/{model}/{version}")
        scorer = Scorer.of(mv, self.load_model(mv.uri, trusted=trusted))
        table = self.datasets.read(ref)
        if table.num_rows > _SCORE_ROWS:
            pick = np.random.default_rng(0).choice(table.num_rows, _SCORE_ROWS, replace=False)
            table = table.take(pa.array(np.sort(pick)))
        if scorer.columns and not set(scorer.columns) <= set(table.column_names):
            return None  # the reference lacks the model's inputs: no prediction reference
        scored = scorer.score_table(table.select(list(scorer.columns) or table.column_names), ref)
        return profile_table(scored.select(list(scorer.outputs)))


def task_of(spec: MonitorSpec, outputs: list[str]) -> str | None:
    """The spec's task, else classification when the model logs a confidence (only
    classifiers do), else None: judged from the values."""
    if spec.task is not None:
        return spec.task
    return "classification" if "confidence" in outputs else None


def _cut(
    table: pa.Table, rows: int, wait_from_ms: int
) -> tuple[list[tuple[str, pa.Table]], pa.Table]:
    """The complete windows of ``rows`` rows in ``table`` (in time order, each extended to
    the end of its last millisecond) and the rows left over. A window that would end the
    table on a millisecond at or after ``wait_from_ms`` waits: more of its rows may come."""
    times = table.column("time_ms").to_numpy()
    order = np.argsort(times, kind="stable")
    windows: list[tuple[str, pa.Table]] = []
    begin = 0
    while begin + rows <= len(order):
        end = begin + rows
        last = times[order[end - 1]]
        while end < len(order) and times[order[end]] == last:
            end += 1
        if end == len(order) and last >= wait_from_ms:
            break
        part = table.take(pa.array(order[begin:end]))
        windows.append((f"rows:{int(times[order[begin]])}-{int(last)}", part))
        begin = end
    return windows, table.take(pa.array(order[begin:]))


def performance(pairs: list[tuple[Any, Any]], task: str | None) -> dict[str, float]:
    """Metrics of (prediction, label) pairs: rmse/mae for numbers, accuracy otherwise."""
    numeric = all(
        isinstance(p, int | float) and isinstance(y, int | float) and not isinstance(y, bool)
        for p, y in pairs
    )
    if task == "classification" or (task is None and not numeric):
        right = sum(1 for p, y in pairs if p == y)
        return {"accuracy": right / len(pairs)}
    predicted = np.array([float(p) for p, _ in pairs])
    actual = np.array([float(y) for _, y in pairs])
    error = predicted - actual
    result = {
        "rmse": float(math.sqrt(np.mean(error**2))),
        "mae": float(np.mean(np.abs(error))),
    }
    spread = float(np.sum((actual - actual.mean()) ** 2))
    if len(pairs) > 1 and spread > 0:
        result["r2"] = 1.0 - float(np.sum(error**2)) / spread
    return result


def _training_datasets(node: LineageNode) -> list[str]:
    """Dataset versions directly under the model's run (not their ancestors), most rows
    first: the data the version was trained on."""
    found: list[tuple[int, str]] = []

    def visit(n: LineageNode) -> None:
        for child in n.children:
            if child.kind == "dataset_version" and not child.missing:
                _, _, rest = child.id.partition("datasets:/")
                name, _, version = rest.rpartition("/")
                rows = child.attrs.get("rows", 0)
                found.append((int(rows) if isinstance(rows, int) else 0, f"{name}@{version}"))
            elif child.kind == "run":
                visit(child)

    visit(node)
    found.sort(key=lambda f: -f[0])
    return [ref for _, ref in found]


def columns_with_prefix(table: pa.Table, prefix: str) -> pa.Table:
    """The log's ``in.``/``out.`` columns of ``table``, named without the prefix."""
    names = [n for n in table.column_names if n.startswith(prefix)]
    return pa.table({n[len(prefix) :]: table.column(n) for n in names})


def _most_common(column: pa.ChunkedArray) -> int:
    counts = pc.value_counts(column).to_pylist()
    return int(max(counts, key=lambda c: c["counts"])["values"])


def _span(table: pa.Table, key: str) -> tuple[int, int]:
    if key.startswith("time:"):
        start, _, end = key[5:].partition("-")
        return int(start), int(end) - 1
    if table.num_rows == 0:
        return 0, 0
    bounds = pc.min_max(table.column("time_ms")).as_py()
    return int(bounds["min"]), int(bounds["max"])


def _bounds(table: pa.Table) -> tuple[int, int]:
    bounds = pc.min_max(table.column("time_ms")).as_py()
    return int(bounds["min"]), int(bounds["max"]) + 1


def _labels_by_row(joined: pa.Table) -> dict[tuple[str, int], Any]:
    """``(request_id, row) -> label`` of the rows whose feedback arrived."""
    if joined.num_rows == 0:
        return {}
    labelled = joined.filter(pc.is_valid(joined.column("label")))
    result: dict[tuple[str, int], Any] = {}
    ids = labelled.column("request_id").to_pylist()
    rows = labelled.column("row").to_pylist()
    for request_id, row, value in zip(ids, rows, labelled.column("label").to_pylist(), strict=True):
        label = row_label(value, row or 0)
        if label is not None:
            result[(request_id, row or 0)] = label
    return result


def row_label(value: Any, row: int) -> Any:
    """The label of one row from its request's feedback: a list labels the request's rows
    in order, ``{"label": x}`` is ``x``, anything else labels every row. The log keeps
    feedback of mixed types as JSON text, so text that is a JSON list or object is read as
    one; other text is the label itself."""
    if isinstance(value, str) and value[:1] in ("[", "{"):
        with contextlib.suppress(ValueError):
            value = json.loads(value)
    if isinstance(value, list):
        return value[row] if row < len(value) else None
    if isinstance(value, dict):
        return value.get("label")
    return value
