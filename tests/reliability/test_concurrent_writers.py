"""Several processes share one workspace at once: nothing is lost, locked out or duplicated.

Each scenario starts real Python processes (``python -c``), lets them import loopml and
open the workspace, then releases them together through a file barrier, so the work that
matters (metric flushes, schema creation, version numbering) really overlaps instead of
running one process after another. Every process and the whole test are bounded in time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from loopml.adapters.sql import migrate
from loopml.adapters.sql.database import SqlDatabase
from loopml.bootstrap import WORKSPACE_TEMPLATE, init_workspace
from loopml.client import Client

pytestmark = pytest.mark.slow

PROCESS_TIMEOUT_S = 45.0  # each child; the barrier waits are bounded by the same figure

# Shared by every child script: a file barrier, so all children start the contended work
# together once every one of them has paid for its imports.
PRELUDE = """
import json, sys, time
from pathlib import Path

def barrier(sync, name, index, timeout=45.0):
    Path(sync, f"{name}.ready-{index}").touch()
    go = Path(sync, f"{name}.go")
    deadline = time.monotonic() + timeout
    while not go.exists():
        if time.monotonic() > deadline:
            sys.exit(f"barrier {name!r} was never released")
        time.sleep(0.002)
"""


@dataclass
class Child:
    index: int
    process: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path
    returncode: int | None = None

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def describe(self) -> str:
        return (
            f"child {self.index} exited {self.returncode}\n--- stdout\n{self.stdout}"
            f"\n--- stderr\n{self.stderr}"
        )


class Group:
    """Child processes running one script, released together at named barriers."""

    def __init__(
        self, tmp: Path, script: str, count: int, args: list[str], env: dict[str, str] | None = None
    ) -> None:
        self.sync = tmp / "sync"
        self.sync.mkdir()
        logs = tmp / "logs"
        logs.mkdir()
        self.children: list[Child] = []
        full_env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            **(env or {}),
        }
        for index in range(count):
            out, err = logs / f"{index}.out", logs / f"{index}.err"
            with out.open("wb") as stdout, err.open("wb") as stderr:
                process = subprocess.Popen(
                    [sys.executable, "-c", PRELUDE + script, str(self.sync), str(index), *args],
                    stdout=stdout,
                    stderr=stderr,
                    cwd=tmp,
                    env=full_env,
                )
            self.children.append(Child(index, process, out, err))

    def release(self, name: str) -> None:
        """Wait until every child reached barrier ``name``, then let them all go at once."""
        deadline = time.monotonic() + PROCESS_TIMEOUT_S
        ready = [self.sync / f"{name}.ready-{c.index}" for c in self.children]
        while not all(path.exists() for path in ready):
            for child in self.children:
                if child.process.poll() is not None:
                    child.returncode = child.process.returncode
                    self.kill()
                    pytest.fail(f"a child died before barrier {name!r}: {child.describe()}")
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"children never all reached barrier {name!r}")
            time.sleep(0.005)
        (self.sync / f"{name}.go").touch()

    def wait(self) -> list[Child]:
        deadline = time.monotonic() + PROCESS_TIMEOUT_S
        for child in self.children:
            try:
                child.returncode = child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.kill()
                pytest.fail(
                    f"child {child.index} did not finish within {PROCESS_TIMEOUT_S}s:\n"
                    f"{child.describe()}"
                )
        return self.children

    def kill(self) -> None:
        for child in self.children:
            if child.process.poll() is None:
                child.process.kill()
                child.process.wait(timeout=10)


def _check_clean(children: list[Child]) -> None:
    for child in children:
        assert child.returncode == 0, child.describe()
        output = (child.stdout + child.stderr).lower()
        assert "database is locked" not in output, child.describe()
        assert "traceback" not in output, child.describe()


def _json_lines(child: Child) -> list[dict[str, object]]:
    return [json.loads(line) for line in child.stdout.splitlines() if line.startswith("{")]


# (a) many writers, one workspace ----------------------------------------------------------
WRITERS = 8
POINTS = 2_000

WRITER = """
import os
from loopml.client import Client

sync, index = sys.argv[1], int(sys.argv[2])
points = int(sys.argv[3])
client = Client()  # the workspace comes from LOOPML_WORKSPACE
run = client.start_run("concurrent", name=f"writer-{index}", tags={"writer": index})
barrier(sync, "log", index)
began = time.time()
for step in range(points):
    run.log_metric("loss", index * 100_000 + step)
    if step % 100 == 0:
        run.log_metric("lr", 1.0 / (step + 1), step=step)
    if step % 400 == 0:
        run.log_param(f"checkpoint_{step}", step)
        run.set_tag("phase", f"step-{step}")
