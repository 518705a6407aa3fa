"""Drift benchmark: loopml's window drift beside Evidently's DataDriftPreset, same data.

Run ``python benchmarks/drift.py`` (full: reference and window of 1,000,000 rows, about 3
minutes on 2 cores, most of it Evidently) or ``--quick`` (200,000 rows, under a minute).
The data is seeded: 20 numeric columns of assorted shapes (normal, lognormal, uniform,
exponential, Poisson, Student's t, a mixture, a zero-inflated amount, small integers) and 5
categorical ones (5, 30, 3 and 200 categories, and a boolean). The window has known
changes, listed in ``INJECTED``: three mean shifts of half a standard deviation, one
standard deviation grown by half, one category share shift ('snow' 2% -> 21%) and one
missing-rate jump (0% -> 20%).

Each tool runs in its own fresh process, one after the other, so neither pays for the
other's imports or heap:

* **loopml**: the reference's profile with ``loopml.stats.profile.profile_table`` (timed
  on its own: it is computed once, when the dataset version is added), then the reference
  table is dropped and the window's drift is computed from the profile in one pass
  (``Reference.from_profile(profile).drift(window)``): the median of ``--repeats`` runs
  after a warm-up on 1,000 rows.
* **Evidently**: ``Report([DataDriftPreset()]).run(current, reference)`` on the same rows
  as pandas DataFrames, columns typed by a ``DataDefinition``, after the same warm-up; one
  run (``--repeats`` for more). Evidently does not import with pandas 3, which loopml uses:
  unless ``--evidently-python`` names an interpreter that has it, the benchmark uses (and
  on first use creates, with pip) a virtual environment under ``/tmp`` with Evidently and
  ``pandas<3``.

``--engine dask`` replaces loopml's side: the window is written as Parquet files and
judged by ``DriftCheckService`` (``loopml monitor drift --engine dask``) on a
``LocalCluster`` of ``--workers`` single-threaded processes (default 2), one task per
row group; its CPU is the child's plus every worker process's, with the wall time.

CPU is ``time.process_time`` (every thread) around the call. Memory is the peak resident
set of the process during the call (``VmHWM`` of ``/proc/self/status``, reset just before
it through ``/proc/self/clear_refs``): the data the call reads, the tool and its
temporaries; ``process_peak_rss_mib`` is the child's peak over its whole life. A table goes to
stdout, progress to stderr, and the last stdout line is one JSON object (also written to
``--out FILE``).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported inside the children: the Evidently one has no loopml
    import numpy as np
    import pyarrow as pa

MIB = 1 << 20
FULL_ROWS = 1_000_000
QUICK_ROWS = 200_000
WARM_UP_ROWS = 1_000
WINDOW_FILES = 4  # --engine dask: the window as Parquet files ...
GROUP_ROWS = 65_536  # ... of row groups of this many rows, one Dask task each
EVIDENTLY_VENV = Path("/tmp/loopml-bench-evidently")
NUMERIC = [f"num_{i:02d}" for i in range(20)]
CATEGORICAL = ["weather", "city", "device", "sku", "is_member"]
WEATHER = ["sun", "rain", "cloud", "fog", "snow"]
WEATHER_P = [0.40, 0.30, 0.20, 0.08, 0.02]
WEATHER_SHIFTED_P = [0.316, 0.237, 0.158, 0.079, 0.21]  # 'snow' 2% -> 21%, others scaled
INJECTED = {
    "num_00": "mean +0.5 std",
    "num_06": "mean +0.5 std",
    "num_12": "mean +0.5 std",
    "num_03": "std x1.5",
    "weather": "'snow' 2% -> 21%",
    "num_16": "missing 0% -> 20%",
}
MISSING_ONLY = {"num_16"}  # Evidently compares non-missing values only: not its kind of drift
STARTED = float(os.environ.get("LOOPML_BENCH_STARTED", time.time()))


def say(message: str) -> None:
    """Progress: stderr, so stdout stays the table plus the JSON line."""
    print(f"  [{time.time() - STARTED:6.1f} s] {message}", file=sys.stderr, flush=True)


# the data (numpy only: the Evidently child has neither loopml nor the project's packages) ----
def make_columns(rows: int, current: bool) -> dict[str, np.ndarray]:
    """The seeded rows; ``current`` applies the changes of ``INJECTED``."""
    import numpy as np

    rng = np.random.default_rng(1 if current else 0)

    def shift(column: str, std: float) -> float:
        return 0.5 * std if current and INJECTED.get(column) == "mean +0.5 std" else 0.0

    scale = 1.5 if current else 1.0
    out: dict[str, np.ndarray] = {
        "num_00": rng.normal(0 + shift("num_00", 1), 1, rows),
        "num_01": rng.normal(10, 2, rows),
        "num_02": rng.normal(-5, 0.5, rows),
        "num_03": rng.normal(100, 15 * scale, rows),
        "num_04": rng.normal(0.5, 0.1, rows),
        "num_05": rng.normal(3, 4, rows),
        "num_06": rng.lognormal(0, 1, rows) + shift("num_06", 2.16),
        "num_07": rng.lognormal(2, 0.5, rows),
        "num_08": rng.uniform(0, 1, rows),
        "num_09": rng.uniform(-50, 50, rows),
        "num_10": rng.exponential(1, rows),
        "num_11": rng.exponential(30, rows),
        "num_12": rng.poisson(3 + shift("num_12", 1.732), rows).astype(np.int64),
        "num_13": rng.poisson(40, rows).astype(np.int64),
        "num_14": rng.choice(5, rows, p=[0.1, 0.2, 0.4, 0.2, 0.1]).astype(np.int64),
        "num_15": rng.standard_t(3, rows),
        "num_16": rng.normal(0, 1, rows),
        "num_17": rng.gamma(2, 2, rows),
        "num_18": np.where(
            rng.random(rows) < 0.3, rng.normal(-2, 0.5, rows), rng.normal(2, 1, rows)
        ),
        "num_19": np.where(rng.random(rows) < 0.3, 0.0, rng.lognormal(3, 1, rows)),
    }
    if current:
        out["num_16"][rng.random(rows) < 0.2] = np.nan
    weather = np.asarray(WEATHER)
    cities = np.asarray([f"city_{i:02d}" for i in range(30)])
    skus = np.asarray([f"sku_{i:03d}" for i in range(200)])
    zipf30 = 1 / np.arange(1, 31)
    zipf200 = 1 / np.arange(1, 201) ** 1.1
    out["weather"] = weather[
        rng.choice(5, rows, p=WEATHER_SHIFTED_P if current else WEATHER_P)
    ].astype(object)
    out["city"] = cities[rng.choice(30, rows, p=zipf30 / zipf30.sum())].astype(object)
    out["device"] = np.asarray(["web", "ios", "android"])[
        rng.choice(3, rows, p=[0.5, 0.3, 0.2])
    ].astype(object)
    out["sku"] = skus[rng.choice(200, rows, p=zipf200 / zipf200.sum())].astype(object)
    out["is_member"] = rng.random(rows) < 0.3
    return out


def arrow_table(columns: dict[str, np.ndarray]) -> pa.Table:
    import pyarrow as pa

    return pa.table({name: pa.array(values) for name, values in columns.items()})


# measuring inside a child ------------------------------------------------------------------
_PEAKS: list[float] = []  # the process's peak RSS before each reset


def reset_peak() -> bool:
    """Reset this process's peak resident set (Linux: write 5 to clear_refs).

    ``ru_maxrss`` is reset with it, so the peak so far is kept for ``process_peak_mib``.
    """
    peak = status_mib("VmHWM")
    if peak is not None:
        _PEAKS.append(peak)
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def status_mib(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None


def process_peak_mib() -> float | None:
    """The child's peak RSS over its whole life (data generation and profiling too)."""
    peaks = [*_PEAKS, status_mib("VmHWM") or 0.0]
    return max(peaks) or None


