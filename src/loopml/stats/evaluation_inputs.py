"""Checked inputs of an evaluation: labels, predictions, scores, and the groups rows fall in.

Every array an evaluation reads passes through here once, so the metric code can assume
equal lengths, no missing labels, finite numbers and probabilities in [0, 1]. Arrays may be
numpy arrays, lists, pandas Series or pyarrow arrays; tables of slice columns may be
pyarrow Tables, pandas DataFrames or mappings of column name to array.

Classes are encoded to integer codes in the order of ``labels`` (given, or the sorted union
of the values in the truth and the predictions). A group is a row's slice: the distinct
values of a column, each a group, capped to the most frequent ``max_values`` (the rest are
left out, with a note), or a caller's boolean mask.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from loopml.domain.errors import InvalidInput
from loopml.domain.evaluation import NULL_VALUE

PROBABILITY_SUM_TOLERANCE = 1e-4
Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Classes:
    """Truth and predictions as codes into ``names`` (the labels as text)."""

    names: tuple[str, ...]
    true: Ints
    pred: Ints
    positive: int | None  # index of the positive label when there are at most two


@dataclass(frozen=True, slots=True)
class Grouping:
    """Rows in groups: ``codes[i]`` is row i's group, ``len(names)`` when it is in none."""

    names: tuple[str, ...]  # slice names: "column=value", or the mask's name
    values: tuple[str | None, ...]  # the value as text; None for a mask
    column: str | None
    codes: Ints
    note: str | None = None

    @property
    def size(self) -> int:
        return len(self.names)


def value_text(value: object) -> str:
    """A label or slice value as text: booleans are ``true``/``false``, missing ``<null>``."""
    if value is None:
        return NULL_VALUE
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    return str(value)


def to_arrow(values: Any, what: str) -> pa.Array:
    """A one-dimensional pyarrow array of ``values`` (dictionaries decoded)."""
    if isinstance(values, pa.ChunkedArray):
        array = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    elif isinstance(values, pa.Array):
        array = values
    else:
        if isinstance(values, np.ndarray) and values.ndim != 1:
            raise InvalidInput(
                f"{what} must be one-dimensional, got an array of shape {values.shape}; pass "
                "one value per row (e.g. array.ravel())"
            )
        try:
            array = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
            raise InvalidInput(
                f"{what} could not be read as a column of values ({exc}); pass a numpy array, "
                "a list, a pandas Series or a pyarrow array"
            ) from exc
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    return array


def check_rows(n: int, other: int, what: str) -> None:
    if other != n:
        raise InvalidInput(
            f"{what} has {other:,} rows but y_true has {n:,}; expected one value per row of "
            "y_true, in the same order"
        )


def _check_known(array: pa.Array, what: str) -> None:
    missing = array.null_count
    is_missing = array.is_null()
    if pa.types.is_floating(array.type):
        is_missing = pc.or_(is_missing, pc.is_nan(array))
        missing = pc.sum(is_missing).as_py() or 0
    if missing:
        first = int(np.flatnonzero(is_missing.to_numpy(zero_copy_only=False))[0])
        raise InvalidInput(
            f"{what} has {missing:,} missing values (null or NaN), the first at row {first}; "
            "every row needs a known value: drop or fill those rows first"
        )


def encode_classes(
    y_true: Any, y_pred: Any, labels: Sequence[Any] | None, positive_label: Any
) -> Classes:
    """Check the truth and predictions of a classifier and encode them as class codes."""
    true, pred = to_arrow(y_true, "y_true"), to_arrow(y_pred, "y_pred")
    if len(true) == 0:
        raise InvalidInput("y_true is empty; an evaluation needs at least one labelled row")
    check_rows(len(true), len(pred), "y_pred")
    _check_known(true, "y_true")
    _check_known(pred, "y_pred")
    true, pred = _common_type(true, pred)
    if labels is None:
        seen = pc.unique(pa.concat_arrays([pc.unique(true), pc.unique(pred)]))
        classes = seen.take(pc.array_sort_indices(seen))
        classes = _complete_binary(classes)
    else:
        classes = _given_labels(labels, true.type)
    names = tuple(value_text(v) for v in classes.to_pylist())
    codes = [_codes(values, classes, what) for values, what in ((true, "y_true"), (pred, "y_pred"))]
    positive = None
    if positive_label is not None:
        if len(names) > 2:
            raise InvalidInput(
                f"positive_label {positive_label!r} is for binary tasks, but there are "
                f"{len(names)} classes {list(names)[:10]}; leave it out for multiclass metrics"
            )
        matches = [i for i, v in enumerate(classes.to_pylist()) if v == positive_label]
        if not matches:
            raise InvalidInput(
                f"positive_label {positive_label!r} is not one of the classes {list(names)}; "
                "pass one of them"
            )
        positive = matches[0]
    elif len(names) <= 2:
        positive = len(names) - 1  # the last in sorted order: 1 of 0/1, True of False/True
    return Classes(names, codes[0], codes[1], positive)


