"""Dataset versions end to end over in-memory stores and real files."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loopml.adapters.memory.blobs import MemoryBlobStore
from loopml.adapters.memory.datasets import MemoryDatasetStore
from loopml.adapters.memory.stores import MemoryDatabase
from loopml.adapters.stat_index import StatIndex
from loopml.adapters.tables import FileTableReader
from loopml.client import Client
from loopml.domain.artifacts import Digest
from loopml.domain.errors import InvalidInput, NotFound, StorageError
from loopml.domain.schema_file import schema_to_toml
from loopml.services.datasets import DatasetService


class _Clock:
    def now_ms(self) -> int:
        return 1_700_000_000_000


@pytest.fixture
def blobs() -> MemoryBlobStore:
    return MemoryBlobStore()


@pytest.fixture
def service(blobs: MemoryBlobStore, tmp_path: Path) -> DatasetService:
    store = MemoryDatasetStore(MemoryDatabase())
    index = StatIndex(tmp_path / "index")
    return DatasetService(store, blobs, FileTableReader(), index, _Clock(), chunk_rows=100)


def _frame(rows: int, start: int = 0) -> pd.DataFrame:
    ids = np.arange(start, start + rows)
    return pd.DataFrame({"id": ids, "x": ids * 0.5, "city": np.where(ids % 2, "a", "b")})


def test_identical_content_returns_the_existing_version_and_stores_nothing(
    service: DatasetService, blobs: MemoryBlobStore, tmp_path: Path
) -> None:
    path = tmp_path / "d.parquet"
    _frame(250).to_parquet(path)
    first = service.add_path("d", path, "ana")
    assert (first.created, first.new_chunks, first.version.rows) == (True, 3, 250)
    stored = len(blobs.objects)
    again = service.add_path("d", path, "ana")
    assert not again.created
    assert again.version == first.version
    assert (again.new_chunks, again.new_bytes) == (0, 0)
    assert len(blobs.objects) == stored


def test_chunks_use_dictionaries_where_values_repeat_and_plain_values_elsewhere(
    blobs: MemoryBlobStore, tmp_path: Path
) -> None:
    rows = 4_096
    rng = np.random.default_rng(0)
    table = pa.table(
        {
            "hour": rng.integers(0, 24, rows),  # a short range: a dictionary pays
            "id": np.arange(rows) * 7_919,  # distinct: a dictionary costs 2x, then falls back
            "temp": rng.normal(size=rows),
            "city": rng.choice(["lyon", "oslo"], rows),
            "ok": rng.random(rows) < 0.5,  # booleans: packed in bits, no dictionary
            "small": rng.integers(0, 3, rows).astype(np.int8),
        }
    )
    store = MemoryDatasetStore(MemoryDatabase())
    service = DatasetService(store, blobs, FileTableReader(), StatIndex(tmp_path), _Clock())
    added = service.add_table("t", table, "ana")
    [chunk] = service.manifest(added.version).chunks
    meta = pq.ParquetFile(pa.BufferReader(blobs.get_bytes(chunk.digest))).metadata.row_group(0)
    dictionary = {
        meta.column(i).path_in_schema
        for i in range(meta.num_columns)
        if "RLE_DICTIONARY" in meta.column(i).encodings
    }
    assert dictionary == {"hour", "city", "small"}
    assert service.read("t@1").equals(table)


def test_appending_rows_stores_only_the_new_chunks(
    service: DatasetService, blobs: MemoryBlobStore, tmp_path: Path
) -> None:
    path = tmp_path / "d.csv"
    _frame(250).to_csv(path, index=False)
    service.add_path("d", path, "ana")
    pd.concat([_frame(250), _frame(180, start=250)]).to_csv(path, index=False)
    appended = service.add_path("d", path, "ana", message="more rows")
    # rows 0-199 are two unchanged chunks; 200-299, 300-399, 400-429 are new
    assert (appended.reused_chunks, appended.new_chunks) == (2, 3)
    assert appended.version.parent == 1
    assert appended.version.rows == 430
    table = service.read("d@2")
    assert table.column("id").to_pylist() == list(range(430))


def test_a_folder_is_the_files_in_path_order_and_keeps_their_hashes(
    service: DatasetService, tmp_path: Path
) -> None:
    (tmp_path / "part").mkdir()
    _frame(30, start=100).to_csv(tmp_path / "part" / "b.csv", index=False)
    _frame(40).to_parquet(tmp_path / "a.parquet")
    (tmp_path / "notes.txt").write_text("not data")
    result = service.add_path("d", tmp_path, "ana")
    manifest = service.manifest(result.version)
    assert [f.path for f in manifest.files] == ["a.parquet", "part/b.csv"]
    assert [(c.file, c.rows) for c in manifest.chunks] == [("a.parquet", 40), ("part/b.csv", 30)]
    assert service.read("d").column("id").to_pylist()[38:42] == [38, 39, 100, 101]


def test_export_writes_one_parquet_file_with_every_row(
    service: DatasetService, tmp_path: Path
) -> None:
    service.add_table("d", pa.Table.from_pandas(_frame(250), preserve_index=False), "ana")
    dest = tmp_path / "out.parquet"
    version = service.export("d@1", dest)
    assert pq.read_table(dest).equals(service.read("d@1"))
    assert version.rows == 250
    assert [p.name for p in tmp_path.iterdir()] == ["out.parquet"]  # no temp file left


def test_sdk_log_dataset_records_the_version_as_a_run_input(client: Client) -> None:
    with client.start_run("e") as run:
        version = run.log_dataset("bikes", _frame(10))
    [ref] = client.get_run(run.id).inputs
    assert (ref.name, ref.version, ref.digest) == ("bikes", 1, version.digest)
    assert client.read_dataset("bikes@1").num_rows == 10
    assert client.add_dataset("bikes", np.arange(6).reshape(3, 2)).version.columns[1].name == "c1"


# bad input: each error names the file and what to do; nothing is half-added ---------------
def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("ragged.csv", b"a,b\n1,2\n3,4,5\n", r"ragged\.csv.*Expected 2 columns.*ragged rows"),
        ("latin.csv", "a,b\ncafé,1\n".encode("latin-1"), r"latin\.csv.*UTF-?8.*iconv"),
        ("empty.csv", b"", r"empty\.csv is empty; a CSV file needs at least a header"),
        ("dupes.csv", b"a,b,a\n1,2,3\n", r"dupes\.csv has two columns named 'a'.*column 3"),
        ("trunc.parquet", b"PAR1" + b"\0" * 20, r"trunc\.parquet.*truncated or not Parquet"),
        ("notes.txt", b"x", r"notes\.txt is not a CSV or Parquet file"),
    ],
)
def test_unreadable_files_are_refused_clearly_and_add_nothing(
    service: DatasetService,
    blobs: MemoryBlobStore,
    tmp_path: Path,
    name: str,
    content: bytes,
    message: str,
) -> None:
    path = _write(tmp_path / name, content)
    with pytest.raises(InvalidInput, match=message):
        service.add_path("d", path, "ana")
    assert service.store.find_dataset("d") is None
    assert blobs.objects == {}


def test_a_column_of_mixed_types_names_the_column_and_the_value(
    service: DatasetService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Types are inferred from the first block; a later value that does not fit is refused.
    monkeypatch.setattr("loopml.adapters.tables._CSV_BLOCK", 1 << 10)
    rows = "\n".join(str(i) for i in range(2_000))
    path = _write(tmp_path / "mixed.csv", f"n\n{rows}\nabc\n".encode())
    with pytest.raises(InvalidInput, match=r"mixed\.csv.*'n'.*abc.*clean the column"):
        service.add_path("d", path, "ana")
    assert service.store.find_dataset("d") is None


def test_a_dataframe_column_of_mixed_types_is_refused_with_its_name(client: Client) -> None:
    frame = pd.DataFrame({"ok": [1, 2], "mixed": [1, "two"]})
    with pytest.raises(InvalidInput, match=r"column mixed.*values of one type"):
        client.add_dataset("d", frame)


def test_files_of_a_folder_must_share_their_columns(
    service: DatasetService, tmp_path: Path
) -> None:
    _write(tmp_path / "a.csv", b"a,b\n1,2\n")
    _write(tmp_path / "b.csv", b"a,c\n1,x\n")
    with pytest.raises(InvalidInput, match=r"b\.csv does not match.*'b' is missing.*'c' is extra"):
        service.add_path("d", tmp_path, "ana")


def test_missing_paths_and_bad_names_are_refused(service: DatasetService, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match=r"nope\.csv does not exist"):
        service.add_path("d", tmp_path / "nope.csv", "ana")
    with pytest.raises(InvalidInput, match=r"dataset name '\.\./d' is not valid"):
        service.add_path("../d", tmp_path, "ana")
    with pytest.raises(InvalidInput, match=r"version 'x'.*NAME@N"):
        service.get("d@x")


# packs of small files ---------------------------------------------------------------------
def _folder(root: Path, files: int, rows: int = 5, first: int = 0) -> Path:
    """CSV files ``f{first:03}.csv`` on, ``rows`` rows each, their ids in file order."""
    root.mkdir(exist_ok=True)
    for i in range(first, first + files):
        _frame(rows, start=rows * i).to_csv(root / f"f{i:03}.csv", index=False)
    return root


def test_small_files_share_chunks_and_read_back_in_path_order(
    service: DatasetService, tmp_path: Path
) -> None:
    root = _folder(tmp_path / "tree", 400, rows=2)
    result = service.add_path("d", root, "ana")
    manifest = service.manifest(result.version)
    assert len(manifest.files) == 400 and result.version.rows == 800
    assert len(manifest.chunks) < 40  # a chunk per file would be 400
    assert sum(c.rows for c in manifest.chunks) == 800
    assert service.read("d").to_pandas().equals(_frame(800))
    assert service.profile(result.version).get_column("id").distinct == 800


def test_editing_one_small_file_stores_only_its_pack_again(
    service: DatasetService, tmp_path: Path
) -> None:
    root = _folder(tmp_path / "tree", 400, rows=2)
    first = service.add_path("d", root, "ana")
    before = service.manifest(first.version).chunks
    edited = "f250.csv"
    # the pack holding it: the one whose first file comes last at or before it
    pack = max(c.file for c in before if c.file <= edited)
    frame = _frame(2, start=500)
    frame.loc[0, "x"] = -1.0
    frame.to_csv(root / edited, index=False)

    second = service.add_path("d", root, "ana")
    after = service.manifest(second.version).chunks
    new = [c for c in after if c.digest not in {b.digest for b in before}]
    assert new and {c.file for c in new} <= {pack, edited}
    assert second.new_chunks == len(new) < len(after) // 3
    assert service.read("d@2").column("x").to_pylist()[500] == -1.0


def test_appending_files_keeps_the_chunks_of_every_earlier_pack_but_the_last(
    service: DatasetService, tmp_path: Path
) -> None:
    root = _folder(tmp_path / "tree", 400, rows=2)
    before = service.manifest(service.add_path("d", root, "ana").version).chunks
    last = before[-1].file
    _folder(root, 100, rows=2, first=400)
    second = service.add_path("d", root, "ana")
    after = service.manifest(second.version).chunks
    assert [c.digest for c in after if c.file < last] == [c.digest for c in before if c.file < last]
    assert second.version.rows == 1_000
    assert service.read("d@2").to_pandas().equals(_frame(1_000))


def test_a_bad_value_in_a_small_file_names_that_file_and_adds_nothing(
    service: DatasetService, blobs: MemoryBlobStore, tmp_path: Path
) -> None:
    root = _folder(tmp_path / "tree", 300, rows=2)
    (root / "f150.csv").write_text("id,x,city\n300,oops,a\n301,1.0,b\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match=r"f150\.csv does not match.*'x' is string"):
        service.add_path("d", root, "ana")
    assert service.store.find_dataset("d") is None


def test_small_files_with_quotes_are_read_right(service: DatasetService, tmp_path: Path) -> None:
    root = _folder(tmp_path / "tree", 60, rows=2)
    (root / "f030.csv").write_text(
        'id,x,city\n60,30.0,"b, or ""a"""\n61,30.5,a\n', encoding="utf-8"
    )
    service.add_path("d", root, "ana")
    assert service.read("d").column("city").to_pylist()[60:62] == ['b, or "a"', "a"]


