"""Model flavors with real libraries and real files: round trips, detection and refusals.

Every round trip saves a fitted model, loads it back from disk and compares predictions
with the original. The security tests use a pickle whose ``__reduce__`` creates a marker
file, and check that no flavor runs it unless trust was given explicitly.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import onnx
import pandas as pd
import pytest
import skops.io as sio
import xgboost as xgb
from skl2onnx import to_onnx
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import loopml.adapters.flavors.catalog as catalog_module
from custom_estimators import ShiftedMean
from loopml.adapters.flavors.catalog import DefaultFlavorCatalog
from loopml.adapters.flavors.lightgbm import LightGBMFlavor, LightGBMModel
from loopml.adapters.flavors.onnx import OnnxFlavor, OnnxModel
from loopml.adapters.flavors.pyfunc import PythonFunctionFlavor
from loopml.adapters.flavors.sklearn import SklearnFlavor
from loopml.adapters.flavors.xgboost import XGBoostFlavor, XGBoostModel
from loopml.domain.errors import InvalidInput, PermissionDenied

FLAVOR_NAMES = ["sklearn", "xgboost", "lightgbm", "onnx", "python_function"]
NATIVE_FLAVORS = ["sklearn", "xgboost", "lightgbm", "onnx"]


# --- models and data ------------------------------------------------------------------


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(200, 5))
    y = x @ np.array([1.5, -2.0, 0.5, 0.0, 3.0]) + rng.normal(scale=0.1, size=200)
    return x, y


@pytest.fixture(scope="module")
def models(data: tuple[np.ndarray, np.ndarray]) -> dict[str, Any]:
    x, y = data
    linear = LinearRegression().fit(x, y)
    return {
        "x": x,  # the features every model was fitted on
        "linear": linear,
        "pipeline": make_pipeline(StandardScaler(), Ridge(alpha=0.5)).fit(x, y),
        "xgb_regressor": xgb.XGBRegressor(n_estimators=20, max_depth=3).fit(x, y),
        "xgb_booster": xgb.train({"max_depth": 3}, xgb.DMatrix(x, label=y), num_boost_round=20),
        "lgbm_regressor": lgb.LGBMRegressor(n_estimators=20, verbose=-1).fit(x, y),
        "lgbm_booster": lgb.train(
            {"objective": "regression", "verbose": -1}, lgb.Dataset(x, label=y), 20
        ),
        "onnx": to_onnx(linear, x[:1].astype(np.float32)),
    }


def _reference(key: str, models: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """What the original, never-saved model predicts."""
    if key == "xgb_booster":
        return np.asarray(models[key].predict(xgb.DMatrix(x)))
    if key == "onnx":
        return np.asarray(models["linear"].predict(x))
    return np.asarray(models[key].predict(x))


class TouchOnUnpickle:
    """Stands in for an attacker's payload: unpickling it creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[Path]]:
        return (Path.touch, (self.marker,))


def _write_payload(path: Path, marker: Path) -> None:
    path.write_bytes(pickle.dumps(TouchOnUnpickle(marker)))


# --- round trips ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "flavor_name", "tolerance"),
    [
        ("linear", "sklearn", 1e-12),
        ("pipeline", "sklearn", 1e-12),
        ("xgb_regressor", "xgboost", 1e-6),
        ("xgb_booster", "xgboost", 1e-6),
        ("lgbm_regressor", "lightgbm", 1e-9),
        ("lgbm_booster", "lightgbm", 1e-9),
        ("onnx", "onnx", 1e-4),  # float32 inference against the float64 original
    ],
)
def test_save_load_predicts_like_the_original(
    tmp_path: Path, models: dict[str, Any], key: str, flavor_name: str, tolerance: float
) -> None:
    x = models["x"]
    flavor = DefaultFlavorCatalog().get(flavor_name)
    path = tmp_path / flavor.file_name
    flavor.save(models[key], path)

    loaded: Any = flavor.load(path, trusted=False)

    predictions = np.asarray(loaded.predict(x)).ravel()
    np.testing.assert_allclose(
        predictions, _reference(key, models, x), rtol=tolerance, atol=tolerance
    )


