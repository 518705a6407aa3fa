"""A writer killed with SIGKILL at a random moment never leaves the workspace inconsistent.

A victim process loops forever logging artifacts (bytes up to 2 MB, and files) and
registering and promoting models; the test kills it with SIGKILL at a random moment, then
checks the workspace as a user would find it: it opens, the audit chain verifies, every
model version's bytes exist and load, every run artifact exists and verifies, version
numbers have no gaps, stages agree with their audit events, and the object store holds
only valid objects (plus, at most, one abandoned temporary file per kill, which is never
visible as an object). One workspace is reused for all iterations, so damage would
accumulate.

Importing scikit-learn costs seconds, too much to pay twenty times. So the script started
here is a small fork server: it imports everything once, then forks one victim per
iteration; the test kills the victim by its pid and the server reports how it died.

Set ``LOOPML_CRASH_SEED`` to replay a failing run: the seed is printed and is in every
failure message.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import blake3
import numpy as np
import pytest

from loopml.adapters.artifacts.fsspec_store import TEMP_PREFIX
from loopml.adapters.sql import migrate
from loopml.adapters.sql.database import SqlDatabase
from loopml.adapters.sql.schema import metadata
from loopml.bootstrap import init_workspace
from loopml.client import Client
from loopml.domain.errors import NotFound
from loopml.domain.lifecycle import Stage

pytestmark = pytest.mark.slow

ITERATIONS = 20
KILL_AFTER_S = (0.2, 1.5)  # after the victim's first progress line
EVENT_TIMEOUT_S = 30.0
TIME_BUDGET_S = 90.0
MODEL = "crashy"
EXPERIMENT = "crash"

FORK_SERVER = r"""
import json, os, random, sys, traceback
from pathlib import Path

import numpy as np
import skops.io  # noqa: F401 - imported once here, not in every victim
from sklearn.linear_model import LinearRegression

from loopml.client import Client

workspace, scratch_root = sys.argv[1], Path(sys.argv[2])


def say(**event):
    # One write(2) per line: a victim killed mid-print must not leave half a line that the
    # fork server's next report would be glued to (print writes text and newline apart).
    os.write(1, (json.dumps(event) + "\n").encode())


def victim(iteration, seed):
    rng = random.Random(seed)
    nprng = np.random.default_rng(seed)
    scratch = scratch_root / str(iteration)
    scratch.mkdir(parents=True)
    client = Client(workspace, capture_code=False)
    run = client.start_run("crash", name=f"victim-{iteration}")
    say(event="started", run_id=run.id)
    x = nprng.normal(size=(32, 4))
    n = step = 0
    while True:
        for _ in range(rng.randint(1, 300)):  # flushed in the background every 20 ms
            run.log_metric("loss", float(step))
            step += 1
        run.log_artifact(rng.randbytes(rng.randint(0, 2_000_000)), name=f"bytes/{n}.bin")
        source = scratch / f"{n}.bin"
        source.write_bytes(rng.randbytes(rng.randint(0, 1_000_000)))
        run.log_artifact(source, name=f"files/{n}.bin")
        model = LinearRegression().fit(x, x @ nprng.normal(size=4))
        mv = client.register_model(model, "crashy", run_id=run.id)
        if rng.random() < 0.5:
            client.promote("crashy", mv.version, "staging", reason=f"victim {iteration}")
        say(event="progress", n=n, version=mv.version)
        n += 1


say(event="ready")
for line in sys.stdin:
    iteration, seed = (int(part) for part in line.split())
    pid = os.fork()
    if pid == 0:
        try:
            victim(iteration, seed)
        except BaseException:
            traceback.print_exc()
            sys.stderr.flush()
            os._exit(1)
        os._exit(0)
    say(event="forked", pid=pid)
    _, status = os.waitpid(pid, 0)
    say(event="exited", pid=pid,
        signal=os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
        code=os.WEXITSTATUS(status) if os.WIFEXITED(status) else None)