# status -----------------------------------------------------------------------------------
def test_status_rehashes_only_files_whose_stat_changed(
    service: DatasetService, tmp_path: Path
) -> None:
    root = _folder(tmp_path / "tree", 20)
    service.add_path("d", root, "ana")
    clean = service.status("d")
    assert clean.clean and (clean.unchanged, clean.rehashed) == (20, 0)

    _frame(6).to_csv(root / "f003.csv", index=False)  # modified
    (root / "f007.csv").unlink()  # removed
    _frame(2).to_csv(root / "new.csv", index=False)  # added
    os.utime(root / "f010.csv", ns=(1, 1))  # touched, same content
    status = service.status("d")
    assert (status.added, status.removed, status.modified) == (
        ("new.csv",),
        ("f007.csv",),
        ("f003.csv",),
    )
    assert (status.unchanged, status.rehashed) == (18, 3)  # f003, new, f010 hashed


def test_status_without_an_index_compares_with_the_manifest(
    service: DatasetService, tmp_path: Path
) -> None:
    root = _folder(tmp_path / "tree", 3)
    service.add_path("d", root, "ana")
    shutil.rmtree(tmp_path / "index")  # e.g. the version was added on another machine
    _frame(9).to_csv(root / "f001.csv", index=False)
    status = service.status("d")
    assert (status.modified, status.unchanged, status.rehashed) == (("f001.csv",), 2, 3)


