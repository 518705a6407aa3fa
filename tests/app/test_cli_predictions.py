"""``loopml predictions tail|export|stats`` and ``loopml feedback import`` on a real workspace.

Predictions are logged through the workspace's own sink (what the server uses), then read
by the CLI in the same process, as a user would right after the server flushed.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from cli_support import cli

from loopml.adapters.prediction_log import ParquetPredictionSink
from loopml.client import Client
from loopml.domain.predictions import PredictionRecord, Route

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def log_predictions(ws: Path, count: int, deployment: str = "iris") -> None:
    with Client(ws, capture_code=False) as client:
        sink = client.app.prediction_sink
        for i in range(count):
            sink.submit(
                PredictionRecord(
                    request_id=f"r{i}",
                    time_ms=T0 + i * 60_000,  # one a minute
                    deployment=deployment,
                    model="iris",
                    version=3,
                    route=Route.CANARY if i % 2 else Route.PRODUCTION,
                    inputs={"sepal": [5.0 + i], "note": [f"[bold]{i}"]},
                    outputs={"class": [i % 3]},
                    latency_ms=0.4,
                )
            )
        assert sink.flush()


def test_tail_table_and_json(ws: Path) -> None:
    log_predictions(ws, 5)
    code, output = cli(ws, "predictions", "tail", "-n", "2")
    assert code == 0, output
    assert "r3" in output
    assert "r4" in output
    assert "r2" not in output
    assert "[bold]4" in output  # values are shown as data, never as markup
    code, output = cli(ws, "predictions", "tail", "--json", "-d", "iris")
    assert code == 0, output
    records = json.loads(output)
    assert [r["request_id"] for r in records] == [f"r{i}" for i in range(5)]
    assert records[1]["route"] == "canary"
    assert records[1]["inputs"] == {"sepal": [6.0], "note": ["[bold]1"]}
    assert records[1]["outputs"] == {"class": [1]}


def test_tail_of_a_deployment_without_predictions_says_so(ws: Path) -> None:
    log_predictions(ws, 1)
    code, output = cli(ws, "predictions", "tail", "-d", "bikes")
    assert code == 0
    assert "no predictions logged for deployment 'bikes'" in output
    assert "logged deployments: iris" in output
    code, output = cli(ws, "predictions", "tail", "-d", "../iris")
    assert code == 2
    assert "deployment name '../iris' is not valid" in output


def test_export_window_with_feedback(ws: Path, tmp_path: Path) -> None:
    log_predictions(ws, 6)
    labels = tmp_path / "labels.csv"
    labels.write_text("request_id,label\nr2,1\nr4,0\n")
    assert cli(ws, "feedback", "import", str(labels))[0] == 0
    out = tmp_path / "window.parquet"
    code, output = cli(
        ws,
        "predictions",
        "export",
        str(out),
        "--since",
        "2026-01-01T00:02:00Z",
        "--until",
        "2026-01-01T00:05:00",  # no zone: UTC
        "--with-feedback",
    )
    assert code == 0, output
    assert "wrote 3 rows" in output
    table = pq.read_table(out)
    assert table["request_id"].to_pylist() == ["r2", "r3", "r4"]
    assert table["label"].to_pylist() == [1, None, 0]
    assert table["in.sepal"].to_pylist() == [7.0, 8.0, 9.0]

    csv_out = tmp_path / "all.csv"
    code, output = cli(ws, "predictions", "export", str(csv_out), "-d", "iris")
    assert code == 0, output
    assert len(csv_out.read_text().splitlines()) == 7
    code, output = cli(ws, "predictions", "export", str(out), "--since", "yesterday")
    assert code == 2
    assert "--since 'yesterday' is not a time" in output


def test_stats_reports_segments_and_losses_after_a_restart(ws: Path) -> None:
    log_predictions(ws, 4)

    def full_disk(directory: Path, name: str, table: pa.Table) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    # A writer whose disk fails until it is closed: its records are lost, and counted.
    failing = ParquetPredictionSink(
        ws / ".loopml" / "predictions", retry_seconds=0.01, segment_writer=full_disk
    )
    for i in range(3):
        failing.submit(
            PredictionRecord(f"x{i}", T0, "iris", "iris", 3, Route.PRODUCTION, {}, {}, 1.0)
        )
    failing.close(timeout_s=5)

    code, output = cli(ws, "predictions", "stats", "--json")
    assert code == 0, output
    stats = json.loads(output)
    assert stats["deployments"][0]["deployment"] == "iris"
    assert stats["deployments"][0]["records"] == 4
    assert stats["deployments"][0]["segments"] >= 1
    assert (stats["dropped"], stats["lost"], stats["overflow"]) == (3, 3, 0)
    assert stats["write_errors"] >= 1
    assert "No space left on device" in stats["last_error"]
    code, output = cli(ws, "predictions", "stats")
    assert code == 0, output
    assert "dropped: 3 records" in output
    assert "No space left on device" in output


def test_feedback_import_reports_matches(ws: Path, tmp_path: Path) -> None:
    log_predictions(ws, 3)
    jsonl = tmp_path / "labels.jsonl"
    jsonl.write_text(
        '{"request_id": "r0", "truth": "setosa"}\n'
        '{"request_id": "r1", "truth": null}\n'
        '{"request_id": "nope", "truth": "virginica"}\n'
    )
    code, output = cli(ws, "feedback", "import", str(jsonl), "--label-column", "truth")
    assert code == 0, output
    assert "imported 2 labels" in output
    assert "1 match a logged request, 1 do not" in output
    assert "nope" in output
    assert "skipped 1 rows without a label" in output

    parquet = tmp_path / "labels.parquet"
    pq.write_table(pa.table({"request_id": ["r2"], "label": [2]}), parquet)
    code, output = cli(ws, "feedback", "import", str(parquet))
    assert code == 0, output
    assert "1 match a logged request, 0 do not" in output


def test_feedback_import_bad_files(ws: Path, tmp_path: Path) -> None:
    no_id = tmp_path / "no_id.csv"
    no_id.write_text("id,label\n1,0\n")
    code, output = cli(ws, "feedback", "import", str(no_id))
    assert code == 2
    assert "has no column 'request_id'" in output
    assert "its columns are: id, label" in output

    blank_id = tmp_path / "blank.csv"
    blank_id.write_text("request_id,label\nr1,0\n,1\n")
    code, output = cli(ws, "feedback", "import", str(blank_id))
    assert code == 2
    assert "data row 2 has no request_id" in output

    numeric_ids = tmp_path / "numeric.csv"
    numeric_ids.write_text("request_id,label\n0042,1\n")
    code, output = cli(ws, "feedback", "import", str(numeric_ids))
    assert code == 0, output
    with Client(ws, capture_code=False) as client:
        client.app.prediction_sink.submit(
            PredictionRecord("0042", T0, "iris", "iris", 1, Route.PRODUCTION, {"a": [1]}, {}, 1)
        )
        assert client.app.prediction_sink.flush()
        assert client.app.predictions.joined("iris")["label"].to_pylist() == [1]

    code, output = cli(ws, "feedback", "import", str(tmp_path / "missing.csv"))
    assert code == 3
    code, output = cli(ws, "feedback", "import", str(no_id.with_suffix(".xlsx")))
    assert code == 3  # does not exist: that is said first
    other = tmp_path / "labels.txt"
    other.write_text("x")
    code, output = cli(ws, "feedback", "import", str(other))
    assert code == 2
    assert ".csv" in output
