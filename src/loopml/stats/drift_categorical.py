"""Drift of a categorical or boolean column: category shares, unseen categories, missing values.

The reference is the profile's ``top`` categories with their counts. When the profile lists
every category (``top_complete``), a window value outside them is *unseen*: the training
data never had it. Otherwise the profile kept only the most frequent categories, and values
outside them, in the reference and in the window alike, are pooled as one ``other``
category (a value there may or may not be new: the profile cannot tell).

The window's tally is one count per reference category, the pooled ``other`` count, the
unseen count and a few of the most frequent unseen values (for the report), all mergeable
by addition. Each batch is counted once with Arrow (``value_counts``, or a ``bincount`` of
a dictionary column's indices) and its distinct values are matched to the reference's
categories with ``index_in``: no Python loop over rows.

Measures: the Jensen-Shannon distance (base 2) between the reference's and the window's
category shares (unseen values as one more category, with no reference share), tested with
the chi-square test of :mod:`loopml.stats.drift_measures` (rare categories pooled); the
share of unseen values (only when the profile is complete), tested against the Good-Turing
estimate of what a sample of the reference's size leaves unseen; the change in the share
of missing values. Booleans are the categories ``"true"`` and ``"false"``, never unseen.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loopml.domain.drift import DriftMethod
from loopml.domain.errors import InvalidInput
from loopml.stats.drift_measures import (
    Finding,
    Ints,
    chi_square,
    jensen_shannon,
    missing_finding,
    unseen_p_value,
)
from loopml.stats.profile import ColumnProfile

EXAMPLES_KEPT = 64  # unseen values remembered per column (the most frequent), for the report
_BOOLEAN_KEYS = ("true", "false")


class CategoryReference:
    """What a categorical or boolean column's drift is measured against (see module doc)."""

    def __init__(self, profile: ColumnProfile) -> None:
        self.name = profile.name
        self.kind: str = profile.kind
        self.rows = profile.rows
        self.missing = profile.nulls
        self.count = profile.count
        self.boolean = profile.kind == "boolean"
        if self.boolean:
            shares = dict(profile.top)
            names: tuple[str, ...] = _BOOLEAN_KEYS
            counts = [int(shares.get(k, 0)) for k in names]
            self.complete = True
        else:
            names = tuple(k for k, _ in profile.top)
            counts = [int(n) for _, n in profile.top]
            self.complete = profile.top_complete
        self.names = names
        self.keys = pa.array(names, type=pa.large_string())
        self.counts: Ints = np.asarray(counts, dtype=np.int64)
        self.other = 0 if self.complete else max(profile.other_count, 0)
        self.singletons = int(np.count_nonzero(self.counts == 1))
        self.unseen_possible = self.complete and not self.boolean

    def tally(self) -> CategoryTally:
        return CategoryTally(self)

    def fingerprint(self) -> bytes:
        names = "\x00".join(self.names).encode()
        return names + self.counts.tobytes() + bytes([self.complete])


