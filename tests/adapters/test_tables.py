"""Reading CSV and Parquet files as record batches, against Arrow reading the whole file.

The CSV reader cuts a file into blocks at line ends and parses them on threads; tests make
the blocks tiny so that every file here is cut many times, and check that the rows, their
types and the errors are those of one Arrow read of the whole file.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import blake3
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopml.adapters import tables
from loopml.adapters.artifacts import fsspec_store
from loopml.adapters.artifacts.fsspec_store import hash_large_file
from loopml.domain.errors import InvalidInput
from loopml.ports import TableFile


def _read(path: Path) -> pa.Table:
    batches = list(tables._csv_batches(path))
    return pa.Table.from_batches(batches).combine_chunks()


def _whole(path: Path) -> pa.Table:
    """Arrow's own reading of the whole file at once, quoted line ends allowed."""
    options = pacsv.ReadOptions(use_threads=False, block_size=1 << 20)
    quoted = pacsv.ParseOptions(newlines_in_values=True)
    return pacsv.read_csv(path, read_options=options, parse_options=quoted).combine_chunks()


def _rows(n: int, start: int = 0) -> str:
    return "".join(f"{i},{i * 0.25},name{i % 7}\n" for i in range(start, start + n))


@pytest.fixture
def tiny_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tables, "_CSV_BLOCK", 64)


@pytest.mark.usefixtures("tiny_blocks")
@pytest.mark.parametrize(
    "text",
    [
        pytest.param("a,b,c\n" + _rows(500), id="plain"),
        pytest.param(("a,b,c\n" + _rows(500)).replace("\n", "\r\n"), id="crlf"),
        pytest.param("a,b,c\n" + _rows(500).rstrip("\n"), id="no-final-line-end"),
        pytest.param("\ufeffa,b,c\n" + _rows(500), id="bom"),
        pytest.param("a,b,c\n" + _rows(200) + "\n\n" + _rows(200, 200), id="empty-lines"),
        pytest.param(
            "a,b,c\n" + "".join(f'{i},{i}.5,"line\nbreak {i}"\n' for i in range(300)),
            id="quoted-line-ends-last-column",
        ),
        pytest.param(
            "a,b,c\n" + "".join(f'{i},"x\n{i}",n{i}\n' for i in range(300)),
            id="quoted-line-ends-middle-column",
        ),
        pytest.param(
            "a,b,c\n" + _rows(100) + "1,2.5," + "x" * 5_000 + "\n" + _rows(100),
            id="a-line-longer-than-a-block",
        ),
    ],
)
def test_csv_blocks_read_as_arrow_reads_the_whole_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(text.encode())
    ours, whole = _read(path), _whole(path)
    assert ours.schema == whole.schema
    assert ours.equals(whole)
    assert ours.num_rows > 100


@settings(max_examples=40)
@given(
    rows=st.lists(
        st.tuples(
            st.integers(-(10**6), 10**6),
            st.text(alphabet='ab,"\n é', min_size=0, max_size=12),
        ),
        min_size=1,
        max_size=80,
    ),
    block=st.integers(16, 300),
)
def test_any_cut_of_quoted_text_reads_the_same_rows(
    tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[int, str]], block: int
) -> None:
    def quote(text: str) -> str:
        return '"' + text.replace('"', '""') + '"'

    path = tmp_path_factory.mktemp("csv") / "q.csv"
    body = "".join(f"{n},{quote('k' + s)}\n" for n, s in rows)
    path.write_bytes(("n,s\n" + body).encode())
    old = tables._CSV_BLOCK
    tables._CSV_BLOCK = block
    try:
        ours = _read(path)
    finally:
        tables._CSV_BLOCK = old
    assert ours.to_pydict() == {"n": [n for n, _ in rows], "s": ["k" + s for _, s in rows]}


@pytest.mark.usefixtures("tiny_blocks")
def test_errors_after_the_first_block_name_the_row_and_column(tmp_path: Path) -> None:
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b,c\n" + _rows(300) + "1,2\n" + _rows(10))
    with pytest.raises(InvalidInput, match=r"ragged\.csv.*Row #302: Expected 3 columns, got 2"):
        _read(ragged)
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("a,b,c\n" + _rows(300) + "x,1.5,n\n")
    with pytest.raises(InvalidInput, match=r"column 1 'a': Row #302: .*invalid value 'x'"):
        _read(mixed)
    latin = tmp_path / "latin.csv"
    latin.write_bytes(("a,b,c\n" + _rows(300)).encode() + "1,2.5,café\n".encode("latin-1"))
    with pytest.raises(InvalidInput, match=r"column 3 'c': Row #302: .*UTF8.*iconv"):
        _read(latin)


def test_types_come_from_the_first_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tables, "_CSV_BLOCK", 1 << 10)
    path = tmp_path / "late.csv"
    path.write_text("n\n" + "\n".join(map(str, range(2_000))) + "\n2.5\n")
    with pytest.raises(InvalidInput, match=r"'n': Row #2002: .*to int64: invalid value '2\.5'"):
        _read(path)


