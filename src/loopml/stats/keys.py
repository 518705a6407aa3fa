"""Duplicate keys over a stream of batches: exact, vectorised, 8 bytes per row.

Each row's key becomes one 64-bit number: the value itself for a key of one int, float,
bool, date or datetime column (exact), otherwise a 64-bit hash of the key's columns. Text is
hashed with a polynomial hash over its UTF-8 bytes, computed with numpy prefix sums so that
no Python code runs per row.

Numbers are gathered into blocks of up to ``block_rows`` rows. Each block is sorted,
checked for repeats inside itself and, by binary search with sorted queries (cache
friendly), against the sorted runs left by earlier blocks; then it becomes a run itself.
Runs merge like a binary counter, two of similar size into one, so each row is merged and
looked up O(log blocks) times. A block that only continues an increasing sequence (ids in
file order) skips both the sort and the search; a block of distinct integers in a narrow
range (ids 1..n shuffled) is sorted by marking each in a bitmap of that range, one pass
instead of a sort (see :func:`_ordered`).

Memory: 8 bytes per checked row for the whole stream (80 MB for 10 million rows, 800 MB
for 100 million), plus the key values of one block, kept to show examples of repeated keys.
Exactness: one-column numeric keys are exact. Hashed keys are exact up to a 64-bit
collision: a false duplicate among n distinct keys has a probability of about n² / 2^65
(3 in a million for 10 million keys).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from loopml.domain.data_schema import TypeFamily
from loopml.stats.columns import EXAMPLES

BLOCK_ROWS = 1 << 20
_IDENTITY = frozenset(
    {TypeFamily.INT, TypeFamily.FLOAT, TypeFamily.BOOL, TypeFamily.DATE, TypeFamily.DATETIME}
)
_MASK64 = (1 << 64) - 1
_PRIME = 0x100000001B3  # odd, so it has an inverse modulo 2^64 (see _TextHasher)
_PRIME_INVERSE = pow(_PRIME, -1, 1 << 64)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_TEXT_CHUNK_BYTES = 1 << 20  # bounds the power tables below to 16 MB
_DENSE_SPAN = 8  # a block of distinct keys sorts by bitmap when its range is this narrow


@dataclass(frozen=True, slots=True)
class DuplicateKeys:
    """``duplicates`` rows repeated a key seen earlier, out of ``rows`` rows with a full key.

    ``examples`` holds a few repeated keys (one tuple of column values per key), in the
    comparable form of :func:`loopml.stats.columns.convert`.
    """

    rows: int
    duplicates: int
    examples: tuple[tuple[object, ...], ...]


class DuplicateKeyFinder:
    """Count rows whose key (one or more columns) repeats an earlier row's key."""

    def __init__(
        self,
        families: Sequence[TypeFamily],
        *,
        block_rows: int = BLOCK_ROWS,
        max_examples: int = EXAMPLES,
    ) -> None:
        self._families = tuple(families)
        self._identity = len(self._families) == 1 and self._families[0] in _IDENTITY
        self._block_rows = block_rows
        self._max_examples = max_examples
        self._hasher = RowHasher()
        self._pending: list[np.ndarray] = []
        self._pending_values: list[list[pa.Array]] = []
        self._pending_rows = 0
        self._runs: list[np.ndarray] = []
        self._largest: int | None = None
        self._rows = 0
        self._duplicates = 0
        self._examples: list[tuple[object, ...]] = []

    def add(self, columns: Sequence[pa.Array]) -> None:
        """Add one batch: the key columns in comparable form, all of the same length.

        Rows with a missing value in any key column are left out: nullability checks
        report them, and a missing key cannot repeat another.
        """
        columns = list(columns)
        valid = self._valid_mask(columns)
        if valid is not None:
            columns = [pc.filter(c, valid) for c in columns]
        if not len(columns[0]):
            return
        self._pending.append(self._numbers(columns))
        self._pending_values.append(columns)
        self._pending_rows += len(columns[0])
        if self._pending_rows >= self._block_rows:
            self._flush()

    def result(self) -> DuplicateKeys:
        self._flush()
        return DuplicateKeys(self._rows, self._duplicates, tuple(self._examples))

    def _valid_mask(self, columns: list[pa.Array]) -> pa.Array | None:
        masks = [pc.is_valid(c) for c in columns if c.null_count]
        masks += [pc.invert(pc.is_nan(c)) for c in columns if pa.types.is_floating(c.type)]
        if not masks:
            return None
        mask = masks[0]
        for other in masks[1:]:
            mask = pc.and_(mask, other)
        return pc.fill_null(mask, False)

    def _numbers(self, columns: list[pa.Array]) -> np.ndarray:
        if self._identity:
            return _as_int64(columns[0])
        return self._hasher.hash(columns)

    def _flush(self) -> None:
        if not self._pending:
            return
        keys = self._pending[0] if len(self._pending) == 1 else np.concatenate(self._pending)
        values = [pa.chunked_array(parts) for parts in zip(*self._pending_values, strict=True)]
        self._pending, self._pending_values, self._pending_rows = [], [], 0
        self._rows += keys.size
        ordered, distinct = _ordered(keys)
        inner = np.zeros(keys.size, dtype=bool)
        if not distinct:
            inner[1:] = ordered[1:] == ordered[:-1]
        earlier = np.zeros(keys.size, dtype=bool)  # the key was in an earlier block
        if self._runs and not (self._largest is not None and ordered[0] > self._largest):
            for run in self._runs:
                at = np.minimum(np.searchsorted(run, ordered), run.size - 1)
                earlier |= run[at] == ordered
        repeated = inner | earlier
        count = int(np.count_nonzero(repeated))
        if count:
            self._duplicates += count
            if len(self._examples) < self._max_examples:
                self._collect_examples(keys, ordered, repeated, earlier, values)
        run = ordered[~inner] if inner.any() else ordered
        if not run.flags.owndata:
            run = run.copy()  # keys viewed in place in a batch: keep 8 bytes, not the batch
        top = int(run[-1])
        self._largest = top if self._largest is None else max(self._largest, top)
        self._add_run(run)

    def _collect_examples(
        self,
        keys: np.ndarray,
        ordered: np.ndarray,
        repeated: np.ndarray,
        earlier: np.ndarray,
        values: list[pa.ChunkedArray],
    ) -> None:
        """Keep the first few repeated keys in row order.

        Only rows whose key repeats are sorted (not the whole block: an argsort of a million
        rows costs more than the rest of the check), so this is cheap when repeats are few.
        """
        repeated_keys = np.unique(ordered[repeated])
        candidates = np.flatnonzero(_member(keys, repeated_keys))
        candidate_keys = keys[candidates]
        _, first = np.unique(candidate_keys, return_index=True)
        is_repeat = np.ones(candidates.size, dtype=bool)
        is_repeat[first] = False  # a key's first row in the block repeats nothing here...
        is_repeat |= _member(candidate_keys, np.unique(ordered[earlier]))  # ...unless seen before
        rows = candidates[is_repeat]
        _, first_repeat = np.unique(keys[rows], return_index=True)
        wanted = rows[np.sort(first_repeat)][: self._max_examples - len(self._examples)]
        taken = [column.take(pa.array(wanted)).to_pylist() for column in values]
        for example in zip(*taken, strict=True):
            if example not in self._examples:
                self._examples.append(tuple(example))

    def _add_run(self, run: np.ndarray) -> None:
        self._runs.append(run)
        while len(self._runs) > 1 and self._runs[-2].size <= 2 * self._runs[-1].size:
            newer = self._runs.pop()
            older = self._runs.pop()
            merged = np.concatenate((older, newer))
            if older[-1] >= newer[0]:
                merged.sort(kind="stable")  # two sorted runs: a linear merge
            self._runs.append(merged)


