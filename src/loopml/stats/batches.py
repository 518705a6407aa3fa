"""Streams of Arrow record batches: regrouped into tables of a fixed number of rows, and
processed on threads in their order.

Arrow's CSV parser, its Parquet encoder and numpy's large kernels release the GIL, so a
stream whose every item costs such work goes about as many times faster as there are
cores when the items are handed to a few threads (:func:`map_ordered`) instead of being
processed one after the other.
"""

from __future__ import annotations

import itertools
import os
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import pyarrow as pa

T = TypeVar("T")
R = TypeVar("R")


def rechunk(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.Table]:
    """Tables of exactly ``rows`` rows (the last one shorter) from ``batches``: where a
    table ends depends on row offsets only, never on how the source was read."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        rest = batch
        while rest.num_rows:
            take = min(rows - count, rest.num_rows)
            pending.append(rest.slice(0, take))
            count += take
            rest = rest.slice(take)
            if count == rows:
                yield pa.Table.from_batches(pending)
                pending, count = [], 0
    if count:
        yield pa.Table.from_batches(pending)


def cores() -> int:
    """The CPUs this process may run on (its affinity, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def map_ordered(
    function: Callable[[T], R],
    items: Iterable[T],
    workers: int,
    name: str,
    ahead: int = 0,
    weight: Callable[[T], int] | None = None,
    max_weight: int = 0,
) -> Generator[R, None, None]:
    """``function(item)`` of each item, computed on ``workers`` threads and yielded in the
    order of ``items`` (``workers=0``: on the calling thread, one after the other).

    ``items`` is advanced on the calling thread, at most ``ahead`` (default ``workers +
    1``) items beyond the result last yielded, and, with ``weight``, only while the items
    in flight weigh at most ``max_weight`` together (one always may), so memory holds a
    bounded number of items and results whatever the stream's length. An error in
    ``function`` is raised here, at its item's turn; closing the iterator (or an error)
    cancels the items not started, waits for those running and closes ``items``.
    """
    if workers < 1:
        try:
            yield from map(function, items)
        finally:
            _close(items)
        return
    ahead = max(ahead or workers + 1, 1)
    pending: deque[tuple[Future[R], int]] = deque()
    held = 0  # the weight of the items in flight
    pool = ThreadPoolExecutor(workers, thread_name_prefix=name)
    try:
        for item in items:
            load = weight(item) if weight is not None else 0
            pending.append((pool.submit(function, item), load))
            held += load
            while len(pending) >= ahead or (pending and weight is not None and held > max_weight):
                future, load = pending.popleft()
                held -= load
                yield future.result()
        while pending:
            yield pending.popleft()[0].result()
    finally:
        for future, _ in pending:
            future.cancel()
        pool.shutdown(wait=True)
        _close(items)


def map_widening(
    function: Callable[[T, int], R], items: Iterable[T], most: int, name: str
) -> Generator[R, None, None]:
    """``function(item, width)`` of each item, yielded in the order of ``items``, with up
    to ``width`` items in work at once on threads named ``name``; ``width`` adapts.

    It starts at one (the next item is worked on while the caller handles a result). After
    each result, whichever side waited longer is the slower one: if this generator waited
    for the result longer than the caller took to ask for the next one, ``width`` grows by
    one, up to ``most``; if the caller took longer, it shrinks by one. So a costly
    ``function`` that releases the GIL gets the cores, and a cheap one leaves them to the
    caller. ``function`` learns the width its item was started at (to share the cores out
    between the items in work). Errors and closing behave as in :func:`map_ordered`.
    """
    width = 1
    pending: deque[Future[R]] = deque()
    pool = ThreadPoolExecutor(max(most, 1), thread_name_prefix=name)
    source = iter(items)

    def fill() -> None:
        for item in itertools.islice(source, max(width - len(pending), 0)):
            pending.append(pool.submit(function, item, width))

    try:
        while True:
            fill()
            if not pending:
                return
            started = time.perf_counter()
            result = pending.popleft().result()
            waited = time.perf_counter() - started
            fill()  # the next items are worked on while the caller handles this one
            started = time.perf_counter()
            yield result
            asked = time.perf_counter() - started
            width = min(width + 1, most) if waited > asked else max(width - 1, 1)
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True)
        _close(items)


def _close(items: object) -> None:
    """Close a generator now (its ``finally`` blocks: pools, files); others need nothing."""
    close = getattr(items, "close", None)
    if close is not None:
        close()
