"""``loopml serve --workers N`` as a real process tree: each uvicorn worker opens the
workspace itself, and ``--trusted`` reaches every worker (and only when given)."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
from cli_support import cli
from sklearn.tree import DecisionTreeRegressor

from loopml.client import Client
from loopml.server.build import WORKERS_TRUSTED

ROWS = [{"x": 0.0}, {"x": 3.0}]


@pytest.fixture
def tree_deployed(ws: Path) -> Path:
    """Deployment api serving a decision tree, which skops loads only when trusted."""
    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
    tree = DecisionTreeRegressor(random_state=0).fit(frame, [0.0, 10.0, 20.0, 30.0])
    with Client(ws) as client:
        client.register_model(tree, "m", sample=frame)
    code, output = cli(ws, "deploy", "create", "api", "models:/m/1")
    assert code == 0, output
    return ws


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def request(port: int, method: str, path: str, body: object = None) -> tuple[int, dict]:  # type: ignore[type-arg]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        data = None if body is None else json.dumps(body).encode()
        conn.request(method, path, body=data, headers={"content-type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


@contextmanager
def serving(ws: Path, *flags: str, env: dict[str, str]) -> Iterator[int]:
    """``loopml serve --workers 2 FLAGS`` until its workers answer /health/live; its port."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from loopml.cli.main import main; main()",
            "--workspace",
            str(ws),
            "serve",
            "--workers",
            "2",
            "--port",
            str(port),
            *flags,
        ],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if request(port, "GET", "/health/live")[0] == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stdout.read().decode() if process.stdout else ""
                raise AssertionError(f"loopml serve --workers 2 did not start: {output}")
            time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def test_trusted_reaches_every_worker(tree_deployed: Path) -> None:
    with serving(tree_deployed, "--trusted", env={}) as port:
        for _ in range(6):  # the connections land on either worker
            status, body = request(port, "POST", "/deployments/api/predict", {"rows": ROWS})
            assert status == 200, body
            assert body["predictions"] == [0.0, 30.0] and body["version"] == 1


def test_workers_do_not_inherit_trust_from_the_shell(tree_deployed: Path) -> None:
    # Without --trusted the tree is refused in every worker, whatever the environment says.
    with serving(tree_deployed, env={WORKERS_TRUSTED: "1"}) as port:
        for _ in range(4):
            status, body = request(port, "POST", "/deployments/api/predict", {"rows": ROWS})
            assert status == 503, body
            assert "serves no version" in json.dumps(body)
