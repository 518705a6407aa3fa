"""The Dask engine of ``loopml monitor drift``: one task per file part, merged in order.

Each Parquet row group and each ``DASK_CSV_BLOCK`` bytes of CSV is a task that tallies a
:class:`~loopml.stats.drift.DriftWindow` on a worker (the Reference scattered once); the
small windows (a few KB per column) are merged on the client in part order, at most two
per worker thread in flight, so every run gives the same figures. Dask is an optional
dependency (``pip install 'loopml[dask]'``), imported on first use; without a cluster,
:func:`local_cluster` starts ``workers`` single-threaded processes for the call.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections import deque
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from loopml.domain.errors import ConfigError, InvalidInput, LoopmlError
from loopml.services.drift_files import (
    DataFile,
    FilePart,
    Progress,
    csv_batches,
    csv_parts,
    parquet_batches,
    parquet_error,
    parquet_file,
)
from loopml.stats.drift import DriftWindow, Reference

DASK_CSV_BLOCK = 32 << 20  # bytes of CSV per Dask task
DEFAULT_WORKERS = 2
WORKER_MALLOC = {  # glibc settings of the workers of our own cluster (local_cluster)
    "MALLOC_TRIM_THRESHOLD_": str(64 << 20),
    "MALLOC_MMAP_THRESHOLD_": str(32 << 20),
}


# the dask engine ---------------------------------------------------------------------
def _parts(files: list[DataFile]) -> list[FilePart]:
    """One part per Parquet row group and per ``DASK_CSV_BLOCK`` bytes of CSV."""
    parts: list[FilePart] = []
    for file in files:
        if file.kind == "csv":
            parts += csv_parts(file, DASK_CSV_BLOCK)
            continue
        try:
            with parquet_file(file.path) as handle:
                groups = handle.num_row_groups
        except (pa.ArrowInvalid, OSError) as exc:
            raise parquet_error(file.path, exc) from exc
        parts += [FilePart(file, row_group=i) for i in range(groups)]
    return parts


def _tally_part(part: FilePart, reference: Reference) -> DriftWindow:
    """On a worker: a window of ``part``'s rows."""
    window = reference.window()
    if part.file.kind == "parquet":
        batches = parquet_batches(part.file, part.row_group)
    else:
        batches = csv_batches(part)
    for batch in batches:
        window.update(batch)
    return window


def dask_window(
    distributed: Any,
    reference: Reference,
    files: list[DataFile],
    cluster: object | None,
    workers: int,
    progress: Progress | None,
) -> tuple[DriftWindow, dict[str, int]]:
    parts = _parts(files)
    own = None
    if cluster is None:
        own = local_cluster(workers)
    try:
        with distributed.Client(own or cluster, set_as_default=False) as client:
            shared = client.scatter(reference, hash=False)  # shipped once, not per task
            token = uuid.uuid4().hex
            flight = 2 * max(1, sum(client.nthreads().values()))
            window = reference.window()
            filled: dict[str, int] = {}
            for part, tallied in _in_order(client, parts, shared, token, flight):
                window.merge(tallied)
                for column in part.file.absent:
                    filled[column] = filled.get(column, 0) + tallied.rows
                if progress is not None:
                    progress(tallied.rows)
            return window, filled
    finally:
        if own is not None:
            own.close()


def _in_order(
    client: Any, parts: list[FilePart], shared: Any, token: str, flight: int
) -> Iterator[tuple[FilePart, DriftWindow]]:
    """Each part's window, in part order (so the merge is the same on every run), with at
    most ``flight`` tasks submitted ahead."""
    waiting = iter(enumerate(parts))
    running: deque[tuple[FilePart, Any]] = deque()

    def submit() -> None:
        for number, part in waiting:
            key = f"loopml-drift-{token}-{number}"
            running.append((part, client.submit(_tally_part, part, shared, key=key)))
            return

    for _ in range(flight):
        submit()
    try:
        while running:
            part, future = running.popleft()
            try:
                tallied = future.result()
            except LoopmlError:
                raise
            except (ValueError, TypeError, KeyError, OSError, pa.ArrowException) as exc:
                raise InvalidInput(
                    f"tallying {_where(part)} on Dask failed: {type(exc).__name__}: {exc}"
                ) from exc
            submit()
            yield part, tallied
    finally:
        client.cancel([future for _, future in running])


def _where(part: FilePart) -> str:
    if part.file.kind == "parquet":
        return f"row group {part.row_group} of {part.file.path}"
    return f"bytes {part.start:,}-{part.end:,} of {part.file.path}"


def local_cluster(workers: int = DEFAULT_WORKERS) -> Any:
    """The ``distributed.LocalCluster`` that :meth:`DriftCheckService.check` starts when
    given no cluster: ``workers`` single-threaded processes whose allocator keeps memory
    between batches (close it after use, or use it as a context manager).

    Dask starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``: glibc then hands freed
    memory back at once and maps each numpy temporary of a batch (512 KB) afresh, so every
    batch faults its memory in again. Tallying took 3 times the CPU (2.3 against 0.7
    CPU-s for 1,000,000 rows x 25 columns on one worker; 560,000 page faults against 600)
    until the workers kept up to 64 MiB of freed heap and served allocations up to 32 MiB
    from it (:data:`WORKER_MALLOC`). Set the same variables on the workers of a cluster
    of your own for the same speed."""
    distributed = import_distributed()
    import dask.config

    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {})
    environ.update(WORKER_MALLOC)
    # A nanny lets this process's environment override its settings, and an earlier
    # cluster may have left Dask's there: set ours for the start, then put things back.
    saved = {name: os.environ.get(name) for name in WORKER_MALLOC}
    os.environ.update(WORKER_MALLOC)
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
            return distributed.LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def import_distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise ConfigError(
            "the dask engine needs Dask, an optional dependency: pip install 'loopml[dask]' "
            "(or use --engine local)"
        ) from exc
    return distributed