@pytest.mark.parametrize("key", ["xgb_regressor", "lgbm_regressor", "onnx"])
def test_wrappers_predict_from_a_dataframe(
    tmp_path: Path, data: tuple[np.ndarray, np.ndarray], models: dict[str, Any], key: str
) -> None:
    x, _ = data
    flavor = DefaultFlavorCatalog().detect(models[key])
    path = tmp_path / flavor.file_name
    flavor.save(models[key], path)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(x.shape[1])])

    loaded: Any = flavor.load(path, trusted=False)

    np.testing.assert_allclose(
        np.asarray(loaded.predict(frame)).ravel(), _reference(key, models, x), rtol=1e-4, atol=1e-4
    )


def test_loaded_wrappers_expose_the_native_objects(tmp_path: Path, models: dict[str, Any]) -> None:
    xgb_path, lgb_path, onnx_path = tmp_path / "m.ubj", tmp_path / "m.txt", tmp_path / "m.onnx"
    XGBoostFlavor().save(models["xgb_regressor"], xgb_path)
    LightGBMFlavor().save(models["lgbm_regressor"], lgb_path)
    OnnxFlavor().save(models["onnx"], onnx_path)

    xgb_model = XGBoostFlavor().load(xgb_path, trusted=False)
    lgb_model = LightGBMFlavor().load(lgb_path, trusted=False)
    onnx_model = OnnxFlavor().load(onnx_path, trusted=False)

    assert isinstance(xgb_model, XGBoostModel)
    assert isinstance(xgb_model.booster, xgb.Booster)
    assert isinstance(lgb_model, LightGBMModel)
    assert isinstance(lgb_model.booster, lgb.Booster)
    assert isinstance(onnx_model, OnnxModel)
    assert onnx_model.session.get_providers() == ["CPUExecutionProvider"]


def test_xgboost_early_stopping_model_predicts_with_its_best_iteration(
    tmp_path: Path, data: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = data
    model = xgb.XGBRegressor(n_estimators=500, max_depth=3, early_stopping_rounds=3)
    model.fit(x[:150], y[:150], eval_set=[(x[150:], y[150:])], verbose=False)
    assert model.best_iteration + 1 < 500  # early stopping really cut the model
    path = tmp_path / "model.ubj"
    XGBoostFlavor().save(model, path)

    loaded = XGBoostFlavor().load(path, trusted=False)

    assert loaded.booster.num_boosted_rounds() == model.best_iteration + 1
    np.testing.assert_allclose(loaded.predict(x), model.predict(x), rtol=1e-6)


def test_xgboost_classifier_loads_as_probabilities(
    tmp_path: Path, data: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = data
    classifier = xgb.XGBClassifier(n_estimators=10, max_depth=2).fit(x, (y > 0).astype(int))
    path = tmp_path / "model.ubj"
    XGBoostFlavor().save(classifier, path)

    loaded = XGBoostFlavor().load(path, trusted=False)

    np.testing.assert_allclose(loaded.predict(x), classifier.predict_proba(x)[:, 1], rtol=1e-6)


def test_python_function_round_trips_a_closure_and_an_object(
    tmp_path: Path, data: tuple[np.ndarray, np.ndarray], models: dict[str, Any]
) -> None:
    x, _ = data
    weights = np.arange(5.0)

    def score(features: np.ndarray) -> np.ndarray:
        return features @ weights

    flavor = PythonFunctionFlavor()
    flavor.save(score, tmp_path / "fn.cloudpickle")
    flavor.save(models["linear"], tmp_path / "obj.cloudpickle")

    loaded_fn: Any = flavor.load(tmp_path / "fn.cloudpickle", trusted=True)
    loaded_obj: Any = flavor.load(tmp_path / "obj.cloudpickle", trusted=True)

    np.testing.assert_allclose(loaded_fn(x), x @ weights)
    np.testing.assert_allclose(loaded_obj.predict(x), models["linear"].predict(x))


# --- detection and the catalog --------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("linear", "sklearn"),
        ("pipeline", "sklearn"),
        ("xgb_regressor", "xgboost"),
        ("xgb_booster", "xgboost"),
        ("lgbm_regressor", "lightgbm"),
        ("lgbm_booster", "lightgbm"),
        ("onnx", "onnx"),
    ],
)
def test_detect_picks_the_native_flavor(models: dict[str, Any], key: str, expected: str) -> None:
    assert DefaultFlavorCatalog().detect(models[key]).name == expected


def test_detect_accepts_a_custom_sklearn_estimator() -> None:
    assert DefaultFlavorCatalog().detect(ShiftedMean()).name == "sklearn"


def _plain_function(x: object) -> object:
    return x