class RowHasher:
    """One 64-bit hash per row of one or more aligned columns, with no Python loop per row.

    Numbers hash by value (``-0.0`` as ``0.0``), text and bytes by content; dates and
    times by their integer value; a missing value hashes apart from every present one.
    Other types (lists, structs, decimals) hash their text form, slower but exact.
    """

    def __init__(self) -> None:
        self._text = _TextHasher()

    def hash(self, columns: Sequence[pa.Array]) -> np.ndarray:
        combined = np.zeros(len(columns[0]), dtype=np.uint64)
        for column in columns:
            combined = _mix(combined * _GOLDEN + self._column(column))
        return combined

    def _column(self, column: pa.Array) -> np.ndarray:
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        if pa.types.is_temporal(column.type):
            width = pa.int64() if column.type.bit_width == 64 else pa.int32()
            column = column.view(width)
        kind = column.type
        missing = pc.is_null(column).to_numpy(zero_copy_only=False) if column.null_count else None
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
            filled = pc.fill_null(column, False if pa.types.is_boolean(kind) else 0)
            part = _mix(_as_int64(filled).view(np.uint64))
        elif _is_bytes(kind):
            part = self._text.hash(pc.fill_null(column, "" if _is_text(kind) else b""))
        else:
            part = self._text.hash(pa.array([repr(v) for v in column.to_pylist()]))
        if missing is not None:
            part[np.asarray(missing, dtype=bool)] = _MISSING
        return part


