"""Metric history packed into chunks: one database row per run per flush.

A flush of the metric buffer writes each run's waiting points as one chunk, a binary
column of the points in column order::

    header   <B I I>     format (1), number of points, bytes of the key table
    keys     UTF-8       the distinct keys of the chunk, joined by NUL (keys never hold NUL)
    key_ix   <u4 * n>    each point's index into the key table
    value    <f8 * n>    the values, NaN and infinities as they are
    step     <i8 * n>
    ts       <i8 * n>    timestamp in milliseconds

One row instead of one per point is what makes a durable batch cheap: a thousand-point
flush writes a few pages instead of a thousand B-tree entries plus an index. The price is
on the read side: the history of one key decodes every chunk of its run, which is a
vectorised scan (numpy) and cheap next to a network round trip; search never reads
chunks, it reads ``latest_metrics``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

import numpy as np

from loopml.domain.errors import InvalidInput, StorageError
from loopml.domain.tracking import Metric

FORMAT = 1
_HEADER = struct.Struct("<BII")
_INT64 = (-(2**63), 2**63 - 1)


def pack(points: Sequence[Metric]) -> bytes:
    """Encode points (in logging order) as one chunk."""
    keys, values, steps, stamps = zip(*points, strict=True)
    index: dict[str, int] = {}
    key_ix = [index.setdefault(k, len(index)) for k in keys]
    key_table = "\0".join(index).encode()
    try:
        step_bytes = np.array(steps, dtype="<i8").tobytes()
    except OverflowError as exc:
        bad = next(s for s in steps if not _INT64[0] <= s <= _INT64[1])
        raise InvalidInput(
            f"metric step {bad} is outside the 64-bit range a step can be stored in "
            f"({_INT64[0]} to {_INT64[1]}); log a smaller step"
        ) from exc
    return b"".join(
        (
            _HEADER.pack(FORMAT, len(key_ix), len(key_table)),
            key_table,
            np.array(key_ix, dtype="<u4").tobytes(),
            np.array(values, dtype="<f8").tobytes(),
            step_bytes,
            np.array(stamps, dtype="<i8").tobytes(),
        )
    )


class Chunk:
    """A decoded chunk: its key table and four aligned columns."""

    def __init__(self, data: bytes) -> None:
        try:
            fmt, n, key_bytes = _HEADER.unpack_from(data)
        except struct.error as exc:
            raise StorageError(f"a metric chunk of {len(data)} bytes has no header") from exc
        if fmt != FORMAT:
            raise StorageError(
                f"a metric chunk has format {fmt}, this loopml reads format {FORMAT}; "
                "upgrade loopml"
            )
        start = _HEADER.size + key_bytes
        expected = start + n * (4 + 8 + 8 + 8)
        if len(data) != expected:
            raise StorageError(
                f"a metric chunk of {n} points should hold {expected} bytes, it holds "
                f"{len(data)}; the metadata database is damaged"
            )
        self.keys = data[_HEADER.size : start].decode().split("\0") if n else []
        self.key_ix = np.frombuffer(data, "<u4", n, start)
        start += 4 * n
        self.values = np.frombuffer(data, "<f8", n, start)
        self.steps = np.frombuffer(data, "<i8", n, start + 8 * n)
        self.stamps = np.frombuffer(data, "<i8", n, start + 16 * n)

    def series(self, key: str) -> list[Metric]:
        """The points of ``key`` in this chunk, in logging order."""
        try:
            ix = self.keys.index(key)
        except ValueError:
            return []
        mask = self.key_ix == ix
        return [
            Metric(key, v, s, t)
            for v, s, t in zip(
                self.values[mask].tolist(),
                self.steps[mask].tolist(),
                self.stamps[mask].tolist(),
                strict=True,
            )
        ]

    def points(self) -> list[Metric]:
        """Every point of the chunk, in logging order."""
        keys = self.keys
        return [
            Metric(keys[i], v, s, t)
            for i, v, s, t in zip(
                self.key_ix.tolist(),
                self.values.tolist(),
                self.steps.tolist(),
                self.stamps.tolist(),
                strict=True,
            )
        ]


def history(chunks: Iterable[bytes], key: str) -> list[Metric]:
    """One key's series from a run's chunks (in write order), ordered by step then time.

    The sort is stable, so points with the same step and timestamp keep logging order.
    """
    points = [p for data in chunks for p in Chunk(data).series(key)]
    points.sort(key=lambda p: (p.step, p.timestamp_ms))
    return points
