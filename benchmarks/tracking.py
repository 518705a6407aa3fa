"""Tracking benchmark: loopml and MLflow side by side, in one run, on one machine.

Run ``python benchmarks/tracking.py`` (full) or ``python benchmarks/tracking.py --quick``.
Each tool is measured in its own fresh Python process (so neither pays for the other's
imports, heap or threads) and gets a fresh temporary folder: loopml a new workspace
(SQLite in WAL mode with ``synchronous=FULL``), MLflow its SQLite backend through
``MlflowClient``. Every figure is what a user's code gets: no warm caches other than one
warm-up call where stated, garbage collection on, and loopml's buffered metrics timed up
to the ``flush()`` that commits them.

A readable table goes to stdout once both tools are measured, setup progress to stderr, and the
last line of stdout is one JSON object (also written to ``--out FILE``). What each figure
means, and the machine caveat, are in ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Table, select

import loopml
from loopml import bootstrap
from loopml.adapters.sql import schema as sql_schema
from loopml.adapters.sql.metric_chunks import pack as pack_chunk
from loopml.domain.tracking import Metric, RunStatus

PARAMS_PER_RUN = 10
METRICS_PER_RUN = 10
BATCH_SIZE = 1_000
SEARCH_FILTER = "metrics.m0 < 0.5"
PAGE_ORDER = "metrics.m0 asc"
PAGE_SIZE = 100
BULK_CHUNK = 10_000  # runs per bulk transaction when seeding the ordering benchmark


@dataclass(frozen=True)
class Sizes:
    log_metric_loopml: int
    log_metric_mlflow: int
    batch_calls_loopml: int
    batch_calls_mlflow: int
    search_runs: int
    search_repeats: int
    page_runs: int
    page_repeats: int
    cli_repeats: int
    mlflow_cli: bool  # `import mlflow` takes seconds here: too slow for --quick


FULL = Sizes(20_000, 300, 50, 10, 1_000, 20, 100_000, 20, 5, True)
QUICK = Sizes(5_000, 100, 10, 3, 200, 5, 10_000, 5, 5, False)


# reporting -------------------------------------------------------------------------------
STARTED = time.perf_counter()


def say(message: str) -> None:
    """Progress and setup notes: stderr, so stdout stays the table plus the JSON line."""
    print(f"  [{time.perf_counter() - STARTED:5.1f} s] {message}", file=sys.stderr, flush=True)


def row(label: str, ours: str, theirs: str, ratio: str) -> None:
    print(f"{label:<52} {ours:>14} {theirs:>14} {ratio:>13}", flush=True)


def fmt_rate(value: float | None, unit: str) -> str:
    return "-" if value is None else f"{value:,.0f} {unit}"


def fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f} ms"


def fmt_s(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} s"


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}x"


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return round(numerator / denominator, 1)


def median_ms(call: Callable[[], object], repeats: int) -> float:
    """One untimed warm-up, then the median of ``repeats`` timed calls, in milliseconds."""
    call()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def check(condition: bool, message: str) -> None:
    """A benchmark that measured the wrong thing is worse than none: stop loudly."""
    if not condition:
        raise SystemExit(f"benchmark sanity check failed: {message}")


# data shared by both tools -------------------------------------------------------------
@dataclass(frozen=True)
class RunData:
    params: dict[str, str]
    metrics: dict[str, float]


def make_runs(count: int, seed: int) -> list[RunData]:
    rng = random.Random(seed)
    return [
        RunData(
            params={f"p{j}": f"v{rng.randrange(100)}" for j in range(PARAMS_PER_RUN)},
            metrics={f"m{j}": rng.random() for j in range(METRICS_PER_RUN)},
        )
        for _ in range(count)
    ]


def batch_values(calls: int, seed: int) -> list[dict[str, float]]:
    rng = random.Random(seed)
    return [{f"k{j}": rng.random() for j in range(BATCH_SIZE)} for _ in range(calls)]


# loopml --------------------------------------------------------------------------------
class LoopmlSide:
    """A fresh loopml workspace in ``root``, opened through the composition root."""

    def __init__(self, root: Path) -> None:
        # Git provenance is captured at start_run only, which is setup here, never timed.
        settings = bootstrap.init_workspace(root, capture_code=False)
        self.client = loopml.Client(app=bootstrap.open_workspace(settings))

    def log_metric(self, n: int) -> float:
        client = self.client
        run = client.start_run("log-metric")
        start = time.perf_counter()
        for i in range(n):
            client.log_metric(run.id, "loss", 1.0 / (i + 1), step=i)
        client.flush()  # durable: every point committed before the clock stops
        elapsed = time.perf_counter() - start
        check(
            len(client.get_metric_history(run.id, "loss")) == n,
            f"loopml stored a different number of points than the {n} logged",
        )
        client.end_run(run.id)
        return n / elapsed

    def log_batch(self, batches: Sequence[dict[str, float]], *, flush_each: bool = True) -> float:
        """Values/s. ``flush_each``: durable after every batch, as MLflow's log_batch is;
        otherwise the group-commit contract applies and the clock stops after one final
        flush, exactly as for single log_metric calls."""
        client = self.client
        run = client.start_run("log-batch")
        start = time.perf_counter()
        for step, values in enumerate(batches):
            client.log_metrics(run.id, values, step=step)
            if flush_each:
                client.flush()
        client.flush()
        elapsed = time.perf_counter() - start
        check(
            len(client.get_metric_history(run.id, "k0")) == len(batches),
            "loopml lost batched points",
        )
        client.end_run(run.id)
        return len(batches) * BATCH_SIZE / elapsed

    def seed_search(self, runs: Sequence[RunData]) -> None:
        client = self.client
        for i, data in enumerate(runs):
            run = client.start_run("search", name=f"run-{i}")
            client.log_params(run.id, data.params)
            client.log_metrics(run.id, data.metrics, step=0)
        client.flush()  # runs stay "running" on both sides: ending them is setup time only

    def search(self, expected: int, repeats: int) -> float:
        def call() -> object:
            found = self.client.search_runs(SEARCH_FILTER, experiments=["search"], max_results=1000)
            check(
                len(found) == expected
                and len(found[0].params) == PARAMS_PER_RUN
                and len(found[0].metrics) == METRICS_PER_RUN,
                f"loopml search returned {len(found)} runs, expected {expected} with data",
            )
            return found

        return median_ms(call, repeats)

    def close(self) -> None:
        self.client.close()


def seed_page_workspace(root: Path, runs: Sequence[RunData]) -> loopml.Client:
    """A workspace with ``len(runs)`` finished runs, written in bulk.

    Through the SDK this is ~85 runs/s here (start, params, metrics, end: several durable
    transactions per run), and ``SqlTrackingStore.create_run`` and ``log_params`` are one
    durable transaction each (~135 runs/s), so 100,000 runs would take 12-20 minutes. The
    rows therefore go straight into the store's own tables (names and columns taken from
    ``loopml.adapters.sql.schema``) with ``executemany`` over plain tuples, one
    transaction per 10,000 runs: the same rows the store writes, a packed
    ``metric_chunks`` row of history per run plus the ``latest_metrics`` that search
    filters and orders on.
    """
    settings = bootstrap.init_workspace(root, capture_code=False)
    app = bootstrap.open_workspace(settings)
    database = app.database
    if database is None or not database.is_sqlite:
        raise SystemExit("benchmark setup failed: the fresh workspace is not on SQLite")
    experiment = app.tracking.create_experiment("page")
    base_ms = app.clock.now_ms()
    t = sql_schema
    for first in range(0, len(runs), BULK_CHUNK):
        chunk = runs[first : first + BULK_CHUNK]
        ids = [uuid.uuid4().hex for _ in chunk]
        with database.write() as conn:
            _insert_rows(
                conn,
                t.runs,
                ("id", "experiment_id", "name", "status", "start_ms", "end_ms"),
                [
                    (
                        run_id,
                        experiment.id,
                        f"run-{first + i}",
                        RunStatus.FINISHED.value,
                        base_ms + first + i,
                        base_ms + first + i + 1,
                    )
                    for i, run_id in enumerate(ids)
                ],
            )
            found = conn.execute(
                select(t.runs.c.id, t.runs.c.pk).where(
                    t.runs.c.experiment_id == experiment.id,
                    t.runs.c.start_ms >= base_ms + first,
                    t.runs.c.start_ms < base_ms + first + len(chunk),
                )
            ).all()
            pks = dict(found)
            pairs = [(pks[run_id], data) for run_id, data in zip(ids, chunk, strict=True)]
            _insert_rows(
                conn,
                t.params,
                ("run_pk", "key", "value"),
                [(pk, k, v) for pk, data in pairs for k, v in data.params.items()],
            )
            series = [
                (pk, [Metric(k, v, 0, base_ms) for k, v in data.metrics.items()])
                for pk, data in pairs
            ]
            _insert_rows(
                conn,
                t.metric_chunks,
                ("run_pk", "points", "data"),
                [(pk, len(points), pack_chunk(points)) for pk, points in series],
            )
            _insert_rows(
                conn,
                t.latest_metrics,
                ("run_pk", "key", "value", "step", "timestamp_ms"),
                [(pk, *point) for pk, points in series for point in points],
            )
    return loopml.Client(app=app)


def _insert_rows(
    conn: Connection, table: Table, columns: Sequence[str], rows: list[tuple[Any, ...]]
) -> None:
    missing = [name for name in columns if name not in table.c]
    if missing:
        raise SystemExit(f"benchmark setup is stale: {table.name} has no column(s) {missing}")
    marks = ", ".join("?" * len(columns))
    conn.exec_driver_sql(f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({marks})", rows)


def page_first(client: loopml.Client, runs: Sequence[RunData], repeats: int) -> float:
    lowest = min(data.metrics["m0"] for data in runs)

    def call() -> object:
        page = client.search_runs(order_by=PAGE_ORDER, max_results=PAGE_SIZE)
        check(
            len(page) == PAGE_SIZE
            and page[0].metrics["m0"] == lowest
            and page.next_page_token is not None,
            "loopml's first page is not the 100 runs with the lowest m0",
        )
        return page

    return median_ms(call, repeats)


# MLflow --------------------------------------------------------------------------------
def quiet_mlflow() -> None:
    """Silence MLflow's chatter (schema creation, telemetry, deprecations). Errors still
    raise, and MLflow's own warnings-level log records still print."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # no network calls timed
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module=r"mlflow(\.|$)")