"""


class ForkServer:
    """The fork server process and a line reader over its stdout."""

    def __init__(self, tmp: Path, workspace: Path) -> None:
        self.stderr_path = tmp / "fork-server.err"
        env = {
            **os.environ,
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "LOOPML_METRIC_FLUSH_SECONDS": "0.02",
            # registration's temporary folders of killed victims stay in tmp_path
            "TMPDIR": str(tmp / "tmp"),
        }
        (tmp / "tmp").mkdir()
        with self.stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-c", FORK_SERVER, str(workspace), str(tmp / "scratch")],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                cwd=tmp,
                env=env,
            )
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        assert self.process.stdout is not None
        self.reader = threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True)
        self.reader.start()
        self.victim: int | None = None

    def _read(self, stream: IO[bytes]) -> None:
        for line in stream:
            try:
                self.events.put(json.loads(line))
            except ValueError:
                self.events.put({"event": "garbled", "line": line.decode(errors="replace")})
        self.events.put(None)

    def next_event(self, *wanted: str) -> dict[str, Any]:
        """The next event named in ``wanted``, skipping others (e.g. late progress)."""
        deadline = time.monotonic() + EVENT_TIMEOUT_S
        while True:
            try:
                event = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(
                    f"no {wanted} event within {EVENT_TIMEOUT_S}s; "
                    f"fork server stderr:\n{self.stderr()}"
                ) from None
            if event is None:
                raise AssertionError(f"the fork server ended; stderr:\n{self.stderr()}")
            if event["event"] == "garbled":
                raise AssertionError(f"unreadable line from the fork server: {event['line']!r}")
            if event["event"] in wanted:
                return event

    def start_victim(self, iteration: int, seed: int) -> int:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{iteration} {seed}\n".encode())
        self.process.stdin.flush()
        self.victim = int(self.next_event("forked")["pid"])
        return self.victim

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def close(self) -> None:
        if self.victim is not None:
            with contextlib.suppress(ProcessLookupError):  # it may have died already
                os.kill(self.victim, signal.SIGKILL)
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.reader.join(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


def _seed() -> int:
    text = os.environ.get("LOOPML_CRASH_SEED")
    return int(text) if text else random.SystemRandom().randrange(2**32)


def _walk_store(root: Path, where: str) -> tuple[dict[str, int], list[Path]]:
    """Hash every object under ``root/blake3``: {hexdigest: size}, plus temporary files."""
    objects: dict[str, int] = {}
    temporary: list[Path] = []
    base = root / "blake3"
    if not base.exists():
        return objects, temporary
    for path in base.rglob("*"):
        if path.is_dir():
            assert path.parent == base and re.fullmatch(r"[0-9a-f]{2}", path.name), (
                f"{where}: unexpected folder in the object store: {path}"
            )
            continue
        if path.name.startswith(TEMP_PREFIX):
            temporary.append(path)
            continue
        assert path.parent.parent == base, f"{where}: object outside a fan-out folder: {path}"
        assert re.fullmatch(r"[0-9a-f]{62}", path.name), f"{where}: not an object name: {path}"
        data = path.read_bytes()
        hexdigest = path.parent.name + path.name
        assert blake3.blake3(data).hexdigest() == hexdigest, (
            f"{where}: object does not match its hash: {path}"
        )
        objects[hexdigest] = len(data)
    return objects, temporary


def _all_versions(client: Client) -> list[Any]:
    try:
        client.get_model(MODEL)
    except NotFound:
        return []
    versions, token = [], None
    while True:
        page = client.list_versions(MODEL, page_size=500, page_token=token)
        versions += page.items
        token = page.next_page_token
        if token is None:
            return versions


def _all_runs(client: Client) -> list[Any]:
    runs, token = [], None
    while True:
        page = client.search_runs(experiments=[EXPERIMENT], max_results=500, page_token=token)
        runs += list(page)
        token = page.next_page_token
        if token is None:
            return runs


def _all_events(client: Client) -> list[Any]:
    events, token = [], None
    while True:
        page = client.audit_events(page_size=1000, page_token=token)
        events += page.items
        token = page.next_page_token
        if token is None:
            return sorted(events, key=lambda e: e.seq)


def _check_workspace(
    root: Path, loaded: set[int], kills: int, victim_run: str | None, where: str
) -> tuple[int, int, int]:
    """Everything a user relies on after a crash; returns the versions, artifacts and
    metric points seen."""
    sample = np.ones((1, 4))
    with Client(root, capture_code=False) as client:
        report = client.verify_audit()
        assert report.ok, f"{where}: audit chain broken at {report.first_bad_seq}: {report.problem}"

        objects, temporary = _walk_store(root / ".loopml" / "artifacts", where)
        # A victim writes one object at a time, so each kill abandons at most one file.
        assert len(temporary) <= kills, (
            f"{where}: {len(temporary)} temporary files after {kills} kills: {temporary}"
        )

        versions = _all_versions(client)
        numbers = sorted(v.version for v in versions)
        latest = client.get_model(MODEL).latest_version if versions else 0
        assert numbers == list(range(1, latest + 1)), f"{where}: version numbers {numbers}"
        for mv in versions:
            digest = mv.artifact.digest
            assert objects.get(digest.hexdigest) == mv.artifact.size, (
                f"{where}: {mv.uri} points at {digest}, which is missing or the wrong size"
            )
            if mv.version not in loaded:
                model = client.load_model(mv.uri)
                assert model.predict(sample).shape == (1,)
                loaded.add(mv.version)

        # Stages and their audit events were written in one transaction each.
        stages: dict[str, str] = {}
        for event in _all_events(client):
            if event.action in ("model_version.create", "model_version.stage"):
                stages[event.object_id] = str(event.after["stage"])
        assert stages == {mv.uri: mv.stage.value for mv in versions}, where
        assert all(mv.stage in (Stage.CANDIDATE, Stage.STAGING) for mv in versions)

        artifacts = points = 0
        for run in _all_runs(client):
            # Each flush is one transaction, in order: what survived is a prefix of the
            # points, and the latest value agrees with the history.
            history = client.get_metric_history(run.id, "loss")
            assert [m.step for m in history] == list(range(len(history))), where
            assert all(m.value == m.step for m in history), where
            points += len(history)
            if history:
                assert run.metrics["loss"] == history[-1].value, where
            else:
                assert "loss" not in run.metrics, where
            for ref in run.artifacts:
                assert objects.get(ref.digest.hexdigest) == ref.size, (
                    f"{where}: run {run.id} artifact {ref.name} ({ref.digest}) is missing"
                )
                artifacts += 1
                if run.id == victim_run:  # the read path verifies too
                    assert len(client.app.blobs.get_bytes(ref.digest)) == ref.size
        return len(versions), artifacts, points


def test_sigkill_during_writes_leaves_a_consistent_workspace(tmp_path: Path) -> None:
    started = time.monotonic()
    seed = _seed()
    print(f"crash-safety seed: {seed} (replay with LOOPML_CRASH_SEED={seed})")
    rng = random.Random(seed)
    root = tmp_path / "ws"
    init_workspace(root)
    server = ForkServer(tmp_path, root)
    loaded: set[int] = set()
    victim_run = ""
    try:
        server.next_event("ready")
        for iteration in range(ITERATIONS):
            where = f"seed {seed}, iteration {iteration}"
            pid = server.start_victim(iteration, rng.randrange(2**32))
            for wanted in ("started", "progress"):
                event = server.next_event(wanted, "exited")
                assert event["event"] == wanted, (
                    f"{where}: victim died before the kill:\n{server.stderr()}"
                )
                victim_run = str(event.get("run_id", victim_run))
            time.sleep(rng.uniform(*KILL_AFTER_S))
            os.kill(pid, signal.SIGKILL)
            exited = server.next_event("exited")
            server.victim = None
            assert exited["signal"] == signal.SIGKILL, (
                f"{where}: victim exited {exited} before the kill:\n{server.stderr()}"
            )

            versions, artifacts, points = _check_workspace(
                root, loaded, iteration + 1, victim_run, where
            )
        assert versions >= ITERATIONS, "every victim registered at least one version"
        assert artifacts >= 2 * ITERATIONS
        assert points > 0, "no metric point survived any kill: the check above proved nothing"
        assert "Traceback" not in server.stderr(), server.stderr()

        # The workspace is still fully usable after all those crashes.
        with Client(root, capture_code=False) as client:
            with client.start_run(EXPERIMENT, name="survivor") as run:
                ref = run.log_artifact(b"still here", name="notes.txt")
                mv = client.register_model(
                    client.load_model(f"models:/{MODEL}/1"), MODEL, run_id=run.id
                )
            assert mv.version == versions + 1
            assert client.app.blobs.get_bytes(ref.digest) == b"still here"
            assert client.verify_audit().ok
    finally:
        server.close()
    elapsed = time.monotonic() - started
    print(
        f"{ITERATIONS} kills, {versions} versions, {artifacts} artifacts, {points} metric "
        f"points in {elapsed:.1f}s"
    )
    assert elapsed < TIME_BUDGET_S, f"took {elapsed:.1f}s (seed {seed})"


# Kill `loopml init` in the middle of creating the schema: after the first table, and after
# the last table but before the revision is stamped. What is left must be a workspace that
# the next init (or the SDK) finishes, never a half schema that fails "table exists".
INIT_VICTIM = r"""
import os, signal, sys
from pathlib import Path

