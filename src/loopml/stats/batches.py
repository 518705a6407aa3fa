"""Regrouping a stream of Arrow record batches into tables of a fixed number of rows."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pyarrow as pa


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