def test_status_of_a_version_not_added_from_a_folder_asks_for_one(
    service: DatasetService,
) -> None:
    service.add_table("d", pa.table({"a": [1]}), "ana")
    with pytest.raises(InvalidInput, match=r"d@1 was not added from a folder.*status d PATH"):
        service.status("d")


def test_a_damaged_index_only_makes_status_slower_never_wrong(
    service: DatasetService, tmp_path: Path
) -> None:
    root = _folder(tmp_path / "tree", 4)
    service.add_path("d", root, "ana")
    [index_file] = (tmp_path / "index").iterdir()
    index_file.write_bytes(index_file.read_bytes()[:-7])  # truncated
    (root / "f002.csv").unlink()
    status = service.status("d")
    assert (status.removed, status.unchanged, status.rehashed) == (("f002.csv",), 3, 3)


# diff -------------------------------------------------------------------------------------
def test_diff_counts_rows_and_reads_only_chunks_that_differ(service: DatasetService) -> None:
    base = _frame(250)
    service.add_table("d", pa.Table.from_pandas(base, preserve_index=False), "ana")
    grown = pd.concat([base, _frame(60, start=250)])
    service.add_table("d", pa.Table.from_pandas(grown, preserve_index=False), "ana")
    diff = service.diff("d@1", "d@2")
    # rows 0-199 are two chunks both versions hold: counted unchanged without being read
    assert (diff.rows.added, diff.rows.removed, diff.rows.unchanged) == (60, 0, 250)
    assert diff.rows.skipped_chunks == 2
    assert diff.columns == ()