def mlflow_available() -> bool:
    try:
        import mlflow  # noqa: F401
    except ImportError:
        return False
    return True


class MlflowSide:
    """MLflow on a fresh SQLite database in ``root``, used through ``MlflowClient``."""

    def __init__(self, root: Path) -> None:
        import mlflow
        from mlflow import MlflowClient

        root.mkdir(parents=True)
        self.artifacts = (root / "artifacts").as_uri()
        mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
        self.client = MlflowClient()

    def experiment(self, name: str) -> str:
        return str(self.client.create_experiment(name, artifact_location=self.artifacts))

    def log_metric(self, n: int) -> float:
        client = self.client
        run_id = client.create_run(self.experiment("log-metric")).info.run_id
        start = time.perf_counter()
        for i in range(n):
            client.log_metric(run_id, "loss", 1.0 / (i + 1), step=i)
        elapsed = time.perf_counter() - start
        check(len(client.get_metric_history(run_id, "loss")) == n, "MLflow lost points")
        client.set_terminated(run_id)
        return n / elapsed

    def log_batch(self, batches: Sequence[dict[str, float]]) -> float:
        from mlflow.entities import Metric

        client = self.client
        run_id = client.create_run(self.experiment("log-batch")).info.run_id
        now_ms = int(time.time() * 1000)
        prepared = [
            [Metric(k, v, now_ms, step) for k, v in values.items()]
            for step, values in enumerate(batches)
        ]
        start = time.perf_counter()
        for metrics in prepared:
            client.log_batch(run_id, metrics=metrics)
        elapsed = time.perf_counter() - start
        check(
            len(client.get_metric_history(run_id, "k0")) == len(batches),
            "MLflow lost batched points",
        )
        client.set_terminated(run_id)
        return len(batches) * BATCH_SIZE / elapsed

    def seed_search(self, runs: Sequence[RunData]) -> str:
        from mlflow.entities import Metric, Param

        client = self.client
        experiment_id = self.experiment("search")
        now_ms = int(time.time() * 1000)
        for i, data in enumerate(runs):
            run_id = client.create_run(experiment_id, run_name=f"run-{i}").info.run_id
            client.log_batch(
                run_id,
                metrics=[Metric(k, v, now_ms, 0) for k, v in data.metrics.items()],
                params=[Param(k, v) for k, v in data.params.items()],
            )
        return experiment_id

    def search(self, experiment_id: str, expected: int, repeats: int) -> float:
        def call() -> object:
            found = self.client.search_runs(
                [experiment_id], filter_string=SEARCH_FILTER, max_results=1000
            )
            check(
                len(found) == expected
                and len(found[0].data.params) == PARAMS_PER_RUN
                and len(found[0].data.metrics) == METRICS_PER_RUN,
                f"MLflow search returned {len(found)} runs, expected {expected} with data",
            )
            return found

        return median_ms(call, repeats)


