"""Serving benchmark: ``loopml serve`` beside the model's own predict, a bare Starlette
endpoint, a minimal FastAPI endpoint and ``mlflow models serve``, in one run.

Run ``python benchmarks/serving.py`` (full: 10 s per load phase, 3 starts per server, about
5 minutes on 2 cores) or ``--quick`` (3 s phases, one start each, about 2 minutes). Every
contender serves the same model: scikit-learn's ``LogisticRegression`` fitted on iris (4
float features, fixed seed), trained here. Each server is its own process on 127.0.0.1
with one worker, started and measured one after the other:

* **floor**: ``model.predict`` on a one-row DataFrame (and on a numpy row) in a fresh
  process, time per call: what no server can beat;
* **starlette**: a bare Starlette endpoint (JSON in, DataFrame, predict, JSON out) on uvicorn;
* **starlette_numpy**: the same endpoint building a numpy row instead of the DataFrame (the
  model's coefficients, without its column names): what a DataFrame costs per request;
* **fastapi**: a minimal FastAPI endpoint (a pydantic body model, the same predict);
* **mlflow**: ``mlflow models serve --env-manager local -w 1`` of the model logged with
  ``mlflow.sklearn.log_model`` (with a signature) into a SQLite tracking store;
* **loopml**: the model registered with loopml's SDK (signature inferred) in a fresh
  workspace, ``loopml deploy create iris models:/iris/1``, ``loopml serve --port P``.

Start time runs from the process start until a first prediction answers 200. The load
comes from ``wrk`` (Debian's package: a C client, so its own cost does not hide the
server's) with a Lua script that POSTs one single-row JSON body: 1 connection (p50, p99,
throughput), then 16 connections (throughput, p99, errors). wrk corrects its percentiles
for coordinated omission; the script also reports them with the correction undone (the
requests as sent), from wrk's own histogram. The server's CPU time (user +
system of the process and every descendant, from ``/proc/PID/stat``) is read before and
after each phase and divided by the requests completed. A table goes to stdout, progress
to stderr, and the last stdout line is one JSON object (also written to ``--out FILE``).
What each figure means is in ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import json
import os
import pickle
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench_support import SNAPSHOT_NOTE, bytecode_snapshot, with_snapshot

if TYPE_CHECKING:
    from starlette.requests import Request

FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
SEED = 0
DEPLOYMENT = "iris"
HOST = "127.0.0.1"
CONNECTIONS = 16
START_TIMEOUT_S = 90.0  # MLflow takes 4 to 13 s here; a server that needs more is broken
STOP_TIMEOUT_S = 10.0
IDLE_S = 1.0  # the server's CPU while no request comes, measured over this long
CLK_TCK = os.sysconf("SC_CLK_TCK")
QUIET_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}
CONTENDERS = ("starlette", "starlette_numpy", "fastapi", "mlflow", "loopml")


@dataclass(frozen=True)
class Sizes:
    phase_s: int  # seconds of each wrk phase (1 connection, then 16)
    warmup_s: int  # one untimed wrk run at 1 connection before the phases
    starts: int  # server starts per contender (start time: their median; the last is loaded)
    floor_calls: int  # predict calls per timed repeat of the floor
    floor_repeats: int


FULL = Sizes(phase_s=10, warmup_s=2, starts=3, floor_calls=1000, floor_repeats=5)
QUICK = Sizes(phase_s=3, warmup_s=1, starts=1, floor_calls=200, floor_repeats=5)


# reporting ---------------------------------------------------------------------------------
STARTED = float(os.environ.get("LOOPML_BENCH_STARTED", time.time()))


def say(message: str) -> None:
    """Progress: stderr, so stdout stays the table plus the JSON line."""
    print(f"  [{time.time() - STARTED:6.1f} s] {message}", file=sys.stderr, flush=True)


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


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b <= 0:
        return None
    return round(a / b, 3)


# the model ---------------------------------------------------------------------------------
def train(tmp: Path) -> tuple[Any, Any, Path]:
    """The iris classifier (fitted on a DataFrame with named columns), its training
    frame, and the pickle every non-loopml contender loads."""
    import pandas as pd
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    iris = load_iris()
    frame = pd.DataFrame(iris.data, columns=list(FEATURES))
    model = LogisticRegression(max_iter=1000, random_state=SEED).fit(frame, iris.target)
    path = tmp / "model.pkl"
    path.write_bytes(pickle.dumps(model))
    return model, frame, path


def load_model(path: Path) -> Any:
    return pickle.loads(path.read_bytes())  # the pickle this script just wrote


def without_names(model: Any) -> Any:
    """A copy of ``model`` that takes bare numpy rows: scikit-learn warns on every call
    that passes an array to a model fitted on a DataFrame, unless it forgets the names.
    The coefficients are the model's own; the columns go in the training order."""
    import copy

    plain = copy.deepcopy(model)
    check(list(plain.feature_names_in_) == list(FEATURES), "the model's columns differ")
    del plain.feature_names_in_
    return plain


def request_row(frame: Any) -> dict[str, float]:
    """The single row every load request sends (the first iris flower)."""
    return {name: float(frame[name].iloc[0]) for name in FEATURES}


def check_rows(frame: Any) -> list[dict[str, float]]:
    """One flower of each class: every server must answer these as the model does."""
    return [{name: float(frame[name].iloc[i]) for name in FEATURES} for i in (0, 60, 120)]