def _common_type(true: pa.Array, pred: pa.Array) -> tuple[pa.Array, pa.Array]:
    if true.type == pred.type:
        return true, pred
    kinds = [_kind(a.type) for a in (true, pred)]
    if kinds[0] == kinds[1] == "number":
        target = pa.float64() if "float" in (_width(true), _width(pred)) else pa.int64()
        return true.cast(target), pred.cast(target)
    if kinds[0] == kinds[1] == "text":
        return true.cast(pa.large_string()), pred.cast(pa.large_string())
    raise InvalidInput(
        f"y_true holds {true.type} and y_pred holds {pred.type}; expected labels of one kind "
        "(both numbers or both text): convert one, e.g. y_pred.astype(str)"
    )


def _kind(kind: pa.DataType) -> str:
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
        return "number"
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return "text"
    return str(kind)


def _width(array: pa.Array) -> str:
    return "float" if pa.types.is_floating(array.type) else "int"


def _complete_binary(classes: pa.Array) -> pa.Array:
    """With one class seen, add its 0/1 or False/True partner: a binary task stays binary."""
    if len(classes) != 1 or not (
        pa.types.is_boolean(classes.type) or pa.types.is_integer(classes.type)
    ):
        return classes
    only = classes[0].as_py()
    if only not in (0, 1):
        return classes
    return pa.array([False, True] if isinstance(only, bool) else [0, 1], type=classes.type)


def _given_labels(labels: Sequence[Any], kind: pa.DataType) -> pa.Array:
    listed = list(labels)
    if not listed:
        raise InvalidInput("labels is empty; pass the classes in the order you want them shown")
    try:
        classes = pa.array(listed).cast(kind)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise InvalidInput(
            f"labels {listed[:10]!r} do not match the type of y_true ({kind}); pass labels of "
            "the same kind as y_true"
        ) from exc
    if len(pc.unique(classes)) != len(classes):
        raise InvalidInput(f"labels {listed[:20]!r} repeat a value; list each class once")
    return classes


def _codes(values: pa.Array, classes: pa.Array, what: str) -> Ints:
    index = pc.index_in(values, value_set=classes)
    if index.null_count:
        unknown = pc.unique(values.filter(index.is_null())).to_pylist()[:5]
        raise InvalidInput(
            f"{what} holds {index.null_count:,} rows with labels not in labels="
            f"{[value_text(v) for v in classes.to_pylist()][:20]}, e.g. {unknown!r}; add them "
            "to labels or leave labels out to use every value seen"
        )
    return np.asarray(index.to_numpy(zero_copy_only=False), dtype=np.int64)


def check_scores(y_score: Any, n: int, classes: int, positive: int | None) -> Floats:
    """Probabilities: one per row (of the positive class) for two classes, else a row of
    ``classes`` per row, in the order of the labels."""
    try:
        scores = np.asarray(y_score, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"y_score must hold numbers, got {type(y_score).__name__}") from exc
    if positive is not None and scores.ndim == 2 and scores.shape[1] in (1, 2):
        scores = scores[:, positive] if scores.shape[1] == 2 else scores[:, 0]
    want = f"({n},)" if positive is not None else f"({n}, {classes})"
    if (positive is not None and scores.shape != (n,)) or (
        positive is None and scores.shape != (n, classes)
    ):
        raise InvalidInput(
            f"y_score has shape {scores.shape}, expected {want}: the probability of the positive "
            "class per row for binary tasks (or predict_proba's two columns), one column per "
            "class in the order of labels otherwise"
        )
    finite = np.isfinite(scores)
    if not finite.all():
        raise InvalidInput(
            f"y_score has {int((~finite).sum()):,} NaN or infinite values; expected "
            "probabilities from 0 to 1"
        )
    low, high = float(scores.min()), float(scores.max())
    if low < 0.0 or high > 1.0:
        raise InvalidInput(
            f"y_score holds values from {low!r} to {high!r}; log loss and calibration need "
            "probabilities from 0 to 1: pass predict_proba's output, or apply a sigmoid "
            "(softmax for several classes) to decision scores"
        )
    if scores.ndim == 2:
        off = np.abs(scores.sum(axis=1) - 1.0)
        if off.max() > PROBABILITY_SUM_TOLERANCE:
            row = int(np.argmax(off))
            raise InvalidInput(
                f"y_score row {row} sums to {float(scores[row].sum())!r}; each row must hold the "
                f"probabilities of all {classes} classes and sum to 1 (within "
                f"{PROBABILITY_SUM_TOLERANCE})"
            )
    return scores


