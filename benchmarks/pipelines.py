"""Pipeline benchmark: what loopml's step cache costs, beside DVC's ``dvc repro``.

Run ``python benchmarks/pipelines.py`` (full: a ~50 MB input, 5 no-ops and 5 param changes
per tool, about 2 minutes on 2 cores) or ``--quick`` (~5 MB, 3 and 2, about 70 s). The
same 5-stage pipeline (prepare -> featurize -> train -> evaluate -> report: filter a
seeded CSV, derive features, fit a scikit-learn Ridge, score it, write a report) is built
twice from the same Python functions, each in a fresh temporary folder:

* **loopml**: ``loopml init``, ``loopml data add raw data.csv`` and a ``pipeline.py`` of
  ``@loopml.step`` functions, run by ``loopml run`` (the CLI, what a user waits for) and
  by ``loopml.run_pipeline`` in a fresh child process (the library's own cost);
* **DVC**: ``git init`` + ``dvc init``, one script per stage called from ``dvc.yaml``
  (deps, outs, ``params: [train.alpha]`` from ``params.yaml``), run by ``dvc repro``.

Measured for both, interleaved run by run so that the machine's load falls on both alike:
the **cold run** (builds the cache), the **no-op re-run** (everything cached; median of
the runs after the first), and **one param change** (train's alpha; a new value each
repeat, so DVC's run cache cannot restore it), where exactly train, evaluate and report
must re-run: every stage appends its name to ``executions.log``, and the tool's own output
must agree. The **floor** is the least a "nothing changed" check could cost: hashing the
input once (BLAKE3, MD5) plus ``python -c pass``.

Wall time is taken around each process; CPU time (user + system, the process and every
child it waited for) from ``resource.getrusage(RUSAGE_CHILDREN)`` deltas. A table goes to
stdout, progress to stderr, and the last stdout line is one JSON object (also written to
``--out FILE``). What each figure means is in ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from bench_support import SNAPSHOT_NOTE, bytecode_snapshot, with_snapshot

MIB = 1 << 20
STAGES = ("prepare", "featurize", "train", "evaluate", "report")
RERUN = ("train", "evaluate", "report")  # what one change of train's alpha must re-run
BLOCK_ROWS = 20_000  # rows per generated block: the file grows in steps of ~1.4 MB
HASH_CHUNK = 1 << 20
QUIET_ENV = {"DVC_NO_ANALYTICS": "1", "DO_NOT_TRACK": "1"}  # no network call is timed


@dataclass(frozen=True)
class Sizes:
    data_mb: float
    repeats: int  # no-op runs per tool (after the cold run)
    param_repeats: int  # param changes per tool (each re-runs 3 steps: the slow part)


FULL = Sizes(50, 5, 5)
QUICK = Sizes(5, 3, 2)


# reporting -------------------------------------------------------------------------------
STARTED = float(os.environ.get("LOOPML_BENCH_STARTED", time.time()))  # children: the parent's


def say(message: str) -> None:
    """Progress: stderr, so stdout stays the table plus the JSON line."""
    print(f"  [{time.time() - STARTED:6.1f} s] {message}", file=sys.stderr, flush=True)


def row(label: str, ours: str = "", theirs: str = "", ratio_text: str = "") -> None:
    print(f"{label:<52} {ours:>11} {theirs:>11} {ratio_text:>12}", flush=True)


def fmt_s(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} s" if value < 10 else f"{value:.1f} s"


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}x"


def over(ours: float | None, theirs: float | None) -> float | None:
    """loopml's time over the other's: above 1 means loopml is slower."""
    if ours is None or theirs is None or theirs <= 0:
        return None
    return round(ours / theirs, 2)


def check(condition: bool, message: str) -> None:
    """A benchmark that measured the wrong thing is worse than none: stop loudly."""
    if not condition:
        raise SystemExit(f"benchmark sanity check failed: {message}")


def version_of(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def console_script(name: str) -> str | None:
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else None


# running and measuring a command -----------------------------------------------------------
@dataclass(frozen=True)
class Measured:
    wall_s: float
    cpu_s: float  # user + system of the process and of every child it waited for
    stdout: str
    stderr: str


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_measured(argv: Sequence[str | Path], cwd: Path, env: dict[str, str]) -> Measured:
    """Run ``argv`` to completion; a non-zero exit stops the benchmark with its output.

    The parent runs one command at a time, so the RUSAGE_CHILDREN delta is this
    command's CPU, its own children included (DVC's stage processes, git)."""
    args = [str(a) for a in argv]
    cpu = children_cpu()
    start = time.perf_counter()
    done = subprocess.run(
        args, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, check=False
    )
    wall = time.perf_counter() - start
    cpu = children_cpu() - cpu
    stdout = done.stdout.decode(errors="replace")
    stderr = done.stderr.decode(errors="replace")
    if done.returncode != 0:
        raise SystemExit(
            f"{' '.join(args)} exited {done.returncode} in {cwd}:\n{stderr[-3000:]}{stdout[-2000:]}"
        )
    return Measured(wall, cpu, stdout, stderr)


# the input data ---------------------------------------------------------------------------
def write_input(path: Path, target_bytes: int, seed: int = 0) -> int:
    """A CSV of seeded rows (an int id, 6 float features with 4 decimals, a 5-level
    category and the target ``y``, about 1% missing) until it holds ``target_bytes``;
    the number of rows."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    weights = np.array([1.5, -2.0, 0.5, 0.0, 3.0, -0.25])
    levels = np.array([f"group_{i}" for i in range(5)], dtype=object)
    rows = 0
    with pa.OSFile(str(path), "wb") as sink:
        writer: pacsv.CSVWriter | None = None
        while sink.tell() < target_bytes:
            x = np.round(rng.normal(0.0, 1.0, (BLOCK_ROWS, 6)), 4)
            y = np.round(x @ weights + rng.normal(0.0, 0.5, BLOCK_ROWS), 4)
            columns: dict[str, Any] = {
                "id": pa.array(np.arange(rows, rows + BLOCK_ROWS, dtype=np.int64))
            }
            for i in range(6):
                columns[f"x{i}"] = pa.array(x[:, i])
            columns["cat"] = pa.array(rng.choice(levels, BLOCK_ROWS), pa.string())
            columns["y"] = pa.array(y, mask=rng.random(BLOCK_ROWS) < 0.01)
            block = pa.table(columns)
            if writer is None:
                writer = pacsv.CSVWriter(sink, block.schema)
            writer.write_table(block)
            rows += BLOCK_ROWS
        if writer is not None:
            writer.close()
    return rows