# the floor: predict in-process ----------------------------------------------------------------
def floor_side(model_path: Path, calls: int, repeats: int) -> dict[str, Any]:
    """Per-call time of the model's own predict, in this fresh process: the median over
    ``repeats`` of ``calls`` calls each, after a warm-up."""
    import warnings

    import numpy as np
    import pandas as pd
    from sklearn.datasets import load_iris

    model = load_model(model_path)
    iris = load_iris()
    plain = without_names(model)  # the same coefficients, for a bare numpy row
    row = {name: float(iris.data[0][i]) for i, name in enumerate(FEATURES)}
    frame = pd.DataFrame([row], columns=list(FEATURES))
    array = np.array([[row[name] for name in FEATURES]])
    body = json.dumps({"rows": [row]}).encode()

    def timed(call: Callable[[], object]) -> tuple[float, float]:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a warning per call would be timed: refuse it
            for _ in range(max(50, calls // 10)):
                call()
            wall, cpu = [], []
            for _ in range(repeats):
                start_cpu, start = time.process_time(), time.perf_counter()
                for _ in range(calls):
                    call()
                wall.append((time.perf_counter() - start) / calls)
                cpu.append((time.process_time() - start_cpu) / calls)
        return statistics.median(wall) * 1000, statistics.median(cpu) * 1000

    figures: dict[str, Any] = {}
    cases: dict[str, Callable[[], object]] = {
        "predict_frame": lambda: model.predict(frame),
        "predict_numpy": lambda: plain.predict(array),
        "predict_proba_frame": lambda: model.predict_proba(frame),
        "predict_proba_numpy": lambda: plain.predict_proba(array),
        "frame_from_row": lambda: pd.DataFrame([row], columns=list(FEATURES)),
        "frame_from_columns": lambda: pd.DataFrame(
            {name: [row[name]] for name in FEATURES}, columns=list(FEATURES)
        ),
        "json_parse_and_dump": lambda: json.dumps(json.loads(body)).encode(),
    }
    for name, call in cases.items():
        figures[f"{name}_ms"], figures[f"{name}_cpu_ms"] = timed(call)
    check(int(model.predict(frame)[0]) == int(plain.predict(array)[0]), "the copy disagrees")
    return figures


# the comparison servers (children of this script) -----------------------------------------------
def starlette_app(model: Any, numpy_rows: bool = False) -> Any:
    """A bare Starlette endpoint: JSON in, a DataFrame, predict, JSON out; with
    ``numpy_rows``, a numpy array in the training column order instead of the DataFrame."""
    import numpy as np
    import pandas as pd
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    columns = list(FEATURES)

    async def predict(request: Request) -> JSONResponse:
        body = await request.json()
        frame = pd.DataFrame(body["rows"], columns=columns)
        return JSONResponse({"predictions": model.predict(frame).tolist()})

    async def predict_numpy(request: Request) -> JSONResponse:
        body = await request.json()
        array = np.array([[row[c] for c in columns] for row in body["rows"]], dtype=np.float64)
        return JSONResponse({"predictions": plain.predict(array).tolist()})

    plain = without_names(model) if numpy_rows else None

    async def ready(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ready"})

    return Starlette(
        routes=[
            Route("/predict", predict_numpy if numpy_rows else predict, methods=["POST"]),
            Route("/health/ready", ready),
        ]
    )


def fastapi_app(model: Any) -> Any:
    """A minimal FastAPI endpoint: a pydantic body model, the same DataFrame and predict.

    No return annotation, as in FastAPI's tutorials: the dict goes out through its JSON
    encoder, not a response model."""
    import pandas as pd
    from fastapi import FastAPI
    from pydantic import BaseModel, create_model

    row_model: Any = create_model("Row", **dict.fromkeys(FEATURES, (float, ...)))
    rows_model: Any = create_model("Rows", __base__=BaseModel, rows=(list[row_model], ...))
    app = FastAPI()
    columns = list(FEATURES)

    async def predict(body):  # type: ignore[no-untyped-def]
        frame = pd.DataFrame([r.model_dump() for r in body.rows], columns=columns)
        return {"predictions": model.predict(frame).tolist()}

    async def ready():  # type: ignore[no-untyped-def]
        return {"status": "ready"}

    # real classes, not the strings `from __future__ import annotations` would leave here
    predict.__annotations__ = {"body": rows_model}
    app.post("/predict")(predict)
    app.get("/health/ready")(ready)
    return app


def serve_side(kind: str, model_path: Path, port: int) -> None:
    """Run one comparison server until killed: uvicorn, one worker, the same settings as
    ``loopml serve`` (uvloop and httptools when installed, warnings only, no access log)."""
    import uvicorn

    model = load_model(model_path)
    if kind == "fastapi":
        app = fastapi_app(model)
    else:
        app = starlette_app(model, numpy_rows=kind == "starlette_numpy")
    uvicorn.run(app, host=HOST, port=port, log_level="warning", access_log=False)


# the MLflow model (a child, so that the parent never imports mlflow) ---------------------------
def mlflow_log_side(model_path: Path, folder: Path) -> dict[str, Any]:
    import logging
    import warnings

    warnings.simplefilter("ignore")
    import mlflow

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.datasets import load_iris

    model = load_model(model_path)
    frame = pd.DataFrame(load_iris().data, columns=list(FEATURES))
    mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = mlflow.create_experiment("bench", artifact_location=str(folder / "artifacts"))
    with mlflow.start_run(experiment_id=experiment):
        signature = infer_signature(frame, model.predict(frame))
        logged = mlflow.sklearn.log_model(model, name="model", signature=signature)
    return {"model_uri": logged.model_uri, "mlflow": mlflow.__version__}


# the loopml workspace ------------------------------------------------------------------------
def loopml_workspace(model: Any, frame: Any, root: Path, cli: str, env: dict[str, str]) -> None:
    """Register the model (signature inferred from the training frame) through the SDK,
    then ``loopml deploy create iris models:/iris/1`` through the CLI."""
    import loopml

    client = loopml.Client(root)
    try:
        mv = client.register_model(model, DEPLOYMENT, sample=frame)
        check(mv.version == 1 and mv.signature is not None, f"registered {mv}")
    finally:
        client.close()
    done = subprocess.run(
        [cli, "--workspace", str(root), "deploy", "create", DEPLOYMENT, f"models:/{DEPLOYMENT}/1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    check(done.returncode == 0, f"loopml deploy create failed:\n{done.stderr}{done.stdout}")


# a server process: start, readiness, CPU, stop ----------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return text.rsplit(")", 1)[1].split()  # after "pid (comm)": field 3 onwards


def tree_cpu_s(root: int) -> float:
    """User + system CPU seconds of ``root`` and every live descendant (each process's
    threads included), plus what their reaped children used (cutime, cstime)."""
    parents: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None:
                parents[int(entry.name)] = int(fields[1])
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in tree:
                tree.add(pid)
                frontier.append(pid)
    ticks = 0
    for pid in tree:
        fields = _stat_fields(pid)
        if fields is not None:  # utime, stime, cutime, cstime are fields 14 to 17
            ticks += sum(int(v) for v in fields[11:15])
    return ticks / CLK_TCK


def post(port: int, path: str, body: bytes, timeout: float = 5.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers={"content-type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@dataclass
class Contender:
    name: str
    path: str  # where predictions are POSTed
    body: Callable[[list[dict[str, float]]], dict[str, Any]]  # rows -> request JSON
    command: Callable[[int], list[str]]  # port -> argv
    env: dict[str, str]
    cwd: Path
    logs: Path
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    starts: list[float] = field(default_factory=list)

    def start(self) -> float:
        """Start the server; seconds until a first prediction answered 200."""
        check(self.proc is None, f"{self.name} is already running")
        self.port = free_port()
        self.logs.mkdir(parents=True, exist_ok=True)
        log = (self.logs / f"{self.name}-{len(self.starts)}.log").open("wb")
        body = json.dumps(self.body([dict.fromkeys(FEATURES, 1.0)])).encode()
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            self.command(self.port),
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() ends the whole tree
        )
        log.close()
        while True:
            elapsed = time.perf_counter() - started
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited {self.proc.returncode}:\n{self.log_tail()}")
            if elapsed > START_TIMEOUT_S:
                raise SystemExit(f"{self.name} did not answer in {START_TIMEOUT_S:.0f} s")
            try:
                status, _ = post(self.port, self.path, body, timeout=START_TIMEOUT_S)
            except OSError:
                status = 0
            if status == 200:
                elapsed = time.perf_counter() - started
                self.starts.append(elapsed)
                return elapsed
            time.sleep(0.01)

    def predict(self, rows: list[dict[str, float]]) -> list[Any]:
        status, raw = post(self.port, self.path, json.dumps(self.body(rows)).encode())
        check(status == 200, f"{self.name} answered {status}: {raw[:500]!r}")
        predictions: list[Any] = json.loads(raw)["predictions"]
        return predictions

    def cpu_s(self) -> float:
        assert self.proc is not None
        return tree_cpu_s(self.proc.pid)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is not None:  # the leader is gone: anything left in its group goes
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            return
        for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, STOP_TIMEOUT_S)):
            try:
                os.killpg(proc.pid, sig)  # the group this script created for it
            except ProcessLookupError:
                return
            try:
                proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
            # the leader is gone; anything left in its group (MLflow's uvicorn) goes too
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            return

    def log_tail(self, chars: int = 3000) -> str:
        logs = sorted(self.logs.glob(f"{self.name}-*.log"))
        return logs[-1].read_text(errors="replace")[-chars:] if logs else ""


@contextmanager
def ending(running: list[Any]) -> Iterator[None]:
    """Every server and helper process ends with the benchmark, finished or failed:
    ``running`` holds contenders, lists of them and child processes, added as they start."""
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally below
    try:
        yield
    finally:
        for thing in running:
            for one in thing if isinstance(thing, list) else [thing]:
                if isinstance(one, Contender):
                    one.stop()
                elif one.poll() is None:  # a helper of this script (MLflow's model logging)
                    one.kill()
                    one.wait(timeout=STOP_TIMEOUT_S)
        signal.signal(signal.SIGTERM, previous)


# load: wrk ---------------------------------------------------------------------------------------
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[{body}]==]

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKJSON {{\\"requests\\":%d,\\"duration_us\\":%d,\\"connect\\":%d,\\"read\\":%d," ..
    "\\"write\\":%d,\\"status\\":%d,\\"timeout\\":%d,\\"p50_us\\":%d,\\"p90_us\\":%d," ..
    "\\"p99_us\\":%d,\\"p999_us\\":%d,\\"max_us\\":%d,\\"mean_us\\":%.1f}}\\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
  -- the whole histogram (microseconds:count), to undo wrk's correction; latency(i) scans
  -- the histogram from its start, so only when that stays cheap
  local n = #latency
  if (latency.max - latency.min + 1) * n <= {budget} then
    local parts = {{}}
    for i = 1, n do
      local v, c = latency(i)
      parts[i] = string.format("%d:%d", v, c)
    end
    io.write("WRKHIST " .. table.concat(parts, ",") .. "\\n")
  end
end
"""
HISTOGRAM_BUDGET = 3_000_000_000  # bucket visits wrk may spend dumping its histogram (~2 s)


def as_sent(
    histogram: dict[int, int], requests: int, connections: int, duration_us: int
) -> dict[int, int] | None:
    """The latencies of the requests wrk really sent, from its corrected histogram.

    wrk 4 corrects for coordinated omission before reporting: with ``expected`` = its
    run time over the requests per connection, every sample of ``n >= 2 * expected`` adds
    synthetic samples at ``n - expected``, ``n - 2 * expected``, ... (while above
    ``expected``), the requests a steady client would have sent during the stall. Going
    down from the largest value, each bucket's own count is its count minus what larger
    buckets added to it. None if the result does not add up to the requests completed."""
    per_connection = requests // connections
    if per_connection <= 0:
        return None
    expected = duration_us // per_connection
    added: dict[int, int] = {}
    own: dict[int, int] = {}
    for value in sorted(histogram, reverse=True):
        count = histogram[value] - added.get(value, 0)
        if count < 0:
            return None
        if count:
            own[value] = count
            if expected > 0 and value >= 2 * expected:
                m = value - expected
                while m > expected:
                    added[m] = added.get(m, 0) + count
                    m -= expected
    return own if sum(own.values()) == requests else None


def percentile(histogram: dict[int, int], p: float) -> int:
    """wrk's own rule: the smallest value whose cumulative count reaches the rank."""
    total = sum(histogram.values())
    rank = round(p / 100 * total + 0.5)
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return value
    return max(histogram)


def wrk_script(folder: Path, contender: Contender, row: dict[str, float]) -> Path:
    body = json.dumps(contender.body([row]), separators=(",", ":"))
    check("]==]" not in body, "the body would end the Lua string")
    path = folder / f"{contender.name}.lua"
    path.write_text(WRK_SCRIPT.format(body=body, budget=HISTOGRAM_BUDGET), encoding="utf-8")
    return path


def wrk(
    wrk_bin: str, contender: Contender, script: Path, connections: int, seconds: int
) -> dict[str, Any]:
    """One wrk run (1 thread) against the contender; its figures, with the server's CPU
    time over the run."""
    url = f"http://{HOST}:{contender.port}{contender.path}"
    argv = [wrk_bin, "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s"]
    cpu = contender.cpu_s()
    done = subprocess.run(
        [*argv, "-s", str(script), url],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    )
    cpu = contender.cpu_s() - cpu
    lines = [x for x in done.stdout.splitlines() if x.startswith("WRKJSON ")]
    check(done.returncode == 0 and len(lines) == 1, f"wrk failed: {done.stderr}{done.stdout}")
    got = json.loads(lines[0][len("WRKJSON ") :])
    requests = got["requests"]
    check(requests > 0, f"wrk completed no request against {contender.name}: {done.stdout}")
    errors = got["connect"] + got["read"] + got["write"] + got["timeout"]
    sent: dict[str, Any] = {"p50_sent_ms": None, "p99_sent_ms": None, "stalls_over_10ms": None}
    dumped = [x for x in done.stdout.splitlines() if x.startswith("WRKHIST ")]
    if dumped:
        histogram = {}
        for pair in dumped[0][len("WRKHIST ") :].split(","):
            value, count = pair.split(":")
            histogram[int(value)] = int(count)
        own = as_sent(histogram, requests, connections, got["duration_us"])
        check(own is not None, f"wrk's histogram does not add up to its {requests} requests")
        assert own is not None
        sent = {
            "p50_sent_ms": percentile(own, 50) / 1000,
            "p99_sent_ms": percentile(own, 99) / 1000,
            "stalls_over_10ms": sum(c for v, c in own.items() if v > 10_000),
        }
    return {
        **sent,
        "requests": requests,
        "p50_ms": got["p50_us"] / 1000,
        "p90_ms": got["p90_us"] / 1000,
        "p99_ms": got["p99_us"] / 1000,
        "p999_ms": got["p999_us"] / 1000,
        "max_ms": got["max_us"] / 1000,
        "rps": requests / (got["duration_us"] / 1e6),
        "cpu_ms_per_req": cpu * 1000 / requests,
        "cpu_s": cpu,
        "non_2xx": got["status"],  # wrk counts answers with a status >= 400
        "socket_errors": errors,
    }


# one contender, all of it ------------------------------------------------------------------------
def measure(
    contender: Contender,
    sizes: Sizes,
    wrk_bin: str,
    row: dict[str, float],
    expected: list[int],
    rows: list[dict[str, float]],
    folder: Path,
) -> dict[str, Any]:
    first = None
    if contender.name == "loopml":  # loads from the skops artifact, fills the model cache
        first = contender.start()
        say(f"loopml: first start (model cache empty) answered after {first:.2f} s")
        contender.stop()
        contender.starts.clear()
    for i in range(sizes.starts):
        seconds = contender.start()
        say(f"{contender.name}: start {i + 1}/{sizes.starts} answered after {seconds:.2f} s")
        if i < sizes.starts - 1:
            contender.stop()
    got = [int(v) for v in contender.predict(rows)]
    check(got == expected, f"{contender.name} predicted {got}, the model {expected}")
    script = wrk_script(folder, contender, row)
    wrk(wrk_bin, contender, script, 1, sizes.warmup_s)  # warm-up, untimed
    idle = contender.cpu_s()
    time.sleep(IDLE_S)
    idle = (contender.cpu_s() - idle) / IDLE_S
    load = os.getloadavg()[0]
    say(f"{contender.name}: {sizes.phase_s} s at 1 connection")
    one = wrk(wrk_bin, contender, script, 1, sizes.phase_s)
    say(f"{contender.name}: {sizes.phase_s} s at {CONNECTIONS} connections")
    many = wrk(wrk_bin, contender, script, CONNECTIONS, sizes.phase_s)
    got = [int(v) for v in contender.predict(rows)]
    check(got == expected, f"{contender.name} predicted {got} after the load")
    contender.stop()
    return {
        "start_s": statistics.median(contender.starts),
        "start_all_s": [round(s, 3) for s in contender.starts],
        "start_first_s": None if first is None else round(first, 3),
        "idle_cpu_ms_per_s": idle * 1000,
        "load_average": round(load, 2),
        "p50_ms": one["p50_ms"],
        "p99_ms": one["p99_ms"],
        "p999_ms": one["p999_ms"],
        "max_ms": one["max_ms"],
        "p50_sent_ms": one["p50_sent_ms"],
        "p99_sent_ms": one["p99_sent_ms"],
        "stalls_over_10ms_1": one["stalls_over_10ms"],
        "rps_1": one["rps"],
        "cpu_ms_per_req_1": one["cpu_ms_per_req"],
        "requests_1": one["requests"],
        "errors_1": one["non_2xx"] + one["socket_errors"],
        "p50_16_ms": many["p50_ms"],
        "p99_16_ms": many["p99_ms"],
        "max_16_ms": many["max_ms"],
        "p99_16_sent_ms": many["p99_sent_ms"],
        "rps_16": many["rps"],
        "cpu_ms_per_req_16": many["cpu_ms_per_req"],
        "requests_16": many["requests"],
        "non_2xx_16": many["non_2xx"],
        "socket_errors_16": many["socket_errors"],
    }


def import_floor(env: dict[str, str], tmp: Path, repeats: int = 3) -> dict[str, float]:
    """Wall seconds of a fresh ``python -c pass`` and of a fresh interpreter importing what
    any server of this model loads (numpy, pandas, scikit-learn's linear models): the
    least a start could cost. Median of ``repeats`` after one untimed warm-up (none for a
    single run: the floor's child has just read the same files)."""
    figures = {}
    for key, code in (
        ("python_pass_s", "pass"),
        ("import_pandas_sklearn_s", "import numpy, pandas, sklearn.linear_model"),
    ):
        times = []
        for _ in range(repeats + (repeats > 1)):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp, check=True, timeout=120)
            times.append(time.perf_counter() - start)
        figures[key] = statistics.median(times[1:] if repeats > 1 else times)
    return figures


def in_child(args: Sequence[str], env: dict[str, str], cwd: Path) -> dict[str, Any]:
    """Run a ``--side`` of this script in a fresh interpreter; its last stdout line."""
    done = subprocess.run(
        [sys.executable, __file__, *args],
        stdout=subprocess.PIPE,
        text=True,
        check=False,
        cwd=cwd,
        timeout=600,
        env={**env, "LOOPML_BENCH_STARTED": str(STARTED)},
    )
    check(done.returncode == 0, f"the child {' '.join(args)} failed (exit {done.returncode})")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# the run ---------------------------------------------------------------------------------------
def run(sizes: Sizes, mode: str, tmp: Path, only: Sequence[str]) -> dict[str, Any]:
    versions = {
        name: version_of(name)
        for name in ("loopml", "mlflow", "fastapi", "starlette", "uvicorn", "scikit-learn")
    }
    versions["python"] = sys.version.split()[0]
    versions["wrk"] = None
    load_start = os.getloadavg()[0]
    notes: list[str] = []
    wrk_bin = shutil.which("wrk")
    if wrk_bin is None:
        raise SystemExit("wrk is not installed: apt-get install wrk (Debian's package)")
    shown = subprocess.run([wrk_bin, "--version"], capture_output=True, text=True, check=False)
    versions["wrk"] = (shown.stdout or shown.stderr).split(" [")[0].replace("wrk ", "").strip()
    print(
        ", ".join(f"{k} {v or '(not installed)'}" for k, v in versions.items())
        + f"; mode={mode}, {os.cpu_count()} CPUs, load average {load_start:.2f}",
        flush=True,
    )
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        **QUIET_ENV,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",  # MLflow runs `uvicorn`
        "LOOPML_BENCH_STARTED": str(STARTED),
    }
    logs = tmp / "logs"

    say("training the iris model; the floor (predict in a fresh process)")
    model, frame, model_path = train(tmp)
    row = request_row(frame)
    rows = check_rows(frame)
    expected = [int(v) for v in model.predict(frame.iloc[[0, 60, 120]])]
    check(len(set(expected)) == 3, f"the check rows are not one per class: {expected}")
    floor = in_child(
        [
            *("--side", "floor", "--model", str(model_path)),
            *("--calls", str(sizes.floor_calls), "--repeats", str(sizes.floor_repeats)),
        ],
        env,
        tmp,
    )
    floor.update(import_floor(env, tmp, repeats=3 if mode == "full" else 1))

    contenders: list[Contender] = []  # measured in this order
    running: list[Any] = [contenders]  # what ending() stops: contenders and helper processes
    results: dict[str, Any] = {}
    logging_mlflow: subprocess.Popen[str] | None = None
    compiling: Contender | None = None

    def track(thing: Any) -> Any:
        running.append(thing)
        return thing

    with ending(running):
        script = str(Path(__file__).resolve())

        def records(key: str) -> Callable[[list[dict[str, float]]], dict[str, Any]]:
            return lambda r: {key: r}

        for kind, dist in (
            ("starlette", "starlette"),
            ("starlette_numpy", "starlette"),
            ("fastapi", "fastapi"),
        ):
            if kind not in only:
                continue
            if version_of(dist) is None:
                notes.append(f"{kind} is not installed (pip install -e '.[bench]'): skipped")
                continue
            contenders.append(
                Contender(
                    kind,
                    "/predict",
                    records("rows"),
                    lambda port, kind=kind: [
                        sys.executable,
                        script,
                        *("--serve", kind, "--model", str(model_path), "--port", str(port)),
                    ],
                    env,
                    tmp,
                    logs,
                )
            )

        mlflow_cli = console_script("mlflow")
        mlflow_folder = tmp / "mlflow"
        if "mlflow" in only and mlflow_cli is None:
            notes.append("mlflow is not installed (pip install -e '.[bench]'): skipped")
        elif "mlflow" in only:  # setup, untimed: it runs while loopml registers its model
            say("mlflow: logging the model (mlflow.sklearn.log_model, SQLite tracking store)")
            mlflow_folder.mkdir()
            logging_mlflow = track(
                subprocess.Popen(
                    [
                        *(sys.executable, __file__, "--side", "mlflow-log"),
                        *("--model", str(model_path), "--tmp", str(mlflow_folder)),
                    ],
                    cwd=mlflow_folder,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=(mlflow_folder / "log-model.log").open("wb"),
                    text=True,
                )
            )

        if "loopml" in only:
            cli = console_script("loopml")
            if cli is None:
                raise SystemExit(f"no 'loopml' console script next to {sys.executable}")
            snapshot = bytecode_snapshot(tmp)
            loopml_env = with_snapshot(env, snapshot)
            if snapshot is not None:
                notes.append(
                    f"{SNAPSHOT_NOTE}; start_compiling_s (full mode) is one start without it"
                )
            say("loopml: register the model (SDK), loopml deploy create")
            workspace = tmp / "ws"
            loopml_workspace(model, frame, workspace, cli, loopml_env)

            def loopml_argv(port: int) -> list[str]:
                return [str(cli), "--workspace", str(workspace), "serve", "--port", str(port)]

            contenders.append(
                Contender(
                    "loopml",
                    f"/deployments/{DEPLOYMENT}/predict",
                    records("rows"),
                    loopml_argv,
                    loopml_env,
                    tmp,
                    logs,
                )
            )
            if snapshot is not None and mode == "full":
                compiling = track(
                    Contender(
                        "loopml-compiling",
                        contenders[-1].path,
                        records("rows"),
                        loopml_argv,
                        env,
                        tmp,
                        logs,
                    )
                )

        if logging_mlflow is not None:
            out, _ = logging_mlflow.communicate(timeout=600)
            check(
                logging_mlflow.returncode == 0,
                "mlflow.sklearn.log_model failed: "
                + (mlflow_folder / "log-model.log").read_text(errors="replace")[-3000:],
            )
            uri = json.loads(out.strip().splitlines()[-1])["model_uri"]
            contenders.insert(
                len(contenders) - ("loopml" in only),
                Contender(
                    "mlflow",
                    "/invocations",
                    records("dataframe_records"),
                    lambda port: [
                        str(mlflow_cli),
                        *("models", "serve", "-m", uri, "-h", HOST, "-p", str(port)),
                        *("-w", "1", "--env-manager", "local"),
                    ],
                    {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{mlflow_folder / 'mlflow.db'}"},
                    mlflow_folder,
                    logs,
                ),
            )

        for contender in contenders:
            results[contender.name] = measure(contender, sizes, wrk_bin, row, expected, rows, tmp)
        if compiling is not None:
            results["loopml"]["start_compiling_s"] = compiling.start()
            compiling.stop()
            say(f"loopml compiling its modules: answered after {compiling.starts[-1]:.2f} s")

    ours = results.get("loopml", {})
    starlette, fastapi = results.get("starlette", {}), results.get("fastapi", {})
    mlflow = results.get("mlflow", {})
    raw = floor["predict_frame_ms"]
    ratios: dict[str, float | None] = {
        "loopml_p50_minus_predict_ms": None if not ours else round(ours["p50_ms"] - raw, 3),
        "loopml_p50_minus_predict_numpy_ms": (
            None if not ours else round(ours["p50_ms"] - floor["predict_numpy_ms"], 3)
        ),
        "loopml_p99_ms": ours.get("p99_ms"),
        "loopml_p99_sent_ms": ours.get("p99_sent_ms"),
        "loopml_cpu_over_starlette_1": ratio(
            ours.get("cpu_ms_per_req_1"), starlette.get("cpu_ms_per_req_1")
        ),
        "loopml_cpu_over_starlette_16": ratio(
            ours.get("cpu_ms_per_req_16"), starlette.get("cpu_ms_per_req_16")
        ),
        "loopml_rps16_over_fastapi": ratio(ours.get("rps_16"), fastapi.get("rps_16")),
        "loopml_rps16_over_starlette": ratio(ours.get("rps_16"), starlette.get("rps_16")),
        "loopml_start_s": None if not ours else round(ours["start_s"], 3),
        "loopml_cpu_over_mlflow_1": ratio(
            ours.get("cpu_ms_per_req_1"), mlflow.get("cpu_ms_per_req_1")
        ),
        "mlflow_start_over_loopml": ratio(mlflow.get("start_s"), ours.get("start_s")),
    }

    def judged(value: float | None, ok: Callable[[float], bool]) -> bool | None:
        return None if value is None else ok(value)

    errors_16 = (
        None if not ours else ours["non_2xx_16"] + ours["socket_errors_16"] + ours["errors_1"]
    )
    targets = {
        "p50_within_0.5ms_of_predict": judged(
            ratios["loopml_p50_minus_predict_ms"], lambda v: v <= 0.5
        ),
        "p99_2ms": judged(ratios["loopml_p99_ms"], lambda v: v <= 2.0),
        "p99_2ms_as_sent": judged(ratios["loopml_p99_sent_ms"], lambda v: v <= 2.0),
        "cpu_per_request_le_starlette": judged(
            ratios["loopml_cpu_over_starlette_1"], lambda v: v <= 1.0
        ),
        "rps16_1.5x_fastapi": judged(ratios["loopml_rps16_over_fastapi"], lambda v: v >= 1.5),
        "no_errors": judged(errors_16, lambda v: v == 0),
        "start_2s": judged(ratios["loopml_start_s"], lambda v: v <= 2.0),
    }
    facts = {
        "phase_s": sizes.phase_s,
        "warmup_s": sizes.warmup_s,
        "connections": [1, CONNECTIONS],
        "wrk_threads": 1,
        "starts": sizes.starts,
        "floor_calls": sizes.floor_calls,
        "floor_repeats": sizes.floor_repeats,
        "cpus": os.cpu_count(),
        "load_average_start": round(load_start, 2),
        "load_average_end": round(os.getloadavg()[0], 2),
    }
    print_table(floor, results, ratios, targets, facts)
    notes += describe(sizes, mode)
    for note in notes:
        print(f"note: {note}", flush=True)
    return {
        "benchmark": "serving",
        "mode": mode,
        "versions": versions,
        "sizes": facts,
        "floor": _rounded(floor),
        **{name: _rounded(figures) for name, figures in results.items()},
        "ratios": ratios,
        "targets": targets,
        "notes": notes,
    }


def print_table(
    floor: dict[str, Any],
    results: dict[str, dict[str, Any]],
    ratios: dict[str, float | None],
    targets: dict[str, bool | None],
    facts: dict[str, Any],
) -> None:
    print(flush=True)
    print(
        f"iris LogisticRegression, one row per request; wrk 1 thread, {facts['phase_s']} s "
        f"per phase; one server worker; CPU = server process tree, user + system",
        flush=True,
    )
    print(
        f"floor, in-process per call: predict(one-row DataFrame) {floor['predict_frame_ms']:.3f} "
        f"ms, predict(numpy row) {floor['predict_numpy_ms']:.3f} ms; predict_proba "
        f"{floor['predict_proba_frame_ms']:.3f} / {floor['predict_proba_numpy_ms']:.3f} ms; "
        f"a one-row DataFrame from a row dict {floor['frame_from_row_ms']:.3f} ms, from "
        f"columns {floor['frame_from_columns_ms']:.3f} ms",
        flush=True,
    )
    print(
        f"start floor: python -c pass {floor['python_pass_s']:.2f} s, importing numpy, pandas "
        f"and sklearn.linear_model {floor['import_pandas_sklearn_s']:.2f} s",
        flush=True,
    )

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    head = (
        f"{'':<15} {'start':>7} | {'1 conn: p50':>11} {'p99':>7} {'(sent)':>7} {'req/s':>6}"
        f" {'CPU/req':>8} | {'16 conn: req/s':>14} {'p99':>8} {'(sent)':>7} {'CPU/req':>8}"
        f" {'errors':>6}"
    )
    print(head, flush=True)
    for name, r in results.items():
        errors = r["non_2xx_16"] + r["socket_errors_16"] + r["errors_1"]
        print(
            f"{name:<15} {r['start_s']:>6.2f}s | {r['p50_ms']:>8.3f} ms {r['p99_ms']:>7.3f} "
            f"{ms(r['p99_sent_ms']):>7} {r['rps_1']:>6.0f} {r['cpu_ms_per_req_1']:>5.3f} ms | "
            f"{r['rps_16']:>14.0f} {r['p99_16_ms']:>8.3f} {ms(r['p99_16_sent_ms']):>7} "
            f"{r['cpu_ms_per_req_16']:>5.3f} ms {errors:>6}",
            flush=True,
        )
    print(
        "p99: wrk's, corrected for coordinated omission; (sent): the same run's requests as "
        "sent, the correction undone (see benchmarks/README.md)",
        flush=True,
    )
    if "start_compiling_s" in results.get("loopml", {}):
        print(
            f"loopml start compiling its modules (PYTHONDONTWRITEBYTECODE): "
            f"{results['loopml']['start_compiling_s']:.2f} s",
            flush=True,
        )
    stalls = ", ".join(f"{n} {r['stalls_over_10ms_1']}" for n, r in results.items())
    print(f"requests over 10 ms at 1 connection (as sent): {stalls}", flush=True)
    idle = ", ".join(f"{n} {r['idle_cpu_ms_per_s']:.0f}" for n, r in results.items())
    print(f"idle server CPU, ms per s: {idle}", flush=True)
    load = ", ".join(f"{n} {r['load_average']:.2f}" for n, r in results.items())
    print(f"load average before each server's load phases: {load}", flush=True)
    print(flush=True)

    def show(value: float | None, unit: str = "") -> str:
        return "-" if value is None else f"{value:.3f}{unit}"

    lines = [
        ("loopml p50 - predict(DataFrame)", ratios["loopml_p50_minus_predict_ms"], " ms",
         "<= 0.5 ms", "p50_within_0.5ms_of_predict"),
        ("  same, predict(numpy row)", ratios["loopml_p50_minus_predict_numpy_ms"], " ms", "",
         None),
        ("loopml p99, 1 connection (wrk)", ratios["loopml_p99_ms"], " ms", "<= 2 ms", "p99_2ms"),
        ("  same, requests as sent", ratios["loopml_p99_sent_ms"], " ms", "<= 2 ms",
         "p99_2ms_as_sent"),
        ("loopml CPU/req over Starlette's, 1 conn", ratios["loopml_cpu_over_starlette_1"], "x",
         "<= 1.0", "cpu_per_request_le_starlette"),
        ("  same, 16 connections", ratios["loopml_cpu_over_starlette_16"], "x", "", None),
        ("loopml 16-conn req/s over FastAPI's", ratios["loopml_rps16_over_fastapi"], "x",
         ">= 1.5", "rps16_1.5x_fastapi"),
        ("loopml start", ratios["loopml_start_s"], " s", "<= 2 s", "start_2s"),
    ]  # fmt: skip
    for label, value, unit, goal, key in lines:
        met = "" if key is None else {True: "met", False: "MISSED", None: "-"}[targets[key]]
        print(f"{label:<42} {show(value, unit):>10} {goal:>10} {met:>7}", flush=True)
    print(
        f"no errors (non-2xx, socket errors) in either phase: "
        f"{ {True: 'met', False: 'MISSED', None: '-'}[targets['no_errors']] }",
        flush=True,
    )
    print(
        f"load average {facts['load_average_start']:.2f} at the start, "
        f"{facts['load_average_end']:.2f} at the end",
        flush=True,
    )


def describe(sizes: Sizes, mode: str) -> list[str]:
    notes = [
        "every server: 127.0.0.1, one worker, started and measured alone, one after the "
        "other; wrk (1 thread) runs on the same 2 cores as the server",
        "start_s: process start until a first POST of a prediction answers 200 (median of "
        "the starts); MLflow's includes its CLI, resolving the model URI from the SQLite "
        "store, copying the artifacts and exec-ing uvicorn; loopml's starts follow one "
        "untimed-for-the-target first start (start_first_s), which loaded the model from "
        "its skops artifact and filled the model cache that later starts load from",
        "CPU per request: user + system of the server's process tree (threads and child "
        "processes included) from /proc/PID/stat over the wrk run, divided by the requests "
        "wrk completed; it includes the server's background threads (loopml polls the "
        "audit head every 0.5 s: idle_cpu_ms_per_s)",
        "bodies: loopml, Starlette and FastAPI get the same {'rows': [{...}]}; MLflow "
        "{'dataframe_records': [{...}]}; loopml's answer also carries the request id, "
        "deployment, model, version, route and the confidence (it calls predict_proba)",
        "non_2xx is wrk's count of answers with status >= 400; every contender's answers "
        "to one flower of each class are checked against the model before and after the load",
        "p50/p99 are wrk's: it adds synthetic samples for every stall (coordinated-omission "
        "correction), so one 100 ms pause (a full garbage collection, the machine's other "
        "work) at 1 connection can move p99 by tens of ms; *_sent_ms undo the correction",
        "starlette_numpy predicts on a numpy row with a copy of the model that forgot its "
        "column names (same coefficients): the cost of the DataFrame, not a different model",
        "loopml predicts a plain estimator such as this one on the float block of the "
        "request (its block model, docs/serving.md), as starlette_numpy does, so its p50 can "
        "undercut predict(DataFrame); loopml_p50_minus_predict_numpy_ms is the distance to "
        "the array floor",
    ]
    if mode == "quick":
        notes.append(
            f"quick mode: {sizes.phase_s} s phases and {sizes.starts} start per server: "
            "indicative only"
        )
    return notes


def _rounded(figures: dict[str, Any]) -> dict[str, Any]:
    def one(value: Any) -> Any:
        return round(value, 4) if isinstance(value, float) else value

    return {k: one(v) for k, v in figures.items()}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="3 s phases, one start per server: about 90 s"
    )
    parser.add_argument("--phase-s", type=int, help="seconds per wrk phase (10; quick 3)")
    parser.add_argument("--starts", type=int, help="starts per server (3; quick 1)")
    parser.add_argument(
        "--only", nargs="+", choices=CONTENDERS, default=list(CONTENDERS), help="these servers"
    )
    parser.add_argument("--keep", type=Path, help="copy the servers' logs into this folder")
    parser.add_argument("--out", type=Path, help="also write the JSON result to this file")
    parser.add_argument("--side", choices=("floor", "mlflow-log"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--serve", choices=("starlette", "starlette_numpy", "fastapi"), help=argparse.SUPPRESS
    )
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--tmp", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, default=1000, help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve_side(args.serve, args.model, args.port)
        return
    if args.side == "floor":
        print(json.dumps(floor_side(args.model, args.calls, args.repeats)), flush=True)
        return
    if args.side == "mlflow-log":
        print(json.dumps(mlflow_log_side(args.model, args.tmp)), flush=True)
        return
    sizes = QUICK if args.quick else FULL
    if args.phase_s is not None:
        sizes = dataclasses.replace(sizes, phase_s=max(1, args.phase_s))
    if args.starts is not None:
        sizes = dataclasses.replace(sizes, starts=max(1, args.starts))
    mode = "quick" if args.quick else "full"
    with tempfile.TemporaryDirectory(prefix="loopml-bench-serving-") as tmp:
        try:
            result = run(sizes, mode, Path(tmp), args.only)
        finally:
            if args.keep is not None and (Path(tmp) / "logs").is_dir():
                shutil.copytree(Path(tmp) / "logs", args.keep, dirs_exist_ok=True)
    line = json.dumps(result)
    if args.out:
        args.out.write_text(line + "\n", encoding="utf-8")
    print(line, flush=True)


if __name__ == "__main__":
    main()
