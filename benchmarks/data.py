"""Data benchmark: loopml's datasets and data linter beside DVC, pandera and Great Expectations.

Run ``python benchmarks/data.py`` (full, about 12 minutes on 2 cores) or ``--quick`` (about
70 s). Four sections, each tool in its own fresh process:

* **add**: one large CSV file (1 GiB; 100 MiB in ``--quick``), seeded numbers and
  categories. ``loopml data add`` (CLI, new workspace) against ``dvc add`` (new git + DVC
  repository) of the same file; loopml also adds the same rows written as Parquet.
* **status**: a folder of many small CSV files (100,000; 5,000 in ``--quick``), added by
  both tools, then an unchanged ``loopml data status`` against ``dvc status``: median of
  a few runs after a warm-up; one file is then changed and both must report it.
* **validate**: 1,000,000 rows x 20 columns (200,000 in ``--quick``) against the same
  rules in loopml (pyarrow Table in memory), pandera and Great Expectations (pandas
  DataFrame in memory); data with 1% out-of-range values must fail in every tool.
* **big**: a CSV of ``--big-gb`` GiB (5; 0.2 in ``--quick``) added, its schema inferred and
  the file validated by the loopml CLI, each run's peak memory read against a 1 GiB budget.

CLI runs are timed from the parent: wall time, and CPU time (user + system, all threads)
and peak resident memory from ``os.wait4``. In-process calls are timed inside their child
with ``time.process_time`` and ``time.perf_counter``. A table goes to stdout, progress to
stderr, and the last stdout line is one JSON object (also written to ``--out FILE``). What
each figure means is in ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench_support import SNAPSHOT_NOTE, bytecode_snapshot, with_snapshot

if TYPE_CHECKING:  # numpy, pyarrow and the tools are imported inside the children, so each
    import pyarrow as pa  # child's import time is the tool's own (see ``validation_side``)

GIB = 1 << 30
MIB = 1 << 20
CHUNK_ROWS = 100_000  # rows per generated block of the CSV files
BATCH_ROWS = 65_536  # record-batch size of loopml's "as batches" validation case
PLANTED_COLUMN = "count_3"
QUIET_ENV = {
    "DVC_NO_ANALYTICS": "1",  # no network call is ever timed
    "GX_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
}


@dataclass(frozen=True)
class Sizes:
    add_gib: float
    files: int
    status_repeats: int
    rows: int
    validate_repeats: int
    startup_repeats: int
    big_gib: float


FULL = Sizes(1.0, 100_000, 3, 1_000_000, 5, 5, 5.0)
QUICK = Sizes(0.1, 5_000, 3, 200_000, 3, 5, 0.2)


# reporting -------------------------------------------------------------------------------
STARTED = float(os.environ.get("LOOPML_BENCH_STARTED", time.time()))  # children: the parent's


def say(message: str) -> None:
    """Progress and setup notes: stderr, so stdout stays the table plus the JSON line."""
    print(f"  [{time.time() - STARTED:6.1f} s] {message}", file=sys.stderr, flush=True)


def row(label: str, ours: str = "", theirs: str = "", tool: str = "", ahead: str = "") -> None:
    print(f"{label:<50} {ours:>11} {theirs:>11}  {tool:<13} {ahead:>8}", flush=True)


def fmt_s(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} s" if value < 10 else f"{value:.1f} s"


def fmt_mib(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} MiB"


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}x"


def ratio(theirs: float | None, ours: float | None) -> float | None:
    """How many times faster loopml is (their time over ours); below 1 means slower."""
    if theirs is None or ours is None or ours <= 0:
        return None
    return round(theirs / ours, 2)


def check(condition: bool, message: str) -> None:
    """A benchmark that measured the wrong thing is worse than none: stop loudly."""
    if not condition:
        raise SystemExit(f"benchmark sanity check failed: {message}")


def timed(call: Callable[[], object], repeats: int) -> tuple[float, float]:
    """One untimed warm-up, then the median CPU and wall seconds of ``repeats`` calls."""
    call()
    cpu, wall = [], []
    for _ in range(repeats):
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        call()
        cpu.append(time.process_time() - start_cpu)
        wall.append(time.perf_counter() - start_wall)
    return statistics.median(cpu), statistics.median(wall)


# running and measuring a command ---------------------------------------------------------
@dataclass(frozen=True)
class Measured:
    """One finished child process: what it cost and what it printed."""

    wall_s: float
    cpu_s: float  # user + system of the process and every thread (os.wait4)
    peak_rss_mib: float  # ru_maxrss: every page resident at once, mapped file pages too
    peak_anon_mib: float | None  # RssAnon sampled every 20 ms: the process's own memory
    returncode: int
    stdout: str
    stderr: str


class _MemoryPoller(threading.Thread):
    """Samples a child's anonymous resident memory (``RssAnon`` of /proc/PID/status).

    ``ru_maxrss`` also counts pages of files the child maps, which the kernel drops at
    will; RssAnon is the memory the process itself holds."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.path = f"/proc/{pid}/status"
        self.stop = threading.Event()
        self.peak_kib = 0

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                with open(self.path, encoding="ascii") as status:
                    for line in status:
                        if line.startswith("RssAnon:"):
                            self.peak_kib = max(self.peak_kib, int(line.split()[1]))
                            break
            except (OSError, ValueError):
                return
            self.stop.wait(0.02)