# the pipeline's code, written into each tool's folder ---------------------------------------
# The five stages as plain functions on pandas objects: both tools run exactly this code.
# Each appends its name to executions.log, so the benchmark can count what really ran.
STAGES_PY = '''
"""The benchmark pipeline's stages, shared by the loopml steps and the DVC scripts."""

from pathlib import Path

import numpy as np
import pandas as pd

FEATURES = ["x0", "x1", "x2", "x4", "x0_x1", "log_x3", "is_g0"]
TARGET = "y"
LOG = Path(__file__).with_name("executions.log")


def executed(stage):
    with LOG.open("a", encoding="ascii") as log:
        log.write(stage + "\\n")


def prepare_frame(raw):
    executed("prepare")
    kept = raw[raw["y"].notna() & (raw["x5"] > -2.5)]
    return kept.reset_index(drop=True)


def featurize_frame(prepared):
    executed("featurize")
    return pd.DataFrame(
        {
            "id": prepared["id"],
            "x0": prepared["x0"],
            "x1": prepared["x1"],
            "x2": prepared["x2"],
            "x4": prepared["x4"],
            "x0_x1": prepared["x0"] * prepared["x1"],
            "log_x3": np.log1p(prepared["x3"].abs()),
            "is_g0": (prepared["cat"] == "group_0").astype("int64"),
            "y": prepared["y"],
        }
    )


def fit_model(features, alpha):
    executed("train")
    from sklearn.linear_model import Ridge

    rows = features[features["id"] % 5 != 0]
    return Ridge(alpha=alpha).fit(rows[FEATURES].to_numpy(), rows[TARGET].to_numpy())


def score(model, features):
    executed("evaluate")
    rows = features[features["id"] % 5 == 0]
    truth = rows[TARGET].to_numpy()
    error = truth - model.predict(rows[FEATURES].to_numpy())
    rmse = float(np.sqrt(np.mean(error**2)))
    r2 = float(1 - np.sum(error**2) / np.sum((truth - truth.mean()) ** 2))
    return {"rmse": rmse, "r2": r2, "rows": len(rows)}


def render(metrics):
    executed("report")
    lines = [f"- {name}: {value}" for name, value in sorted(metrics.items())]
    return "# Evaluation\\n\\n" + "\\n".join(lines) + "\\n"
'''

LOOPML_PIPELINE_PY = '''
"""The benchmark pipeline as loopml steps: thin wrappers over stages.py."""

import loopml
import stages


@loopml.step(outputs="prepared")
def prepare(raw):
    return stages.prepare_frame(raw)


@loopml.step(outputs="features")
def featurize(prepared):
    return stages.featurize_frame(prepared)


@loopml.step(outputs="model", libraries=["scikit-learn"])
def train(features, alpha: float = 1.0):
    return stages.fit_model(features, alpha)


@loopml.step(outputs="metrics")
def evaluate(model, features):
    return stages.score(model, features)


@loopml.step(outputs="report")
def report(metrics):
    return stages.render(metrics)


pipeline = loopml.Pipeline(
    "bench", [prepare, featurize, train, evaluate, report], datasets={"raw": "raw"}
)
'''