# start-up times ------------------------------------------------------------------------
def startup_s(argv: list[str], repeats: int, cwd: Path) -> float:
    """Median wall time of ``repeats`` fresh processes, after one untimed warm-up (which
    also writes any missing bytecode caches)."""
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    samples = []
    for attempt in range(repeats + 1):
        start = time.perf_counter()
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=False)
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(
                f"{' '.join(argv)} failed ({done.returncode}): "
                f"{done.stderr.decode(errors='replace')[-2000:]}"
            )
        if attempt:
            samples.append(elapsed)
    return statistics.median(samples)


def console_script(name: str) -> str:
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise SystemExit(
            f"no {name!r} console script next to {sys.executable}; install the "
            "package into this environment (pip install -e '.[bench]')"
        )
    return str(path)


# main ----------------------------------------------------------------------------------
def measure_loopml(sizes: Sizes, tmp: Path) -> dict[str, float]:
    """Every loopml figure but start-up; runs in its own process (see ``run``)."""
    figures: dict[str, float] = {}
    say("loopml: opening a fresh workspace")
    side = LoopmlSide(tmp / "loopml")
    try:
        say("loopml: single log_metric calls")
        figures["log_metric_per_s"] = side.log_metric(sizes.log_metric_loopml)
        say("loopml: batches of 1,000 values")
        figures["log_batch_values_per_s"] = side.log_batch(
            batch_values(sizes.batch_calls_loopml, seed=1), flush_each=False
        )
        figures["log_batch_durable_values_per_s"] = side.log_batch(
            batch_values(sizes.batch_calls_loopml, seed=2)
        )
        runs = make_runs(sizes.search_runs, seed=2)
        start = time.perf_counter()
        side.seed_search(runs)
        say(f"setup: {len(runs):,} loopml runs via the SDK in {time.perf_counter() - start:.1f} s")
        figures["search_1k_median_ms"] = side.search(_matching(runs), sizes.search_repeats)
    finally:
        side.close()
    runs = make_runs(sizes.page_runs, seed=3)
    start = time.perf_counter()
    page_client = seed_page_workspace(tmp / "loopml-page", runs)
    say(f"setup: {len(runs):,} loopml runs in bulk in {time.perf_counter() - start:.1f} s")
    try:
        figures["search_100k_first_page_ms"] = page_first(page_client, runs, sizes.page_repeats)
    finally:
        page_client.close()
    return figures


