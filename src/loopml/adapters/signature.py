"""Infer a model signature from a sample of its input (pandas, numpy, pyarrow or dict).

Column types map to the small set the domain knows (boolean, integer, double, string,
datetime, binary). A column is nullable when the sample holds a missing value. The output
schema comes from calling the model's ``predict`` on the first rows of the sample.
"""

from __future__ import annotations

from typing import Any

from loopml.domain.errors import InvalidInput
from loopml.domain.registry import ColumnSpec, Signature

_SAMPLE_ROWS = 100


def infer_signature(sample: Any, model: object | None = None) -> Signature:
    frame = to_frame(sample)
    inputs = tuple(_column(str(name), frame[name]) for name in frame.columns)
    outputs: tuple[ColumnSpec, ...] = ()
    predict = getattr(model, "predict", None)
    if callable(predict):
        try:
            predicted = predict(
                sample[:_SAMPLE_ROWS] if not hasattr(sample, "head") else sample.head(_SAMPLE_ROWS)
            )
        except Exception as exc:  # a failing predict means the sample does not fit
            raise InvalidInput(
                f"the model's predict failed on the signature sample: {exc!r}. Pass the same "
                "kind of data the model was trained on (same columns, same types)"
            ) from exc
        out = to_frame(predicted, default_name="prediction")
        outputs = tuple(_column(str(n), out[n]) for n in out.columns)
    return Signature(inputs, outputs)


def to_frame(data: Any, default_name: str = "input") -> Any:
    """Turn a pandas/polars/pyarrow/numpy/dict sample into a pandas DataFrame."""
    import numpy as np
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, pd.Series):
        return data.to_frame(name=data.name if data.name is not None else default_name)
    if hasattr(data, "to_pandas"):  # pyarrow Table, polars DataFrame
        return data.to_pandas()
    if isinstance(data, dict):
        return pd.DataFrame(data)
    array = np.asarray(data)
    if array.ndim == 1:
        return pd.DataFrame({default_name: array})
    if array.ndim == 2:
        return pd.DataFrame(array, columns=[str(i) for i in range(array.shape[1])])
    raise InvalidInput(
        f"cannot infer a signature from a {array.ndim}-dimensional array; pass a "
        "table (DataFrame, dict of columns) or a 1-D/2-D array"
    )


def _column(name: str, series: Any) -> ColumnSpec:
    import pandas as pd
    from pandas.api import types

    dtype = series.dtype
    if types.is_bool_dtype(dtype):
        kind = "boolean"
    elif types.is_integer_dtype(dtype):
        kind = "integer"
    elif types.is_float_dtype(dtype):
        kind = "double"
    elif types.is_datetime64_any_dtype(dtype):
        kind = "datetime"
    elif types.is_object_dtype(dtype) and isinstance(_first_value(series), bytes):
        kind = "binary"
    else:
        kind = "string"
    return ColumnSpec(name, kind, nullable=bool(pd.isna(series).any()))


def _first_value(series: Any) -> object:
    present = series.dropna()
    return present.iloc[0] if len(present) else None
