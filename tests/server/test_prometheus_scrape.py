"""A real Prometheus server scrapes ``/metrics`` and stores what the server exports.

The official parser (``prometheus_client.parser``) already reads the text in
``test_http.py::test_metrics_parse_with_the_official_prometheus_parser``; this test goes
one step further: Debian's ``prometheus`` binary, started here on 127.0.0.1 with its
storage in ``tmp_path``, scrapes a live loopml server every second, and its HTTP API must
report the target healthy and hold the series the server exported, with their labels and
values. Skipped, with the reason, when no ``prometheus`` binary is on the PATH (``.ci/run``
installs Debian's package when it runs as root).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

if TYPE_CHECKING:
    from server_support import Live

ROW = {"temp": 0.5, "hour": 8}  # the demand model answers 66.0: in the (10, 100] bucket
HOT_ROW = {"temp": 0.9, "hour": 3}
SENT = 7  # valid demand requests
HOT_SENT = 3  # valid classifier requests
DEADLINE_S = 30.0  # for Prometheus to start and scrape the final counts (about 3 s here)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Prometheus:
    """A ``prometheus`` process on 127.0.0.1 and a free port, and its query API."""

    def __init__(self, binary: str, workdir: Path, target_port: int) -> None:
        workdir.mkdir()
        config = workdir / "prometheus.yml"
        config.write_text(
            "global:\n"
            "  scrape_interval: 1s\n"
            "  scrape_timeout: 1s\n"
            "  evaluation_interval: 1s\n"
            "scrape_configs:\n"
            "  - job_name: loopml\n"
            "    static_configs:\n"
            f"      - targets: ['127.0.0.1:{target_port}']\n"
        )
        self.port = free_port()
        self.log = workdir / "prometheus.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        url = f"http://127.0.0.1:{self.port}{path}{query}"
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.load(response)

    def targets(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.get("/api/v1/targets")["data"]["activeTargets"]
        return found

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector of ``expr``: one ``{"metric": labels, "value": [t, text]}``
        per series."""
        answer = self.get("/api/v1/query", query=expr)
        assert answer["status"] == "success", answer
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def value(self, expr: str) -> float:
        """The value of the one series ``expr`` selects."""
        series = self.query(expr)
        assert len(series) == 1, f"{expr} selects {len(series)} series: {series}"
        return float(series[0]["value"][1])

    def wait_until(self, what: str, condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + DEADLINE_S
        while True:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"prometheus exited with {self.process.returncode}: {self.log.read_text()}"
                )
            try:
                if condition():
                    return
            except (urllib.error.URLError, ConnectionError, AssertionError):
                pass  # not listening yet, or not scraped yet
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"prometheus did not {what} within {DEADLINE_S:.0f} s; "
                    f"its targets: {self.targets()}; its log: {self.log.read_text()}"
                )
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@pytest.fixture
def prometheus_binary() -> str:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip(
            "no `prometheus` binary on PATH: install Debian's package "
            "(`apt-get install prometheus`; .ci/run does it when it runs as root)"
        )
    return binary


@pytest.fixture
def scraping(prometheus_binary: str, live: Live, tmp_path: Path) -> Iterator[Prometheus]:
    prometheus = Prometheus(prometheus_binary, tmp_path / "prometheus", live.port)
    try:
        yield prometheus
    finally:
        prometheus.stop()


def test_a_real_prometheus_scrapes_and_stores_the_metrics(scraping: Prometheus, live: Live) -> None:
    for i in range(SENT):
        assert live.predict("demand", [ROW], headers={"x-request-id": f"d{i}"})[0] == 200
    for _ in range(HOT_SENT):
        assert live.predict("hot", [HOT_ROW])[0] == 200
    assert live.predict("demand", [{"temp": "warm", "hour": 1}])[0] == 422

    prom = scraping
    demand = 'deployment="demand",model="demand",version="1"'
    hot = 'deployment="hot",model="hot",version="1"'
    requests = f'loopml_requests_total{{{demand},route="production"}}'
    # A scrape after the last request: every request counted, the log queue drained.
    prom.wait_until(
        "scrape the server's final counts",
        lambda: (
            prom.value(requests) == SENT and prom.value("loopml_prediction_log_queue_depth") == 0
        ),
    )

    [target] = prom.targets()
    assert target["health"] == "up", target
    assert target["lastError"] == ""
    assert target["labels"] == {"instance": f"127.0.0.1:{live.port}", "job": "loopml"}
    assert prom.value('up{job="loopml"}') == 1

    # requests per deployment and version, with Prometheus's own job and instance labels
    [series] = prom.query(requests)
    assert series["metric"] == {
        "__name__": "loopml_requests_total",
        "deployment": "demand",
        "model": "demand",
        "version": "1",
        "route": "production",
        "instance": f"127.0.0.1:{live.port}",
        "job": "loopml",
    }
    assert prom.value(f'loopml_requests_total{{{hot},route="production"}}') == HOT_SENT
    assert prom.value("sum(loopml_requests_total)") == SENT + HOT_SENT

    # the latency histogram: cumulative buckets, +Inf equal to the count
    latency = f'loopml_predict_seconds_bucket{{{demand},route="production"'
    assert prom.value(f'{latency},le="+Inf"}}') == SENT
    assert prom.value(f'loopml_predict_seconds_count{{{demand},route="production"}}') == SENT
    assert 0 < prom.value(f'loopml_predict_seconds_sum{{{demand},route="production"}}') < SENT
    buckets = prom.query(f"{latency}}}")
    assert len(buckets) == 12  # 11 bounds and +Inf
    counts = [float(b["value"][1]) for b in sorted(buckets, key=lambda b: float(b["metric"]["le"]))]
    assert counts == sorted(counts), f"buckets must be cumulative: {counts}"
    q = f"histogram_quantile(0.5, {latency}}})"
    assert 0 < prom.value(q) <= 1.0

    # validation failures per field, and the 422 they were answered with
    assert prom.value('loopml_invalid_fields_total{deployment="demand",field="temp"}') == 1
    assert prom.value('loopml_request_errors_total{deployment="demand",status="422"}') == 1
    assert prom.query('loopml_invalid_fields_total{field="hour"}') == []

    # the distribution of predictions: regression values and classifier answers
    value = f"loopml_prediction_value_bucket{{{demand}"
    assert prom.value(f'{value},le="10.0"}}') == 0
    assert prom.value(f'{value},le="100.0"}}') == SENT
    assert prom.value(f"loopml_prediction_value_count{{{demand}}}") == SENT
    assert prom.value(f"loopml_prediction_value_sum{{{demand}}}") == pytest.approx(66.0 * SENT)
    assert prom.value(f'loopml_predicted_class_total{{{hot},class="1"}}') == HOT_SENT
    assert prom.value(f'loopml_prediction_confidence_bucket{{{hot},le="+Inf"}}') == HOT_SENT

    # the prediction log lost nothing and failed no write
    assert prom.value("loopml_prediction_log_dropped_total") == 0
    assert prom.value("loopml_prediction_log_write_errors_total") == 0

    # Prometheus stored every sample the server exported, not just the ones asked for.
    text = live.request("GET", "/metrics")[1]["text"]
    exported = sum(len(f.samples) for f in text_string_to_metric_families(text))
    assert prom.value('scrape_samples_scraped{job="loopml"}') == exported
    stored = prom.query('{job="loopml",__name__=~"loopml_.+"}')
    assert len(stored) == exported