# One script per stage, as DVC users write them; each reads and writes files.
DVC_SCRIPTS = {
    "prepare.py": """
        import pandas as pd
        import stages

        stages.prepare_frame(pd.read_csv("data.csv")).to_parquet("prepared.parquet")
    """,
    "featurize.py": """
        import pandas as pd
        import stages

        prepared = pd.read_parquet("prepared.parquet")
        stages.featurize_frame(prepared).to_parquet("features.parquet")
    """,
    "train.py": """
        import pickle

        import pandas as pd
        import stages
        import yaml

        with open("params.yaml", encoding="utf-8") as handle:
            alpha = yaml.safe_load(handle)["train"]["alpha"]
        model = stages.fit_model(pd.read_parquet("features.parquet"), alpha)
        with open("model.pkl", "wb") as handle:
            pickle.dump(model, handle)
    """,
    "evaluate.py": """
        import json
        import pickle

        import pandas as pd
        import stages

        with open("model.pkl", "rb") as handle:
            model = pickle.load(handle)
        metrics = stages.score(model, pd.read_parquet("features.parquet"))
        with open("metrics.json", "w", encoding="utf-8") as handle:
            json.dump(metrics, handle)
    """,
    "report.py": """
        import json

        import stages

        with open("metrics.json", encoding="utf-8") as handle:
            metrics = json.load(handle)
        with open("report.md", "w", encoding="utf-8") as handle:
            handle.write(stages.render(metrics))
    """,
}

DVC_YAML = """
stages:
  prepare:
    cmd: python prepare.py
    deps: [data.csv, prepare.py, stages.py]
    outs: [prepared.parquet]
  featurize:
    cmd: python featurize.py
    deps: [prepared.parquet, featurize.py, stages.py]
    outs: [features.parquet]
  train:
    cmd: python train.py
    deps: [features.parquet, train.py, stages.py]
    params: [train.alpha]
    outs: [model.pkl]
  evaluate:
    cmd: python evaluate.py
    deps: [model.pkl, features.parquet, evaluate.py, stages.py]
    metrics:
      - metrics.json:
          cache: false
  report:
    cmd: python report.py
    deps: [metrics.json, report.py, stages.py]
    outs: [report.md]
"""


