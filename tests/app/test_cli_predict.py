"""``loopml predict`` in-process, on a real workspace and real files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from cli_support import cli
from sklearn.linear_model import LinearRegression

from loopml.client import Client

FEATURES = ["temp", "hour"]


@pytest.fixture
def model(ws: Path) -> LinearRegression:
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"temp": rng.normal(size=200), "hour": rng.integers(0, 24, 200)})
    fitted = LinearRegression().fit(train, 2 * train["temp"] + train["hour"])
    with Client(ws) as client:
        mv = client.register_model(fitted, "bikes", sample=train.head(20))
        client.set_alias("bikes", "champion", mv.version)
    return fitted


def _requests(path: Path, rows: int = 500) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {"id": range(rows), "hour": rng.integers(0, 24, rows), "temp": rng.normal(size=rows)}
    )
    frame.to_csv(path, index=False)
    return frame


def test_predict_writes_the_scores_and_records_them(
    ws: Path, tmp_path: Path, model: LinearRegression
) -> None:
    frame = _requests(tmp_path / "requests.csv")
    out = tmp_path / "scored.parquet"
    code, output = cli(
        ws, "predict", "models:/bikes@champion", "--input", str(tmp_path / "requests.csv"),
        "--output", str(out), "--chunk-rows", "128", "--json",
    )  # fmt: skip
    assert code == 0, output
    result = json.loads(output)
    assert (result["rows"], result["model_version"]) == (500, "models:/bikes/1")
    assert (result["dataset"], result["dataset_created"], result["engine"]) == (
        "bikes-predictions@1",
        True,
        "local",
    )
    table = pq.read_table(out)
    assert table.column_names == ["id", "hour", "temp", "prediction"]
    np.testing.assert_array_equal(
        table.column("prediction").to_numpy(), model.predict(frame[FEATURES])
    )

    code, output = cli(ws, "data", "show", "bikes-predictions@1", "--json")
    shown = json.loads(output)
    assert shown["rows"] == 500
    assert "models:/bikes/1" in shown["message"] and result["run_id"] in shown["message"]
    code, output = cli(ws, "runs", "show", result["run_id"], "--json")
    assert code == 0, output
    assert json.loads(output)["tags"]["loopml.model_version"] == "models:/bikes/1"


def test_predict_prints_one_summary_line(ws: Path, tmp_path: Path, model: LinearRegression) -> None:
    _requests(tmp_path / "requests.csv", rows=40)
    code, output = cli(
        ws, "predict", "models:/bikes/1", "-i", str(tmp_path / "requests.csv"),
        "-o", str(tmp_path / "scored.csv"), "--dataset", "daily",
    )  # fmt: skip
    assert code == 0, output
    assert output.startswith("scored 40 rows with models:/bikes/1 in ")
    assert "rows/s); wrote " in output and "recorded daily@1; run " in output
    assert len(pd.read_csv(tmp_path / "scored.csv")) == 40


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["models:/bikes/7"], 3, "bikes"),
        (["models:/nope@champion"], 3, "nope"),
        (["models:/bikes/1", "--engine", "spark"], 2, "engine 'spark' is not known"),
    ],
)
def test_bad_models_and_options_exit_with_their_code(
    ws: Path,
    tmp_path: Path,
    model: LinearRegression,
    args: list[str],
    code: int,
    message: str,
) -> None:
    _requests(tmp_path / "requests.csv", rows=5)
    got, output = cli(
        ws, "predict", *args[:1], "--input", str(tmp_path / "requests.csv"),
        "--output", str(tmp_path / "o.parquet"), *args[1:],
    )  # fmt: skip
    assert got == code, output
    assert message in output
    assert not (tmp_path / "o.parquet").exists()


def test_an_output_folder_that_does_not_exist_is_named(
    ws: Path, tmp_path: Path, model: LinearRegression
) -> None:
    _requests(tmp_path / "requests.csv", rows=5)
    code, output = cli(
        ws, "predict", "models:/bikes/1", "--input", str(tmp_path / "requests.csv"),
        "--output", str(tmp_path / "nowhere" / "o.parquet"),
    )  # fmt: skip
    assert code == 2
    assert f"its folder {tmp_path / 'nowhere'} does not exist" in output


def test_missing_columns_are_named_with_the_file(
    ws: Path, tmp_path: Path, model: LinearRegression
) -> None:
    pd.DataFrame({"hour": [1, 2]}).to_csv(tmp_path / "partial.csv", index=False)
    code, output = cli(
        ws, "predict", "models:/bikes/1", "--input", str(tmp_path / "partial.csv"),
        "--output", str(tmp_path / "o.parquet"),
    )  # fmt: skip
    assert code == 2
    assert "lacks column(s) 'temp'" in output and "partial.csv" in output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["partial.csv", "ws"]


def test_a_stored_dataset_is_scored_by_reference(
    ws: Path, tmp_path: Path, model: LinearRegression
) -> None:
    frame = _requests(tmp_path / "requests.csv", rows=60)
    assert cli(ws, "data", "add", "requests", str(tmp_path / "requests.csv"))[0] == 0
    code, output = cli(
        ws, "predict", "models:/bikes/1", "--input", "requests@1",
        "--output", str(tmp_path / "o.parquet"), "--json",
    )  # fmt: skip
    assert code == 0, output
    table = pq.read_table(tmp_path / "o.parquet")
    np.testing.assert_array_equal(
        table.column("prediction").to_numpy(), model.predict(frame[FEATURES])
    )


@pytest.mark.slow
def test_the_dask_engine_on_its_own_local_cluster_matches_the_local_engine(
    ws: Path, tmp_path: Path, model: LinearRegression
) -> None:
    pytest.importorskip("distributed")
    _requests(tmp_path / "requests.csv", rows=2000)
    outputs = {}
    for engine in ("local", "dask"):
        out = tmp_path / f"{engine}.parquet"
        code, output = cli(
            ws, "predict", "models:/bikes/1", "-i", str(tmp_path / "requests.csv"), "-o", str(out),
            "--engine", engine, "--workers", "1", "--json",
        )  # fmt: skip
        assert code == 0, output
        outputs[engine] = pq.read_table(out)
        assert json.loads(output)["dataset"] == "bikes-predictions@1"
    assert outputs["dask"].equals(outputs["local"])
