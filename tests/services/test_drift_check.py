"""DriftCheckService on real files: the local engine, Dask (a real process cluster) and
``Reference.drift`` on the table in memory agree; the local engine holds a batch, not the
file; prediction-log segments are read through their ``in.`` prefix; bad input is named."""

from __future__ import annotations

import faulthandler
import json
import os
import sys
import tracemalloc
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from loopml.adapters.prediction_log import ParquetPredictionSink
from loopml.bootstrap import Loopml
from loopml.client import Client
from loopml.domain.drift import DriftMethod, FeatureDrift
from loopml.domain.errors import ConfigError, InvalidInput, NotFound
from loopml.domain.predictions import PredictionRecord, Route
from loopml.services import drift_check, drift_dask, drift_files
from loopml.services.drift_check import DriftCheckService
from loopml.services.drift_dask import local_cluster
from loopml.stats.drift import Reference

WEATHER = ["sun", "rain", "cloud", "snow"]
SHIFTED = {"x", "weather", "score"}  # what window() changes; the rest is unchanged
DASK_SECONDS = 120  # a hung cluster dumps the stacks and ends the run instead of waiting


def window(rows: int, seed: int, *, shifted: bool) -> pa.Table:
    """Seeded rows; ``shifted`` moves x by half a std, 'snow' from 5% to 25% and makes
    20% of score missing."""
    rng = np.random.default_rng(seed)
    score = rng.normal(10, 2, rows)
    weather = rng.choice(
        WEATHER, rows, p=[0.3, 0.25, 0.2, 0.25] if shifted else [0.5, 0.3, 0.15, 0.05]
    )
    return pa.table(
        {
            "x": rng.normal(0.5 if shifted else 0.0, 1, rows),
            "amount": rng.lognormal(0, 1, rows),
            "count": rng.poisson(3, rows),
            "weather": pa.array(weather),
            "member": rng.random(rows) < 0.3,
            "score": pa.array(score, mask=(rng.random(rows) < 0.2) if shifted else None),
        }
    )


@pytest.fixture
def service(app: Loopml, client: Client) -> DriftCheckService:
    train = window(20_000, 0, shifted=False)
    label = pa.array(np.random.default_rng(9).integers(0, 2, train.num_rows))
    client.add_dataset("train", train.append_column("label", label))  # not in live data
    return DriftCheckService(app.datasets)


def reference(app: Loopml, columns: Sequence[str] | None = None) -> Reference:
    profile = app.datasets.profile(app.datasets.get("train@1"))
    return Reference.from_profile(profile, columns)


def assert_same(ours: Sequence[FeatureDrift], theirs: Sequence[FeatureDrift]) -> None:
    """Equal verdicts: counts, p-values, methods and details exactly; the figures made of
    float sums to rounding (a merge equals one pass up to float rounding)."""
    assert [c.column for c in ours] == [c.column for c in theirs]
    for a, b in zip(ours, theirs, strict=True):
        exact = (a.kind, a.rows, a.method, a.drifted, a.threshold, a.detail)
        assert exact == (b.kind, b.rows, b.method, b.drifted, b.threshold, b.detail), a.column
        assert a.score == pytest.approx(b.score, rel=1e-9, abs=1e-12), a.column
        if b.p_value is None:
            assert a.p_value is None, a.column
        else:
            assert a.p_value == pytest.approx(b.p_value, rel=1e-9), a.column
        assert a.measures.keys() == b.measures.keys()
        for key, value in a.measures.items():
            assert value == pytest.approx(b.measures[key], rel=1e-9, abs=1e-12), (a.column, key)