_MISSING = np.uint64(0x5BD1E9955BD1E995)  # the hash of a missing value, whatever its type


def _is_text(kind: pa.DataType) -> bool:
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))


def _is_bytes(kind: pa.DataType) -> bool:
    return _is_text(kind) or bool(pa.types.is_binary(kind) or pa.types.is_large_binary(kind))


def key_form(column: pa.Array, family: TypeFamily) -> pa.Array:
    """One representation per key value, whatever the batch's type was."""
    if family is TypeFamily.INT and pa.types.is_floating(column.type):
        return column.cast(pa.int64(), safe=False)  # whole numbers: convert() checked them
    if family is TypeFamily.FLOAT and not pa.types.is_floating(column.type):
        return column.cast(pa.float64())
    return column


def _ordered(keys: np.ndarray) -> tuple[np.ndarray, bool]:
    """``keys`` in ascending order, and whether they are known to be distinct.

    Keys already increasing (ids in file order) are kept as they are. Distinct keys packed
    in a narrow range (ids 1..n in any order: a unique integer key) are sorted by marking
    each one in a bitmap of the range, one byte per possible value (at most
    ``_DENSE_SPAN`` + 1 bytes per key, for a moment): on a million shuffled ids about 3 ms
    instead of numpy's 13 ms. Anything else, including every block that repeats a key, is
    sorted by numpy.
    """
    if keys.size < 2:
        return keys, True
    low, high = keys.min(), keys.max()
    if keys[0] == low and keys[-1] == high and bool(np.all(keys[1:] > keys[:-1])):
        return keys, True
    span = int(high) - int(low) + 1
    if span <= _DENSE_SPAN * keys.size:
        if 0 <= int(low) <= keys.size:  # ids from 0 or 1: they index the bitmap as they are
            marked = np.zeros(int(high) + 1, dtype=bool)
            marked[keys] = True
            marked = marked[int(low) :]
        else:
            marked = np.zeros(span, dtype=bool)
            marked[keys - low] = True  # within [0, span): no wrap-around in keys' own type
        if int(np.count_nonzero(marked)) == keys.size:
            full = span == keys.size  # every value of the range: no need to look
            ordered = np.arange(span, dtype=keys.dtype) if full else np.flatnonzero(marked)
            ordered = ordered.astype(keys.dtype, copy=False)
            ordered += low
            return ordered, True
    return np.sort(keys), False