def run_measured(
    argv: Sequence[str | Path],
    cwd: Path,
    *,
    poll_memory: bool = False,
    ok: Sequence[int] = (0,),
) -> Measured:
    """Run ``argv`` to completion and measure it; exit codes other than ``ok`` stop the
    benchmark with the command's stderr."""
    env = {**os.environ, **QUIET_ENV}
    args = [str(a) for a in argv]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            args, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err
        )
        poller = _MemoryPoller(proc.pid) if poll_memory else None
        if poller is not None:
            poller.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if poller is not None:
            poller.stop.set()
            poller.join()
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    if proc.returncode not in ok:
        raise SystemExit(
            f"{' '.join(args)} exited {proc.returncode} (expected {list(ok)}):\n"
            f"{stderr[-3000:]}{stdout[-2000:]}"
        )
    return Measured(
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        peak_rss_mib=usage.ru_maxrss / 1024,  # KiB on Linux
        peak_anon_mib=None if poller is None else poller.peak_kib / 1024,
        returncode=proc.returncode,
        stdout=stdout,
        stderr=stderr,
    )


def median_run(
    argv: Sequence[str | Path], cwd: Path, repeats: int, ok: Sequence[int] = (0,)
) -> tuple[Measured, float]:
    """One untimed warm-up, then the run with the median wall time of ``repeats``; its CPU
    time is the median of the CPU times."""
    run_measured(argv, cwd, ok=ok)
    runs = [run_measured(argv, cwd, ok=ok) for _ in range(repeats)]
    by_wall = sorted(runs, key=lambda m: m.wall_s)[len(runs) // 2]
    return by_wall, statistics.median(m.cpu_s for m in runs)


def console_script(name: str) -> str | None:
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else None


def version_of(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


# generated data ----------------------------------------------------------------------------
def generated_block(rng: Any, start: int, rows: int) -> pa.Table:
    """``rows`` rows of the add/status/big data: a unique int id, 5 int, 6 float (4
    decimals, like measurements) and 3 category columns (6 to 8 levels)."""
    import numpy as np
    import pyarrow as pa

    columns: dict[str, Any] = {"id": pa.array(np.arange(start, start + rows, dtype=np.int64))}
    for i in range(5):
        columns[f"count_{i}"] = pa.array(rng.integers(0, 1000 * (i + 1), rows))
    for i in range(6):
        columns[f"measure_{i}"] = pa.array(np.round(rng.normal(i, 1 + i, rows), 4))
    for i in range(3):
        levels = np.array([f"level_{i}_{j}" for j in range(6 + i)], dtype=object)
        columns[f"category_{i}"] = pa.array(rng.choice(levels, rows), pa.string())
    return pa.table(columns)


def write_csv(path: Path, target_bytes: int, seed: int) -> int:
    """Write blocks of generated rows until the file holds ``target_bytes``; the rows."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    rows = 0
    with pa.OSFile(str(path), "wb") as sink:
        writer: pacsv.CSVWriter | None = None
        while sink.tell() < target_bytes:
            block = generated_block(rng, rows, CHUNK_ROWS)
            if writer is None:
                writer = pacsv.CSVWriter(sink, block.schema)
            writer.write_table(block)
            rows += CHUNK_ROWS
        if writer is not None:
            writer.close()
    return rows


def write_parquet(path: Path, rows: int, seed: int) -> None:
    """The same rows as ``write_csv`` with the same seed, as one Parquet file (pyarrow's
    defaults: snappy, one row group per block)."""
    import numpy as np
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    writer: pq.ParquetWriter | None = None
    for start in range(0, rows, CHUNK_ROWS):
        block = generated_block(rng, start, CHUNK_ROWS)
        if writer is None:
            writer = pq.ParquetWriter(path, block.schema)
        writer.write_table(block)
    if writer is not None:
        writer.close()


def write_small_files(root: Path, count: int) -> None:
    """``count`` CSV files of 2 columns and 2 rows, 1,000 to a subfolder."""
    for i in range(count):
        folder = root / f"part{i // 1000:03d}"
        if i % 1000 == 0:
            folder.mkdir(parents=True)
        (folder / f"f{i:06d}.csv").write_text(
            f"id,value\n{i},{i * 0.5}\n{i + count},{i * 0.25}\n", encoding="ascii"
        )


# the validation data and its rules -----------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    name: str
    kind: str  # int, float or category
    nullable: bool
    low: float | None = None
    high: float | None = None
    categories: tuple[str, ...] | None = None


def validation_table(rows: int, seed: int = 0) -> pa.Table:
    """20 columns: a unique int64 id (a permutation), 7 int64 counts, 7 float64 measures
    (two with about 1% missing values) and 5 text columns of 6 to 10 categories."""
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {"id": pa.array(rng.permutation(rows).astype(np.int64))}
    for i in range(7):
        columns[f"count_{i}"] = pa.array(rng.integers(0, 1000 * (i + 1), rows))
    for i in range(7):
        values = rng.normal(i, 1 + i, rows)
        mask = rng.random(rows) < 0.01 if i < 2 else None
        columns[f"measure_{i}"] = pa.array(values, mask=mask)
    for i in range(5):
        levels = np.array(_levels(i), dtype=object)
        columns[f"category_{i}"] = pa.array(rng.choice(levels, rows), pa.string())
    return pa.table(columns)


def _levels(i: int) -> tuple[str, ...]:
    return tuple(f"level_{i}_{j}" for j in range(6 + i))


def validation_rules(rows: int) -> list[Rule]:
    """What every tool checks: the type of all 20 columns, no missing values in the 18
    complete ones, a range on the id and the 14 numeric columns (measures at 10 standard
    deviations), the allowed categories of the 5 text columns, the id unique, and no
    column missing or extra. Clean data passes all of them."""
    rules = [Rule("id", "int", False, 0, rows - 1)]
    rules += [Rule(f"count_{i}", "int", False, 0, 1000 * (i + 1) - 1) for i in range(7)]
    rules += [
        Rule(f"measure_{i}", "float", i < 2, i - 10.0 * (1 + i), i + 10.0 * (1 + i))
        for i in range(7)
    ]
    rules += [Rule(f"category_{i}", "category", False, categories=_levels(i)) for i in range(5)]
    return rules


def planted(table: pa.Table) -> tuple[pa.Table, int]:
    """The table with 1% of ``count_3`` (every 100th row) set to -1, below its range."""
    import pyarrow as pa

    values = table[PLANTED_COLUMN].to_numpy().copy()
    values[7::100] = -1
    at = table.schema.get_field_index(PLANTED_COLUMN)
    return table.set_column(at, PLANTED_COLUMN, pa.array(values)), len(values[7::100])


def check_counts(rules: Sequence[Rule]) -> dict[str, int]:
    return {
        "type": len(rules),
        "not_null": sum(not r.nullable for r in rules),
        "range": sum(r.low is not None for r in rules),
        "category": sum(r.categories is not None for r in rules),
        "unique": 1,
        "column_set": 1,
    }


# the validation children ---------------------------------------------------------------------
def validation_side(tool: str, rows: int, repeats: int) -> dict[str, Any]:
    """Import ``tool`` first (so ``import_s`` is its whole import, dependencies included),
    build the same data and rules, prove the tool catches the planted values, then time it
    on the clean data."""
    start = time.perf_counter()
    if tool == "loopml":
        from loopml.stats.validate import validate  # noqa: F401
    elif tool == "pandera":
        import pandera.pandas  # noqa: F401
    else:
        import great_expectations
        import great_expectations.expectations  # noqa: F401
    import_s = time.perf_counter() - start
    say(f"{tool}: imported in {import_s:.2f} s; building {rows:,} rows x 20 columns")
    table = validation_table(rows)
    bad, count = planted(table)
    rules = validation_rules(rows)
    measure = {"loopml": _loopml_validation, "pandera": _pandera_validation}.get(
        tool, _gx_validation
    )
    figures = measure(table, bad, count, rules, repeats)
    return {"import_s": import_s, **figures}


def _loopml_validation(
    table: pa.Table, bad: pa.Table, count: int, rules: Sequence[Rule], repeats: int
) -> dict[str, float]:
    from loopml.domain.data_schema import ColumnRule, DataSchema
    from loopml.domain.validation_report import Check
    from loopml.stats.validate import validate

    schema = DataSchema(
        columns=tuple(
            ColumnRule(
                r.name,
                r.kind,
                nullable=r.nullable,
                minimum=None if r.low is None else (int(r.low) if r.kind == "int" else r.low),
                maximum=None if r.high is None else (int(r.high) if r.kind == "int" else r.high),
                categories=r.categories,
            )
            for r in rules
        ),
        key=("id",),
    )
    clean = validate(table, schema)
    check(clean.ok and not clean.findings, f"loopml flags clean data: {clean.to_dict()}")
    found = validate(bad, schema)
    errors = [(f.column, f.check, f.count) for f in found.errors]
    check(
        errors == [(PLANTED_COLUMN, Check.OUT_OF_RANGE, count)],
        f"loopml missed the {count:,} planted values: {errors}",
    )
    say("loopml: planted values caught; timing validate(Table) and validate(batches)")
    cpu, wall = timed(lambda: validate(table, schema), repeats)
    batches = table.to_batches(max_chunksize=BATCH_ROWS)
    batch_cpu, batch_wall = timed(lambda: validate(batches, schema), repeats)
    frame = table.to_pandas()
    import pyarrow as pa

    start = time.perf_counter()
    pa.Table.from_pandas(frame, preserve_index=False)
    from_pandas_s = time.perf_counter() - start
    return {
        "validate_cpu_s": cpu,
        "validate_wall_s": wall,
        "validate_batches_cpu_s": batch_cpu,
        "validate_batches_wall_s": batch_wall,
        "from_pandas_s": from_pandas_s,
    }


def _pandera_validation(
    table: pa.Table, bad: pa.Table, count: int, rules: Sequence[Rule], repeats: int
) -> dict[str, float]:
    import pandera.pandas as pdr

    start = time.perf_counter()
    frame = table.to_pandas()
    to_pandas_s = time.perf_counter() - start
    bad_frame = bad.to_pandas()
    text = str(frame["category_0"].dtype)  # pandas' own text dtype: "str" from pandas 3
    dtypes = {"int": "int64", "float": "float64", "category": text}
    columns = {}
    for r in rules:
        checks = (
            [pdr.Check.isin(list(r.categories))]
            if r.categories is not None
            else [pdr.Check.in_range(r.low, r.high)]
        )
        columns[r.name] = pdr.Column(
            dtypes[r.kind], checks=checks, nullable=r.nullable, unique=r.name == "id"
        )
    schema = pdr.DataFrameSchema(columns, strict=True)
    schema.validate(frame, lazy=True)  # raises on any failure
    try:
        schema.validate(bad_frame, lazy=True)
    except pdr.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        hits = cases[cases["column"] == PLANTED_COLUMN]
        check(
            len(hits) == count == len(cases),
            f"pandera reported {len(hits)} of {count:,} planted values ({len(cases)} in all)",
        )
    else:
        check(False, "pandera passed data with planted out-of-range values")
    say("pandera: planted values caught; timing schema.validate(df, lazy=True)")
    cpu, wall = timed(lambda: schema.validate(frame, lazy=True), repeats)
    return {"validate_cpu_s": cpu, "validate_wall_s": wall, "to_pandas_s": to_pandas_s}


def _gx_validation(
    table: pa.Table, bad: pa.Table, count: int, rules: Sequence[Rule], repeats: int
) -> dict[str, float]:
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import ProgressBarsConfig

    frame = table.to_pandas()
    bad_frame = bad.to_pandas()
    text = str(frame["category_0"].dtype)
    dtypes = {"int": "int64", "float": "float64", "category": text}
    context = gx.get_context(mode="ephemeral")
    # tqdm bars cost time and clutter stderr; turning them off only helps GE's figure
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = context.data_sources.add_pandas("bench").add_dataframe_asset("frame")
    definition = asset.add_batch_definition_whole_dataframe("whole")

    def value_checks() -> list[Any]:  # new objects per suite: GE ties each to one suite
        made: list[Any] = [
            gxe.ExpectColumnValuesToBeInSet(column=r.name, value_set=list(r.categories))
            if r.categories is not None
            else gxe.ExpectColumnValuesToBeBetween(column=r.name, min_value=r.low, max_value=r.high)
            for r in rules
        ]
        return [*made, gxe.ExpectColumnValuesToBeUnique(column="id")]

    all_checks = [
        gxe.ExpectTableColumnsToMatchSet(column_set=[r.name for r in rules], exact_match=True),
        *(gxe.ExpectColumnValuesToBeOfType(column=r.name, type_=dtypes[r.kind]) for r in rules),
        *(gxe.ExpectColumnValuesToNotBeNull(column=r.name) for r in rules if not r.nullable),
        *value_checks(),
    ]
    suites = {}
    for name, expectations in (("all", all_checks), ("values", value_checks())):
        suite = context.suites.add(gx.ExpectationSuite(name=name))
        for expectation in expectations:
            suite.add_expectation(expectation)
        suites[name] = suite
    batch = definition.get_batch(batch_parameters={"dataframe": frame})
    clean = batch.validate(suites["all"])
    failed = [r.expectation_config.type for r in clean.results if not r.success]
    check(clean.success and not failed, f"Great Expectations flags clean data: {failed}")
    found = definition.get_batch(batch_parameters={"dataframe": bad_frame}).validate(suites["all"])
    failed_counts = [
        (r.expectation_config.kwargs.get("column"), r.result.get("unexpected_count"))
        for r in found.results
        if not r.success
    ]
    check(
        not found.success and failed_counts == [(PLANTED_COLUMN, count)],
        f"Great Expectations missed the {count:,} planted values: {failed_counts}",
    )
    say(f"Great Expectations: planted values caught; timing {len(all_checks)} expectations")
    cpu, wall = timed(lambda: batch.validate(suites["all"]), repeats)
    value_cpu, value_wall = timed(lambda: batch.validate(suites["values"]), repeats)
    return {
        "validate_cpu_s": cpu,
        "validate_wall_s": wall,
        "validate_value_checks_cpu_s": value_cpu,
        "validate_value_checks_wall_s": value_wall,
        "expectations": len(all_checks),
        "value_expectations": len(value_checks()),
    }


def status_api_side(workspace: Path, name: str, files: int, repeats: int) -> dict[str, Any]:
    """``Client(workspace).app.datasets.status(name)`` in-process: the work of the CLI
    command without the interpreter start and imports."""
    import loopml

    client = loopml.Client(workspace)
    try:

        def call() -> object:
            found = client.app.datasets.status(name)
            check(
                found.clean and found.unchanged == files and not found.rehashed,
                f"loopml status API: {found}",
            )
            return found

        cpu, wall = timed(call, repeats)
    finally:
        client.close()
    return {"status_api_cpu_s": cpu, "status_api_wall_s": wall}


def in_child(args: Sequence[str]) -> dict[str, Any]:
    """Run a ``--side`` of this script in a fresh interpreter; its last stdout line."""
    done = subprocess.run(
        [sys.executable, __file__, *args],
        stdout=subprocess.PIPE,
        text=True,
        check=False,
        env={**os.environ, **QUIET_ENV, "LOOPML_BENCH_STARTED": str(STARTED)},
    )
    if done.returncode != 0:
        raise SystemExit(f"the child {' '.join(args)} failed (exit {done.returncode})")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# sections ------------------------------------------------------------------------------------
class Bench:
    """One benchmark run: figures per tool, notes, and the temporary folder."""

    def __init__(self, sizes: Sizes, mode: str, tmp: Path, budget_mib: int) -> None:
        self.sizes = sizes
        self.mode = mode
        self.tmp = tmp
        self.budget_mib = budget_mib
        self.loopml_cli = console_script("loopml")
        if self.loopml_cli is None:
            raise SystemExit(
                f"no 'loopml' console script next to {sys.executable}; install the project "
                "into this environment (pip install -e '.[bench]')"
            )
        self.dvc_cli = console_script("dvc") if shutil.which("git") else None
        self.have = {
            "dvc": self.dvc_cli is not None,
            "pandera": version_of("pandera") is not None,
            "great_expectations": version_of("great_expectations") is not None,
        }
        self.ours: dict[str, Any] = {}
        self.theirs: dict[str, dict[str, Any]] = {name: {} for name in self.have}
        self.facts: dict[str, Any] = {"budget_mib": budget_mib}
        self.notes: list[str] = []
        for tool, present in self.have.items():
            if not present:
                why = "git or the dvc script is missing" if tool == "dvc" else "not installed"
                self.notes.append(f"{tool}: {why} (pip install -e '.[bench]'): figures null")

    # helpers ----------------------------------------------------------------------------
    def loopml(self, workspace: Path, *args: str | Path) -> list[str | Path]:
        return [self.loopml_cli or "loopml", "--workspace", workspace, *args]

    def new_workspace(self, path: Path) -> Path:
        run_measured([self.loopml_cli or "loopml", "init", path], self.tmp)
        return path

    def new_dvc_repo(self, path: Path) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        dvc = self.dvc_cli or "dvc"
        run_measured(["git", "init", "-q"], path)
        run_measured([dvc, "init", "-q"], path)
        run_measured([dvc, "config", "core.analytics", "false"], path)
        return path

    def record(self, prefix: str, m: Measured, target: dict[str, Any], memory: bool) -> None:
        target[f"{prefix}_wall_s"] = m.wall_s
        target[f"{prefix}_cpu_s"] = m.cpu_s
        if memory:
            target[f"{prefix}_peak_rss_mib"] = m.peak_rss_mib
            target[f"{prefix}_peak_anon_mib"] = m.peak_anon_mib

    # 1. one large file ------------------------------------------------------------------
    def add(self) -> None:
        root = self.tmp / "add"
        repo = self.new_dvc_repo(root / "dvc") if self.have["dvc"] else root
        root.mkdir(exist_ok=True)
        csv = repo / "data.csv"
        say(f"add: writing a {self.sizes.add_gib:g} GiB CSV")
        rows = write_csv(csv, int(self.sizes.add_gib * GIB), seed=1)
        size = csv.stat().st_size
        self.facts.update(add_file_bytes=size, add_rows=rows)
        say(f"add: {size / GIB:.2f} GiB, {rows:,} rows; loopml data add (CSV)")
        ws = self.new_workspace(root / "ws-csv")
        m = run_measured(
            self.loopml(ws, "data", "add", "big", csv, "--json"), root, poll_memory=True
        )
        self._check_added(m, rows, "CSV")
        self.record("add_csv", m, self.ours, memory=True)

        parquet = root / "data.parquet"
        say("add: writing the same rows as Parquet; loopml data add (Parquet)")
        write_parquet(parquet, rows, seed=1)
        self.facts["add_parquet_bytes"] = parquet.stat().st_size
        ws = self.new_workspace(root / "ws-parquet")  # fresh: no chunk stored by the CSV add
        m = run_measured(
            self.loopml(ws, "data", "add", "big", parquet, "--json"), root, poll_memory=True
        )
        self._check_added(m, rows, "Parquet")
        self.record("add_parquet", m, self.ours, memory=True)

        if self.have["dvc"]:
            say("add: dvc add (CSV)")
            m = run_measured([self.dvc_cli or "dvc", "add", csv.name], repo, poll_memory=True)
            entry = (repo / "data.csv.dvc").read_text(encoding="utf-8")
            digest = re.search(r"md5: ([0-9a-f]{32})", entry)
            check(digest is not None and f"size: {size}" in entry, f"dvc add wrote {entry!r}")
            cached = repo / ".dvc" / "cache" / "files" / "md5" / digest[1][:2] / digest[1][2:]
            check(
                cached.exists() and cached.stat().st_size == size, "dvc cached no copy of the file"
            )
            self.record("add", m, self.theirs["dvc"], memory=True)
        shutil.rmtree(root)

    def _check_added(self, m: Measured, rows: int, kind: str) -> None:
        found = json.loads(m.stdout)
        check(
            found["created"] and found["rows"] == rows and found["new_chunks"] > 0,
            f"loopml data add ({kind}) stored {found.get('rows')} rows, expected {rows:,}",
        )

    # 2. status over many small files ------------------------------------------------------
    def status(self) -> None:
        count, repeats = self.sizes.files, self.sizes.status_repeats
        root = self.tmp / "status"
        repo = self.new_dvc_repo(root / "dvc") if self.have["dvc"] else root
        files = repo / "files"
        say(f"status: writing {count:,} small CSV files")
        write_small_files(files, count)
        self.facts["files"] = count
        ws = self.new_workspace(root / "ws")
        say("status: loopml data add (setup, timed for information)")
        m = run_measured(self.loopml(ws, "data", "add", "files", files), root)
        self.ours["add_files_wall_s"] = m.wall_s
        self.ours["add_files_cpu_s"] = m.cpu_s
        say(f"status: loopml data status, warm-up + {repeats}")
        command = self.loopml(ws, "data", "status", "files")
        m, cpu = median_run(command, root, repeats)
        unchanged = re.search(r"no changes \(([\d,]+) unchanged, 0 hashed again\)", m.stdout)
        check(
            unchanged is not None and int(unchanged[1].replace(",", "")) == count,
            f"loopml status: {m.stdout!r}",
        )
        self.ours["status_wall_s"], self.ours["status_cpu_s"] = m.wall_s, cpu
        say("status: the same call in-process (child process)")
        self.ours.update(
            in_child(["--side", "status-api", "--tmp", str(ws), "--files", str(count)])
        )
        dvc = self.dvc_cli or "dvc"
        if self.have["dvc"]:
            say("status: dvc add (setup, timed for information)")
            m = run_measured([dvc, "add", "files"], repo)
            entry = (repo / "files.dvc").read_text(encoding="utf-8")
            check(f"nfiles: {count}" in entry, f"dvc add of the folder wrote {entry!r}")
            self.theirs["dvc"]["add_files_wall_s"] = m.wall_s
            self.theirs["dvc"]["add_files_cpu_s"] = m.cpu_s
            say(f"status: dvc status, warm-up + {repeats}")
            m, cpu = median_run([dvc, "status"], repo, repeats)
            check("up to date" in m.stdout, f"dvc status on unchanged data said {m.stdout!r}")
            self.theirs["dvc"]["status_wall_s"], self.theirs["dvc"]["status_cpu_s"] = m.wall_s, cpu
        changed = files / "part000" / "f000000.csv"
        with changed.open("a", encoding="ascii") as handle:
            handle.write(f"{3 * count},0.125\n")
        m = run_measured(command, root, ok=(1,))
        check("modified" in m.stdout and "f000000.csv" in m.stdout, f"loopml: {m.stdout!r}")
        if self.have["dvc"]:
            m = run_measured([dvc, "status"], repo, ok=(0, 1))
            check("modified" in m.stdout, f"dvc status missed a changed file: {m.stdout!r}")
        say("status: both tools report the changed file")
        shutil.rmtree(root)

    # 3. validation ------------------------------------------------------------------------
    def validate(self) -> None:
        rows, repeats = self.sizes.rows, self.sizes.validate_repeats
        rules = validation_rules(rows)
        self.facts.update(
            validate_rows=rows, validate_columns=len(rules), checks=check_counts(rules)
        )
        common = ["--rows", str(rows), "--repeats", str(repeats)]
        self.ours.update(in_child(["--side", "validate-loopml", *common]))
        for tool in ("pandera", "great_expectations"):
            if self.have[tool]:
                side = "validate-pandera" if tool == "pandera" else "validate-gx"
                self.theirs[tool].update(in_child(["--side", side, *common]))
        say(f"start-up: loopml data validate --help, warm-up + {self.sizes.startup_repeats}")
        help_runs = [
            run_measured([self.loopml_cli or "loopml", "data", "validate", "--help"], self.tmp)
            for _ in range(self.sizes.startup_repeats + 1)
        ][1:]
        self.ours["validate_help_s"] = statistics.median(m.wall_s for m in help_runs)
        self.facts["python_pass_s"] = statistics.median(
            run_measured([sys.executable, "-c", "pass"], self.tmp).wall_s for _ in range(3)
        )

    # 4. larger than the memory budget -----------------------------------------------------
    def big(self) -> None:
        size = int(self.sizes.big_gib * GIB)
        root = self.tmp / "big"
        root.mkdir()
        need = int(size * 1.6) + GIB  # the CSV, loopml's chunks (~35% of it here), slack
        free = shutil.disk_usage(root).free
        self.facts["big_target_bytes"] = size
        if free < need:
            self.notes.append(
                f"big: skipped, {free / GIB:.1f} GiB free where {need / GIB:.1f} GiB are needed"
            )
            return
        csv = root / "big.csv"
        say(f"big: writing a {self.sizes.big_gib:g} GiB CSV")
        rows = write_csv(csv, size, seed=2)
        self.facts.update(big_file_bytes=csv.stat().st_size, big_rows=rows)
        ws = self.new_workspace(root / "ws")
        say("big: loopml data add")
        m = run_measured(
            self.loopml(ws, "data", "add", "big", csv, "--json"), root, poll_memory=True
        )
        self._check_added(m, rows, "big CSV")
        self.record("big_add", m, self.ours, memory=True)
        schema = root / "schema.toml"
        say("big: loopml data schema big@1 --key id")
        m = run_measured(
            self.loopml(ws, "data", "schema", "big@1", "--key", "id", "-o", schema),
            root,
            poll_memory=True,
        )
        check(schema.exists() and "id" in schema.read_text(encoding="utf-8"), "no schema file")
        self.record("big_schema", m, self.ours, memory=True)
        say("big: loopml data validate")
        m = run_measured(
            self.loopml(ws, "data", "validate", "big", csv, "--schema", schema, "--json"),
            root,
            poll_memory=True,
        )
        report = json.loads(m.stdout)
        check(
            report["ok"] and report["rows"] == rows,
            f"loopml data validate of the big CSV: ok={report['ok']}, rows={report['rows']}",
        )
        self.record("big_validate", m, self.ours, memory=True)
        shutil.rmtree(root)


# the run -------------------------------------------------------------------------------------
SECTIONS = ("add", "status", "validate", "big")


def run(sizes: Sizes, mode: str, tmp: Path, budget_mib: int, only: Sequence[str]) -> dict[str, Any]:
    bench = Bench(sizes, mode, tmp, budget_mib)
    versions = {
        "loopml": version_of("loopml"),
        "dvc": version_of("dvc"),
        "pandera": version_of("pandera"),
        "great_expectations": version_of("great_expectations"),
        "pandas": version_of("pandas"),
        "pyarrow": version_of("pyarrow"),
    }
    print(
        ", ".join(f"{k} {v or '(not installed)'}" for k, v in versions.items())
        + f"; mode={mode}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    for name in SECTIONS:
        if name in only:
            getattr(bench, name)()
    ours, dvc = bench.ours, bench.theirs["dvc"]
    pandera, gx = bench.theirs["pandera"], bench.theirs["great_expectations"]
    facts = bench.facts

    speedup = {
        "add_vs_dvc_wall": ratio(dvc.get("add_wall_s"), ours.get("add_csv_wall_s")),
        "add_vs_dvc_cpu": ratio(dvc.get("add_cpu_s"), ours.get("add_csv_cpu_s")),
        "add_files_vs_dvc_wall": ratio(dvc.get("add_files_wall_s"), ours.get("add_files_wall_s")),
        "status_vs_dvc_wall": ratio(dvc.get("status_wall_s"), ours.get("status_wall_s")),
        "status_vs_dvc_cpu": ratio(dvc.get("status_cpu_s"), ours.get("status_cpu_s")),
        "validate_vs_pandera_cpu": ratio(pandera.get("validate_cpu_s"), ours.get("validate_cpu_s")),
        "validate_vs_pandera_wall": ratio(
            pandera.get("validate_wall_s"), ours.get("validate_wall_s")
        ),
        "validate_vs_gx_cpu": ratio(gx.get("validate_cpu_s"), ours.get("validate_cpu_s")),
        "validate_vs_gx_wall": ratio(gx.get("validate_wall_s"), ours.get("validate_wall_s")),
    }
    print_table(bench, speedup)

    def both(a: str, b: str, threshold: float) -> bool | None:
        if speedup[a] is None or speedup[b] is None:
            return None
        return speedup[a] >= threshold and speedup[b] >= threshold

    def at_most(key: str, limit: float) -> bool | None:
        return None if ours.get(key) is None else ours[key] <= limit

    big_peaks = [ours.get(f"big_{s}_peak_rss_mib") for s in ("add", "validate")]
    big_anon = [ours.get(f"big_{s}_peak_anon_mib") for s in ("add", "validate")]
    targets = {
        "add_5x_dvc": both("add_vs_dvc_wall", "add_vs_dvc_cpu", 5),
        "status_under_0.5s": at_most("status_wall_s", 0.5),
        "status_10x_dvc": both("status_vs_dvc_wall", "status_vs_dvc_cpu", 10),
        "validate_under_0.3s": None
        if "validate_cpu_s" not in ours
        else bool(ours["validate_cpu_s"] <= 0.3 and ours["validate_wall_s"] <= 0.3),
        "validate_2x_pandera": both("validate_vs_pandera_cpu", "validate_vs_pandera_wall", 2),
        "validate_4x_gx": both("validate_vs_gx_cpu", "validate_vs_gx_wall", 4),
        "validate_help_under_0.3s": None
        if "validate_help_s" not in ours
        else ours["validate_help_s"] < 0.3,
        "big_add_validate_peak_rss_within_budget": None
        if None in big_peaks
        else max(big_peaks) <= budget_mib,
        "big_add_validate_peak_anon_within_budget": None
        if None in big_anon
        else max(big_anon) <= budget_mib,
    }
    notes = bench.notes + describe(sizes, mode, facts)
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
        "benchmark": "data",
        "mode": mode,
        "versions": versions,
        "sizes": facts,
        "loopml": _rounded(ours),
        "dvc": _rounded(dvc) if bench.have["dvc"] else None,
        "pandera": _rounded(pandera) if bench.have["pandera"] else None,
        "great_expectations": _rounded(gx) if bench.have["great_expectations"] else None,
        "speedup": speedup,
        "targets": targets,
        "notes": notes,
    }


def print_table(bench: Bench, speedup: dict[str, float | None]) -> None:
    ours, dvc = bench.ours, bench.theirs["dvc"]
    pandera, gx = bench.theirs["pandera"], bench.theirs["great_expectations"]
    facts = bench.facts
    print(flush=True)
    row("", "loopml", "other", "other tool", "loopml ahead")
    if "add_csv_wall_s" in ours:
        size = f"{facts['add_file_bytes'] / GIB:.2f} GiB CSV, {facts['add_rows']:,} rows"
        row(
            f"add {size}: wall",
            fmt_s(ours["add_csv_wall_s"]),
            fmt_s(dvc.get("add_wall_s")),
            "dvc add",
            fmt_ratio(speedup["add_vs_dvc_wall"]),
        )
        row(
            "  same, CPU",
            fmt_s(ours["add_csv_cpu_s"]),
            fmt_s(dvc.get("add_cpu_s")),
            "dvc add",
            fmt_ratio(speedup["add_vs_dvc_cpu"]),
        )
        row(
            "  same, peak RSS",
            fmt_mib(ours["add_csv_peak_rss_mib"]),
            fmt_mib(dvc.get("add_peak_rss_mib")),
            "dvc add",
        )
        row(
            "  same, peak anonymous memory",
            fmt_mib(ours["add_csv_peak_anon_mib"]),
            fmt_mib(dvc.get("add_peak_anon_mib")),
            "dvc add",
        )
        parquet = f"{facts['add_parquet_bytes'] / MIB:,.0f} MiB"
        row(f"add the same rows as Parquet ({parquet}): wall", fmt_s(ours["add_parquet_wall_s"]))
        row("  same, CPU", fmt_s(ours["add_parquet_cpu_s"]))
    if "status_wall_s" in ours:
        files = f"{facts['files']:,}"
        row(
            f"add a folder of {files} small CSV files: wall",
            fmt_s(ours["add_files_wall_s"]),
            fmt_s(dvc.get("add_files_wall_s")),
            "dvc add",
            fmt_ratio(speedup["add_files_vs_dvc_wall"]),
        )
        row(
            f"status, {files} unchanged files: wall",
            fmt_s(ours["status_wall_s"]),
            fmt_s(dvc.get("status_wall_s")),
            "dvc status",
            fmt_ratio(speedup["status_vs_dvc_wall"]),
        )
        row(
            "  same, CPU",
            fmt_s(ours["status_cpu_s"]),
            fmt_s(dvc.get("status_cpu_s")),
            "dvc status",
            fmt_ratio(speedup["status_vs_dvc_cpu"]),
        )
        row("  loopml in-process datasets.status(): wall", fmt_s(ours["status_api_wall_s"]))
    if "validate_cpu_s" in ours:
        shape = f"{facts['validate_rows']:,} x {facts['validate_columns']}"
        for tool, theirs, key in (("pandera", pandera, "pandera"), ("GE", gx, "gx")):
            row(
                f"validate {shape}, same rules: CPU" if key == "pandera" else "  same, CPU",
                fmt_s(ours["validate_cpu_s"]),
                fmt_s(theirs.get("validate_cpu_s")),
                tool,
                fmt_ratio(speedup[f"validate_vs_{key}_cpu"]),
            )
            row(
                "  same, wall",
                fmt_s(ours["validate_wall_s"]),
                fmt_s(theirs.get("validate_wall_s")),
                tool,
                fmt_ratio(speedup[f"validate_vs_{key}_wall"]),
            )
        value_checks = gx.get("value_expectations", "the value")
        row(
            f"  GE with only its {value_checks} value checks: CPU",
            fmt_s(ours["validate_cpu_s"]),
            fmt_s(gx.get("validate_value_checks_cpu_s")),
            "GE",
            fmt_ratio(ratio(gx.get("validate_value_checks_cpu_s"), ours["validate_cpu_s"])),
        )
        row(
            f"  loopml on {BATCH_ROWS:,}-row record batches: CPU",
            fmt_s(ours["validate_batches_cpu_s"]),
        )
        row(
            "conversion, untimed above: Arrow -> pandas",
            "",
            fmt_s(pandera.get("to_pandas_s")),
            "pandera side",
        )
        row("  pandas -> Arrow", fmt_s(ours["from_pandas_s"]))
        row(
            "import in a fresh process",
            fmt_s(ours["import_s"]),
            fmt_s(pandera.get("import_s")),
            "pandera",
        )
        row("", "", fmt_s(gx.get("import_s")), "GE")
        row(
            f"loopml data validate --help (median of {bench.sizes.startup_repeats})",
            fmt_s(ours["validate_help_s"]),
        )
        row("python -c pass (interpreter alone)", fmt_s(facts["python_pass_s"]))
    if "big_add_wall_s" in ours:
        size = f"{facts['big_file_bytes'] / GIB:.2f} GiB CSV, {facts['big_rows']:,} rows"
        budget = fmt_mib(bench.budget_mib)
        row(f"big: {size}")
        for step in ("add", "schema", "validate"):
            command = {"add": "add", "schema": "schema --key id", "validate": "validate"}[step]
            row(f"  loopml data {command}: wall", fmt_s(ours[f"big_{step}_wall_s"]))
            row("    CPU", fmt_s(ours[f"big_{step}_cpu_s"]))
            row("    peak RSS", fmt_mib(ours[f"big_{step}_peak_rss_mib"]), budget, "budget")
            row(
                "    peak anonymous memory",
                fmt_mib(ours[f"big_{step}_peak_anon_mib"]),
                budget,
                "budget",
            )


def describe(sizes: Sizes, mode: str, facts: dict[str, Any]) -> list[str]:
    checks = facts.get("checks")
    notes = [
        "every tool runs in its own fresh process; CLI figures include interpreter start "
        "and imports (what a user waits for); CPU = user + system of all threads (os.wait4)",
        "speedup = the other tool's time / loopml's; below 1 means loopml is slower",
        "add: the CSV was just written, so both tools read it from the page cache; dvc "
        "copies it into its cache (ext4 here: no reflinks); loopml parses it, stores "
        "zstd Parquet chunks and a profile",
        "status: median of the runs after one warm-up; the targets need both wall and CPU "
        "ratios, and status_under_0.5s is the CLI's wall time",
    ]
    if checks:
        value = checks["range"] + checks["category"] + checks["unique"]
        notes.append(
            f"validate: the same rules in every tool: {checks['type']} types, "
            f"{checks['not_null']} not-null, {checks['range']} ranges, {checks['category']} "
            f"category sets, 1 unique key, the column set ({value} value checks); GE needs "
            "one expectation each, pandera and loopml carry types and nulls per column; "
            "loopml validates the pyarrow Table, pandera and GE the pandas DataFrame "
            "(conversion not timed, shown apart); pandera with lazy=True, GE "
            "batch.validate with its progress bars off; median CPU of the runs after a "
            "warm-up; each tool first had to report exactly the 1% planted out-of-range "
            "values of count_3"
        )
    if "big_rows" in facts:
        notes.append(
            f"big: peak RSS (ru_maxrss) counts every resident page; anonymous memory "
            f"(RssAnon, sampled every 20 ms) is what the process holds itself; budget "
            f"{facts['budget_mib']:,} MiB is measured, not enforced"
        )
    if mode == "quick":
        notes.append(
            f"quick mode: {sizes.add_gib:g} GiB file, {sizes.files:,} files, "
            f"{sizes.rows:,} rows, big CSV {sizes.big_gib:g} GiB (smaller than the "
            "budget): targets are indicative only"
        )
    return notes


def _rounded(figures: dict[str, Any]) -> dict[str, Any]:
    def one(value: Any) -> Any:
        if not isinstance(value, float):
            return value
        return round(value, 4 if value < 10 else 1)

    return {k: one(v) for k, v in figures.items()}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="smaller sizes, about 70 s (indicative only)"
    )
    parser.add_argument("--out", type=Path, help="also write the JSON result to this file")
    parser.add_argument(
        "--big-gb", type=float, help="size of the larger-than-memory CSV in GiB (5; quick 0.2)"
    )
    parser.add_argument(
        "--budget-mb", type=int, default=1024, help="memory budget for the big CSV, MiB"
    )
    parser.add_argument(
        "--only", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="run these sections"
    )
    parser.add_argument(
        "--side",
        choices=("validate-loopml", "validate-pandera", "validate-gx", "status-api"),
        help=argparse.SUPPRESS,
    )
    parser.add_argument("--tmp", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=3, help=argparse.SUPPRESS)
    parser.add_argument("--files", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.side:  # a child of `run`: measure one thing, print its figures as JSON
        if args.side == "status-api":
            result = status_api_side(args.tmp, "files", args.files, 5)
        else:
            tool = {"validate-gx": "great_expectations"}.get(args.side, args.side[9:])
            result = validation_side(tool, args.rows, args.repeats)
        print(json.dumps(result), flush=True)
        return
    sizes = QUICK if args.quick else FULL
    if args.big_gb is not None:
        sizes = dataclasses.replace(sizes, big_gib=args.big_gb)
    mode = "quick" if args.quick else "full"
    with tempfile.TemporaryDirectory(prefix="loopml-bench-data-") as tmp:
        os.environ["DVC_SITE_CACHE_DIR"] = str(Path(tmp) / "dvc-site")  # no state left behind
        snapshot = bytecode_snapshot(Path(tmp))  # every child runs loopml from bytecode
        os.environ.update(with_snapshot(os.environ, snapshot))
        result = run(sizes, mode, Path(tmp), args.budget_mb, args.only)
        if snapshot is not None:
            result["notes"].append(SNAPSHOT_NOTE)
    line = json.dumps(result)
    if args.out:
        args.out.write_text(line + "\n", encoding="utf-8")
    print(line, flush=True)


if __name__ == "__main__":
    main()
