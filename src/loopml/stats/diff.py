"""Row differences between two streams of batches, exact up to 64-bit hashes.

Each row becomes one 64-bit hash of its values (:class:`~loopml.stats.keys.RowHasher`);
without a key the two versions compare as multisets of row hashes, so a row repeated
three times and now twice counts as one removed. With a key, rows pair up by the hash
of their key columns: a key on one side only is added or removed, a key on both sides
with other values is changed. Memory: 8 bytes per row without a key, 16 with one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pyarrow as pa

from loopml.domain.data_diff import RowChanges
from loopml.domain.errors import InvalidInput
from loopml.stats.keys import RowHasher

_EXAMPLES = 5


def row_changes(
    before: Iterable[pa.RecordBatch],
    after: Iterable[pa.RecordBatch],
    columns: Sequence[str],
    key: Sequence[str] = (),
    skipped_chunks: int = 0,
) -> RowChanges:
    """Compare the rows of two streams over ``columns`` (those both versions have)."""
    hasher = RowHasher()
    old_keys, old_rows, _ = _hash(before, columns, key, hasher)
    new_keys, new_rows, new_key_values = _hash(after, columns, key, hasher)
    if not key:
        added, removed, unchanged = _multiset(old_rows, new_rows)
        return RowChanges(added, removed, unchanged, skipped_chunks=skipped_chunks)
    old_order = np.argsort(old_keys, kind="stable")
    old_sorted = old_keys[old_order]
    at = np.minimum(np.searchsorted(old_sorted, new_keys), max(old_sorted.size - 1, 0))
    paired = old_sorted[at] == new_keys if old_sorted.size else np.zeros(new_keys.size, dtype=bool)
    changed_mask = paired & (old_rows[old_order][at] != new_rows)
    added_mask = ~paired
    removed = int(old_keys.size - np.unique(new_keys[paired]).size)
    examples = {
        "added": _examples(new_key_values, added_mask),
        "changed": _examples(new_key_values, changed_mask),
    }
    return RowChanges(
        added=int(added_mask.sum()),
        removed=removed,
        unchanged=int(paired.sum() - changed_mask.sum()),
        changed=int(changed_mask.sum()),
        key=tuple(key),
        examples={k: v for k, v in examples.items() if v},
        skipped_chunks=skipped_chunks,
    )


def _hash(
    batches: Iterable[pa.RecordBatch], columns: Sequence[str], key: Sequence[str], hasher: RowHasher
) -> tuple[np.ndarray, np.ndarray, list[pa.Table]]:
    keys: list[np.ndarray] = []
    rows: list[np.ndarray] = []
    key_values: list[pa.Table] = []
    for batch in batches:
        missing = [c for c in (*columns, *key) if c not in batch.schema.names]
        if missing:
            raise InvalidInput(
                f"column(s) {', '.join(map(repr, missing))} are missing from the data; "
                "the key must be a column of both versions"
            )
        rows.append(hasher.hash([batch.column(c) for c in columns]))
        if key:
            keys.append(hasher.hash([batch.column(c) for c in key]))
            key_values.append(pa.Table.from_batches([batch.select(list(key))]))
    empty = np.zeros(0, dtype=np.uint64)
    return (
        np.concatenate(keys) if keys else empty,
        np.concatenate(rows) if rows else empty,
        key_values,
    )


def _multiset(old: np.ndarray, new: np.ndarray) -> tuple[int, int, int]:
    values_old, counts_old = np.unique(old, return_counts=True)
    values_new, counts_new = np.unique(new, return_counts=True)
    _, in_old, in_new = np.intersect1d(
        values_old, values_new, assume_unique=True, return_indices=True
    )
    common = int(np.minimum(counts_old[in_old], counts_new[in_new]).sum())
    return int(new.size - common), int(old.size - common), common


def _examples(tables: list[pa.Table], mask: np.ndarray) -> tuple[str, ...]:
    if not mask.any():
        return ()
    table = pa.concat_tables(tables)
    picked = table.take(np.flatnonzero(mask)[:_EXAMPLES])
    return tuple(", ".join(str(v) for v in row.values()) for row in picked.to_pylist())