@pytest.mark.parametrize(
    ("model", "type_name"),
    [
        ({"weights": [1, 2]}, "builtins.dict"),
        (_plain_function, "builtins.function"),
    ],
)
def test_detect_refuses_other_objects_and_points_to_python_function(
    model: object, type_name: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        DefaultFlavorCatalog().detect(model)

    message = str(info.value)
    assert type_name in message
    assert 'flavor="python_function"' in message
    assert "trusted=True" in message
    assert "runs code" in message


def test_get_returns_each_flavor_and_names_lists_them() -> None:
    catalog = DefaultFlavorCatalog()

    assert catalog.names() == FLAVOR_NAMES
    for name in FLAVOR_NAMES:
        assert catalog.get(name).name == name


def test_get_unknown_flavor_lists_the_known_ones() -> None:
    with pytest.raises(InvalidInput) as info:
        DefaultFlavorCatalog().get("pytorch")

    message = str(info.value)
    assert "'pytorch'" in message
    assert "sklearn, xgboost, lightgbm, onnx, python_function" in message


def test_file_names_are_distinct_and_carry_the_format() -> None:
    catalog = DefaultFlavorCatalog()

    files = {name: catalog.get(name).file_name for name in FLAVOR_NAMES}

    assert files == {
        "sklearn": "model.skops",
        "xgboost": "model.ubj",
        "lightgbm": "model.txt",
        "onnx": "model.onnx",
        "python_function": "model.cloudpickle",
    }


def test_describe_names_libraries_and_versions(models: dict[str, Any]) -> None:
    catalog = DefaultFlavorCatalog()

    sk = catalog.get("sklearn").describe(models["pipeline"])
    xg = catalog.get("xgboost").describe(models["xgb_regressor"])
    xg_booster = catalog.get("xgboost").describe(models["xgb_booster"])
    lg = catalog.get("lightgbm").describe(models["lgbm_booster"])
    ox = catalog.get("onnx").describe(models["onnx"])
    py = catalog.get("python_function").describe(_plain_function)

    import sklearn
    import skops

    assert sk == {"sklearn": sklearn.__version__, "skops": skops.__version__}
    assert xg == {"xgboost": xgb.__version__, "xgboost_class": "XGBRegressor"}
    assert xg_booster["xgboost_class"] == "Booster"
    assert lg == {"lightgbm": lgb.__version__, "lightgbm_class": "Booster"}
    assert ox["onnx"] == onnx.__version__
    assert ox["onnx_producer"].startswith("skl2onnx ")
    assert "ai.onnx=" in ox["onnx_opsets"]
    assert py["python_class"] == "builtins.function"
    assert py["python"] == ".".join(map(str, sys.version_info[:3]))


def test_importing_and_detecting_imports_no_ml_library() -> None:
    src = Path(catalog_module.__file__).parents[3]
    script = (
        "import sys\n"
        "from loopml.adapters.flavors.catalog import DefaultFlavorCatalog\n"
        "from loopml.domain.errors import InvalidInput\n"
        "try:\n"
        "    DefaultFlavorCatalog().detect({'a': 1})\n"
        "except InvalidInput:\n"
        "    pass\n"
        "heavy = ('sklearn', 'skops', 'xgboost', 'lightgbm', 'onnx', 'onnxruntime', "
        "'cloudpickle', 'numpy', 'pandas')\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")]),
    }

    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )

    assert result.stdout.strip() == ""


# --- refusals -------------------------------------------------------------------------


@pytest.mark.parametrize("flavor_name", FLAVOR_NAMES)
def test_save_refuses_a_model_of_another_family(tmp_path: Path, flavor_name: str) -> None:
    flavor = DefaultFlavorCatalog().get(flavor_name)
    path = tmp_path / flavor.file_name

    with pytest.raises(InvalidInput, match=r"builtins\.dict"):
        flavor.save({"weights": [1, 2]}, path)
    assert not path.exists()


@pytest.mark.parametrize(
    "model", [xgb.XGBRegressor(), lgb.LGBMRegressor()], ids=["xgboost", "lightgbm"]
)
def test_save_refuses_an_unfitted_model(tmp_path: Path, model: object) -> None:
    flavor = DefaultFlavorCatalog().detect(model)

    with pytest.raises(InvalidInput, match="unfitted"):
        flavor.save(model, tmp_path / flavor.file_name)


