"""Which loaded models batch scoring may run on several chunks at once: library code
only, since a user's estimator or function may keep state while it predicts."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from custom_estimators import ShiftedMean
from loopml.adapters.flavors.catalog import DefaultFlavorCatalog
from loopml.adapters.flavors.sklearn import SklearnFlavor


def _user_function(x: Any) -> Any:
    return x


LIBRARY = {
    "ridge": Ridge(),
    "forest": RandomForestRegressor(),
    "hist_boosting": HistGradientBoostingRegressor(),
    "pipeline": make_pipeline(StandardScaler(), Ridge()),
    "numpy_function": make_pipeline(FunctionTransformer(np.log1p), Ridge()),
    "column_transformer": ColumnTransformer([("s", StandardScaler(), [0])]),
    "kernel": GaussianProcessRegressor(),  # a kernel object among its parameters
}
USER = {
    "custom_estimator": ShiftedMean(),
    "custom_step": make_pipeline(StandardScaler(), ShiftedMean()),
    "user_function": make_pipeline(FunctionTransformer(_user_function), Ridge()),
    "lambda": make_pipeline(FunctionTransformer(lambda x: x), Ridge()),
}


@pytest.mark.parametrize("name", sorted(LIBRARY))
def test_library_models_may_predict_concurrently(name: str) -> None:
    assert SklearnFlavor().concurrent_predict(LIBRARY[name]) is True


@pytest.mark.parametrize("name", sorted(USER))
def test_models_holding_user_code_predict_one_chunk_at_a_time(name: str) -> None:
    assert SklearnFlavor().concurrent_predict(USER[name]) is False


@pytest.mark.parametrize(
    ("flavor", "expected"),
    [("onnx", True), ("xgboost", False), ("lightgbm", False), ("python_function", False)],
)
def test_other_flavors_say_it_by_library(flavor: str, expected: bool) -> None:
    assert DefaultFlavorCatalog().get(flavor).concurrent_predict(Ridge()) is expected