def write_code(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (folder / name).write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")


def executions(folder: Path) -> list[str]:
    """The stages that ran since the last call (and empties the log)."""
    log = folder / "executions.log"
    if not log.exists():
        return []
    ran = log.read_text(encoding="ascii").split()
    log.unlink()
    return ran


# each tool's side ----------------------------------------------------------------------------
LOOPML_LINE = re.compile(r"\[\d+/\d+\]\s+(\w+)\s+(cached|ran|resumed|FAILED|skipped)")
DVC_RAN = re.compile(r"Running stage '(\w+)'")
DVC_SKIPPED = re.compile(r"Stage '(\w+)' didn't change, skipping")


class LoopmlSide:
    """A loopml workspace with the pipeline and the dataset ``raw`` added."""

    def __init__(self, root: Path, csv: Path, env: dict[str, str]) -> None:
        self.cli = console_script("loopml")
        if self.cli is None:
            raise SystemExit(
                f"no 'loopml' console script next to {sys.executable}; install the project "
                "into this environment (pip install -e '.[bench]')"
            )
        self.root, self.env = root, env
        run_measured([self.cli, "init", root], root.parent, env)
        write_code(root, {"stages.py": STAGES_PY, "pipeline.py": LOOPML_PIPELINE_PY})
        self.added = run_measured([self.cli, "data", "add", "raw", csv, "--json"], root, env)
        found = json.loads(self.added.stdout)
        check(found.get("rows", 0) > 0, f"loopml data add stored {found}")

    def run(
        self, *args: str, env: dict[str, str] | None = None
    ) -> tuple[Measured, list[str], dict[str, str]]:
        m = run_measured([self.cli or "loopml", "run", *args], self.root, env or self.env)
        said = dict(LOOPML_LINE.findall(m.stdout))
        check(list(said) == list(STAGES), f"loopml run printed {m.stdout!r}")
        return m, executions(self.root), said


class DvcSide:
    """A git + DVC repository with the stage scripts, dvc.yaml and params.yaml."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.cli = console_script("dvc") or "dvc"
        self.root, self.env = root, env
        run_measured(["git", "init", "-q"], root, env)
        run_measured([self.cli, "init", "-q"], root, env)
        run_measured([self.cli, "config", "core.analytics", "false"], root, env)
        run_measured([self.cli, "config", "core.check_update", "false"], root, env)
        write_code(root, {"stages.py": STAGES_PY, "dvc.yaml": DVC_YAML, **DVC_SCRIPTS})
        self.set_alpha(1.0)

    def set_alpha(self, alpha: float) -> None:
        (self.root / "params.yaml").write_text(f"train:\n  alpha: {alpha}\n", encoding="utf-8")

    def run(self) -> tuple[Measured, list[str], dict[str, str]]:
        m = run_measured([self.cli, "repro"], self.root, self.env)
        said = dict.fromkeys(DVC_RAN.findall(m.stdout), "ran")
        said.update(dict.fromkeys(DVC_SKIPPED.findall(m.stdout), "cached"))
        check(
            sorted(said) == sorted(STAGES) or "Data and pipelines are up to date" in m.stdout,
            f"dvc repro printed {m.stdout!r}",
        )
        return m, executions(self.root), said


def expect(
    tool: str, what: str, ran: list[str], said: dict[str, str], wanted: Sequence[str]
) -> bool:
    """Whether exactly ``wanted`` ran (per executions.log) and the tool said so too.

    A cold or no-op run that is wrong stops the benchmark; for the param change the
    answer is reported (it is one of the figures)."""
    said_ran = sorted(s for s, how in said.items() if how == "ran")
    exact = ran == list(wanted) and said_ran == sorted(wanted)
    if not exact:
        say(f"{tool} {what}: executed {ran}, reported as run {said_ran}, expected {list(wanted)}")
    return exact


# the in-process child ----------------------------------------------------------------------
def api_side(workspace: Path, repeats: int, profile_top: int) -> dict[str, Any]:
    """``loopml.run_pipeline`` in this fresh process: import, open, load the pipeline, a
    first no-op (cold Python caches), then the median of ``repeats`` no-ops and one more
    under cProfile."""
    start = time.perf_counter()
    import loopml

    client = loopml.Client(workspace)
    open_s = time.perf_counter() - start
    start = time.perf_counter()
    sys.path.insert(0, str(workspace))
    module = importlib.import_module("pipeline")  # the workspace's: pandas, numpy, stages

    load_s = time.perf_counter() - start

    def noop() -> None:
        result = loopml.run_pipeline(module.pipeline, client=client)
        check(result.all_hits, f"in-process no-op ran steps: {result.outcomes}")

    start_cpu, start = time.process_time(), time.perf_counter()
    noop()
    first = (time.perf_counter() - start, time.process_time() - start_cpu)
    wall, cpu = [], []
    for _ in range(repeats):
        start_cpu, start = time.process_time(), time.perf_counter()
        noop()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    check(not executions(workspace), "a step ran during the in-process no-ops")
    profile = _profiled(noop, profile_top) if profile_top else {}
    client.close()
    return {
        "api_open_s": open_s,
        "api_load_pipeline_s": load_s,
        "api_first_noop_wall_s": first[0],
        "api_first_noop_cpu_s": first[1],
        "api_noop_wall_s": statistics.median(wall),
        "api_noop_cpu_s": statistics.median(cpu),
        **profile,
    }


def _profiled(call: Any, top: int) -> dict[str, Any]:
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.runcall(call)
    total = time.perf_counter() - start
    stats = pstats.Stats(profiler)

    def name(key: tuple[str, int, str]) -> str:
        file, line, func = key
        if file == "~":  # a C function
            return func
        for marker in ("site-packages/", "src/", "lib/python3"):
            if marker in file:
                file = file.split(marker, 1)[1]
                break
        return f"{file}:{line}({func})"

    entries = [
        (key, calls, tot, cum)
        for key, (_, calls, tot, cum, _) in stats.stats.items()  # type: ignore[attr-defined]
    ]
    by_cum = sorted(entries, key=lambda e: e[3], reverse=True)[:top]
    by_tot = sorted(entries, key=lambda e: e[2], reverse=True)[:top]

    def listed(items: list[Any]) -> list[dict[str, Any]]:
        return [
            {"function": name(k), "calls": c, "self_s": round(t, 4), "cum_s": round(cu, 4)}
            for k, c, t, cu in items
        ]

    return {
        "profile_wall_s": total,
        "profile_by_cumulative": listed(by_cum),
        "profile_by_self": listed(by_tot),
    }


def in_child(args: Sequence[str], env: dict[str, str]) -> dict[str, Any]:
    """Run a ``--side`` of this script in a fresh interpreter; its last stdout line."""
    done = subprocess.run(
        [sys.executable, __file__, *args],
        stdout=subprocess.PIPE,
        text=True,
        check=False,
        env={**env, "LOOPML_BENCH_STARTED": str(STARTED)},
    )
    if done.returncode != 0:
        raise SystemExit(f"the child {' '.join(args)} failed (exit {done.returncode})")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# the floor ---------------------------------------------------------------------------------
def hash_seconds(path: Path, make: Any, repeats: int = 3) -> float:
    """Median wall seconds to read ``path`` in 1 MiB pieces through the hash ``make()``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        digest = make()
        with path.open("rb", buffering=0) as handle:
            while piece := handle.read(HASH_CHUNK):
                digest.update(piece)
        digest.hexdigest()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def floor(csv: Path, env: dict[str, str], tmp: Path) -> dict[str, float | None]:
    import hashlib

    try:  # loopml's own hash (a dependency of loopml, so normally present)
        from blake3 import blake3
    except ImportError:
        blake3_s = None
    else:
        blake3_s = hash_seconds(csv, blake3)
    md5_s = hash_seconds(csv, hashlib.md5)
    starts = [run_measured([sys.executable, "-c", "pass"], tmp, env) for _ in range(6)][1:]
    python_s = statistics.median(m.wall_s for m in starts)
    return {
        "python_pass_s": python_s,
        "python_pass_cpu_s": statistics.median(m.cpu_s for m in starts),
        "blake3_s": blake3_s,
        "md5_s": md5_s,
        "floor_blake3_s": None if blake3_s is None else python_s + blake3_s,
        "floor_md5_s": python_s + md5_s,
    }


# the run -------------------------------------------------------------------------------------
def run(sizes: Sizes, mode: str, tmp: Path, profile_top: int) -> dict[str, Any]:
    versions = {
        "loopml": version_of("loopml"),
        "dvc": version_of("dvc"),
        "pandas": version_of("pandas"),
        "scikit-learn": version_of("scikit-learn"),
        "python": sys.version.split()[0],
    }
    load_start = os.getloadavg()[0]
    print(
        ", ".join(f"{k} {v or '(not installed)'}" for k, v in versions.items())
        + f"; mode={mode}, {os.cpu_count()} CPUs, load average {load_start:.2f}",
        flush=True,
    )
    env = {
        **os.environ,
        **QUIET_ENV,
        "DVC_SITE_CACHE_DIR": str(tmp / "dvc-site"),  # no DVC state left behind
        # `python` in dvc.yaml's commands is this interpreter, as in an activated venv
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    notes: list[str] = []
    have_dvc = console_script("dvc") is not None and shutil.which("git") is not None
    if not have_dvc:
        why = "git is missing" if console_script("dvc") else "dvc is not installed"
        notes.append(f"dvc: {why} (pip install -e '.[bench]'): its figures and ratios are null")
        say(f"DVC absent ({why}): measuring loopml only")

    data_dir = tmp / "dvc" if have_dvc else tmp / "data"
    data_dir.mkdir()
    csv = data_dir / "data.csv"
    say(f"writing a {sizes.data_mb:g} MB CSV")
    rows = write_input(csv, int(sizes.data_mb * 1e6))
    facts: dict[str, Any] = {
        "input_bytes": csv.stat().st_size,
        "input_rows": rows,
        "repeats": sizes.repeats,
        "param_repeats": sizes.param_repeats,
        "cpus": os.cpu_count(),
    }
    say(f"{facts['input_bytes'] / MIB:.1f} MiB, {rows:,} rows; the floor")
    base = floor(csv, env, tmp)

    snapshot = bytecode_snapshot(tmp)
    as_inherited = env  # loopml compiled from source at every start, if so (see notes)
    if snapshot is not None:
        env = with_snapshot(env, snapshot)
        found = run_measured(
            [sys.executable, "-c", "import loopml; print(loopml.__file__)"], tmp, env
        )
        check(found.stdout.strip().startswith(str(snapshot)), f"loopml came from {found.stdout!r}")
        notes.append(f"{SNAPSHOT_NOTE}; noop_wall_compiling_s is the CLI no-op without it")
        say("loopml runs from a byte-compiled copy of its package (PYTHONDONTWRITEBYTECODE)")
    facts["loopml_bytecode_snapshot"] = snapshot is not None

    say("loopml: init, data add, pipeline.py")
    (tmp / "loopml").mkdir()
    ours_side = LoopmlSide(tmp / "loopml", csv, env)
    dvc_side = DvcSide(data_dir, env) if have_dvc else None
    ours: dict[str, Any] = {
        "data_add_wall_s": ours_side.added.wall_s,
        "data_add_cpu_s": ours_side.added.cpu_s,
    }
    dvc: dict[str, Any] = {}

    say("cold runs (the first run builds each cache)")
    m, ran, said = ours_side.run()
    check(expect("loopml", "cold run", ran, said, STAGES), "loopml's cold run")
    ours["cold_wall_s"], ours["cold_cpu_s"] = m.wall_s, m.cpu_s
    if dvc_side is not None:
        m, ran, said = dvc_side.run()
        check(expect("dvc", "cold run", ran, said, STAGES), "dvc's cold run")
        dvc["cold_wall_s"], dvc["cold_cpu_s"] = m.wall_s, m.cpu_s

    say(f"no-op re-runs: {sizes.repeats} of each, interleaved")
    noop: dict[str, list[Measured]] = {"loopml": [], "dvc": [], "compiling": []}
    for _ in range(sizes.repeats):
        m, ran, said = ours_side.run()
        check(expect("loopml", "no-op", ran, said, ()), "loopml re-ran a cached step")
        noop["loopml"].append(m)
        if snapshot is not None:
            m, ran, said = ours_side.run(env=as_inherited)
            check(expect("loopml", "no-op", ran, said, ()), "loopml re-ran a cached step")
            noop["compiling"].append(m)
        if dvc_side is not None:
            m, ran, said = dvc_side.run()
            check(expect("dvc", "no-op", ran, said, ()), "dvc re-ran an unchanged stage")
            noop["dvc"].append(m)
    for figures, runs in ((ours, noop["loopml"]), (dvc, noop["dvc"])):
        if runs:
            figures["noop_wall_s"] = statistics.median(r.wall_s for r in runs)
            figures["noop_cpu_s"] = statistics.median(r.cpu_s for r in runs)
            figures["noop_wall_min_s"] = min(r.wall_s for r in runs)
    if noop["compiling"]:
        ours["noop_wall_compiling_s"] = statistics.median(r.wall_s for r in noop["compiling"])
        ours["noop_cpu_compiling_s"] = statistics.median(r.cpu_s for r in noop["compiling"])

    say("loopml.run_pipeline no-ops in a fresh process (and one under cProfile)")
    api = in_child(
        [
            *("--side", "api", "--tmp", str(ours_side.root)),
            *("--repeats", str(sizes.repeats), "--profile-top", str(profile_top)),
        ],
        env,
    )
    profile = {k: api.pop(k) for k in list(api) if k.startswith("profile")}
    ours.update(api)

    say(f"one param change (train.alpha), {sizes.param_repeats} new values, interleaved")
    changed: dict[str, list[Measured]] = {"loopml": [], "dvc": []}
    exact = {"loopml": True, "dvc": True}
    for i in range(sizes.param_repeats):
        alpha = 2.0 + i  # never seen before by either tool: no run cache can restore it
        m, ran, said = ours_side.run("-p", f"train.alpha={alpha}")
        exact["loopml"] &= expect("loopml", f"alpha={alpha}", ran, said, RERUN)
        changed["loopml"].append(m)
        if dvc_side is not None:
            dvc_side.set_alpha(alpha)
            m, ran, said = dvc_side.run()
            exact["dvc"] &= expect("dvc", f"alpha={alpha}", ran, said, RERUN)
            changed["dvc"].append(m)
    for tool, figures in (("loopml", ours), ("dvc", dvc)):
        if changed[tool]:
            figures["param_change_wall_s"] = statistics.median(r.wall_s for r in changed[tool])
            figures["param_change_cpu_s"] = statistics.median(r.cpu_s for r in changed[tool])
            figures["param_change_reran_exactly_train_evaluate_report"] = exact[tool]

    ratios = {
        "noop_wall_loopml_over_dvc": over(ours["noop_wall_s"], dvc.get("noop_wall_s")),
        "noop_cpu_loopml_over_dvc": over(ours["noop_cpu_s"], dvc.get("noop_cpu_s")),
        "param_change_wall_loopml_over_dvc": over(
            ours["param_change_wall_s"], dvc.get("param_change_wall_s")
        ),
        "param_change_cpu_loopml_over_dvc": over(
            ours["param_change_cpu_s"], dvc.get("param_change_cpu_s")
        ),
        "cold_wall_loopml_over_dvc": over(ours["cold_wall_s"], dvc.get("cold_wall_s")),
        "cold_plus_data_add_wall_loopml_over_dvc": over(
            ours["cold_wall_s"] + ours["data_add_wall_s"], dvc.get("cold_wall_s")
        ),
        "noop_wall_loopml_over_floor": over(ours["noop_wall_s"], base["floor_blake3_s"]),
        "noop_api_wall_loopml_over_floor": over(ours["api_noop_wall_s"], base["floor_blake3_s"]),
        "noop_wall_dvc_over_floor": over(dvc.get("noop_wall_s"), base["floor_md5_s"]),
    }
    facts["load_average_start"] = round(load_start, 2)
    facts["load_average_end"] = round(os.getloadavg()[0], 2)
    print_table(ours, dvc if have_dvc else None, base, ratios, facts)
    print_profile(profile)
    notes += describe(sizes, mode)
    for note in notes:
        print(f"note: {note}", flush=True)
    top = profile.get("profile_by_cumulative", [])[:10]
    return {
        "benchmark": "pipelines",
        "mode": mode,
        "versions": versions,
        "sizes": facts,
        "loopml": _rounded(ours),
        "dvc": _rounded(dvc) if have_dvc else None,
        "floor": _rounded(base),
        "ratios": ratios,
        "loopml_noop_profile_top": [[p["function"], p["cum_s"]] for p in top],
        "notes": notes,
    }


def print_table(
    ours: dict[str, Any],
    dvc: dict[str, Any] | None,
    base: dict[str, Any],
    ratios: dict[str, float | None],
    facts: dict[str, Any],
) -> None:
    theirs = dvc or {}
    n, k = facts["repeats"], facts["param_repeats"]
    size = f"{facts['input_bytes'] / MIB:.1f} MiB CSV, {facts['input_rows']:,} rows"
    print(flush=True)
    print(
        f"5-stage pipeline over a {size}; medians of {n} no-ops and {k} param changes",
        flush=True,
    )
    row("", "loopml", "dvc", "loopml/dvc")
    row(
        "no-op re-run (all cached), CLI: wall",
        fmt_s(ours["noop_wall_s"]),
        fmt_s(theirs.get("noop_wall_s")),
        fmt_ratio(ratios["noop_wall_loopml_over_dvc"]),
    )
    row(
        "  same, CPU (process + children)",
        fmt_s(ours["noop_cpu_s"]),
        fmt_s(theirs.get("noop_cpu_s")),
        fmt_ratio(ratios["noop_cpu_loopml_over_dvc"]),
    )
    row(
        "  fastest of the runs: wall",
        fmt_s(ours["noop_wall_min_s"]),
        fmt_s(theirs.get("noop_wall_min_s")),
    )
    if "noop_wall_compiling_s" in ours:
        row(
            "  loopml compiling its modules at start: wall",
            fmt_s(ours["noop_wall_compiling_s"]),
        )
        row("    same, CPU", fmt_s(ours["noop_cpu_compiling_s"]))
    row("  loopml.run_pipeline in-process: wall", fmt_s(ours["api_noop_wall_s"]))
    row("    same, CPU", fmt_s(ours["api_noop_cpu_s"]))
    row("    its first call in the process: wall", fmt_s(ours["api_first_noop_wall_s"]))
    row("    import loopml + open the workspace", fmt_s(ours["api_open_s"]))
    row("    import pipeline.py (pandas, numpy)", fmt_s(ours["api_load_pipeline_s"]))
    exact = {
        tool: figures.get("param_change_reran_exactly_train_evaluate_report")
        for tool, figures in (("loopml", ours), ("dvc", theirs))
    }
    row(
        "one param change (train.alpha): wall",
        fmt_s(ours["param_change_wall_s"]),
        fmt_s(theirs.get("param_change_wall_s")),
        fmt_ratio(ratios["param_change_wall_loopml_over_dvc"]),
    )
    row(
        "  same, CPU",
        fmt_s(ours["param_change_cpu_s"]),
        fmt_s(theirs.get("param_change_cpu_s")),
        fmt_ratio(ratios["param_change_cpu_loopml_over_dvc"]),
    )
    row(
        "  re-ran exactly train, evaluate, report",
        {True: "yes", False: "NO"}[bool(exact["loopml"])],
        "-" if exact["dvc"] is None else {True: "yes", False: "NO"}[exact["dvc"]],
    )
    row(
        "cold run (builds the cache): wall",
        fmt_s(ours["cold_wall_s"]),
        fmt_s(theirs.get("cold_wall_s")),
        fmt_ratio(ratios["cold_wall_loopml_over_dvc"]),
    )
    row(
        "  same, CPU",
        fmt_s(ours["cold_cpu_s"]),
        fmt_s(theirs.get("cold_cpu_s")),
        fmt_ratio(over(ours["cold_cpu_s"], theirs.get("cold_cpu_s"))),
    )
    row(
        "  loopml data add raw data.csv (before it): wall",
        fmt_s(ours["data_add_wall_s"]),
        "",
        fmt_ratio(ratios["cold_plus_data_add_wall_loopml_over_dvc"]),
    )
    print(flush=True)
    row("floor: python -c pass", fmt_s(base["python_pass_s"]))
    row("  hash the input once: BLAKE3 | MD5", fmt_s(base["blake3_s"]), fmt_s(base["md5_s"]))
    row(
        "  floor = interpreter + one hash",
        fmt_s(base["floor_blake3_s"]),
        fmt_s(base["floor_md5_s"]),
    )
    row(
        "no-op over its floor: CLI (loopml: BLAKE3)",
        fmt_ratio(ratios["noop_wall_loopml_over_floor"]),
        fmt_ratio(ratios["noop_wall_dvc_over_floor"]),
    )
    row("  loopml in-process", fmt_ratio(ratios["noop_api_wall_loopml_over_floor"]))
    print(
        f"load average {facts['load_average_start']:.2f} at the start, "
        f"{facts['load_average_end']:.2f} at the end",
        flush=True,
    )


def print_profile(profile: dict[str, Any]) -> None:
    if not profile:
        return
    print(flush=True)
    print(
        f"loopml.run_pipeline no-op under cProfile ({profile['profile_wall_s']:.3f} s with the "
        "profiler's overhead), by cumulative time:",
        flush=True,
    )
    for p in profile["profile_by_cumulative"]:
        print(f"  {p['cum_s']:8.4f} s {p['calls']:>7}  {p['function']}", flush=True)
    print("by self time:", flush=True)
    for p in profile["profile_by_self"]:
        print(f"  {p['self_s']:8.4f} s {p['calls']:>7}  {p['function']}", flush=True)


def describe(sizes: Sizes, mode: str) -> list[str]:
    notes = [
        "wall around each process; CPU = user + system of the process and the children it "
        "waited for (RUSAGE_CHILDREN deltas): DVC's figure includes its stage processes",
        "ratios are loopml / dvc (and / floor): above 1 means loopml is slower",
        "the two tools' runs are interleaved (loopml, dvc, loopml, ...) so the shared "
        "machine's load falls on both; trust the ratios more than the absolute seconds",
        "no-op: loopml resolves dataset 'raw' to its newest stored version and never looks "
        "at data.csv (a changed file needs `loopml data add`); dvc stats data.csv and the "
        "outputs and compares them with its state database (it hashes only what changed)",
        "param change: loopml steps read the features back from its artifact store; DVC's "
        "scripts re-import pandas in 3 processes and read features.parquet; loopml stores "
        "the model with skops, the DVC scripts with pickle",
        "cold: dvc's first repro hashes data.csv and parses it with pandas; loopml parsed it "
        "once in `data add` (shown apart) and its prepare step reads the stored version",
    ]
    if mode == "quick":
        notes.append(
            f"quick mode: {sizes.data_mb:g} MB input, {sizes.repeats} no-ops and "
            f"{sizes.param_repeats} param changes per tool: indicative only"
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
        "--quick", action="store_true", help="~5 MB input, 3 no-ops, 2 param changes: about 70 s"
    )
    parser.add_argument("--data-mb", type=float, help="size of the input CSV in MB (50; quick 5)")
    parser.add_argument("--repeats", type=int, help="no-op runs per tool (5; quick 3)")
    parser.add_argument("--param-repeats", type=int, help="param changes per tool (5; quick 2)")
    parser.add_argument(
        "--profile-top", type=int, default=15, help="profile lines to print (0: no profile)"
    )
    parser.add_argument("--out", type=Path, help="also write the JSON result to this file")
    parser.add_argument("--side", choices=("api",), help=argparse.SUPPRESS)
    parser.add_argument("--tmp", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.side:  # a child of `run`: measure in-process, print the figures as JSON
        print(json.dumps(api_side(args.tmp, args.repeats, args.profile_top)), flush=True)
        return
    sizes = QUICK if args.quick else FULL
    if args.data_mb is not None:
        sizes = dataclasses.replace(sizes, data_mb=args.data_mb)
    if args.repeats is not None:
        sizes = dataclasses.replace(sizes, repeats=max(1, args.repeats))
    if args.param_repeats is not None:
        sizes = dataclasses.replace(sizes, param_repeats=max(1, args.param_repeats))
    mode = "quick" if args.quick else "full"
    with tempfile.TemporaryDirectory(prefix="loopml-bench-pipelines-") as tmp:
        result = run(sizes, mode, Path(tmp), args.profile_top)
    line = json.dumps(result)
    if args.out:
        args.out.write_text(line + "\n", encoding="utf-8")
    print(line, flush=True)


if __name__ == "__main__":
    main()