def test_onnx_save_refuses_external_data(tmp_path: Path) -> None:
    weights = onnx.numpy_helper.from_array(np.ones(3, dtype=np.float32), "w")
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Add", ["x", "w"], ["y"])],
        "add",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [3])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [3])],
        [weights],
    )
    model = onnx.helper.make_model(graph)
    OnnxFlavor().save(model, tmp_path / "inline.onnx")  # the same model, weights inline
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "weights.bin"

    with pytest.raises(InvalidInput, match="external data"):
        OnnxFlavor().save(model, tmp_path / "model.onnx")


def test_the_payload_really_runs_code_when_unpickled(tmp_path: Path) -> None:
    # Control for the tests below: without it, a payload that did nothing would pass them.
    marker = tmp_path / "pwned"
    _write_payload(tmp_path / "payload.pkl", marker)

    pickle.loads((tmp_path / "payload.pkl").read_bytes())

    assert marker.exists()


@pytest.mark.parametrize("flavor_name", NATIVE_FLAVORS)
def test_native_flavors_refuse_a_pickle_without_running_it(
    tmp_path: Path, flavor_name: str
) -> None:
    flavor = DefaultFlavorCatalog().get(flavor_name)
    path = tmp_path / flavor.file_name
    marker = tmp_path / "pwned"
    _write_payload(path, marker)

    for trusted in (False, True):
        with pytest.raises(InvalidInput):
            flavor.load(path, trusted=trusted)

    assert not marker.exists()


def test_sklearn_refuses_a_pickle_and_says_it_never_falls_back(tmp_path: Path) -> None:
    path = tmp_path / "model.skops"
    _write_payload(path, tmp_path / "pwned")

    with pytest.raises(InvalidInput, match="never falls back to pickle"):
        SklearnFlavor().load(path, trusted=True)


def test_sklearn_refuses_a_zip_that_is_not_a_skops_archive(tmp_path: Path) -> None:
    path = tmp_path / "model.skops"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model.pkl", b"not a skops schema")

    with pytest.raises(InvalidInput, match="not a skops archive"):
        SklearnFlavor().load(path, trusted=True)


def test_python_function_refuses_untrusted_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "model.cloudpickle"
    marker = tmp_path / "pwned"
    _write_payload(path, marker)

    with pytest.raises(PermissionDenied, match="trusted=True") as info:
        PythonFunctionFlavor().load(path, trusted=False)
    # Refused before opening the file: a missing file is refused the same way.
    with pytest.raises(PermissionDenied):
        PythonFunctionFlavor().load(tmp_path / "missing.cloudpickle", trusted=False)

    assert "arbitrary code" in str(info.value)
    assert not marker.exists()


def test_python_function_trusted_really_unpickles(tmp_path: Path) -> None:
    # trusted=True means what it says: the file's code runs. This is why it is opt-in.
    path = tmp_path / "model.cloudpickle"
    marker = tmp_path / "pwned"
    _write_payload(path, marker)

    PythonFunctionFlavor().load(path, trusted=True)

    assert marker.exists()


def test_sklearn_refuses_untrusted_types_then_loads_with_trust(
    tmp_path: Path, data: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = data
    model = ShiftedMean(shift=2.0).fit(x, y)
    path = tmp_path / "model.skops"
    SklearnFlavor().save(model, path)
    type_name = f"{ShiftedMean.__module__}.{ShiftedMean.__qualname__}"

    with pytest.raises(PermissionDenied) as info:
        SklearnFlavor().load(path, trusted=False)
    loaded: Any = SklearnFlavor().load(path, trusted=True)

    assert type_name in str(info.value)
    assert "trusted=True" in str(info.value)
    assert sio.get_untrusted_types(file=path) == [type_name]
    assert isinstance(loaded, ShiftedMean)
    np.testing.assert_allclose(loaded.predict(x), model.predict(x))


def test_xgboost_refuses_an_empty_file(tmp_path: Path) -> None:
    # xgboost aborts the process on an empty in-memory model; the flavor checks first.
    path = tmp_path / "model.ubj"
    path.write_bytes(b"")

    with pytest.raises(InvalidInput, match="empty"):
        XGBoostFlavor().load(path, trusted=False)


def test_onnx_predict_refuses_input_of_the_wrong_width(
    tmp_path: Path, data: tuple[np.ndarray, np.ndarray], models: dict[str, Any]
) -> None:
    x, _ = data
    path = tmp_path / "model.onnx"
    OnnxFlavor().save(models["onnx"], path)
    loaded = OnnxFlavor().load(path, trusted=False)

    with pytest.raises(InvalidInput, match="shape"):
        loaded.predict(x[:, :3])