class CategoryTally:
    """The window's side of one categorical column: counts per reference category."""

    def __init__(self, reference: CategoryReference) -> None:
        self.reference = reference
        self.rows = 0
        self.missing = 0
        self.counts: Ints = np.zeros(reference.counts.size, dtype=np.int64)
        self.other = 0  # outside an incomplete reference's top categories
        self.unseen = 0  # outside a complete reference's categories
        self.examples: dict[str, int] = {}  # the most frequent unseen values, bounded

    def update(self, array: pa.Array) -> None:
        self.rows += len(array)
        keys, counts = _category_counts(array, self.reference)
        self.missing += len(array) - int(counts.sum())
        if not len(keys):
            return
        found = pc.fill_null(pc.index_in(keys, value_set=self.reference.keys), -1).to_numpy()
        known = found >= 0
        self.counts += np.bincount(
            found[known], weights=counts[known], minlength=self.counts.size
        ).astype(np.int64)
        if known.all():
            return
        outside = int(counts[~known].sum())
        if not self.reference.unseen_possible:
            self.other += outside
            return
        self.unseen += outside
        unknown = np.flatnonzero(~known)
        new = keys.take(pa.array(unknown)).to_pylist()
        self._remember(dict(zip(new, counts[unknown].tolist(), strict=True)))

    def merge(self, other: CategoryTally) -> None:
        self.rows += other.rows
        self.missing += other.missing
        self.counts += other.counts
        self.other += other.other
        self.unseen += other.unseen
        self._remember(other.examples)

    def _remember(self, examples: dict[str, int]) -> None:
        merged = dict(self.examples)
        for key, n in examples.items():
            merged[key] = merged.get(key, 0) + n
        if len(merged) > EXAMPLES_KEPT:
            kept = sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))[:EXAMPLES_KEPT]
            merged = dict(kept)
        self.examples = merged

    def shares(self) -> tuple[list[str], Ints, Ints]:
        """Labels with reference and window counts: the categories, ``other``, unseen."""
        reference = self.reference
        labels = list(reference.names)
        ref = [reference.counts]
        win = [self.counts]
        if reference.other or self.other:
            labels.append("other")
            ref.append(np.array([reference.other], dtype=np.int64))
            win.append(np.array([self.other], dtype=np.int64))
        if self.unseen:
            labels.append("unseen")
            ref.append(np.zeros(1, dtype=np.int64))
            win.append(np.array([self.unseen], dtype=np.int64))
        return labels, np.concatenate(ref), np.concatenate(win)

    def findings(self) -> tuple[list[Finding], dict[str, float]]:
        reference = self.reference
        found: list[Finding] = []
        measures: dict[str, float] = {}
        values = self.rows - self.missing
        if values and reference.count:
            labels, ref, win = self.shares()
            p_value = chi_square(ref, win, adjacent=False)
            distance = jensen_shannon(ref, win)
            measures["jensen_shannon"] = distance
            measures["p_categories"] = p_value
            detail = self._biggest_change(labels, ref, win)
            found.append(Finding(DriftMethod.JENSEN_SHANNON, distance, p_value, detail))
        if reference.unseen_possible and values:
            share = self.unseen / values
            p_value = unseen_p_value(self.unseen, values, reference.singletons, reference.count)
            measures["unseen_share"] = share
            measures["p_unseen"] = p_value
            found.append(Finding(DriftMethod.UNSEEN, share, p_value, self._unseen_detail(share)))
        found.append(
            missing_finding(reference.rows, reference.missing, self.rows, self.missing, measures)
        )
        return found, measures

    def _biggest_change(self, labels: list[str], ref: Ints, win: Ints) -> str:
        before = ref / ref.sum()
        after = win / win.sum()
        i = int(np.argmax(np.abs(after - before)))
        label = labels[i]
        if label == "unseen":
            return self._unseen_detail(float(after[i]))
        name = (
            "other categories" if label == "other" and not self.reference.complete else repr(label)
        )
        return f"{name} {before[i]:.1%} -> {after[i]:.1%}"

    def _unseen_detail(self, share: float) -> str:
        if not self.unseen:
            return "no unseen categories"
        example = min(self.examples.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        return f"{share:.1%} unseen, e.g. {example!r}"


def _category_counts(array: pa.Array, reference: CategoryReference) -> tuple[pa.Array, Ints]:
    """The batch's distinct non-missing values as large strings, with their counts."""
    dtype = array.type
    if pa.types.is_null(dtype):
        return reference.keys.slice(0, 0), np.zeros(0, dtype=np.int64)
    if pa.types.is_dictionary(dtype):
        indices = array.indices.drop_null() if array.indices.null_count else array.indices
        per_entry = np.bincount(indices.to_numpy(), minlength=len(array.dictionary))
        present = np.flatnonzero(per_entry)
        keys, counts = array.dictionary.take(pa.array(present)), per_entry[present]
    else:
        if pa.types.is_boolean(dtype) or not _is_large_text(dtype):
            array = _as_text(array, reference)
        tallies = pc.value_counts(array)
        keys, counts = tallies.field("values"), tallies.field("counts").to_numpy()
    if keys.null_count:
        valid = keys.is_valid()
        keys, counts = keys.filter(valid), counts[valid.to_numpy(zero_copy_only=False)]
    if keys.type != pa.large_string():
        keys = _as_text(keys, reference)
    return keys, counts.astype(np.int64, copy=False)


def _is_large_text(dtype: pa.DataType) -> bool:
    return bool(pa.types.is_large_string(dtype) or pa.types.is_string(dtype))


def _as_text(array: pa.Array, reference: CategoryReference) -> pa.Array:
    try:
        return pc.cast(array, pa.large_string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InvalidInput(
            f"column {reference.name!r} is {reference.kind} in the reference profile but "
            f"{array.type} in the window, which does not convert to text ({exc}); cast the "
            "column to strings, or leave it out of the reference"
        ) from exc