run.flush()
run.end()
client.close()
print(json.dumps({"index": index, "run_id": run.id, "pid": os.getpid(), "began": began,
                  "ended": time.time()}))
"""


def test_eight_processes_log_metrics_to_one_workspace(tmp_path: Path) -> None:
    started = time.monotonic()
    root = tmp_path / "ws"
    init_workspace(root)
    # Small flush thresholds: many short write transactions from every process, from both
    # the logging thread (buffer full) and the background flusher (timer), all contending.
    env = {
        "LOOPML_WORKSPACE": str(root),
        "LOOPML_METRIC_FLUSH_POINTS": "97",
        "LOOPML_METRIC_FLUSH_SECONDS": "0.02",
        "LOOPML_CAPTURE_CODE": "false",
    }
    group = Group(tmp_path, WRITER, WRITERS, [str(POINTS)], env)
    group.release("log")
    children = group.wait()
    _check_clean(children)

    runs, began, ended = {}, [], []
    for child in children:
        (line,) = _json_lines(child)
        runs[int(str(line["index"]))] = str(line["run_id"])
        began.append(float(str(line["began"])))
        ended.append(float(str(line["ended"])))
    assert sorted(runs) == list(range(WRITERS))
    # LOOPML_WORKSPACE was honoured: no workspace was made in the children's folder.
    assert not (tmp_path / "loopml.toml").exists()
    assert not (tmp_path / ".loopml").exists()
    # The writers really overlapped: at one instant all eight were logging.
    assert max(began) < min(ended), (began, ended)

    with Client(root, capture_code=False) as client:
        for index, run_id in runs.items():
            history = client.get_metric_history(run_id, "loss")
            assert len(history) == POINTS, f"writer {index} has {len(history)} points"
            assert [m.step for m in history] == list(range(POINTS))
            assert [m.value for m in history] == [float(index * 100_000 + s) for s in range(POINTS)]
            assert len(client.get_metric_history(run_id, "lr")) == POINTS // 100

            run = client.get_run(run_id)
            assert run.status.value == "finished"
            assert run.metrics["loss"] == index * 100_000 + POINTS - 1
            assert run.metrics["lr"] == pytest.approx(1.0 / (POINTS - 100 + 1))
            assert run.params == {f"checkpoint_{s}": str(s) for s in range(0, POINTS, 400)}
            assert run.tags["phase"] == f"step-{max(range(0, POINTS, 400))}"
            assert run.tags["writer"] == str(index)
        all_runs = client.search_runs(experiments=["concurrent"])
        assert sorted(r.id for r in all_runs) == sorted(runs.values())
    assert time.monotonic() - started < 60


# (b) many processes create one brand-new workspace -----------------------------------------
OPENERS = 4
# Each round is a new workspace: made with init_workspace then opened with Client, or made
# by Client alone (the SDK creates a missing workspace on first use).
ROUND_MODES = ["init", "client", "init", "client"]

OPENER = """
import loopml.adapters.sql.migrate as migrate
from loopml.bootstrap import init_workspace
from loopml.client import Client

sync, index = sys.argv[1], int(sys.argv[2])
workspaces = sys.argv[3:]
# Count schema creations: each one prints a line the test adds up across processes.
_upgrade = migrate._alembic_upgrade
def counting_upgrade(db):
    print(json.dumps({"migrated": db.url}), flush=True)
    _upgrade(db)
migrate._alembic_upgrade = counting_upgrade

for number, spec in enumerate(workspaces):
    mode, ws = spec.split(":", 1)
    barrier(sync, f"init-{number}", index)
    if mode == "init":
        init_workspace(Path(ws))
    with Client(ws, capture_code=False) as client:
        run = client.start_run("openers", name=f"opener-{index}")
        run.log_metric("ok", 1.0)
        run.end()
    print(json.dumps({"workspace": ws, "run_id": run.id}), flush=True)