def test_diff_by_key_tells_changed_rows_from_added_and_removed(service: DatasetService) -> None:
    base = _frame(10)
    service.add_table("d", pa.Table.from_pandas(base, preserve_index=False), "ana")
    edited = base[base.id != 3].copy()  # id 3 removed
    edited.loc[edited.id == 5, "x"] = 99.0  # id 5 changed
    edited = pd.concat([edited, _frame(2, start=100)])  # ids 100, 101 added
    edited["new"] = 1
    service.add_table("d", pa.Table.from_pandas(edited, preserve_index=False), "ana")
    diff = service.diff("d@1", "d@2", key=["id"])
    rows = diff.rows
    assert (rows.added, rows.removed, rows.changed, rows.unchanged) == (2, 1, 1, 8)
    assert rows.examples == {"added": ("100", "101"), "changed": ("5",)}
    assert [(c.name, c.change) for c in diff.columns] == [("new", "added")]
    with pytest.raises(InvalidInput, match=r"key column\(s\) 'new' are not in both"):
        service.diff("d@1", "d@2", key=["new"])


def test_without_a_key_rows_compare_as_a_multiset(service: DatasetService) -> None:
    service.add_table("d", pa.table({"a": [1, 1, 1, 2, None]}), "ana")
    service.add_table("d", pa.table({"a": [1, 1, 2, 2, None, 0]}), "ana")
    rows = service.diff("d@1", "d@2").rows
    assert (rows.added, rows.removed, rows.unchanged) == (2, 1, 4)


def test_add_stores_a_profile_over_every_chunk(service: DatasetService) -> None:
    frame = _frame(250)  # three chunks of at most 100 rows
    frame.loc[7, "x"] = None
    version = service.add_table("d", pa.Table.from_pandas(frame, preserve_index=False), "a")
    profile = service.profile(version.version)
    x = profile.get_column("x")
    assert (profile.rows, x.count, x.nulls) == (250, 249, 1)
    assert x.max == 124.5 and x.mean == pytest.approx(frame.x.mean())
    assert dict(profile.get_column("city").top) == {"a": 125, "b": 125}