def measure(call: Callable[[], Any], repeats: int) -> dict[str, Any]:
    """CPU and wall seconds (median of ``repeats``) and the peak RSS during the calls."""
    gc.collect()
    resettable = reset_peak()
    before = status_mib("VmRSS")
    cpu, wall = [], []
    result = None
    for _ in range(repeats):
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        result = call()
        cpu.append(time.process_time() - start_cpu)
        wall.append(time.perf_counter() - start_wall)
    peak = status_mib("VmHWM") if resettable else None
    return {
        "cpu_s": statistics.median(cpu),
        "wall_s": statistics.median(wall),
        "peak_rss_mib": peak,
        "rss_before_mib": before,
        "result": result,
    }


def loopml_side(ref_rows: int, rows: int, repeats: int) -> dict[str, Any]:
    start = time.perf_counter()
    from loopml.stats.drift import Reference
    from loopml.stats.profile import profile_table

    import_s = time.perf_counter() - start
    say(f"loopml: building the {ref_rows:,}-row reference")
    profiled = measure(partial(profile_table, arrow_table(make_columns(ref_rows, False))), 1)
    profile = profiled.pop("result")  # the reference table goes: profiled once, at add time
    gc.collect()
    say(f"loopml: profiled in {profiled['cpu_s']:.2f} CPU-s; building the {rows:,}-row window")
    window = arrow_table(make_columns(rows, current=True))
    start = time.process_time()
    reference = Reference.from_profile(profile)
    reference_s = time.process_time() - start
    reference.drift(window.slice(0, WARM_UP_ROWS))
    say(f"loopml: timing the window's drift ({repeats} runs)")
    timed = measure(lambda: reference.drift(window), repeats)
    verdicts = timed.pop("result")
    return {
        "import_s": import_s,
        "profile_cpu_s": profiled["cpu_s"],
        "profile_wall_s": profiled["wall_s"],
        "profile_peak_rss_mib": profiled["peak_rss_mib"],
        "reference_cpu_s": reference_s,
        "drift_cpu_s": timed["cpu_s"],
        "drift_wall_s": timed["wall_s"],
        "drift_peak_rss_mib": timed["peak_rss_mib"],
        "drift_rss_before_mib": timed["rss_before_mib"],
        "process_peak_rss_mib": process_peak_mib(),
        "flagged": sorted(v.column for v in verdicts if v.drifted),
        "scores": {v.column: [v.method.value, round(v.score, 4)] for v in verdicts if v.drifted},
    }


