"""Flavors' block models: the form of a model that the server calls on a float block of
the signature's inputs instead of a DataFrame. A block model must answer exactly what the
model answers on the DataFrame the server would build from the same block, or not exist.

(Against a DataFrame laid out differently in memory, such as the user's own, answers
agree to the last few bits only: BLAS sums in another order. That was already so before
block models, since the server never passed the user's frame.)"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import load_iris
from sklearn.ensemble import (
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    VotingClassifier,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeRegressor

from custom_estimators import ShiftedMean
from loopml.adapters.flavors.catalog import DefaultFlavorCatalog
from loopml.adapters.flavors.sklearn import SklearnFlavor


@pytest.fixture(scope="module")
def iris() -> tuple[pd.DataFrame, np.ndarray]:
    frame, target = load_iris(return_X_y=True, as_frame=True)
    frame.columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    return frame, target.to_numpy()


def columns_of(frame: pd.DataFrame) -> tuple[str, ...]:
    return tuple(str(c) for c in frame.columns)


def block_of(frame: pd.DataFrame) -> np.ndarray:
    """The block as the server builds it: one float64 array per column, transposed."""
    return np.array([frame[c].tolist() for c in frame.columns], dtype=np.float64).T


def served_frame(block: np.ndarray, columns: tuple[str, ...]) -> pd.DataFrame:
    """The DataFrame the server builds from a block for models without a block model."""
    return pd.DataFrame(block, columns=pd.Index(columns))


CLASSIFIERS = {
    "logistic": lambda: LogisticRegression(max_iter=1000, random_state=0),
    "forest": lambda: RandomForestClassifier(n_estimators=5, random_state=0),
    "hist_boosting": lambda: HistGradientBoostingClassifier(max_iter=10, random_state=0),
    "neighbors": KNeighborsClassifier,
    "naive_bayes": GaussianNB,
}
REGRESSORS = {
    "ridge": lambda: Ridge(alpha=0.5),
    "boosting": lambda: GradientBoostingRegressor(n_estimators=10, random_state=0),
    "tree": lambda: DecisionTreeRegressor(max_depth=3, random_state=0),
}


@pytest.mark.parametrize("name", sorted(CLASSIFIERS))
def test_a_classifier_block_model_answers_as_the_model_on_its_frame(
    iris: tuple[pd.DataFrame, np.ndarray], name: str
) -> None:
    frame, target = iris
    model = CLASSIFIERS[name]().fit(frame, target)
    twin: Any = SklearnFlavor().block_model(model, columns_of(frame))
    assert twin is not None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "X does not have valid feature names"
        for rows in (frame.iloc[:1], frame.iloc[40:110]):
            block = block_of(rows)
            served = served_frame(block, columns_of(frame))
            assert np.array_equal(twin.predict_proba(block), model.predict_proba(served))
            assert np.array_equal(twin.predict(block), model.predict(served))
            np.testing.assert_allclose(
                twin.predict_proba(block), model.predict_proba(rows), rtol=1e-12, atol=1e-15
            )
    assert list(model.feature_names_in_) == list(frame.columns)  # the original is untouched


@pytest.mark.parametrize("name", sorted(REGRESSORS))
def test_a_regressor_block_model_answers_as_the_model_on_its_frame(
    iris: tuple[pd.DataFrame, np.ndarray], name: str
) -> None:
    frame, _ = iris
    features, target = frame.drop(columns="petal_width"), frame["petal_width"]
    model = REGRESSORS[name]().fit(features, target)
    twin: Any = SklearnFlavor().block_model(model, columns_of(features))
    assert twin is not None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for rows in (features.iloc[:1], features.iloc[:150]):
            block = block_of(rows)
            served = served_frame(block, columns_of(features))
            assert np.array_equal(twin.predict(block), model.predict(served))
            np.testing.assert_allclose(twin.predict(block), model.predict(rows), rtol=1e-12)


def test_a_block_model_still_checks_the_number_of_columns(
    iris: tuple[pd.DataFrame, np.ndarray],
) -> None:
    frame, target = iris
    model = LogisticRegression(max_iter=1000).fit(frame, target)
    twin: Any = SklearnFlavor().block_model(model, columns_of(frame))
    with pytest.raises(ValueError, match="4 features"):
        twin.predict(block_of(frame.iloc[:2, :3]))


def _pipeline(frame: pd.DataFrame, target: np.ndarray) -> Any:
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(frame, target)


def _voting(frame: pd.DataFrame, target: np.ndarray) -> Any:
    members = [("lr", LogisticRegression(max_iter=1000)), ("nb", GaussianNB())]
    return VotingClassifier(members, voting="soft").fit(frame, target)


def _calibrated(frame: pd.DataFrame, target: np.ndarray) -> Any:
    return CalibratedClassifierCV(LogisticRegression(max_iter=1000), cv=3).fit(frame, target)


def _fitted_on_arrays(frame: pd.DataFrame, target: np.ndarray) -> Any:
    return LogisticRegression(max_iter=1000).fit(frame.to_numpy(), target)


def _custom(frame: pd.DataFrame, target: np.ndarray) -> Any:
    return ShiftedMean().fit(frame, target)


@pytest.mark.parametrize(
    "fit",
    [_pipeline, _voting, _calibrated, _fitted_on_arrays, _custom],
    ids=["pipeline", "voting", "calibrated", "fitted_on_arrays", "custom_estimator"],
)
def test_models_that_use_more_than_the_block_get_none(
    iris: tuple[pd.DataFrame, np.ndarray], fit: Any
) -> None:
    frame, target = iris
    assert SklearnFlavor().block_model(fit(frame, target), columns_of(frame)) is None


def test_columns_in_another_order_get_none(iris: tuple[pd.DataFrame, np.ndarray]) -> None:
    frame, target = iris
    model = LogisticRegression(max_iter=1000).fit(frame, target)
    assert SklearnFlavor().block_model(model, columns_of(frame)[::-1]) is None
    assert SklearnFlavor().block_model(model, columns_of(frame)[:3]) is None


@pytest.mark.parametrize("flavor_name", ["xgboost", "lightgbm", "python_function"])
def test_models_a_flavor_did_not_load_have_no_block_model(
    iris: tuple[pd.DataFrame, np.ndarray], flavor_name: str
) -> None:
    frame, target = iris
    model = LogisticRegression(max_iter=1000).fit(frame, target)
    flavor = DefaultFlavorCatalog().get(flavor_name)
    assert flavor.block_model(model, columns_of(frame)) is None


def _boosters(frame: pd.DataFrame, target: np.ndarray) -> dict[str, Any]:
    xgboost = pytest.importorskip("xgboost")
    lightgbm = pytest.importorskip("lightgbm")
    return {
        "xgboost_regressor": xgboost.XGBRegressor(n_estimators=20, max_depth=3),
        "xgboost_classifier": xgboost.XGBClassifier(n_estimators=20, max_depth=3),
        "lightgbm_regressor": lightgbm.LGBMRegressor(n_estimators=20, verbose=-1),
        "lightgbm_classifier": lightgbm.LGBMClassifier(n_estimators=20, verbose=-1),
    }


def _saved_and_loaded(model: Any, tmp_path: Path) -> tuple[Any, Any]:
    flavor = DefaultFlavorCatalog().detect(model)
    path = tmp_path / flavor.file_name
    flavor.save(model, path)
    return flavor, flavor.load(path, trusted=False)


@pytest.mark.parametrize(
    "name",
    ["xgboost_regressor", "xgboost_classifier", "lightgbm_regressor", "lightgbm_classifier"],
)
def test_a_loaded_booster_answers_a_block_as_its_frame(
    iris: tuple[pd.DataFrame, np.ndarray], tmp_path: Path, name: str
) -> None:
    frame, target = iris
    model = _boosters(frame, target)[name]
    model.fit(frame, target if name.endswith("classifier") else frame["petal_width"])
    flavor, loaded = _saved_and_loaded(model, tmp_path)
    twin = flavor.block_model(loaded, columns_of(frame))
    assert twin is not None
    for rows in (frame.iloc[:1], frame.iloc[[7]], frame.sample(40, random_state=0)):
        block = block_of(rows)
        expected = loaded.predict(served_frame(block, columns_of(frame)))
        assert np.array_equal(twin.predict(block), expected)
    assert flavor.block_model(loaded, columns_of(frame)[::-1]) is None
    assert flavor.block_model(loaded, columns_of(frame)[:3]) is None


@pytest.mark.parametrize("library", ["xgboost", "lightgbm"])
def test_a_booster_with_a_categorical_feature_keeps_the_frame(
    iris: tuple[pd.DataFrame, np.ndarray], tmp_path: Path, library: str
) -> None:
    frame, target = iris
    with_category = frame.assign(size=pd.Categorical(np.where(target > 0, "big", "small")))
    boosters = _boosters(frame, target)
    model = (
        boosters["xgboost_regressor"].set_params(enable_categorical=True, tree_method="hist")
        if library == "xgboost"
        else boosters["lightgbm_regressor"]
    )
    model.fit(with_category, frame["petal_width"])
    flavor, loaded = _saved_and_loaded(model, tmp_path)
    assert flavor.block_model(loaded, columns_of(with_category)) is None


def test_an_onnx_model_is_its_own_block_model(
    tmp_path: Path, iris: tuple[pd.DataFrame, np.ndarray]
) -> None:
    from skl2onnx import to_onnx

    frame, _ = iris
    features, target = frame.drop(columns="petal_width"), frame["petal_width"]
    model = Ridge().fit(features.to_numpy(), target)
    flavor = DefaultFlavorCatalog().get("onnx")
    path = tmp_path / flavor.file_name
    flavor.save(to_onnx(model, features.to_numpy()[:1].astype(np.float32)), path)
    loaded: Any = flavor.load(path, trusted=False)
    assert flavor.block_model(loaded, columns_of(features)) is loaded
    rows = features.iloc[:20]
    assert np.array_equal(loaded.predict(block_of(rows)), loaded.predict(rows))