def test_stopping_early_leaves_no_reader_thread(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a,b,c\n" + _rows(20_000))
    old = tables._CSV_BLOCK
    tables._CSV_BLOCK = 4 << 10
    try:
        batches = tables._csv_batches(path)
        next(batches)
        next(batches)
        batches.close()  # the parsing threads are stopped and joined here
    finally:
        tables._CSV_BLOCK = old
    assert not [t for t in threading.enumerate() if t.name.startswith("loopml-csv")]


def test_parquet_is_read_a_row_group_at_a_time(tmp_path: Path) -> None:
    # Arrow's pre-buffering would read every column chunk of the file into memory first
    # (here 1.2 times the file's size); a row group at a time holds about a third.
    path = tmp_path / "big.parquet"
    rng = np.random.default_rng(0)
    table = pa.table({f"x{i}": rng.random(400_000) for i in range(8)})
    pq.write_table(table, path, row_group_size=25_000, compression="none")
    size = path.stat().st_size
    before = pa.total_allocated_bytes()
    held = 0
    rows = 0
    for batch in tables._parquet_batches(path):
        rows += batch.num_rows
        held = max(held, pa.total_allocated_bytes() - before)
    assert rows == 400_000
    assert held < size / 2, (held, size)


@pytest.mark.parametrize("size", [0, 1, 999, 1_000, 1_001, 4_000, 10_007])
def test_large_files_hash_alike_whether_read_on_a_thread_or_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    monkeypatch.setattr(fsspec_store, "_LARGE_READ", 500)  # past 2 buffers: read on a thread
    monkeypatch.setattr(fsspec_store, "_SMALL_FILE", 600)  # up to this: one read, no buffer
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    assert hash_large_file(path) == blake3.blake3(data).hexdigest()
    assert hash_large_file(str(path)) == blake3.blake3(data).hexdigest()


def _small_files(root: Path, texts: list[str]) -> list[TableFile]:
    root.mkdir()
    for i, text in enumerate(texts):
        (root / f"f{i:03}.csv").write_text(text, encoding="utf-8")
    return tables.FileTableReader().files(root)


SCHEMA = pa.schema([("id", pa.int64()), ("x", pa.float64())])


def test_small_files_read_together_as_one_file(tmp_path: Path) -> None:
    files = _small_files(tmp_path / "d", ["id,x\n1,0.5\n", "id,x\n2,1\n3,1.5", "id,x\n"])
    table = tables.FileTableReader().read_together(files, SCHEMA)
    assert table is not None and table.schema.equals(SCHEMA)
    # the second file has no final line end and the third no row: neither changes a row
    assert table.to_pydict() == {"id": [1, 2, 3], "x": [0.5, 1.0, 1.5]}


@pytest.mark.parametrize(
    ("texts", "why"),
    [
        (["id,x\n1,0.5\n", "x,id\n0.5,1\n"], "another header"),
        (["id,x\n1,0.5\n", 'id,x\n"2",1\n'], "a quote"),
        (["id,x\n1,0.5\n", "id,x\n2,many\n"], "a value that does not fit the type"),
        (["id,x\n1,0.5\n", "id,x\n2,1,7\n"], "a ragged row"),
        (["id,x\n1,0.5\n", "id,x"], "no line end after the header"),
    ],
)
def test_files_that_cannot_be_read_together_are_left_to_read_alone(
    tmp_path: Path, texts: list[str], why: str
) -> None:
    files = _small_files(tmp_path / "d", texts)
    assert tables.FileTableReader().read_together(files, SCHEMA) is None, why


def test_small_files_are_read_as_they_were_hashed(tmp_path: Path) -> None:
    files = _small_files(tmp_path / "d", ["id,x\n1,0.5\n", "id,x\n2,1\n"])
    (tmp_path / "d" / "f001.csv").write_text("id,x\n9,9\n", encoding="utf-8")
    reader = tables.FileTableReader()
    # the bytes kept from the hash are parsed: the rows match the recorded digest
    assert all(f.content is not None for f in files)
    table = reader.read_together(files, SCHEMA)
    assert table is not None and table.column("id").to_pylist() == [1, 2]
    # without them (past the reader's budget), a file changed since its hash is read alone
    unkept = [dataclasses.replace(f, content=None) for f in files]
    assert reader.read_together(unkept, SCHEMA) is None


def test_a_folder_lists_its_table_files_in_the_order_of_sorted_paths(tmp_path: Path) -> None:
    root = tmp_path / "d"
    names = ["a.csv", "a-b/x.csv", "a/x.csv", "a/y.PARQUET", "a.b/z.pq", ".hidden.csv", "b/c/d.csv"]
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("id\n1\n", encoding="utf-8")
    (root / "notes.txt").write_text("not a table", encoding="utf-8")
    (root / ".csv").write_text("no suffix: a hidden file named .csv", encoding="utf-8")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "e.csv").write_text("id\n1\n", encoding="utf-8")
    (root / "linked").symlink_to(tmp_path / "elsewhere")  # a symlinked folder: not entered
    (root / "link.csv").symlink_to(root / "a.csv")  # a symlinked file: read

    listed = [f.path for f in tables.FileTableReader().files(root)]
    expected = sorted(
        p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in tables.SUFFIXES
    )
    assert listed == [p.relative_to(root).as_posix() for p in expected]
    # part by part: "a/..." before "a-b/..." (a plain string sort puts "-" before "/")
    assert listed[:4] == [".hidden.csv", "a/x.csv", "a/y.PARQUET", "a-b/x.csv"]
    assert "link.csv" in listed and not any(p.startswith("linked/") for p in listed)
