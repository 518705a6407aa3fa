"""What the server tests share (imported by name: pytest puts this folder on the path)."""

from __future__ import annotations

import http.client
import json
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from loopml.client import Client
from loopml.server.build import Running

FEATURES = ["temp", "hour"]


def training_frame(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    temp = rng.random(n)
    hour = rng.integers(0, 24, n)
    return pd.DataFrame({"temp": temp, "hour": hour, "demand": 100 * temp + 2 * hour})


@dataclass
class Live:
    client: Client
    running: Running
    port: int

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        sent = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        all_headers = {"content-type": "application/json", **(headers or {})}
        conn.request(method, path, body=sent, headers=all_headers)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        try:
            parsed = json.loads(data) if data else {}
        except ValueError:
            parsed = {"text": data.decode()}
        return response.status, parsed, {k.lower(): v for k, v in response.getheaders()}

    def predict(self, deployment: str, rows: list[dict[str, Any]], **kw: Any) -> Any:
        return self.request("POST", f"/deployments/{deployment}/predict", {"rows": rows}, **kw)

    def wait_for(self, condition: Any, timeout_s: float = 5.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError("the server did not pick the change up in time")
            time.sleep(0.02)