"""


def test_processes_create_the_same_new_workspace_at_once(tmp_path: Path) -> None:
    started = time.monotonic()
    workspaces = [tmp_path / f"fresh-{n}" for n in range(len(ROUND_MODES))]
    specs = [f"{mode}:{ws}" for mode, ws in zip(ROUND_MODES, workspaces, strict=True)]
    group = Group(tmp_path, OPENER, OPENERS, specs)
    for number in range(len(ROUND_MODES)):
        group.release(f"init-{number}")
    children = group.wait()
    _check_clean(children)

    lines = [line for child in children for line in _json_lines(child)]
    for ws in workspaces:
        database = f"{ws.name}/.loopml/loopml.db"
        migrations = [x for x in lines if str(x.get("migrated", "")).endswith(database)]
        assert len(migrations) == 1, f"{ws}: schema created {len(migrations)} times"
        run_ids = {x["run_id"] for x in lines if x.get("workspace") == str(ws)}
        assert len(run_ids) == OPENERS

        assert (ws / "loopml.toml").read_text(encoding="utf-8") == WORKSPACE_TEMPLATE
        assert (ws / ".loopml" / ".gitignore").is_file()
        leftovers = [
            p.name
            for p in (*ws.iterdir(), *(ws / ".loopml").iterdir())
            if p.name.startswith((".loopml.toml.", "..gitignore."))
        ]
        assert leftovers == [], f"temporary files left behind in {ws}: {leftovers}"

        db = SqlDatabase(f"sqlite:///{ws / '.loopml' / 'loopml.db'}")
        try:
            assert migrate.current_revision(db) == migrate.HEAD_REVISION
            with db.read() as conn:
                versions = conn.exec_driver_sql("SELECT version_num FROM alembic_version").all()
            assert [v[0] for v in versions] == [migrate.HEAD_REVISION]
        finally:
            db.dispose()
        with Client(ws, capture_code=False) as client:
            found = client.search_runs(experiments=["openers"])
            assert {r.id for r in found} == run_ids
            assert client.verify_audit().ok
    assert time.monotonic() - started < 60


# (c) concurrent registrations into one model ------------------------------------------------
REGISTRARS = 4
VERSIONS_EACH = 5

REGISTRAR = """
import numpy as np
from sklearn.linear_model import LinearRegression
from loopml.client import Client

sync, index = sys.argv[1], int(sys.argv[2])
versions_each = int(sys.argv[3])
rng = np.random.default_rng(index)
x = rng.normal(size=(20, 3))
models = [LinearRegression().fit(x, x @ rng.normal(size=3)) for _ in range(versions_each)]
client = Client(capture_code=False)  # the workspace comes from LOOPML_WORKSPACE
barrier(sync, "register", index)
for n, model in enumerate(models):
    mv = client.register_model(model, "shared-model", description=f"process {index} #{n}")
    if n % 2 == 0:
        client.promote("shared-model", mv.version, "staging", reason=f"by {index}")
    print(json.dumps({"version": mv.version, "digest": str(mv.artifact.digest),
                      "description": mv.description}), flush=True)
client.close()
"""


def test_concurrent_registrations_number_versions_without_gaps(tmp_path: Path) -> None:
    started = time.monotonic()
    root = tmp_path / "ws"
    init_workspace(root)
    group = Group(
        tmp_path, REGISTRAR, REGISTRARS, [str(VERSIONS_EACH)], {"LOOPML_WORKSPACE": str(root)}
    )
    group.release("register")
    children = group.wait()
    _check_clean(children)

    reported = [line for child in children for line in _json_lines(child)]
    total = REGISTRARS * VERSIONS_EACH
    numbers = sorted(int(str(x["version"])) for x in reported)
    assert numbers == list(range(1, total + 1)), numbers

    with Client(root, capture_code=False) as client:
        versions = client.list_versions("shared-model", page_size=100).items
        assert sorted(v.version for v in versions) == list(range(1, total + 1))
        assert client.get_model("shared-model").latest_version == total
        by_number = {v.version: v for v in versions}
        for x in reported:
            mv = by_number[int(str(x["version"]))]
            assert str(mv.artifact.digest) == x["digest"]
            assert mv.description == x["description"]
        staged = client.list_versions("shared-model", stage="staging", page_size=100).items
        assert len(staged) == REGISTRARS * len(range(0, VERSIONS_EACH, 2))

        report = client.verify_audit()
        assert report.ok, report.problem
        events = client.audit_events("models:/shared-model", page_size=1000).items
        actions = [e.action for e in events]
        assert actions.count("model.create") == 1
        assert actions.count("model_version.create") == total
        assert actions.count("model_version.stage") == len(staged)
        assert client.load_model(f"models:/shared-model/{total}") is not None
    assert time.monotonic() - started < 60