def _member(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """Which ``values`` are in ``sorted_set`` (sorted, unique): one binary search each."""
    if not sorted_set.size:
        return np.zeros(values.size, dtype=bool)
    at = np.minimum(np.searchsorted(sorted_set, values), sorted_set.size - 1)
    found: np.ndarray = sorted_set[at] == values
    return found


def _as_int64(column: pa.Array) -> np.ndarray:
    if pa.types.is_floating(column.type):
        floats: np.ndarray = column.cast(pa.float64()).to_numpy() + 0.0  # -0.0 == 0.0
        return floats.view(np.int64)
    if not pa.types.is_int64(column.type):
        column = column.cast(pa.int64(), safe=False)  # uint64 wraps: still one-to-one
    return np.asarray(column.to_numpy())


def _mix(values: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser: every input bit changes about half of the output bits."""
    values = values ^ (values >> np.uint64(30))
    values *= np.uint64(0xBF58476D1CE4E5B9)
    values ^= values >> np.uint64(27)
    values *= np.uint64(0x94D049BB133111EB)
    values ^= values >> np.uint64(31)
    return values


class _TextHasher:
    """64-bit hashes of text values from their UTF-8 bytes, with no Python loop per value.

    With bytes ``b_j`` over a chunk's data buffer, ``prefix[k] = sum(b_j * P^j, j < k)``
    modulo 2^64 is one cumulative sum; a value spanning ``[s, e)`` hashes to
    ``(prefix[e] - prefix[s]) * P^-s``, a polynomial in its own bytes alone, whatever its
    position, then mixed with its length. The powers of ``P`` are kept between calls.
    """

    def __init__(self) -> None:
        self._powers = np.ones(1, dtype=np.uint64)
        self._inverse = np.ones(1, dtype=np.uint64)

    def hash(self, column: pa.Array) -> np.ndarray:
        if pa.types.is_dictionary(column.type):
            codes = column.indices.to_numpy(zero_copy_only=False)
            by_code: np.ndarray = self.hash(column.dictionary)[codes]
            return by_code
        if pa.types.is_string_view(column.type):
            column = column.cast(pa.large_string())
        rows = len(column)
        out = np.empty(rows, dtype=np.uint64)
        data_bytes = column.buffers()[2].size if rows and column.buffers()[2] else 0
        step = max(1, rows * _TEXT_CHUNK_BYTES // max(1, data_bytes))
        for start in range(0, rows, step):
            piece = column.slice(start, step)
            out[start : start + len(piece)] = self._hash_piece(piece)
        return out

    def _hash_piece(self, piece: pa.Array) -> np.ndarray:
        large = pa.types.is_large_string(piece.type) or pa.types.is_large_binary(piece.type)
        buffers = piece.buffers()
        offsets = np.frombuffer(buffers[1], dtype=np.int64 if large else np.int32)
        bounds: npt.NDArray[np.int64] = offsets[
            piece.offset : piece.offset + len(piece) + 1
        ].astype(np.int64)
        first, last = int(bounds[0]), int(bounds[-1])
        data = np.frombuffer(buffers[2], dtype=np.uint8)[first:last] if last > first else None
        size = last - first
        powers, inverse = self._tables(size + 1)
        prefix: npt.NDArray[np.uint64] = np.zeros(size + 1, dtype=np.uint64)
        if data is not None:
            # +1 so that zero bytes still count; the length is mixed in as well.
            np.cumsum((data.astype(np.uint64) + np.uint64(1)) * powers[:size], out=prefix[1:])
        starts, ends = bounds[:-1] - first, bounds[1:] - first
        spans: npt.NDArray[np.uint64] = prefix[ends] - prefix[starts]
        hashes = spans * inverse[starts]
        hashes ^= (ends - starts).astype(np.uint64) * _GOLDEN
        return _mix(hashes)

    def _tables(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        if self._powers.size < size:
            self._powers = _power_table(_PRIME, size)
            self._inverse = _power_table(_PRIME_INVERSE, size)
        return self._powers, self._inverse


def _power_table(base: int, size: int) -> np.ndarray:
    """``[1, base, base^2, ...]`` modulo 2^64 (numpy's unsigned products wrap)."""
    factors = np.full(size, base & _MASK64, dtype=np.uint64)
    factors[0] = 1
    return np.cumprod(factors, dtype=np.uint64)