from alembic.ddl.impl import DefaultImpl

from loopml.bootstrap import init_workspace

create_table = DefaultImpl.create_table
created = []


def create_then_die(self, table, **kw):
    create_table(self, table, **kw)
    created.append(table.name)
    if len(created) == int(sys.argv[2]):
        os.kill(os.getpid(), signal.SIGKILL)


DefaultImpl.create_table = create_then_die
init_workspace(Path(sys.argv[1]))
"""


@pytest.mark.parametrize("tables_before_kill", [1, len(metadata.tables)])
def test_sigkill_during_schema_creation_leaves_a_workspace_init_can_finish(
    tmp_path: Path, tables_before_kill: int
) -> None:
    root = tmp_path / "ws"
    victim = subprocess.run(
        [sys.executable, "-c", INIT_VICTIM, str(root), str(tables_before_kill)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert victim.returncode == -signal.SIGKILL, victim.stderr

    db = SqlDatabase(f"sqlite:///{root / '.loopml' / 'loopml.db'}")
    try:
        assert migrate.current_revision(db) is None
        with db.read() as conn:
            leftovers = (
                conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'")
                .scalars()
                .all()
            )
        assert leftovers == [], f"a killed init left a half schema: {leftovers}"
    finally:
        db.dispose()

    init_workspace(root)
    with Client(root, capture_code=False) as client:
        with client.start_run(EXPERIMENT) as run:
            run.log_metric("loss", 0.5)
        assert client.get_run(run.id).metrics == {"loss": 0.5}
        assert client.verify_audit().ok
