"""Scoring a chunk through the flavor's block model: a float block built from the Arrow
columns, with no DataFrame, must give the very values the DataFrame gives; any chunk whose
block would not be exactly the DataFrame's keeps the DataFrame."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.linear_model import LogisticRegression, Ridge

from loopml.adapters.flavors.sklearn import SklearnFlavor
from loopml.services.scoring import Scorer, float_block

COLUMNS = ("hour", "temp", "count")


def _table(rows: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "hour": rng.integers(0, 24, rows),  # int64
            "temp": rng.normal(15, 8, rows).round(1),  # float64
            "count": rng.integers(-(10**6), 10**6, rows),
            "note": rng.choice(["a", "b"], rows),  # not a model input: passes through
        }
    )


MODELS = {
    "forest": lambda: RandomForestRegressor(n_estimators=8, max_depth=6, random_state=0),
    "hist_boosting": lambda: HistGradientBoostingRegressor(max_iter=20, random_state=0),
    "ridge": lambda: Ridge(alpha=0.3),
    "logistic": lambda: LogisticRegression(max_iter=500),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_chunk_scored_through_the_block_model_equals_the_frame_path(name: str) -> None:
    train = _table(2_000, seed=1).select(list(COLUMNS)).to_pandas()
    target = train["temp"] * 3 - train["hour"]
    if name == "logistic":
        target = (target > target.median()).astype(int)
    model: Any = MODELS[name]().fit(train, target)
    block_model = SklearnFlavor().block_model(model, COLUMNS)
    assert block_model is not None
    framed = Scorer(model, "models:/m/1", COLUMNS)
    blocked = Scorer(model, "models:/m/1", COLUMNS, block_model)
    for chunk in _table(3_000).to_batches(max_chunksize=700):
        table = pa.Table.from_batches([chunk])
        assert blocked.score_table(table, "rows").equals(framed.score_table(table, "rows"))


def test_the_block_is_the_frames_array_value_for_value_and_in_its_layout() -> None:
    table = _table(500).select(list(COLUMNS))
    block = float_block(table)
    expected = np.asarray(table.to_pandas())  # what scikit-learn gets from the DataFrame
    assert block is not None
    assert block.dtype == expected.dtype == np.float64
    assert np.array_equal(block, expected)
    assert block.flags.f_contiguous == expected.flags.f_contiguous


def test_a_float_null_is_nan_as_in_the_frame() -> None:
    table = pa.table({"a": pa.array([1.5, None, 2.0]), "b": pa.array([1, 2, 3])})
    block = float_block(table)
    assert block is not None
    assert np.array_equal(block, np.asarray(table.to_pandas()), equal_nan=True)


@pytest.mark.parametrize(
    ("table", "why"),
    [
        (pa.table({"a": [1, 2], "b": [3, 4]}), "integers only: the frame's array is int64"),
        (pa.table({"a": [1.0, 2.0], "s": ["x", "y"]}), "text"),
        (pa.table({"a": [1.0, 2.0], "b": pa.array([1, None])}), "an integer with a null"),
        (pa.table({"a": [1.0, 2.0], "b": [1, 2**53 + 1]}), "an integer float64 cannot hold"),
        (pa.table({"a": [1.0, 2.0], "b": pa.array([1.0, 2.0], pa.float32())}), "float32"),
        (pa.table({"a": [1.0, 2.0], "b": [True, False]}), "booleans"),
    ],
)
def test_chunks_whose_block_could_differ_keep_the_frame(table: pa.Table, why: str) -> None:
    assert float_block(table) is None, why


def test_a_scorer_without_signature_columns_has_no_block_model() -> None:
    model = Ridge().fit(pd.DataFrame({"a": [1.0, 2.0, 3.0]}), [1.0, 2.0, 3.0])

    class Unsigned:  # what Scorer.of reads from a model version without a signature
        uri = "models:/m/1"
        signature = None

    scorer = Scorer.of(Unsigned(), model, block=model)  # type: ignore[arg-type]
    assert scorer.block is None
