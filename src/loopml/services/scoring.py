"""Calling a loaded model on a chunk of rows, the same way whatever runs the chunk.

Batch scoring's engines (this process's threads, or Dask workers) both score through a
:class:`Scorer`: the model gets the signature's input columns in the signature's order,
classifiers with ``predict_proba`` are called once, for probabilities (the predicted
class is the most probable one and ``confidence`` its probability, as the server does),
and the output columns are typed by :func:`prediction_arrays`, so that two engines given
the same rows write the same values with the same types.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loopml.domain.errors import InvalidInput
from loopml.domain.registry import ModelVersion

PREDICTION = "prediction"
CONFIDENCE = "confidence"  # the top class's probability, classifiers only


@dataclass(frozen=True, slots=True)
class Scorer:
    """A loaded model, the version it is, and the columns it takes."""

    model: Any
    uri: str  # models:/NAME/VERSION, for messages
    columns: tuple[str, ...]  # the signature's inputs, in order; () = every input column
    # The flavor's block model (ModelLoader.block_model): the same answers from a
    # float block of ``columns`` as ``model`` gives from their DataFrame, None if none.
    block: Any = None

    @classmethod
    def of(cls, mv: ModelVersion, model: Any, block: Any = None) -> Scorer:
        columns = () if mv.signature is None else tuple(c.name for c in mv.signature.inputs)
        return cls(model, mv.uri, columns, block if columns else None)

    @property
    def classifier(self) -> bool:
        return getattr(self.model, "classes_", None) is not None and hasattr(
            self.model, "predict_proba"
        )

    @property
    def outputs(self) -> tuple[str, ...]:
        """The columns scoring appends."""
        return (PREDICTION, CONFIDENCE) if self.classifier else (PREDICTION,)

    def check(self, names: Iterable[str], where: str) -> None:
        """Raise naming the columns the model takes that ``where`` lacks, or the output
        columns it already has."""
        present = list(names)
        missing = [c for c in self.columns if c not in present]
        if missing:
            raise InvalidInput(
                f"{where} lacks column(s) {', '.join(map(repr, missing))} that {self.uri} "
                f"takes as input (its signature: {', '.join(self.columns)}); the input has: "
                f"{', '.join(present) or 'no columns'}"
            )
        taken = [c for c in self.outputs if c in present]
        if taken:
            raise InvalidInput(
                f"{where} already has column(s) {', '.join(map(repr, taken))}, which scoring "
                "adds to the output; rename or drop them first"
            )

    def predict(self, frame: Any, where: str) -> tuple[np.ndarray, np.ndarray | None]:
        """The predictions (and, for a classifier, confidences) of a pandas DataFrame's
        rows; ``where`` names them in errors."""
        wanted = list(self.columns)
        # Selecting columns copies the frame (about 0.3 ms for one row): skip it when the
        # frame already holds exactly the model's columns in order (the server's case).
        features = frame[wanted] if wanted and list(frame.columns) != wanted else frame
        return self.predict_features(features, len(frame), where)

    def predict_block(self, block: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`predict` on a float block of the signature's columns, in order, through
        the block model (which must be set)."""
        return self.predict_features(block, len(block), where, self.block)

    def predict_features(
        self, features: Any, rows: int, where: str, model: Any = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`predict` on ``features`` as ``model`` (this scorer's, unless given)
        takes them, holding ``rows`` rows."""
        model = self.model if model is None else model
        try:
            if self.classifier:
                proba = np.asarray(model.predict_proba(features))
                best = proba.argmax(axis=1)
                values = np.asarray(model.classes_)[best]
                confidence: np.ndarray | None = proba[np.arange(len(best)), best]
            else:
                values, confidence = np.asarray(model.predict(features)), None
        except Exception as exc:  # the model's own error, whatever its library
            raise InvalidInput(
                f"{self.uri} failed on {where}: {type(exc).__name__}: {exc}; check that the "
                "input's columns hold the types the model was trained on"
            ) from exc
        if values.ndim == 2 and values.shape[1] == 1:
            values = values[:, 0]
        if values.ndim != 1 or len(values) != rows:
            raise InvalidInput(
                f"{self.uri} returned predictions of shape {values.shape} for "
                f"{rows} rows of {where}; batch scoring writes one value per row"
            )
        return values, confidence

    def score_table(self, table: pa.Table, where: str) -> pa.Table:
        """``table`` with the output columns appended (only the model's columns are
        converted to pandas; the others pass through as Arrow)."""
        features = table.select(list(self.columns)) if self.columns else table
        block = None if self.block is None else float_block(features)
        if block is not None:
            values, confidence = self.predict_block(block, where)
        else:
            values, confidence = self.predict(features.to_pandas(), where)
        for name, array in prediction_arrays(values, confidence).items():
            table = table.append_column(name, array)
        return table


_EXACT = 2**53  # integers up to this size are exact as float64


def float_block(table: pa.Table) -> np.ndarray | None:
    """``table``'s columns as the float64 block pandas makes of its DataFrame (the same
    values, in the same column-major layout), or None unless that block is exactly what
    a model would get from the DataFrame: at least one float64 column, the others float64
    or integers without nulls that float64 holds exactly. Anything else (text, booleans,
    float32, integers only, huge integers) keeps the DataFrame."""
    types = [f.type for f in table.schema]
    if not any(pa.types.is_float64(t) for t in types):
        return None
    for column, kind in zip(table.columns, types, strict=True):
        if pa.types.is_float64(kind):
            continue
        if not pa.types.is_integer(kind) or column.null_count:
            return None
        low, high = pc.min_max(column).values()
        if low.is_valid and max(-low.as_py(), high.as_py()) > _EXACT:
            return None
    block = np.empty((table.num_columns, table.num_rows), dtype=np.float64)
    for row, column in zip(block, table.columns, strict=True):
        row[:] = column.to_numpy()
    return block.T


def prediction_arrays(values: np.ndarray, confidence: np.ndarray | None) -> dict[str, pa.Array]:
    """The output columns of a chunk's predictions, typed the same way by every engine."""
    arrays = {PREDICTION: pa.array(values)}
    if confidence is not None:
        arrays[CONFIDENCE] = pa.array(confidence, pa.float64())
    return arrays
