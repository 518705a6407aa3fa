"""Batch scoring on Dask: the local engine's scoring, on each partition of a Dask DataFrame.

Identical results are the point, so each step is the local engine's own:

- **Reading.** Partitions are read on the workers by Arrow, as the local engine reads:
  CSV files are cut into blocks at line ends by ``dask.bytes.read_bytes`` (what
  ``read_csv`` does) and each block is parsed with the column types the local engine
  inferred; Parquet files give one partition per row group (``dask.dataframe.from_map``).
  Not ``read_csv``: its pandas parser's missing-value rules differ from Arrow's (an empty
  or ``NA`` text field becomes missing there, stays text here), so values would differ.
  Not ``read_parquet``: with pandas 3.1 it warns on every partition (an ``inplace``
  deprecation) and its ``filesystem="arrow"`` reader fails.
- **Scoring.** Partitions hold Arrow-backed columns (``pd.ArrowDtype``), so a partition
  goes back to Arrow losslessly, and ``map_partitions`` calls :meth:`Scorer.score_table`
  on it, the function the local engine calls on each chunk.
- **Output.** The scored partitions come back in order, a few in flight at a time
  (memory stays bounded), as Arrow tables of the local engine's types; the caller writes
  and records them exactly as the local engine's chunks.

Without a cluster, a ``distributed.LocalCluster`` of ``workers`` single-threaded processes
(the model holds the GIL) is started for the call and closed after it. Dask is an
optional dependency (``pip install 'loopml[dask]'``), imported on first use.
"""

from __future__ import annotations

import logging
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from loopml.domain.errors import ConfigError, InvalidInput, LoopmlError
from loopml.services.scoring import Scorer

_BLOCKSIZE = 32 << 20  # bytes of CSV per partition
_DEFAULT_WORKERS = 2


@dataclass(frozen=True)
class DaskInput:
    """Files of one format, named as the user named them, and the Arrow schema the local
    engine reads from them (which the partitions are parsed to)."""

    text: str
    paths: tuple[Path, ...]
    kind: Literal["csv", "parquet"]
    schema: pa.Schema


def dask_tables(
    source: DaskInput,
    scorer: Scorer,
    *,
    cluster: object | None = None,
    workers: int | None = None,
) -> Iterator[pa.Table]:
    """The scored partitions of ``source``, in order, as Arrow tables."""
    dask, dd, distributed = _import_dask()
    own = None
    if cluster is None:
        own = distributed.LocalCluster(
            n_workers=workers or _DEFAULT_WORKERS,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
    try:
        with distributed.Client(own or cluster, set_as_default=False) as client:
            frame = _read(dask, dd, source)
            # One key for the model: shipped to each worker once, not with every task.
            model = dask.delayed(scorer, name=f"loopml-scorer-{uuid.uuid4().hex}", traverse=False)
            scored = frame.map_partitions(
                _score_partition, model, meta=frame._meta, enforce_metadata=False
            )
            window = 2 * max(1, sum(client.nthreads().values()))
            yield from _in_order(client, scored.to_delayed(), window, source)
    finally:
        if own is not None:
            own.close()


def _read(dask: Any, dd: Any, source: DaskInput) -> Any:
    """The input as a Dask DataFrame of Arrow-backed columns of ``source.schema``."""
    meta = _frame(source.schema.empty_table())
    paths = [str(p) for p in source.paths]
    if source.kind == "parquet":
        groups = [(p, i) for p in paths for i in range(pq.ParquetFile(p).num_row_groups)]
        return dd.from_map(_read_row_group, groups, meta=meta, enforce_metadata=False)
    _, files = dask.bytes.read_bytes(paths, delimiter=b"\n", blocksize=_BLOCKSIZE, sample=False)
    parse = dask.delayed(_parse_csv, pure=True)
    parts = []
    for path, blocks in zip(source.paths, files, strict=True):
        header = _header(path)
        parts += [
            parse(block, b"" if i == 0 else header, source.schema, str(path))
            for i, block in enumerate(blocks)
        ]
    return dd.from_delayed(parts, meta=meta, verify_meta=False)


def _read_row_group(group: tuple[str, int]) -> pd.DataFrame:
    """On a worker: one row group, read by Arrow as the local engine reads the file."""
    path, number = group
    try:
        return _frame(pq.ParquetFile(path).read_row_group(number))
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidInput(f"cannot read Parquet {path}: {exc}") from exc


def _header(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.readline()


def _parse_csv(block: bytes, header: bytes, schema: pa.Schema, where: str) -> pd.DataFrame:
    """On a worker: one block of lines (the file's header line put back in front) parsed
    as the local engine parses the file: Arrow's defaults, the types it inferred."""
    try:
        table = pacsv.read_csv(
            pa.BufferReader(header + block),
            read_options=pacsv.ReadOptions(use_threads=False),
            convert_options=pacsv.ConvertOptions(column_types=schema, include_columns=schema.names),
        )
    except pa.ArrowInvalid as exc:
        raise InvalidInput(f"cannot read CSV {where}: {exc}") from exc
    return _frame(table.cast(schema))


def _frame(table: pa.Table) -> pd.DataFrame:
    frame: pd.DataFrame = table.to_pandas(types_mapper=pd.ArrowDtype)
    return frame


def _table(frame: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)


def _score_partition(frame: pd.DataFrame, scorer: Scorer, partition_info: Any = None) -> Any:
    """On a worker: the partition scored by the local engine's own function."""
    number = "?" if partition_info is None else partition_info.get("number", "?")
    return _frame(scorer.score_table(_table(frame), f"partition {number}"))


def _in_order(client: Any, parts: list[Any], window: int, source: DaskInput) -> Iterator[pa.Table]:
    """Compute ``parts`` with at most ``window`` in flight, yielding each in order."""
    waiting = iter(enumerate(parts))
    flight: deque[tuple[int, Any]] = deque()

    def submit() -> None:
        for number, part in waiting:
            flight.append((number, client.compute(part)))
            return

    for _ in range(window):
        submit()
    try:
        while flight:
            number, future = flight.popleft()
            try:
                frame = future.result()
            except LoopmlError:
                raise
            except (ValueError, TypeError, KeyError, OSError, pa.ArrowException) as exc:
                raise InvalidInput(
                    f"scoring partition {number} of {source.text} on Dask failed: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            submit()
            yield _table(frame)
    finally:
        client.cancel([future for _, future in flight])


def _import_dask() -> tuple[Any, Any, Any]:
    try:
        import dask
        import dask.bytes
        import dask.dataframe as dd
        import distributed
    except ImportError as exc:
        raise ConfigError(
            "the dask engine needs Dask, an optional dependency: pip install 'loopml[dask]'"
        ) from exc
    return dask, dd, distributed
