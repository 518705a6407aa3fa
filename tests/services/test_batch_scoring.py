"""Batch scoring over in-memory stores and real files: content, lineage, engines, failures."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from custom_estimators import SlowMean
from loopml.adapters.flavors.sklearn import SklearnFlavor
from loopml.bootstrap import Loopml, init_workspace
from loopml.client import Client
from loopml.domain.errors import InvalidInput, NotFound
from loopml.domain.tracking import DatasetRef, Run, RunStatus
from loopml.services.batch_scoring import EXPERIMENT, TAG_MODEL_VERSION, TAG_OUTPUT_DATASET
from loopml.stats.batches import cores

FEATURES = ["x", "k"]


def _frame(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "id": np.arange(rows),
            "k": rng.integers(0, 5, rows),
            "x": rng.normal(size=rows),
            "city": rng.choice(["lyon", "oslo", ""], rows),
        }
    )


@pytest.fixture
def train() -> pd.DataFrame:
    return _frame(300, seed=1)


@pytest.fixture
def regressor(client: Client, train: pd.DataFrame) -> tuple[str, LinearRegression]:
    model = LinearRegression().fit(train[FEATURES], 3 * train["x"] - train["k"])
    mv = client.register_model(model, "demand", sample=train[FEATURES].head(20))
    return mv.uri, model


@pytest.fixture
def classifier(client: Client, train: pd.DataFrame) -> tuple[str, LogisticRegression]:
    model = LogisticRegression().fit(train[FEATURES], (train["x"] > 0).astype(int))
    mv = client.register_model(model, "churn", sample=train[FEATURES].head(20))
    return mv.uri, model


def test_csv_in_parquet_out_holds_the_input_and_the_models_predictions(
    app: Loopml, regressor: tuple[str, LinearRegression], tmp_path: Path
) -> None:
    uri, model = regressor
    data = _frame(250)
    data.to_csv(tmp_path / "in.csv", index=False)
    out = tmp_path / "scored.parquet"
    result = app.batch_scoring.score(uri, tmp_path / "in.csv", out, actor="ana", chunk_rows=70)

    table = pq.read_table(out)
    assert table.column_names == ["id", "k", "x", "city", "prediction"]
    assert pq.ParquetFile(out).metadata.num_row_groups == 4  # 70 + 70 + 70 + 40 rows
    assert table.column("id").to_pylist() == list(range(250))
    # Chunks of 70 rows against one call on all 250: BLAS may sum in another order, so
    # the last bit can differ (seen with numpy 2.4.6 and pandas 3.1.1).
    np.testing.assert_allclose(
        table.column("prediction").to_numpy(), model.predict(data[FEATURES]), rtol=1e-12
    )
    assert result.rows == 250 and result.model_version == "models:/demand/1"
    assert (result.engine, result.output) == ("local", out)


def test_the_output_is_a_dataset_version_traced_to_the_model_version_and_the_input(
    app: Loopml, regressor: tuple[str, LinearRegression], tmp_path: Path
) -> None:
    uri, _ = regressor
    _frame(120).to_parquet(tmp_path / "in.parquet")
    result = app.batch_scoring.score(
        uri, tmp_path / "in.parquet", tmp_path / "out.parquet", actor="ana", chunk_rows=50
    )

    version = app.datasets.get("demand-predictions@1")
    assert version == result.dataset and result.dataset_created
    assert (version.rows, version.author) == (120, "ana")
    assert [c.name for c in version.columns] == ["id", "k", "x", "city", "prediction"]
    stored = app.datasets.read("demand-predictions@1")  # text as string, not large_string
    assert stored.equals(pq.read_table(tmp_path / "out.parquet").cast(stored.schema))
    assert "models:/demand/1" in version.message and result.run_id in version.message
    assert str(tmp_path / "in.parquet") in version.message

    run = app.batch_scoring.producer("demand-predictions@1")
    assert run is not None and run.id == result.run_id
    assert (run.experiment, run.status) == (EXPERIMENT, RunStatus.FINISHED)
    assert run.tags[TAG_MODEL_VERSION] == "models:/demand/1"
    assert run.tags[TAG_OUTPUT_DATASET] == "demand-predictions@1"
    assert run.metrics["rows"] == 120
    assert [a.name for a in run.artifacts] == ["input_files.json"]


def test_a_classifier_adds_the_top_class_probability_as_confidence(
    app: Loopml, classifier: tuple[str, LogisticRegression], tmp_path: Path
) -> None:
    uri, model = classifier
    data = _frame(200, seed=3)
    data.to_parquet(tmp_path / "in.parquet")
    app.batch_scoring.score(
        uri, tmp_path / "in.parquet", tmp_path / "out.parquet", actor="ana", chunk_rows=64
    )

    table = pq.read_table(tmp_path / "out.parquet")
    assert table.column_names[-2:] == ["prediction", "confidence"]
    np.testing.assert_array_equal(
        table.column("prediction").to_numpy(), model.predict(data[FEATURES])
    )
    np.testing.assert_allclose(
        table.column("confidence").to_numpy(),
        model.predict_proba(data[FEATURES]).max(axis=1),
        rtol=0,
        atol=0,
    )


def test_parquet_in_csv_out(
    app: Loopml, regressor: tuple[str, LinearRegression], tmp_path: Path
) -> None:
    uri, model = regressor
    data = _frame(90)
    data.to_parquet(tmp_path / "in.parquet")
    app.batch_scoring.score(uri, tmp_path / "in.parquet", tmp_path / "out.csv", actor="ana")

    written = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    assert list(written.columns) == ["id", "k", "x", "city", "prediction"]
    assert list(written["city"]) == list(data["city"])
    np.testing.assert_allclose(written["prediction"], model.predict(data[FEATURES]), rtol=1e-15)


def test_a_folder_is_scored_file_by_file_in_path_order(
    app: Loopml, regressor: tuple[str, LinearRegression], tmp_path: Path
) -> None:
    uri, model = regressor
    folder = tmp_path / "batches"
    (folder / "b").mkdir(parents=True)
    first, second = _frame(40, seed=4), _frame(30, seed=5)
    second.to_csv(folder / "b" / "2.csv", index=False)
    first.to_csv(folder / "a.csv", index=False)
    result = app.batch_scoring.score(uri, folder, tmp_path / "out.parquet", actor="ana")

    both = pd.concat([first, second], ignore_index=True)
    table = pq.read_table(tmp_path / "out.parquet")
    assert result.rows == 70
    np.testing.assert_array_equal(table.column("x").to_numpy(), both["x"].to_numpy())
    np.testing.assert_array_equal(
        table.column("prediction").to_numpy(), model.predict(both[FEATURES])
    )


def test_a_stored_dataset_version_is_scored_and_recorded_as_the_runs_input(
    app: Loopml, client: Client, regressor: tuple[str, LinearRegression], tmp_path: Path
) -> None:
    uri, model = regressor
    data = _frame(150, seed=6)
    stored = client.add_dataset("requests", data).version
    result = app.batch_scoring.score(
        uri, "requests@1", tmp_path / "out.parquet", actor="ana", chunk_rows=40
    )

    table = pq.read_table(tmp_path / "out.parquet")
    np.testing.assert_array_equal(
        table.column("prediction").to_numpy(), model.predict(data[FEATURES])
    )
    run = app.tracking.get_run(result.run_id)
    assert run.inputs == (DatasetRef("requests", 1, stored.digest),)
    assert "requests@1" in result.dataset.message


def test_identical_content_returns_the_existing_version(
    app: Loopml, regressor: tuple[str, LinearRegression], tmp_path: Path
) -> None:
    uri, _ = regressor
    _frame(60).to_parquet(tmp_path / "in.parquet")
    first = app.batch_scoring.score(uri, tmp_path / "in.parquet", tmp_path / "a.parquet", actor="a")
    again = app.batch_scoring.score(
        uri, tmp_path / "in.parquet", tmp_path / "b.csv", actor="a", dataset_name="other"
    )
    same = app.batch_scoring.score(uri, tmp_path / "in.parquet", tmp_path / "c.parquet", actor="a")
    assert (first.dataset.ref, again.dataset.ref) == ("demand-predictions@1", "other@1")
    assert (same.dataset.ref, same.dataset_created) == ("demand-predictions@1", False)


@pytest.fixture(scope="module")
def cluster() -> Iterator[object]:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
    ) as local:
        yield local


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_the_dask_engine_gives_the_local_engines_results(
    app: Loopml,
    classifier: tuple[str, LogisticRegression],
    cluster: object,
    tmp_path: Path,
    suffix: str,
) -> None:
    uri, _ = classifier
    data = _frame(3000, seed=7)
    data["maybe"] = np.where(data["k"] == 2, np.nan, data["k"])  # ints with missing values
    data["note"] = np.where(data["k"] == 3, "NA", data["city"])  # text that looks missing
    source = tmp_path / f"in{suffix}"
    if suffix == ".csv":
        data.to_csv(source, index=False)
    else:
        data.to_parquet(source)
    local = app.batch_scoring.score(uri, source, tmp_path / "local.parquet", actor="a")
    dask = app.batch_scoring.score(
        uri, source, tmp_path / "dask.parquet", actor="a", engine="dask", cluster=cluster
    )

    ours, theirs = (
        pq.read_table(tmp_path / "local.parquet"),
        pq.read_table(tmp_path / "dask.parquet"),
    )
    assert theirs.schema.equals(ours.schema)
    for name in ours.column_names:
        assert theirs.column(name).equals(ours.column(name)), name
    assert (dask.engine, dask.rows) == ("dask", 3000)
    assert (dask.dataset.ref, dask.dataset_created) == (local.dataset.ref, False)


def test_the_dask_engine_scores_a_stored_version(
    app: Loopml,
    client: Client,
    regressor: tuple[str, LinearRegression],
    cluster: object,
    tmp_path: Path,
) -> None:
    uri, model = regressor
    data = _frame(500, seed=8)
    client.add_dataset("requests", data)
    app.batch_scoring.score(
        uri, "requests@1", tmp_path / "out.parquet", actor="a", engine="dask", cluster=cluster
    )
    table = pq.read_table(tmp_path / "out.parquet")
    np.testing.assert_array_equal(
        table.column("prediction").to_numpy(), model.predict(data[FEATURES])
    )


# bad input -------------------------------------------------------------------------------
def _runs(app: Loopml) -> list[Run]:
    try:
        return list(app.tracking.search_runs([EXPERIMENT]))
    except NotFound:  # the experiment is made by the first scoring
        return []


def _left_behind(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# several chunks at once ----------------------------------------------------------------------
def _score_slowly(client: Client, train: pd.DataFrame, tmp_path: Path, flavor: str) -> int:
    """Score 15 chunks of 20 rows with a model sleeping 20 ms per call (sleep releases the
    GIL, as compiled model code does); the output must be in order either way."""
    model = SlowMean(seconds=0.02).fit(train[FEATURES], train["x"])
    mv = client.register_model(
        model, "slow", sample=train[FEATURES].head(5), flavor=flavor, trusted=True
    )
    _frame(300).to_parquet(tmp_path / "in.parquet")
    SlowMean.most_at_once = 0
    client.app.batch_scoring.score(
        mv.uri,
        tmp_path / "in.parquet",
        tmp_path / "o.parquet",
        actor="a",
        chunk_rows=20,
        trusted=True,
    )
    scored = pq.read_table(tmp_path / "o.parquet")
    assert scored.column("id").to_pylist() == list(range(300))
    assert scored.column("prediction").to_pylist() == [model.mean_] * 300
    return SlowMean.most_at_once


@pytest.mark.skipif(cores() < 2, reason="one core: one chunk at a time by design")
def test_a_slow_model_its_flavor_lets_run_concurrently_predicts_chunks_side_by_side(
    client: Client, train: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A scikit-learn model slow enough to measure would make the timing flaky: the custom
    # SlowMean stands in for one, with the flavor told it is safe (as it says of its own).
    monkeypatch.setattr(SklearnFlavor, "concurrent_predict", lambda self, model: True)
    assert 2 <= _score_slowly(client, train, tmp_path, "sklearn") <= cores()


@pytest.mark.parametrize("flavor", ["sklearn", "python_function"])
def test_user_code_predicts_one_chunk_at_a_time(
    client: Client, train: pd.DataFrame, tmp_path: Path, flavor: str
) -> None:
    # SlowMean is a class of this test suite: user code, whose thread-safety is unknown.
    assert _score_slowly(client, train, tmp_path, flavor) == 1


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_missing_input_columns_are_named_with_the_file(
    app: Loopml,
    regressor: tuple[str, LinearRegression],
    cluster: object,
    tmp_path: Path,
    engine: str,
) -> None:
    uri, _ = regressor
    _frame(10).drop(columns=["k"]).to_csv(tmp_path / "in.csv", index=False)
    with pytest.raises(InvalidInput) as caught:
        app.batch_scoring.score(
            uri,
            tmp_path / "in.csv",
            tmp_path / "out.parquet",
            actor="a",
            engine=engine,
            cluster=cluster,
        )
    assert "lacks column(s) 'k' that models:/demand/1 takes" in str(caught.value)
    assert str(tmp_path / "in.csv") in str(caught.value)
    assert _left_behind(tmp_path) == ["in.csv"]


def test_a_stored_version_without_the_columns_fails_before_scoring(
    app: Loopml, client: Client, regressor: tuple[str, LinearRegression], tmp_path: Path
) -> None:
    client.add_dataset("requests", _frame(10)[["id", "x"]])
    with pytest.raises(InvalidInput, match=r"requests@1 lacks column\(s\) 'k'"):
        app.batch_scoring.score(regressor[0], "requests@1", tmp_path / "o.parquet", actor="a")
    assert _runs(app) == []


def test_an_unknown_model_version_or_dataset_is_not_found(
    app: Loopml, regressor: tuple[str, LinearRegression], tmp_path: Path
) -> None:
    _frame(10).to_csv(tmp_path / "in.csv", index=False)
    with pytest.raises(NotFound, match="demand"):
        app.batch_scoring.score("models:/demand/9", tmp_path / "in.csv", tmp_path / "o", actor="a")
    with pytest.raises(NotFound, match="nope"):
        app.batch_scoring.score(regressor[0], "nope@1", tmp_path / "o.parquet", actor="a")
    with pytest.raises(NotFound, match="does not exist"):
        app.batch_scoring.score(regressor[0], tmp_path / "no.csv", tmp_path / "o", actor="a")


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("missing/out.parquet", "its folder .*missing does not exist"),
        ("", "is a folder; --output takes a file name"),
        ("in.csv", "is inside the input"),
    ],
)
def test_a_bad_output_path_is_refused_before_any_work(
    app: Loopml,
    regressor: tuple[str, LinearRegression],
    tmp_path: Path,
    output: str,
    message: str,
) -> None:
    _frame(10).to_csv(tmp_path / "in.csv", index=False)
    with pytest.raises(InvalidInput, match=message):
        app.batch_scoring.score(regressor[0], tmp_path / "in.csv", tmp_path / output, actor="a")
    assert _runs(app) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"engine": "spark"}, "engine 'spark' is not known"),
        ({"chunk_rows": 0}, "chunk_rows must be a positive integer"),
        ({"dataset_name": "a/b"}, "dataset name 'a/b' is not valid"),
    ],
)
def test_bad_options_are_refused(
    app: Loopml,
    regressor: tuple[str, LinearRegression],
    tmp_path: Path,
    kwargs: dict[str, object],
    message: str,
) -> None:
    _frame(10).to_csv(tmp_path / "in.csv", index=False)
    with pytest.raises(InvalidInput, match=message):
        app.batch_scoring.score(
            regressor[0], tmp_path / "in.csv", tmp_path / "o.parquet", actor="a", **kwargs
        )


def test_an_input_that_already_has_a_prediction_column_is_refused(
    app: Loopml, regressor: tuple[str, LinearRegression], tmp_path: Path
) -> None:
    _frame(10).assign(prediction=1.0).to_csv(tmp_path / "in.csv", index=False)
    with pytest.raises(InvalidInput, match=r"already has column.*'prediction'"):
        app.batch_scoring.score(
            regressor[0], tmp_path / "in.csv", tmp_path / "o.parquet", actor="a"
        )


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_a_failure_midway_leaves_no_file_no_version_and_no_thread(
    app: Loopml,
    regressor: tuple[str, LinearRegression],
    cluster: object,
    tmp_path: Path,
    engine: str,
) -> None:
    uri, _ = regressor
    data = _frame(400)
    data.loc[330, "x"] = np.nan  # LinearRegression refuses NaN: fails on a late chunk
    data.to_parquet(tmp_path / "in.parquet")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(InvalidInput, match=r"models:/demand/1 failed on .*Input X contains NaN"):
        app.batch_scoring.score(
            uri,
            tmp_path / "in.parquet",
            out / "scored.parquet",
            actor="a",
            chunk_rows=50,
            engine=engine,
            cluster=cluster,
        )
    assert _left_behind(out) == []
    assert app.datasets.list_datasets().items == []
    [run] = _runs(app)
    assert run.status is RunStatus.FAILED
    assert not [t for t in threading.enumerate() if t.name.startswith("loopml-score")]


def test_the_failing_chunk_is_named(
    app: Loopml, regressor: tuple[str, LinearRegression], tmp_path: Path
) -> None:
    data = _frame(400)
    data.loc[330, "x"] = np.nan
    data.to_parquet(tmp_path / "in.parquet")
    with pytest.raises(InvalidInput, match=r"rows 301-350 of .*in\.parquet"):
        app.batch_scoring.score(
            regressor[0], tmp_path / "in.parquet", tmp_path / "o.parquet", actor="a", chunk_rows=50
        )


# memory ----------------------------------------------------------------------------------
# The peak resident set from VmHWM, not getrusage's ru_maxrss: Linux keeps ru_maxrss
# across exec, so the child would start with the forking pytest process's peak.
_CHILD = """
import json, sys
from pathlib import Path
import pandas
from loopml.bootstrap import open_workspace
from loopml.config import load_settings