def test_a_csv_and_a_parquet_file_of_the_same_rows_are_one_version_with_one_profile(
    service: DatasetService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tiny CSV blocks: the two files reach the chunks in batches cut at other rows; 20,000
    # distinct floats are past the exact limit, so the profile's sketches see those cuts
    # unless they summarise each chunk whole.
    monkeypatch.setattr("loopml.adapters.tables._CSV_BLOCK", 256)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "id": np.arange(20_000),
            "x": rng.normal(size=20_000),
            "s": np.char.add("k", rng.integers(0, 500, 20_000).astype(str)),
        }
    )
    frame.to_csv(tmp_path / "d.csv", index=False)
    pq.write_table(
        pa.Table.from_pandas(frame, preserve_index=False),
        tmp_path / "d.parquet",
        row_group_size=3_333,
    )
    from_csv = service.add_path("d", tmp_path / "d.csv", "ana")
    from_parquet = service.add_path("e", tmp_path / "d.parquet", "ana")
    assert from_csv.version.digest == from_parquet.version.digest
    assert service.profile(from_csv.version) == service.profile(from_parquet.version)
    assert service.read("d@1").equals(service.read("e@1"))


def test_identical_chunks_of_one_add_are_stored_and_counted_once(
    service: DatasetService, blobs: MemoryBlobStore
) -> None:
    # Chunks are encoded and stored on several threads at once: two copies of one chunk
    # may both reach the store as new, yet the second is reused, as when stored in turn.
    result = service.add_table("d", pa.table({"a": [7] * 1_000, "b": ["x"] * 1_000}), "ana")
    assert (result.new_chunks, result.reused_chunks) == (1, 9)
    [chunk] = {c.digest: c for c in service.manifest(result.version).chunks}.values()
    assert result.new_bytes == chunk.size == len(blobs.objects[chunk.digest])


def test_progress_counts_every_chunk_in_order(service: DatasetService, tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    _frame(1_050).to_csv(path, index=False)
    seen: list[int] = []
    service.add_path("d", path, "ana", progress=seen.append)
    assert seen == [100] * 10 + [50]


class _FailingBlobs(MemoryBlobStore):
    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.calls = 0
        self.fail_at = fail_at

    def store_bytes(self, data: bytes) -> tuple[Digest, bool]:
        self.calls += 1
        if self.calls == self.fail_at:
            raise StorageError("the disk is full")
        return super().store_bytes(data)


def test_a_chunk_that_cannot_be_stored_fails_the_add_and_stops_the_threads(
    tmp_path: Path,
) -> None:
    blobs = _FailingBlobs(fail_at=5)
    store = MemoryDatasetStore(MemoryDatabase())
    service = DatasetService(
        store, blobs, FileTableReader(), StatIndex(tmp_path / "i"), _Clock(), chunk_rows=100
    )
    _frame(5_000).to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(StorageError, match="the disk is full"):
        service.add_path("d", tmp_path / "d.csv", "ana")
    assert store.find_dataset("d") is None
    assert blobs.calls < 20  # the chunks after the failure were not encoded
    assert not [
        t for t in threading.enumerate() if t.name.startswith(("loopml-chunk", "loopml-csv"))
    ]


def test_diff_ranks_the_columns_whose_statistics_moved(service: DatasetService) -> None:
    base = _frame(300)
    service.add_table("d", pa.Table.from_pandas(base, preserve_index=False), "a")
    moved = base.assign(x=base.x + 2 * base.x.std(), city="a")  # x shifts; city loses "b"
    service.add_table("d", pa.Table.from_pandas(moved, preserve_index=False), "a")
    moves = service.diff("d@1", "d@2").moves
    assert [m.column for m in moves] == ["x", "city"]
    assert moves[0].score == pytest.approx(2.0, rel=0.05)  # Wasserstein in std units
    assert moves[1].score == pytest.approx(0.5)  # half the rows changed category


def test_the_sdk_twin_of_the_linter_takes_frames_paths_and_schema_files(
    client: Client, tmp_path: Path
) -> None:
    client.add_dataset("d", _frame(50))
    schema = client.infer_schema("d", key=["id"])
    assert client.validate_data(_frame(50), schema).ok
    bad = _frame(50).assign(city="z")
    report = client.validate_data(bad, schema)
    assert not report.ok
    assert [(f.check.value, f.column) for f in report.errors] == [("unseen_category", "city")]
    schema_file = tmp_path / "d.toml"
    schema_file.write_text(schema_to_toml(schema))
    bad.to_csv(tmp_path / "bad.csv", index=False)
    assert not client.validate_data(tmp_path / "bad.csv", schema_file).ok
