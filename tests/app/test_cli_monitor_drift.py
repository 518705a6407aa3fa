"""``loopml monitor drift`` in-process, on a real workspace and real files: the table, the
exit code CI reads, JSON, the prefix of prediction-log segments, errors and their codes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_support import cli

from loopml.client import Client

WEATHER = ["sun", "rain", "snow"]


def frame(rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "temp": rng.normal(shift, 1, rows),
            "hour": rng.integers(0, 24, rows),
            "weather": rng.choice(WEATHER, rows, p=[0.6, 0.3, 0.1]),
        }
    )


@pytest.fixture
def ws(ws: Path) -> Path:
    """The workspace with dataset version train@1 (its label is not in live data)."""
    train = frame(5_000, 0)
    train["label"] = np.random.default_rng(9).integers(0, 2, len(train))
    with Client(ws) as client:
        client.add_dataset("train", train)
    return ws


def test_drift_prints_the_columns_most_drifted_first_and_exits_1(ws: Path, tmp_path: Path) -> None:
    frame(4_000, 1, shift=0.5).to_parquet(tmp_path / "live.parquet")
    code, output = cli(ws, "monitor", "drift", "train@1", str(tmp_path / "live.parquet"))
    assert code == 1, output  # drift: what a CI step fails on
    lines = [line.split() for line in output.splitlines()]
    assert lines[0] == ["column", "method", "score", "threshold", "p-value", "drifted", "detail"]
    assert lines[1][:2] == ["temp", "wasserstein"] and lines[1][5] == "DRIFTED"
    assert [line[0] for line in lines[1:5]] == ["temp", "hour", "weather", "label"]
    assert "1 of 4 columns drifted (temp) in 4,000 rows of 1 file against train@1" in output
    assert "not in the data, so not judged (absent is not drift): label" in output


def test_no_drift_exits_0(ws: Path, tmp_path: Path) -> None:
    folder = tmp_path / "live"
    folder.mkdir()
    frame(2_000, 2).to_csv(folder / "a.csv", index=False)
    frame(2_000, 3).to_parquet(folder / "b.parquet")
    code, output = cli(ws, "monitor", "drift", "train", str(folder), "-c", "temp", "-c", "hour")
    assert code == 0, output
    assert "no column drifted in 4,000 rows of 2 files against train@1" in output
    assert "label" not in output  # only the columns asked for


def test_json_keeps_the_exit_code(ws: Path, tmp_path: Path) -> None:
    frame(4_000, 1, shift=0.5).to_parquet(tmp_path / "live.parquet")
    code, output = cli(ws, "monitor", "drift", "train@1", str(tmp_path / "live.parquet"), "--json")
    assert code == 1
    result = json.loads(output)
    assert (result["reference"], result["rows"], result["engine"]) == ("train@1", 4_000, "local")
    assert (result["drifted"], result["missing_columns"]) == (["temp"], ["label"])
    assert result["score"] > 1.0
    temp = result["columns"][0]
    assert (temp["column"], temp["method"], temp["drifted"]) == ("temp", "wasserstein", True)


def test_prediction_log_columns_are_read_through_the_prefix(ws: Path, tmp_path: Path) -> None:
    live = frame(3_000, 4, shift=0.5).add_prefix("in.")
    live["request_id"] = [f"r{i}" for i in range(len(live))]
    live["out.prediction"] = 1.0
    live.to_parquet(tmp_path / "segment.parquet")
    code, output = cli(ws, "monitor", "drift", "train@1", str(tmp_path), "--prefix", "in.")
    assert code == 1, output
    assert "1 of 4 columns drifted (temp) in 3,000 rows" in output
    code, output = cli(ws, "monitor", "drift", "train@1", str(tmp_path))
    assert code == 2
    assert "pass --prefix in." in output


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["train@7", "{live}"], 3, "train"),
        (["train@1", "{tmp}/nowhere.csv"], 3, "nowhere.csv does not exist"),
        (["train@1", "{tmp}/rows.json"], 2, "rows.json is not a CSV or Parquet file"),
        (["train@1", "{live}", "--engine", "spark"], 2, "engine 'spark' is not known"),
        (["train@1", "{live}", "-c", "height"], 3, "height"),
    ],
)
def test_errors_exit_with_their_code(
    ws: Path, tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    frame(100, 5).to_parquet(tmp_path / "live.parquet")
    (tmp_path / "rows.json").write_text("[]")
    given = [a.format(live=tmp_path / "live.parquet", tmp=tmp_path) for a in args]
    got, output = cli(ws, "monitor", "drift", *given)
    assert got == code, output
    assert message in output


def test_the_dask_engine_without_dask_says_how_to_install_it(
    ws: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame(100, 5).to_parquet(tmp_path / "live.parquet")
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed fails
    code, output = cli(
        ws, "monitor", "drift", "train@1", str(tmp_path / "live.parquet"), "--engine", "dask"
    )
    assert code == 8
    assert "pip install 'loopml[dask]'" in output


@pytest.mark.slow
def test_the_dask_engine_on_its_own_local_cluster_matches_the_local_engine(
    ws: Path, tmp_path: Path
) -> None:
    pytest.importorskip("distributed")
    frame(6_000, 6, shift=0.5).to_parquet(tmp_path / "live.parquet", row_group_size=1_000)
    results = {}
    for engine in ("local", "dask"):
        code, output = cli(
            ws, "monitor", "drift", "train@1", str(tmp_path / "live.parquet"),
            "--engine", engine, "--workers", "1", "--json",
        )  # fmt: skip
        assert code == 1, output
        results[engine] = json.loads(output)
    local, dask = results["local"], results["dask"]
    assert (dask["engine"], dask["rows"], dask["drifted"]) == ("dask", 6_000, local["drifted"])
    for ours, theirs in zip(dask["columns"], local["columns"], strict=True):
        assert ours["score"] == pytest.approx(theirs["score"], rel=1e-9)
        assert (ours["method"], ours["drifted"], ours["detail"]) == (
            theirs["method"],
            theirs["drifted"],
            theirs["detail"],
        )