def write_parquet(table: pa.Table, folder: Path, files: int) -> list[Path]:
    """``table`` cut into ``files`` Parquet files of several row groups each."""
    folder.mkdir()
    size = -(-table.num_rows // files)
    paths = [folder / f"part-{i}.parquet" for i in range(files)]
    for i, path in enumerate(paths):
        pq.write_table(table.slice(i * size, size), path, row_group_size=3_000)
    return paths


def write_csv(table: pa.Table, folder: Path, files: int) -> list[Path]:
    folder.mkdir()
    size = -(-table.num_rows // files)
    paths = [folder / f"part-{i}.csv" for i in range(files)]
    for i, path in enumerate(paths):
        pacsv.write_csv(table.slice(i * size, size), path)
    return paths


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """CSV cut into blocks of a few KB, so that a test file spans many of them."""
    monkeypatch.setattr(drift_files, "CSV_BLOCK", 48 << 10)  # type inference's block
    monkeypatch.setattr(drift_check, "CSV_BLOCK", 48 << 10)  # the local engine's blocks
    monkeypatch.setattr(drift_dask, "DASK_CSV_BLOCK", 100 << 10)


@pytest.fixture(scope="module")
def cluster() -> Iterator[object]:
    """The cluster the dask engine starts by default: two single-threaded processes."""
    pytest.importorskip("distributed")
    faulthandler.dump_traceback_later(DASK_SECONDS, exit=True)
    try:
        with local_cluster(2) as local:
            yield local
    finally:
        faulthandler.cancel_dump_traceback_later()


def _worker_setting() -> tuple[dict[str, str | None], int]:
    return {name: os.environ.get(name) for name in drift_dask.WORKER_MALLOC}, os.getpid()


@pytest.mark.slow
def test_the_default_cluster_is_two_processes_that_allocate_from_the_heap(
    cluster: object,
) -> None:
    distributed = pytest.importorskip("distributed")
    with distributed.Client(cluster, set_as_default=False) as client:
        settings = client.run(_worker_setting)
        assert sorted(client.nthreads().values()) == [1, 1]
    assert [malloc for malloc, _ in settings.values()] == [drift_dask.WORKER_MALLOC] * 2
    assert len({pid for _, pid in settings.values()} - {os.getpid()}) == 2
    assert "MALLOC_MMAP_THRESHOLD_" not in os.environ  # this process is left as it was


# one verdict, three ways -------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["parquet", "csv"])
@pytest.mark.usefixtures("small_blocks")
def test_local_dask_and_in_memory_give_the_same_verdicts(
    app: Loopml, service: DriftCheckService, cluster: object, tmp_path: Path, kind: str
) -> None:
    data = window(30_000, 1, shifted=True)
    write = write_parquet if kind == "parquet" else write_csv
    write(data, tmp_path / "window", files=3)
    rows: dict[str, int] = {"local": 0, "dask": 0}

    def counted(engine: str) -> drift_files.Progress:
        return lambda n: rows.__setitem__(engine, rows[engine] + n)

    local = service.check("train", [tmp_path / "window"], progress=counted("local"))
    dask = service.check(
        "train@1", [tmp_path / "window"], engine="dask", cluster=cluster, progress=counted("dask")
    )
    in_memory = reference(app).drift(data)

    assert_same(local.columns, in_memory)
    assert_same(dask.columns, in_memory)
    assert set(local.drifted) == set(dask.drifted) == SHIFTED
    assert local.rows == dask.rows == rows["local"] == rows["dask"] == 30_000
    assert (local.files, local.reference, local.engine, dask.engine) == (
        3,
        "train@1",
        "local",
        "dask",
    )
    assert local.score == dask.score > 1.0
    # the label is in the reference only: reported, not judged, never drift
    assert local.missing_columns == dask.missing_columns == ("label",)
    label = next(c for c in local.columns if c.column == "label")
    assert (label.method, label.drifted) == (DriftMethod.NONE, False)


@pytest.mark.slow
def test_a_column_some_files_lack_is_missing_in_their_rows(
    app: Loopml, service: DriftCheckService, cluster: object, tmp_path: Path
) -> None:
    data = window(9_000, 2, shifted=False)
    folder = tmp_path / "window"
    folder.mkdir()
    pq.write_table(data.slice(0, 6_000), folder / "a.parquet", row_group_size=2_000)
    pq.write_table(data.slice(6_000).drop_columns(["weather"]), folder / "b.parquet")
    local = service.check("train@1", [folder])
    dask = service.check("train@1", [folder], engine="dask", cluster=cluster)

    # as the files unioned: the weather of b's 3,000 rows is missing
    union = pa.concat_tables(
        [data.slice(0, 6_000), data.slice(6_000).drop_columns(["weather"])],
        promote_options="default",
    )
    assert_same(local.columns, reference(app).drift(union))
    assert_same(dask.columns, local.columns)
    assert local.partial_columns == dask.partial_columns == {"weather": 3_000}
    weather = next(c for c in local.columns if c.column == "weather")
    assert (weather.method, weather.drifted) == (DriftMethod.MISSING, True)  # 0% -> 33%


# memory ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["parquet", "csv"])
def test_the_local_engine_holds_a_batch_not_the_file(
    service: DriftCheckService, tmp_path: Path, kind: str
) -> None:
    # 2,000,000 rows x 3 columns: about 40 MiB as Arrow columns. The local engine holds
    # one batch (65,536 rows: 1.5 MiB), or one CSV block (4 MiB of text and its parsed
    # columns), and reads Parquet column chunks through a 1 MiB buffer; measured 3-6 MiB
    # of Arrow memory and 2-8 MiB of Python and numpy memory. 16 MiB leaves room for
    # allocator noise; a reader that loads the file whole needs 40 MiB or more.
    bound = 16 << 20
    rows = 2_000_000
    rng = np.random.default_rng(3)
    table = pa.table(
        {
            "x": rng.normal(0, 1, rows),
            "count": rng.poisson(3, rows),
            "weather": pa.array(np.asarray(WEATHER)[rng.integers(0, 4, rows)]),
        }
    )
    path = tmp_path / f"big.{kind}"
    if kind == "parquet":
        pq.write_table(table, path, row_group_size=1_000_000)
    else:
        pacsv.write_csv(table, path)
    del table
    start = pa.total_allocated_bytes()
    arrow_peak = 0

    def probe(_rows: int) -> None:  # after every batch, while it is still held
        nonlocal arrow_peak
        arrow_peak = max(arrow_peak, pa.total_allocated_bytes() - start)

    tracemalloc.start()
    try:
        result = service.check("train@1", [path], progress=probe)
        _, python_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert result.rows == rows
    assert 0 < arrow_peak < bound, arrow_peak
    assert python_peak < bound, python_peak
    whole = pq.read_table(path) if kind == "parquet" else pacsv.read_csv(path)
    assert pa.total_allocated_bytes() - start > 2 * bound  # the probe sees a whole read
    del whole


# prediction logs ---------------------------------------------------------------------------
def _record(i: int, inputs: dict[str, list[object]]) -> PredictionRecord:
    rows = len(next(iter(inputs.values())))
    return PredictionRecord(
        request_id=f"req-{i}",
        time_ms=1_700_000_000_000 + i,
        deployment="bikes",
        model="demand",
        version=1,
        route=Route.PRODUCTION,
        inputs=inputs,
        outputs={"prediction": [float(i)] * rows},
        latency_ms=1.5,
    )


def test_prediction_log_segments_are_read_through_their_prefix(
    app: Loopml, service: DriftCheckService, tmp_path: Path
) -> None:
    data = window(2_000, 4, shifted=True).drop_columns(["member"])
    sink = ParquetPredictionSink(tmp_path / "log", segment_records=1_000, segment_seconds=60)
    try:
        for i in range(20):  # requests of 50 rows, two segments
            part = data.slice(i * 50, 50).to_pydict()
            assert sink.submit(_record(i, part))
        assert sink.flush()
        for i in range(20, 40):  # these requests do not send 'weather'
            part = data.slice(i * 50, 50).drop_columns(["weather"]).to_pydict()
            assert sink.submit(_record(i, part))
        assert sink.flush()
    finally:
        sink.close()
    segments = sorted((tmp_path / "log" / "bikes").glob("*.parquet"))
    assert len(segments) == 2
    assert "in.x" in pq.read_schema(segments[0]).names  # the layout this test relies on

    result = service.check("train@1", [tmp_path / "log" / "bikes"], prefix="in.")

    half = data.slice(1_000).drop_columns(["weather"])
    union = pa.concat_tables([data.slice(0, 1_000), half], promote_options="default")
    assert_same(result.columns, reference(app).drift(union))
    assert result.rows == 2_000
    assert result.missing_columns == ("member", "label")
    assert result.partial_columns == {"weather": 1_000}
    assert {"x", "score", "weather"} <= set(result.drifted)

    with pytest.raises(InvalidInput, match=r"look like prediction-log segments: pass --prefix"):
        service.check("train@1", segments)
    pq.write_table(pa.table({"request_id": ["req-1"], "label": [1.0]}), tmp_path / "fb.parquet")
    with pytest.raises(InvalidInput, match=r"fb\.parquet holds none of the reference's columns"):
        service.check("train@1", [*segments, tmp_path / "fb.parquet"], prefix="in.")


# bad input ---------------------------------------------------------------------------------
@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "window.csv"
    pacsv.write_csv(window(100, 5, shifted=False), path)
    return path


@pytest.mark.parametrize(
    ("ref", "error", "message"),
    [
        ("train@9", NotFound, "train"),
        ("nope@1", NotFound, "nope"),
        ("train@x", InvalidInput, "expected NAME, NAME@latest or NAME@N"),
    ],
)
def test_an_unknown_reference_is_refused(
    service: DriftCheckService, csv_file: Path, ref: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        service.check(ref, [csv_file])


def test_paths_that_do_not_hold_csv_or_parquet_are_named(
    service: DriftCheckService, tmp_path: Path, csv_file: Path
) -> None:
    with pytest.raises(NotFound, match=r"missing\.parquet does not exist"):
        service.check("train@1", [csv_file, tmp_path / "missing.parquet"])
    (tmp_path / "rows.json").write_text("[]")
    with pytest.raises(InvalidInput, match=r"rows\.json is not a CSV or Parquet file.*'\.json'"):
        service.check("train@1", [tmp_path / "rows.json"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInput, match=r"folder .*empty holds no CSV or Parquet file"):
        service.check("train@1", [tmp_path / "empty"])
    (tmp_path / "fake.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(InvalidInput, match=r"cannot read Parquet .*fake\.parquet"):
        service.check("train@1", [tmp_path / "fake.parquet"])
    (tmp_path / "blank.csv").write_bytes(b"")
    with pytest.raises(InvalidInput, match=r"blank\.csv is empty"):
        service.check("train@1", [tmp_path / "blank.csv"])
    with pytest.raises(InvalidInput, match=r"window\.csv is given twice"):
        service.check("train@1", [csv_file, tmp_path])
    with pytest.raises(InvalidInput, match="no data to check"):
        service.check("train@1", [])


def test_data_without_any_reference_column_is_refused(
    service: DriftCheckService, tmp_path: Path
) -> None:
    path = tmp_path / "other.parquet"
    pq.write_table(pa.table({"a": [1, 2], "b": ["x", "y"]}), path)
    with pytest.raises(InvalidInput, match=r"none of the reference's columns \('x', .*'a', 'b'"):
        service.check("train@1", [path])
    with pytest.raises(InvalidInput, match=r"no column starts with 'in\.'"):
        service.check("train@1", [path], prefix="in.")


def test_reference_columns_can_be_chosen(
    app: Loopml, service: DriftCheckService, csv_file: Path
) -> None:
    result = service.check("train@1", [csv_file], columns=["weather", "x"])
    assert [c.column for c in result.columns] == ["weather", "x"]
    assert result.missing_columns == ()
    with pytest.raises(NotFound, match="height"):
        service.check("train@1", [csv_file], columns=["height"])
    with pytest.raises(InvalidInput, match="columns is empty"):
        service.check("train@1", [csv_file], columns=[])


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"engine": "spark"}, "engine 'spark' is not known"),
        ({"workers": 0}, "workers must be a positive integer"),
        ({"prefix": None}, "prefix must be text"),
        ({"thresholds": {"psi": 0.3}}, "thresholds must be DriftThresholds, got dict"),
    ],
)
def test_bad_options_are_refused(
    service: DriftCheckService, csv_file: Path, option: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        service.check("train@1", [csv_file], **option)  # type: ignore[arg-type]


def test_the_dask_engine_without_dask_says_how_to_install_it(
    service: DriftCheckService, csv_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed fails
    with pytest.raises(ConfigError, match=r"pip install 'loopml\[dask\]'"):
        service.check("train@1", [csv_file], engine="dask")
    assert service.check("train@1", [csv_file]).rows == 100  # the local engine needs none


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["local", "dask"])
@pytest.mark.usefixtures("small_blocks")
def test_a_bad_value_past_the_first_block_names_the_file(
    service: DriftCheckService, cluster: object, tmp_path: Path, engine: str
) -> None:
    path = tmp_path / "late.csv"
    good = "\n".join(f"{i % 7},{i * 0.5}" for i in range(20_000))  # ~200 KB of numbers
    path.write_text(f"count,x\n{good}\nmany,1.0\n")
    with pytest.raises(InvalidInput, match=r"cannot read CSV .*late\.csv.*many"):
        service.check("train@1", [path], engine=engine, cluster=cluster)


def test_the_result_as_json(service: DriftCheckService, csv_file: Path) -> None:
    result = service.check("train@1", [csv_file])
    data = json.loads(json.dumps(result.to_dict()))
    assert (data["reference"], data["rows"], data["files"], data["engine"]) == (
        "train@1",
        100,
        1,
        "local",
    )
    assert [c["column"] for c in data["columns"]] == [
        "x", "amount", "count", "weather", "member", "score", "label"
    ]  # fmt: skip
    assert (data["drifted"], data["missing_columns"]) == ([], ["label"])
    assert data["score"] == result.score < 1.0
