"""Step outputs as bytes: the safest format that holds each value, and back.

=================  ===============================================  ===================
codec              values                                           format
=================  ===============================================  ===================
``json``           None, booleans, numbers, text, lists and dicts   canonical JSON
``arrow``          pyarrow Tables                                   Parquet
``pandas``         pandas DataFrames (index kept)                   Parquet
``pandas-series``  pandas Series                                    Parquet
``numpy``          numpy arrays of numbers, booleans or text        ``.npy``, no pickle
``model:FLAVOR``   models a safe flavor stores (sklearn, xgboost,   the flavor's format
                   lightgbm, onnx)
``pickle``         anything else, only for steps marked             cloudpickle
                   ``@step(pickle=True)``
=================  ===============================================  ===================

A model comes back as its flavor loads it: a scikit-learn estimator as itself, an XGBoost
or LightGBM model as loopml's wrapper with ``predict`` (the registry's ``load_model`` gives
the same); the pipeline hands downstream steps the read-back model on a miss too, so a
step sees the same kind of object whether its input was cached or not.

Encoding is deterministic for the data codecs: the same value gives the same bytes, so
an unchanged output keeps its digest and downstream steps stay cached. Outputs are read
back only from the workspace's own blob store, which re-hashes every read.
"""

from __future__ import annotations

import io
import json
import math
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from loopml.domain.errors import InvalidInput, PermissionDenied
from loopml.ports import FlavorCatalog

JSON, ARROW, PANDAS, SERIES, NUMPY, PICKLE = (
    "json",
    "arrow",
    "pandas",
    "pandas-series",
    "numpy",
    "pickle",
)
MODEL_PREFIX = "model:"
_UNNAMED = "__unnamed_series__"  # the column of an unnamed Series (to_frame would say 0)
_UNSAFE_FLAVORS = ("python_function",)


class StepOutputCodec:
    def __init__(self, flavors: FlavorCatalog) -> None:
        self.flavors = flavors

    def encode(self, value: object, *, allow_pickle: bool) -> tuple[str, bytes]:
        if _is_json(value):
            return JSON, json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
        if isinstance(value, pa.Table):
            return ARROW, _parquet(value)
        if isinstance(value, pd.DataFrame):
            return PANDAS, _parquet(pa.Table.from_pandas(value))
        if isinstance(value, pd.Series):
            column = _UNNAMED if value.name is None else value.name
            return SERIES, _parquet(pa.Table.from_pandas(value.to_frame(name=column)))
        if isinstance(value, np.ndarray) and value.dtype.kind in "biufcUSM":
            buffer = io.BytesIO()
            np.save(buffer, value, allow_pickle=False)
            return NUMPY, buffer.getvalue()
        try:  # the catalog's own detection: XGBoost and LightGBM in their native formats
            flavor = self.flavors.detect(value)
        except InvalidInput:
            flavor = None
        if flavor is not None and flavor.name not in _UNSAFE_FLAVORS:
            return MODEL_PREFIX + flavor.name, self._save(flavor.name, value)
        if allow_pickle:
            import cloudpickle

            return PICKLE, bytes(cloudpickle.dumps(value))
        kind = f"{type(value).__module__}.{type(value).__qualname__}"
        raise InvalidInput(
            f"a {kind} cannot be stored safely: return a DataFrame, an Arrow table, a numpy "
            "array, JSON data or a model of a supported flavor, or mark the step "
            "@loopml.step(pickle=True) if you accept storing it with pickle"
        )

    def decode(self, codec: str, data: bytes, *, allow_pickle: bool) -> object:
        if codec == JSON:
            return json.loads(data)
        if codec in (ARROW, PANDAS, SERIES):
            table = pq.read_table(pa.BufferReader(data))
            if codec == ARROW:
                return table
            frame = table.to_pandas()
            if codec == PANDAS:
                return frame
            series = frame.iloc[:, 0]
            return series.rename(None) if series.name == _UNNAMED else series
        if codec == NUMPY:
            return np.load(io.BytesIO(data), allow_pickle=False)
        if codec.startswith(MODEL_PREFIX):
            flavor = self.flavors.get(codec.removeprefix(MODEL_PREFIX))
            with tempfile.TemporaryDirectory(prefix="loopml-step-") as tmp:
                path = Path(tmp) / flavor.file_name
                path.write_bytes(data)
                # Written by this workspace and verified by hash on read: a cached model
                # is as trusted as the code that made it.
                return flavor.load(path, trusted=True)
        if codec == PICKLE:
            if not allow_pickle:
                raise PermissionDenied(
                    "a cached output is a pickle but the step no longer allows pickle; "
                    "mark it @loopml.step(pickle=True) or clear its cache"
                )
            import cloudpickle

            return cloudpickle.loads(data)
        raise InvalidInput(f"unknown step output codec {codec!r}; a newer loopml wrote it")

    def _save(self, flavor_name: str, value: object) -> bytes:
        flavor = self.flavors.get(flavor_name)
        with tempfile.TemporaryDirectory(prefix="loopml-step-") as tmp:
            path = Path(tmp) / flavor.file_name
            flavor.save(value, path)
            return path.read_bytes()


def _is_json(value: object, depth: int = 0) -> bool:
    if depth > 64:
        return False
    if value is None or isinstance(value, bool | int | str):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list | tuple):
        return isinstance(value, list) and all(_is_json(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json(v, depth + 1) for k, v in value.items())
    return False


def _parquet(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", compression_level=1, write_statistics=False)
    return bytes(sink.getvalue())