def measure_mlflow(sizes: Sizes, tmp: Path) -> dict[str, float]:
    """Every MLflow figure but start-up; runs in its own process (see ``run``)."""
    quiet_mlflow()
    figures: dict[str, float] = {}
    say("MLflow: opening a fresh SQLite tracking database")
    side = MlflowSide(tmp / "mlflow")
    say("MLflow: single log_metric calls")
    figures["log_metric_per_s"] = side.log_metric(sizes.log_metric_mlflow)
    say("MLflow: batches of 1,000 values")
    figures["log_batch_values_per_s"] = side.log_batch(
        batch_values(sizes.batch_calls_mlflow, seed=1)
    )
    runs = make_runs(sizes.search_runs, seed=2)
    start = time.perf_counter()
    experiment_id = side.seed_search(runs)
    say(f"setup: {len(runs):,} MLflow runs via log_batch in {time.perf_counter() - start:.1f} s")
    figures["search_1k_median_ms"] = side.search(
        experiment_id, _matching(runs), sizes.search_repeats
    )
    return figures


def _matching(runs: Sequence[RunData]) -> int:
    return sum(1 for data in runs if data.metrics["m0"] < 0.5)


def measure_in_child(side: str, mode: str, tmp: Path) -> dict[str, float]:
    """Measure one tool in a fresh interpreter: neither pays for the other's imports,
    heap (garbage collections walk every live object) or background threads."""
    argv = [sys.executable, __file__, "--side", side, "--tmp", str(tmp)]
    if mode == "quick":
        argv.append("--quick")
    done = subprocess.run(argv, stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the {side} measurement failed (exit {done.returncode})")
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def run(sizes: Sizes, mode: str, tmp: Path) -> dict[str, Any]:
    notes: list[str] = [
        "each tool is measured in its own fresh Python process, one after the other",
        "loopml log_metric/log_batch timings include flush(): points are committed "
        "(SQLite WAL, synchronous=FULL) before the clock stops; both run under loopml's "
        "default group commit, one flush at the end, and the targets are judged on them; "
        "log_batch_durable flushes after every batch, as durable per call as MLflow's "
        "log_batch, and is reported beside them",
    ]
    have_mlflow = mlflow_available()
    if not have_mlflow:
        notes.append("mlflow is not installed (pip install -e '.[bench]'): its figures are null")
    if mode == "quick":
        notes.append(
            f"quick mode: search over {sizes.search_runs} runs (not 1,000), ordering "
            f"over {sizes.page_runs:,} runs (not 100,000), MLflow start-up skipped"
        )
    theirs: dict[str, float | None] = dict.fromkeys(
        (
            "log_metric_per_s",
            "log_batch_values_per_s",
            "search_1k_median_ms",
            "search_100k_first_page_ms",
            "import_s",
            "help_s",
        )
    )
    print(
        f"loopml {loopml.__version__} vs MLflow "
        f"{_mlflow_version() if have_mlflow else '(not installed)'}, mode={mode}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    ours: dict[str, float | None] = dict(measure_in_child("loopml", mode, tmp))
    if have_mlflow:
        theirs.update(measure_in_child("mlflow", mode, tmp))

    row("", "loopml", "MLflow", "loopml ahead")
    row(
        f"log_metric, single calls ({sizes.log_metric_loopml:,}/{sizes.log_metric_mlflow})",
        fmt_rate(ours["log_metric_per_s"], "/s"),
        fmt_rate(theirs["log_metric_per_s"], "/s"),
        fmt_ratio(ratio(ours["log_metric_per_s"], theirs["log_metric_per_s"])),
    )
    row(
        f"batches of 1,000 values ({sizes.batch_calls_loopml}/{sizes.batch_calls_mlflow} calls)",
        fmt_rate(ours["log_batch_values_per_s"], "val/s"),
        fmt_rate(theirs["log_batch_values_per_s"], "val/s"),
        fmt_ratio(ratio(ours["log_batch_values_per_s"], theirs["log_batch_values_per_s"])),
    )
    row(
        "  same, loopml durable per call (flush after each)",
        fmt_rate(ours["log_batch_durable_values_per_s"], "val/s"),
        fmt_rate(theirs["log_batch_values_per_s"], "val/s"),
        fmt_ratio(ratio(ours["log_batch_durable_values_per_s"], theirs["log_batch_values_per_s"])),
    )
    search_runs = make_runs(sizes.search_runs, seed=2)
    row(
        f"search {len(search_runs):,} runs: {SEARCH_FILTER} ({_matching(search_runs)} match)",
        fmt_ms(ours["search_1k_median_ms"]),
        fmt_ms(theirs["search_1k_median_ms"]),
        fmt_ratio(ratio(theirs["search_1k_median_ms"], ours["search_1k_median_ms"])),
    )
    row(
        f"first {PAGE_SIZE} of {sizes.page_runs:,} runs, order by {PAGE_ORDER}",
        fmt_ms(ours["search_100k_first_page_ms"]),
        "not measured",
        "",
    )

    # 5. start-up
    say("start-up times of fresh processes")
    ours["import_s"] = startup_s([sys.executable, "-c", "import loopml"], sizes.cli_repeats, tmp)
    ours["help_s"] = startup_s([console_script("loopml"), "--help"], sizes.cli_repeats, tmp)
    if have_mlflow and sizes.mlflow_cli:
        theirs["import_s"] = startup_s(
            [sys.executable, "-c", "import mlflow"], sizes.cli_repeats, tmp
        )
        theirs["help_s"] = startup_s([console_script("mlflow"), "--help"], sizes.cli_repeats, tmp)
    baseline = startup_s([sys.executable, "-c", "pass"], sizes.cli_repeats, tmp)
    row(
        f"python -c 'import ...' (median of {sizes.cli_repeats})",
        fmt_s(ours["import_s"]),
        fmt_s(theirs["import_s"]),
        "",
    )
    row(
        f"<tool> --help (median of {sizes.cli_repeats})",
        fmt_s(ours["help_s"]),
        fmt_s(theirs["help_s"]),
        "",
    )
    row("python -c pass (interpreter alone)", fmt_s(baseline), "", "")

    speedup = {
        "log_metric": ratio(ours["log_metric_per_s"], theirs["log_metric_per_s"]),
        "log_batch": ratio(ours["log_batch_values_per_s"], theirs["log_batch_values_per_s"]),
        "log_batch_durable": ratio(
            ours["log_batch_durable_values_per_s"], theirs["log_batch_values_per_s"]
        ),
        "search_1k": ratio(theirs["search_1k_median_ms"], ours["search_1k_median_ms"]),
    }
    targets = {
        "log_metric_100x": _at_least(speedup["log_metric"], 100),
        "log_batch_50x": _at_least(speedup["log_batch"], 50),
        "log_batch_durable_50x": _at_least(speedup["log_batch_durable"], 50),
        "search_1k_20ms_and_20x": None
        if speedup["search_1k"] is None
        else bool((ours["search_1k_median_ms"] or 0) <= 20 and speedup["search_1k"] >= 20),
        "search_100k_300ms": (ours["search_100k_first_page_ms"] or 0) <= 300,
        "import_and_help_under_0.3s": (ours["import_s"] or 0) < 0.3 and (ours["help_s"] or 0) < 0.3,
    }
    if mode == "quick":
        notes.append("quick-mode targets are indicative only: sizes differ from the targets'")
    print(
        f"load average at the end {os.getloadavg()[0]:.2f}; targets: "
        + ", ".join(
            f"{k}={'n/a' if v is None else ('met' if v else 'MISSED')}" for k, v in targets.items()
        ),
        flush=True,
    )
    for note in notes:
        print(f"note: {note}", flush=True)
    return {
        "benchmark": "tracking",
        "mode": mode,
        "loopml": {k: _round(v) for k, v in ours.items()},
        "mlflow": {k: _round(v) for k, v in theirs.items()} if have_mlflow else None,
        "speedup": speedup,
        "targets": targets,
        "notes": notes,
    }


def _at_least(value: float | None, threshold: float) -> bool | None:
    return None if value is None else value >= threshold


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4 if value < 1 else 1)


def _mlflow_version() -> str:
    import mlflow

    return str(mlflow.__version__)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smaller sizes, under a minute (figures are indicative only)",
    )
    parser.add_argument("--out", type=Path, help="also write the JSON result to this file")
    parser.add_argument("--side", choices=("loopml", "mlflow"), help=argparse.SUPPRESS)
    parser.add_argument("--tmp", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full"
    if args.side:  # a child of `run`: measure one tool, print its figures as JSON
        measure = measure_loopml if args.side == "loopml" else measure_mlflow
        print(json.dumps(measure(QUICK if args.quick else FULL, args.tmp)), flush=True)
        return
    with tempfile.TemporaryDirectory(prefix="loopml-bench-") as tmp:
        result = run(QUICK if args.quick else FULL, mode, Path(tmp))
    line = json.dumps(result)
    if args.out:
        args.out.write_text(line + "\n", encoding="utf-8")
    print(line, flush=True)


if __name__ == "__main__":
    main()
