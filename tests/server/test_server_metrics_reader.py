"""The agent reads a running server's request counters from /metrics for error rates."""

from __future__ import annotations

import socket

import pytest
from server_support import FEATURES, Live

from loopml.adapters.server_metrics import ServerMetricsReader, parse_counts
from loopml.ports.monitoring import RequestCounts
from loopml.services.agent import error_rate_between

ROW = {"temp": 0.5, "hour": 3}


def test_the_counts_of_a_real_server_per_deployment(live: Live) -> None:
    for _ in range(4):
        assert live.predict("demand", [ROW])[0] == 200
    assert live.predict("demand", [{**ROW, FEATURES[0]: "warm"}])[0] == 422
    assert live.predict("hot", [ROW])[0] == 200
    counts = ServerMetricsReader(f"http://127.0.0.1:{live.port}/metrics").counts()
    assert counts is not None
    assert counts["demand"] == RequestCounts(answered=4.0, errors=1.0)
    assert counts["hot"] == RequestCounts(answered=1.0, errors=0.0)


def test_no_server_is_no_reading_not_an_error() -> None:
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert ServerMetricsReader(f"http://127.0.0.1:{port}/metrics", timeout_s=0.5).counts() is None


def test_shadow_copies_are_not_requests_and_odd_lines_are_skipped() -> None:
    text = "\n".join(
        [
            "# HELP loopml_requests_total Predictions answered.",
            'loopml_requests_total{deployment="d",model="m",version="1",route="production"} 8',
            'loopml_requests_total{deployment="d",model="m",version="2",route="canary"} 2',
            'loopml_requests_total{deployment="d",model="m",version="3",route="shadow"} 10',
            'loopml_request_errors_total{deployment="d",status="422"} 3',
            'loopml_request_errors_total{deployment="d",status="500"} 1',
            'loopml_request_errors_total{status="404"} 5',  # no deployment: not counted
            "loopml_requests_total{broken 7",
        ]
    )
    assert parse_counts(text) == {"d": RequestCounts(answered=10.0, errors=4.0)}


@pytest.mark.parametrize(
    ("before", "now", "expected"),
    [
        (RequestCounts(100, 0), RequestCounts(190, 10), 0.1),  # 10 errors in 100 requests
        (RequestCounts(100, 5), RequestCounts(100, 5), None),  # no requests in between
        (RequestCounts(500, 50), RequestCounts(20, 1), None),  # the server restarted
    ],
)
def test_the_error_rate_is_of_the_interval_between_two_readings(
    before: RequestCounts, now: RequestCounts, expected: float | None
) -> None:
    rate = error_rate_between(before, now)
    assert rate == (None if expected is None else pytest.approx(expected))