def loopml_dask_side(ref_rows: int, rows: int, repeats: int, workers: int) -> dict[str, Any]:
    """The window judged by ``DriftCheckService`` on Dask, from Parquet files of its rows.

    The reference's profile is stored as a dataset version of an in-memory workspace and
    the window written as ``WINDOW_FILES`` Parquet files of row groups of ``GROUP_ROWS``
    rows (a Dask task each) in a temporary folder, untimed. The cluster is the one the
    service starts when given none (``local_cluster``: ``workers`` single-threaded
    processes), started untimed. A call's CPU is this process's (planning, scheduler,
    nannies, the merge) plus each worker process's (``getrusage`` through
    ``client.run``): the median of ``repeats`` calls after a warm-up on 1,000 rows (where
    the workers import loopml). The same files then go through the local engine."""
    import tempfile

    import distributed
    import pyarrow.parquet as pq

    from loopml.bootstrap import build_memory
    from loopml.services.drift_check import DriftCheckService
    from loopml.services.drift_dask import local_cluster
    from loopml.stats.profile import profile_table

    say(f"loopml (dask): building the {ref_rows:,}-row reference")
    reference_table = arrow_table(make_columns(ref_rows, False))
    profiled = measure(partial(profile_table, reference_table), 1)
    del profiled["result"]
    app = build_memory()
    app.datasets.add_table("reference", reference_table, "bench")  # profiled again, stored
    del reference_table
    gc.collect()
    with tempfile.TemporaryDirectory(prefix="loopml-bench-drift-") as scratch:
        folder = Path(scratch) / "window"
        folder.mkdir()
        window = arrow_table(make_columns(rows, current=True))
        size, tasks = -(-rows // WINDOW_FILES), 0
        for i in range(WINDOW_FILES):
            part = window.slice(i * size, size)
            pq.write_table(part, folder / f"part-{i}.parquet", row_group_size=GROUP_ROWS)
            tasks += -(-part.num_rows // GROUP_ROWS)
        warm_up = Path(scratch) / "warm-up.parquet"
        pq.write_table(window.slice(0, WARM_UP_ROWS), warm_up)
        del window
        gc.collect()
        service = DriftCheckService(app.datasets)
        say(f"loopml (dask): {tasks} tasks; starting {workers} worker processes")
        started = time.perf_counter()
        with (
            local_cluster(workers) as cluster,  # as `loopml monitor drift --engine dask`
            distributed.Client(cluster, set_as_default=False) as client,
        ):
            cluster_start_s = time.perf_counter() - started
            check = partial(service.check, "reference@1", engine="dask", cluster=cluster)
            check([warm_up])
            say(f"loopml (dask): timing the window's drift ({repeats} runs)")
            timed = measure_dask(client, lambda: check([folder]), repeats)
        say(f"loopml (dask): the same files through the local engine ({repeats} runs)")
        local = measure(lambda: service.check("reference@1", [folder]), repeats)
    result = timed.pop("result")
    same = [v.drifted for v in local.pop("result").columns] == [v.drifted for v in result.columns]
    return {
        "engine": "dask",
        "workers": workers,
        "files": WINDOW_FILES,
        "tasks": tasks,
        "cluster_start_s": cluster_start_s,
        "profile_cpu_s": profiled["cpu_s"],
        "profile_wall_s": profiled["wall_s"],
        "profile_peak_rss_mib": profiled["peak_rss_mib"],
        **timed,
        "local_files_cpu_s": local["cpu_s"],  # the same files, --engine local
        "local_files_wall_s": local["wall_s"],
        "local_files_peak_rss_mib": local["peak_rss_mib"],
        "local_files_same_verdicts": same,
        "process_peak_rss_mib": process_peak_mib(),
        "flagged": sorted(result.drifted),
        "scores": {
            v.column: [v.method.value, round(v.score, 4)] for v in result.columns if v.drifted
        },
    }


def worker_usage() -> tuple[float, float | None]:
    """On a Dask worker: its process's CPU seconds so far and its peak RSS (MiB)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime, status_mib("VmHWM")


def reset_worker_peak() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def measure_dask(client: Any, call: Callable[[], Any], repeats: int) -> dict[str, Any]:
    """As :func:`measure`, with the CPU of the workers added: for each call, this
    process's CPU plus the sum of the workers' (read before and after it)."""
    gc.collect()
    resettable = reset_peak()
    client.run(reset_worker_peak)
    before = status_mib("VmRSS")
    cpu, own, workers, wall = [], [], [], []
    result = None
    for _ in range(repeats):
        start_workers = client.run(worker_usage)
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        result = call()
        own.append(time.process_time() - start_cpu)
        wall.append(time.perf_counter() - start_wall)
        end_workers = client.run(worker_usage)
        workers.append(sum(end_workers[w][0] - start_workers[w][0] for w in end_workers))
        cpu.append(own[-1] + workers[-1])
    peak = status_mib("VmHWM") if resettable else None
    worker_peaks = [p for _, p in client.run(worker_usage).values() if p is not None]
    return {
        "drift_cpu_s": statistics.median(cpu),
        "drift_client_cpu_s": statistics.median(own),
        "drift_workers_cpu_s": statistics.median(workers),
        "drift_wall_s": statistics.median(wall),
        "drift_peak_rss_mib": peak,
        "drift_rss_before_mib": before,
        "drift_worker_peak_rss_mib": max(worker_peaks) if worker_peaks else None,
        "result": result,
    }


def evidently_side(ref_rows: int, rows: int, repeats: int) -> dict[str, Any]:
    start = time.perf_counter()
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    import_s = time.perf_counter() - start
    warnings.simplefilter("ignore")  # its numpy divide-by-zero warnings are not ours to show
    say(f"evidently: building {ref_rows:,} + {rows:,} rows as pandas DataFrames")
    reference = pd.DataFrame(make_columns(ref_rows, current=False))
    current = pd.DataFrame(make_columns(rows, current=True))
    definition = DataDefinition(numerical_columns=NUMERIC, categorical_columns=CATEGORICAL)

    def run(ref: pd.DataFrame, cur: pd.DataFrame) -> Any:
        return Report([DataDriftPreset()]).run(
            Dataset.from_pandas(cur, data_definition=definition),
            Dataset.from_pandas(ref, data_definition=definition),
        )

    run(reference.head(WARM_UP_ROWS), current.head(WARM_UP_ROWS))
    say(f"evidently: timing DataDriftPreset ({repeats} run{'s' * (repeats > 1)})")
    timed = measure(lambda: run(reference, current), repeats)
    flagged, scores = _evidently_flags(timed.pop("result").dict())
    import evidently

    return {
        "version": evidently.__version__,
        "pandas": pd.__version__,
        "import_s": import_s,
        "drift_cpu_s": timed["cpu_s"],
        "drift_wall_s": timed["wall_s"],
        "drift_peak_rss_mib": timed["peak_rss_mib"],
        "drift_rss_before_mib": timed["rss_before_mib"],
        "process_peak_rss_mib": process_peak_mib(),
        "flagged": flagged,
        "scores": scores,
    }


def _evidently_flags(snapshot: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """Columns Evidently calls drifted: distance >= threshold, or p-value < threshold."""
    flagged, scores = [], {}
    for metric in snapshot["metrics"]:
        config = metric.get("config", {})
        if not config.get("type", "").endswith("ValueDrift"):
            continue
        method, threshold, value = config["method"], config["threshold"], metric["value"]
        drifted = value < threshold if "p_value" in method else value >= threshold
        if drifted:
            flagged.append(config["column"])
            scores[config["column"]] = [method, round(float(value), 4)]
    return sorted(flagged), scores


# the parent ---------------------------------------------------------------------------------
def in_child(python: str, args: Sequence[str]) -> dict[str, Any]:
    """Run a ``--side`` of this script under ``python``; its JSON line plus its ru_maxrss."""
    env = {**os.environ, "LOOPML_BENCH_STARTED": str(STARTED), "PYTHONPATH": ""}
    proc = subprocess.Popen([python, __file__, *args], stdout=subprocess.PIPE, text=True, env=env)
    stdout = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"the child {' '.join(args)} under {python} failed (exit {code})")
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    result["child_cpu_s"] = usage.ru_utime + usage.ru_stime  # imports and data included
    return result


def evidently_python(given: str | None, notes: list[str]) -> str | None:
    """An interpreter that imports Evidently: given, this one, or the venv under /tmp."""
    candidates = [given] if given else [sys.executable, str(EVIDENTLY_VENV / "bin" / "python")]
    for python in candidates:
        if python and Path(python).exists() and _imports(python, "evidently"):
            return python
    if given:
        notes.append(f"--evidently-python {given} cannot import evidently: Evidently skipped")
        return None
    say(f"creating {EVIDENTLY_VENV} with evidently and pandas<3 (evidently needs pandas 2)")
    try:
        subprocess.run([sys.executable, "-m", "venv", str(EVIDENTLY_VENV)], check=True)
        pip = [str(EVIDENTLY_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "evidently", "pandas<3", "pyarrow", "numpy"], check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        notes.append(f"could not install Evidently in {EVIDENTLY_VENV} ({exc}): skipped")
        return None
    python = str(EVIDENTLY_VENV / "bin" / "python")
    return python if _imports(python, "evidently") else None


def _imports(python: str, module: str) -> bool:
    done = subprocess.run(
        [python, "-c", f"import {module}"], capture_output=True, check=False, timeout=120
    )
    return done.returncode == 0


def row(label: str, ours: str = "", theirs: str = "", ahead: str = "") -> None:
    print(f"{label:<44} {ours:>14} {theirs:>14} {ahead:>9}", flush=True)


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f} {unit}" if unit == "MiB" else f"{value:.3f} {unit}"


def _found(flagged: list[str], expected: set[str]) -> dict[str, list[str]]:
    return {
        "found": sorted(expected & set(flagged)),
        "missed": sorted(expected - set(flagged)),
        "unexpected": sorted(set(flagged) - set(INJECTED)),
    }


def run(
    rows: int,
    mode: str,
    repeats: int,
    evidently: str | None,
    engine: str = "local",
    workers: int = 2,
) -> dict[str, Any]:
    notes: list[str] = []
    say(f"load average {os.getloadavg()[0]:.2f}; {rows:,} reference + {rows:,} window rows")
    common = ["--rows", str(rows)]
    if engine == "dask":
        side = ["--side", "loopml-dask", "--workers", str(workers)]
        notes.append(
            f"--engine dask: loopml judged the window with DriftCheckService on a LocalCluster "
            f"of {workers} single-threaded worker processes, from {WINDOW_FILES} Parquet files "
            f"(row groups of {GROUP_ROWS:,} rows, a task each); its CPU is the client "
            "process's plus the workers'; its peak RSS is the client's (the workers' is "
            "drift_worker_peak_rss_mib); the targets are stated for the in-memory call"
        )
    else:
        side = ["--side", "loopml"]
    ours = in_child(sys.executable, [*side, "--repeats", str(repeats), *common])
    python = evidently_python(evidently, notes)
    theirs = (
        in_child(python, ["--side", "evidently", "--repeats", "1", *common]) if python else None
    )
    if python and python != sys.executable:
        notes.append(
            f"Evidently ran under {python} (Evidently {theirs and theirs['version']}, pandas "
            f"{theirs and theirs['pandas']}): it does not import with pandas 3"
        )
    cpu_ratio = (
        round(theirs["drift_cpu_s"] / ours["drift_cpu_s"], 1)
        if theirs and ours["drift_cpu_s"] > 0
        else None
    )
    row("", "loopml", "Evidently", "ratio")
    row(f"reference profile, {rows:,} rows (once)", _fmt(ours["profile_cpu_s"], "CPU-s"))
    row(
        f"window drift, {rows:,} rows x 25 columns",
        _fmt(ours["drift_cpu_s"], "CPU-s"),
        _fmt(theirs and theirs["drift_cpu_s"], "CPU-s"),
        "-" if cpu_ratio is None else f"{cpu_ratio:,.1f}x",
    )
    if engine == "dask":
        row(
            f"  on Dask ({workers} workers): client process",
            _fmt(ours["drift_client_cpu_s"], "CPU-s"),
        )
        row(f"  on Dask ({workers} workers): workers", _fmt(ours["drift_workers_cpu_s"], "CPU-s"))
        row(
            "  wall time",
            _fmt(ours["drift_wall_s"], "s"),
            _fmt(theirs and theirs["drift_wall_s"], "s"),
        )
        row("  the same files, --engine local", _fmt(ours["local_files_cpu_s"], "CPU-s"))
        row("  wall time", _fmt(ours["local_files_wall_s"], "s"))
    row(
        "  peak RSS during the call",
        _fmt(ours["drift_peak_rss_mib"], "MiB"),
        _fmt(theirs and theirs["drift_peak_rss_mib"], "MiB"),
    )
    row(
        "  the child's peak RSS (data, profile and all)",
        _fmt(ours["process_peak_rss_mib"], "MiB"),
        _fmt(theirs and theirs["process_peak_rss_mib"], "MiB"),
    )
    expected = set(INJECTED)
    found = {
        "loopml": _found(ours["flagged"], expected),
        "evidently": _found(theirs["flagged"], expected - MISSING_ONLY) if theirs else None,
    }
    for tool, result in found.items():
        if result is not None:
            print(
                f"{tool}: found {result['found']}, missed {result['missed']}, "
                f"unexpected {result['unexpected']}",
                flush=True,
            )
    notes.append(
        "num_16's change is in its missing share only: Evidently compares non-missing "
        "values, so it is expected from loopml alone"
    )
    if ours["drift_peak_rss_mib"] is None:
        notes.append("peak RSS during the call unavailable (/proc/self/clear_refs refused)")
    if mode == "quick":
        notes.append(f"quick mode: {rows:,} rows, targets are stated for 1,000,000")
    peak = ours["drift_peak_rss_mib"]
    targets = {
        "loopml_3_cpu_s": ours["drift_cpu_s"] <= 3,
        "loopml_1.5_gib_peak": None if peak is None else peak <= 1.5 * 1024,
        "loopml_20x_less_cpu": None if cpu_ratio is None else cpu_ratio >= 20,
        "loopml_found_injected": not found["loopml"]["missed"]
        and not found["loopml"]["unexpected"],
    }
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
        "benchmark": "drift",
        "mode": mode,
        "engine": engine,
        "rows": {"reference": rows, "window": rows, "numeric": 20, "categorical": 5},
        "injected": INJECTED,
        "loopml": _rounded(ours),
        "evidently": _rounded(theirs) if theirs else None,
        "cpu_ratio": cpu_ratio,
        "found": found,
        "targets": targets,
        "notes": notes,
    }


def _rounded(figures: dict[str, Any]) -> dict[str, Any]:
    return {
        k: round(v, 3 if v < 100 else 1) if isinstance(v, float) else v for k, v in figures.items()
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ROWS:,} rows, indicative")
    parser.add_argument("--out", type=Path, help="also write the JSON result to this file")
    parser.add_argument("--repeats", type=int, default=3, help="loopml's timed runs (median)")
    parser.add_argument(
        "--evidently-python", help="an interpreter with evidently (default: find or create one)"
    )
    parser.add_argument(
        "--engine",
        choices=("local", "dask"),
        default="local",
        help="loopml's side: the window in memory (local), or DriftCheckService on a Dask "
        "LocalCluster from Parquet files of the window (dask)",
    )
    parser.add_argument("--workers", type=int, default=2, help="Dask worker processes")
    parser.add_argument(
        "--side", choices=("loopml", "loopml-dask", "evidently"), help=argparse.SUPPRESS
    )
    parser.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.side == "loopml-dask":  # children of `run`: measure one tool, print JSON
        figures = loopml_dask_side(args.rows, args.rows, args.repeats, args.workers)
        print(json.dumps(figures), flush=True)
        return
    if args.side:
        side = loopml_side if args.side == "loopml" else evidently_side
        print(json.dumps(side(args.rows, args.rows, args.repeats)), flush=True)
        return
    rows = QUICK_ROWS if args.quick else FULL_ROWS
    mode = "quick" if args.quick else "full"
    result = run(rows, mode, args.repeats, args.evidently_python, args.engine, args.workers)
    line = json.dumps(result)
    if args.out:
        args.out.write_text(line + "\n", encoding="utf-8")
    print(line, flush=True)


if __name__ == "__main__":
    main()