def check_numbers(values: Any, n: int | None, what: str) -> Floats:
    """Finite numbers, one per row (``n`` rows when given)."""
    array = to_arrow(values, what)
    if not (_kind(array.type) == "number"):
        raise InvalidInput(f"{what} must hold numbers, got {array.type}; convert it to float")
    _check_known(array, what)
    numbers = np.asarray(array.cast(pa.float64()).to_numpy(zero_copy_only=False))
    if n is None and numbers.size == 0:
        raise InvalidInput(f"{what} is empty; an evaluation needs at least one labelled row")
    if n is not None:
        check_rows(n, numbers.size, what)
    infinite = ~np.isfinite(numbers)
    if infinite.any():
        raise InvalidInput(
            f"{what} has {int(infinite.sum()):,} infinite values, the first at row "
            f"{int(np.flatnonzero(infinite)[0])}; expected finite numbers"
        )
    return numbers


def column_names(data: Any) -> list[str]:
    if isinstance(data, pa.Table | pa.RecordBatch):
        return list(data.column_names)
    if isinstance(data, Mapping):
        return [str(k) for k in data]
    if hasattr(data, "columns") and hasattr(data, "__getitem__"):  # a pandas DataFrame
        return [str(c) for c in data.columns]
    raise InvalidInput(
        f"data must be a pyarrow Table, a pandas DataFrame or a dict of columns, got "
        f"{type(data).__name__}"
    )


def get_column(data: Any, name: str, n: int, what: str) -> pa.Array:
    """Column ``name`` of ``data``, checked to have ``n`` rows."""
    if data is None:
        raise InvalidInput(
            f"{what} {name!r} needs data=: pass the table of columns for the evaluated rows"
        )
    names = column_names(data)
    if name not in names:
        close = difflib.get_close_matches(name, names, n=3)
        hint = f"did you mean {close}?" if close else f"the columns are {names[:20]}"
        raise InvalidInput(f"{what} {name!r} is not a column of data; {hint}")
    values = data.column(name) if isinstance(data, pa.Table | pa.RecordBatch) else data[name]
    array = to_arrow(values, f"column {name!r}")
    check_rows(n, len(array), f"column {name!r} of data")
    return array


def group_by_column(data: Any, column: str, n: int, max_values: int, what: str) -> Grouping:
    """One group per distinct value of ``column`` (missing values are one more), keeping the
    ``max_values`` most frequent; groups in sorted value order, missing last."""
    array = get_column(data, column, n, what)
    if pa.types.is_floating(array.type):
        array = pc.if_else(pc.is_nan(array), pa.scalar(None, array.type), array)
    encoded = pc.dictionary_encode(array)
    dictionary = encoded.dictionary
    k = len(dictionary)
    indices = np.asarray(encoded.indices.fill_null(k).to_numpy(zero_copy_only=False), np.int64)
    counts = np.bincount(indices, minlength=k + 1)
    ordered = [*np.asarray(pc.array_sort_indices(dictionary)).tolist(), k]
    present = [i for i in ordered if counts[i] > 0]
    note = None
    if len(present) > max_values:
        by_count = sorted(present, key=lambda i: -counts[i])[:max_values]
        kept = set(by_count)
        share = counts[by_count].sum() / n
        note = (
            f"{what} {column!r} has {len(present):,} distinct values; only the {max_values} "
            f"most frequent are evaluated ({share:.1%} of rows); raise max_slice_values to see more"
        )
        present = [i for i in present if i in kept]
    values = dictionary.to_pylist()
    texts = tuple(value_text(values[i] if i < k else None) for i in present)
    lookup = np.full(k + 1, len(present), dtype=np.int64)
    lookup[present] = np.arange(len(present))
    names = tuple(f"{column}={t}" for t in texts)
    return Grouping(names, texts, column, lookup[indices], note)


def group_by_mask(name: str, mask: Any, n: int) -> Grouping:
    """A caller's named slice: group 0 is the rows where ``mask`` is true."""
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"a mask's name must be non-empty text, got {name!r}")
    array = to_arrow(mask, f"mask {name!r}")
    if not pa.types.is_boolean(array.type) or array.null_count:
        raise InvalidInput(
            f"mask {name!r} must be true/false per row without missing values, got "
            f"{array.type} with {array.null_count} missing; build it as a comparison, e.g. "
            "df['age'] >= 65"
        )
    check_rows(n, len(array), f"mask {name!r}")
    inside = np.asarray(array.to_numpy(zero_copy_only=False), dtype=np.bool_)
    return Grouping((name,), (None,), None, np.where(inside, 0, 1).astype(np.int64))


def group_all(n: int) -> Grouping:
    """Every row in one group: the overall metrics."""
    return Grouping(("all",), (None,), None, np.zeros(n, dtype=np.int64))
