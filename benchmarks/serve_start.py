"""Start-up of ``loopml serve`` in a given environment: process start until a first
prediction answers 200, the figure ``serving.py`` reports as ``start_s``.

``serving.py`` runs in the benchmark venv, which also holds the test and bench extras
(Dask, pytest, MLflow...); scikit-learn's import pulls some of them in when they are
installed. This script measures the same start in any venv, e.g. one with only loopml::

    python -m venv /tmp/user && /tmp/user/bin/pip install .
    loopml quickstart /tmp/qs                     # a workspace with the `bikes` deployment
    python benchmarks/serve_start.py /tmp/qs --loopml /tmp/user/bin/loopml
    python benchmarks/serve_start.py /tmp/qs      # this venv's loopml, for comparison

The last line of output is one JSON object with every start and their median.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

# One hour of the quickstart's bike data: the inputs of its `bikes` deployment.
ROW = {
    "season": 2,
    "mnth": 5,
    "hr": 8,
    "weekday": 1,
    "weathersit": 1,
    "holiday": 0,
    "workingday": 1,
    "temp": 0.5,
    "atemp": 0.5,
    "hum": 0.6,
    "windspeed": 0.2,
}
TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answered(port: int, deployment: str, row: dict[str, object]) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        body = json.dumps({"rows": [row]})
        conn.request(
            "POST", f"/deployments/{deployment}/predict", body, {"content-type": "application/json"}
        )
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


def one_start(exe: str, workspace: Path, deployment: str, row: dict[str, object]) -> float:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    started = time.perf_counter()
    server = subprocess.Popen(
        [exe, "--workspace", str(workspace), "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        while not answered(port, deployment, row):
            if server.poll() is not None:
                raise SystemExit(f"loopml serve exited with {server.returncode} before answering")
            if time.perf_counter() - started > TIMEOUT_S:
                raise SystemExit(f"no answer within {TIMEOUT_S:.0f} s")
            time.sleep(0.005)
        return time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workspace", type=Path, help="a workspace with the deployment")
    default = shutil.which("loopml") or str(Path(sys.executable).with_name("loopml"))
    parser.add_argument("--loopml", default=default, help="the loopml executable to start")
    parser.add_argument("--deployment", default="bikes")
    parser.add_argument("--row", type=json.loads, default=ROW, help="one input row, as JSON")
    parser.add_argument("--starts", type=int, default=5)
    args = parser.parse_args()
    one_start(args.loopml, args.workspace, args.deployment, args.row)  # warm the file cache
    starts = [
        one_start(args.loopml, args.workspace, args.deployment, args.row)
        for _ in range(args.starts)
    ]
    for i, seconds in enumerate(starts, 1):
        print(f"start {i}: {seconds:.3f} s", file=sys.stderr)
    result = {
        "benchmark": "serve_start",
        "loopml": args.loopml,
        "starts_s": [round(s, 3) for s in starts],
        "median_s": round(statistics.median(starts), 3),
        "target_2s": statistics.median(starts) <= 2.0,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
