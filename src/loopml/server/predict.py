"""Calling a loaded model on request columns: the one place the server touches a model.

The model call itself is :class:`loopml.services.scoring.Scorer`'s, shared with batch
scoring: classifiers with ``predict_proba`` are called once, for probabilities, and the
predicted class is the most probable one, so the answer and its confidence (what
monitoring and human review need) cost one model call, not two.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from loopml.server.routing import Served
from loopml.services.scoring import Scorer

log = logging.getLogger("loopml.server")


@dataclass(frozen=True, slots=True)
class Prediction:
    values: list[Any]
    confidence: list[float] | None = None  # the top class's probability, classifiers only

    def columns(self) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {"prediction": self.values}
        if self.confidence is not None:
            out["confidence"] = self.confidence
        return out


def predict(served: Served, columns: Mapping[str, list[Any]]) -> Prediction:
    """One model call through the same :class:`Scorer` batch scoring uses; a model that
    refuses the input raises :class:`InvalidInput` (a 422 for the client)."""
    order = served.columns or tuple(columns)
    if served.all_double:  # one float block: a tenth of the cost of a frame from lists
        block = np.array([columns[name] for name in order], dtype=np.float64).T
        if served.block is not None:  # the flavor's block model: no DataFrame at all
            scorer = Scorer(served.model, served.target.uri, order, served.block)
            return _prediction(*scorer.predict_block(block, "this request"))
        frame = pd.DataFrame(block, columns=_index(order))
    else:
        frame = pd.DataFrame({name: columns[name] for name in order}, columns=list(order))
    scorer = Scorer(served.model, served.target.uri, order)
    return _prediction(*scorer.predict(frame, "this request"))


def _prediction(values: np.ndarray, confidence: np.ndarray | None) -> Prediction:
    return Prediction(_json_values(values), None if confidence is None else confidence.tolist())


@functools.lru_cache(maxsize=256)
def _index(order: tuple[str, ...]) -> pd.Index:
    """The column index of request frames, built once per column order."""
    return pd.Index(order)


def _json_values(values: np.ndarray) -> list[Any]:
    """The values as JSON-ready Python values: a non-finite number becomes None."""
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        return [float(v) if np.isfinite(v) else None for v in values]
    listed: list[Any] = values.tolist()
    return listed


def warm(served: Served) -> None:
    """One prediction on a made-up row, so that the first real request does not pay for
    the model's lazy set-up. A model that refuses the made-up row (an unseen category, say)
    is still served: warming is an optimisation, not a check."""
    signature = served.signature
    if signature is None or not signature.inputs:
        return
    row = {column.name: [_example(column.type)] for column in signature.inputs}
    try:
        predict(served, row)
    except Exception as exc:  # the model's own error on made-up data
        log.info("warming %s skipped: %s: %s", served.target.uri, type(exc).__name__, exc)


def _example(kind: str) -> Any:
    return {"boolean": False, "integer": 0, "double": 0.0, "string": "", "datetime": ""}.get(
        kind, 0.0
    )