def peak_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

app = open_workspace(load_settings(Path(sys.argv[1])))
app.registry.load("models:/m/1")  # imports and the model: the baseline
service = app.batch_scoring
before = peak_kib()
result = service.score(
    "models:/m/1", Path(sys.argv[2]), Path(sys.argv[3]), actor="t", chunk_rows=50_000
)
peak = peak_kib()
print(json.dumps({"before_kib": before, "peak_kib": peak, "rows": result.rows}))
"""


def _big_csv(path: Path, mib: int) -> int:
    """A CSV of about ``mib`` MiB, fast: one 100,000-row block written again and again."""
    rng = np.random.default_rng(0)
    rows = 100_000
    notes = np.array([f"note {i} " * 12 for i in range(3)])  # ~90 bytes of text a row
    block = pa.table(
        {
            "id": np.arange(rows),
            "a": rng.normal(size=rows),
            "b": rng.normal(size=rows),
            "note": notes[rng.integers(0, 3, rows)],
        }
    )
    sink = pa.BufferOutputStream()
    pacsv.write_csv(block, sink)
    header, body = sink.getvalue().to_pybytes().split(b"\n", 1)
    copies = (mib << 20) // len(body) + 1
    with path.open("wb") as handle:
        handle.write(header + b"\n")
        for _ in range(copies):
            handle.write(body)
    return copies * rows


@pytest.mark.slow
def test_an_input_larger_than_the_memory_budget_is_scored_in_bounded_memory(
    tmp_path: Path,
) -> None:
    """A 1 GiB CSV scored in a child process whose peak resident memory stays well below
    the input's size, and whose growth over its baseline stays under half of it."""
    settings = init_workspace(tmp_path / "ws")
    train = pd.DataFrame({"a": np.arange(10.0), "b": np.arange(10.0) % 3})
    with Client(settings.root) as client:
        client.register_model(LinearRegression().fit(train, train["a"]), "m", sample=train)
    source = tmp_path / "big.csv"
    rows = _big_csv(source, 1024)
    size_kib = source.stat().st_size >> 10

    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _CHILD,
            str(settings.root),
            str(source),
            str(tmp_path / "o.parquet"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    assert measured["rows"] == rows
    assert measured["peak_kib"] < 0.75 * size_kib, measured
    assert measured["peak_kib"] - measured["before_kib"] < 0.5 * size_kib, measured
