"""Step outputs through the real codec: round trips, byte-for-byte determinism, refusals.

A cached output is what a downstream step receives on a cache hit, instead of the value the
step returned on a miss: a round trip must give back an equal value of the same type. The
bytes must be the same for the same value, or an unchanged output gets a new digest and
every step downstream of it re-runs.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from loopml.adapters.flavors.catalog import DefaultFlavorCatalog
from loopml.adapters.step_outputs import StepOutputCodec
from loopml.domain.errors import InvalidInput, PermissionDenied


class Basket:
    """An object no safe codec holds."""

    def __init__(self, items: list[str]) -> None:
        self.items = items


@pytest.fixture(scope="module")
def codec() -> StepOutputCodec:
    return StepOutputCodec(DefaultFlavorCatalog())


def round_trip(codec: StepOutputCodec, value: object, allow_pickle: bool = False) -> Any:
    name, data = codec.encode(value, allow_pickle=allow_pickle)
    return name, codec.decode(name, data, allow_pickle=allow_pickle)


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "rooms": [3, 1, 4],
            "price": [250.5, np.nan, 1e6],
            "city": ["Lyon", "Nîmes", "Paris"],
            "garden": [True, False, True],
            "sold": pd.to_datetime(["2024-01-02", "2024-02-29", "2025-12-31"]),
            "kind": pd.Categorical(["flat", "house", "flat"]),
        },
        index=pd.Index(["b-7", "a-1", "c-3"], name="listing"),
    )


def xy() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(80, 4))
    return x, (x[:, 0] - x[:, 2] > 0).astype(int)


def fitted_pipeline() -> Any:
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(*xy())


def fitted_forest() -> Any:
    # tree internals are outside skops' default allow-list: decoding must trust them
    return RandomForestClassifier(n_estimators=4, random_state=0).fit(*xy())


# --- round trips --------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        0,
        -17,
        2.5,
        "",
        "héllo",
        [],
        {},
        [1, "a", None, [2.5]],
        {"b": {"a": [True]}},
    ],
)
def test_json_values_round_trip_with_their_types(codec: StepOutputCodec, value: Any) -> None:
    name, back = round_trip(codec, value)
    assert name == "json"
    assert back == value
    assert type(back) is type(value)  # True stays a bool, 0 stays an int


def test_json_bytes_do_not_depend_on_key_order(codec: StepOutputCodec) -> None:
    assert codec.encode({"a": 1, "b": [1, 2]}, allow_pickle=False) == codec.encode(
        {"b": [1, 2], "a": 1}, allow_pickle=False
    )


def test_a_dataframe_round_trips_with_its_index_and_dtypes(codec: StepOutputCodec) -> None:
    original = frame()
    name, back = round_trip(codec, original)
    assert name == "pandas"
    pd.testing.assert_frame_equal(back, original)
    assert list(back.index) == ["b-7", "a-1", "c-3"] and back.index.name == "listing"


@pytest.mark.parametrize(
    "series",
    [
        pd.Series([1.5, np.nan, 3.0], name="price", index=pd.Index([10, 20, 30], name="id")),
        pd.Series(["x", "y"], name="label"),
        pd.Series([4, 5, 6]),  # unnamed: must come back unnamed, not named 0
    ],
    ids=["named-indexed", "text", "unnamed"],
)
def test_a_series_round_trips_with_its_name_and_index(
    codec: StepOutputCodec, series: pd.Series
) -> None:
    name, back = round_trip(codec, series)
    assert name == "pandas-series"
    pd.testing.assert_series_equal(back, series)


def test_an_arrow_table_round_trips(codec: StepOutputCodec) -> None:
    table = pa.table(
        {
            "id": pa.array([1, 2, None], pa.int32()),
            "tags": pa.array([["a"], [], ["b", "c"]], pa.list_(pa.string())),
            "score": pa.array([0.5, 1.5, 2.5], pa.float64()),
        }
    )
    name, back = round_trip(codec, table)
    assert name == "arrow"
    assert isinstance(back, pa.Table)
    assert back.schema == table.schema
    assert back.equals(table)


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype=np.int64).reshape(3, 4),
        np.array([0.25, np.nan, -np.inf], dtype=np.float32),
        np.array([True, False, True]),
        np.array(["a", "bc", "déf"]),
        np.array(["2024-01-01", "2025-06-30"], dtype="datetime64[D]"),
    ],
    ids=["int", "float", "bool", "str", "datetime"],
)
def test_numpy_arrays_round_trip_with_dtype_and_shape(
    codec: StepOutputCodec, array: np.ndarray
) -> None:
    name, back = round_trip(codec, array)
    assert name == "numpy"
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)


@pytest.mark.parametrize("make", [fitted_pipeline, fitted_forest], ids=["pipeline", "forest"])
def test_an_sklearn_model_round_trips_and_predicts_the_same(
    codec: StepOutputCodec, make: Any
) -> None:
    model = make()
    name, back = round_trip(codec, model)
    assert name == "model:sklearn"
    assert type(back) is type(model)
    x, _ = xy()
    np.testing.assert_array_equal(back.predict(x), model.predict(x))
    np.testing.assert_array_equal(back.predict_proba(x), model.predict_proba(x))


# --- determinism --------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: {"z": [1, 2.5], "a": None},
        frame,
        lambda: frame()["price"],
        lambda: pa.Table.from_pandas(frame()),
        lambda: np.linspace(0, 1, 7),
        fitted_pipeline,
        fitted_forest,
    ],
    ids=["json", "dataframe", "series", "arrow", "numpy", "sklearn-pipeline", "sklearn-forest"],
)
def test_the_same_value_encodes_to_the_same_bytes(codec: StepOutputCodec, make: Any) -> None:
    value = make()
    first = codec.encode(value, allow_pickle=False)
    assert codec.encode(value, allow_pickle=False) == first
    # an equal value built again (other objects, other memory addresses) gives the same bytes
    assert codec.encode(make(), allow_pickle=False) == first


@pytest.mark.parametrize(
    "make",
    [frame, lambda: frame()["city"], fitted_pipeline],
    ids=["dataframe", "series", "sklearn"],
)
def test_a_copied_or_reloaded_value_encodes_to_the_same_bytes(
    codec: StepOutputCodec, make: Any
) -> None:
    # a step that returns a model it loaded (or a cached model fed back) must keep its digest.
    # Not tree models yet: a tree's node records have 7 padding bytes that a copied or
    # loaded tree leaves uninitialised, and the sklearn flavor stores them as they are.
    value = make()
    first = codec.encode(value, allow_pickle=False)
    assert codec.encode(copy.deepcopy(value), allow_pickle=False) == first
    reloaded = codec.decode(*first, allow_pickle=False)
    assert codec.encode(reloaded, allow_pickle=False) == first


def test_different_values_encode_to_different_bytes(codec: StepOutputCodec) -> None:
    changed = frame()
    changed.loc["a-1", "rooms"] = 2
    assert codec.encode(changed, allow_pickle=False) != codec.encode(frame(), allow_pickle=False)


# --- refusals -----------------------------------------------------------------------


def test_an_arbitrary_object_is_refused_naming_its_type_and_what_to_do(
    codec: StepOutputCodec,
) -> None:
    with pytest.raises(InvalidInput) as info:
        codec.encode(Basket(["pear"]), allow_pickle=False)
    message = str(info.value)
    assert "Basket cannot be stored safely" in message
    assert "DataFrame" in message and "@loopml.step(pickle=True)" in message


def test_a_plain_function_is_refused_too_never_pickled_as_a_python_function_model(
    codec: StepOutputCodec,
) -> None:
    with pytest.raises(InvalidInput, match=r"cannot be stored safely"):
        codec.encode(lambda x: x, allow_pickle=False)


def test_with_pickle_allowed_an_object_is_stored_and_read_back_only_with_pickle_allowed(
    codec: StepOutputCodec,
) -> None:
    name, data = codec.encode(Basket(["pear", "fig"]), allow_pickle=True)
    assert name == "pickle"
    back = codec.decode(name, data, allow_pickle=True)
    assert isinstance(back, Basket) and back.items == ["pear", "fig"]
    with pytest.raises(PermissionDenied, match=r"pickle=True\) or clear its cache"):
        codec.decode(name, data, allow_pickle=False)


def test_safe_values_never_use_pickle_even_when_it_is_allowed(codec: StepOutputCodec) -> None:
    assert codec.encode(frame(), allow_pickle=True)[0] == "pandas"
    assert codec.encode([1, 2], allow_pickle=True)[0] == "json"


@pytest.mark.parametrize(
    "value",
    [
        np.array([1, "a", None], dtype=object),
        np.array([{"a": 1}], dtype=object),
    ],
)
def test_a_numpy_object_array_is_refused(codec: StepOutputCodec, value: np.ndarray) -> None:
    with pytest.raises(InvalidInput, match=r"numpy\.ndarray cannot be stored safely"):
        codec.encode(value, allow_pickle=False)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), (1, 2), {1: "a"}])
def test_values_json_would_change_are_not_stored_as_json(
    codec: StepOutputCodec, value: object
) -> None:
    # NaN is not JSON, a tuple would come back a list, an int key a str key
    with pytest.raises(InvalidInput, match=r"cannot be stored safely"):
        codec.encode(value, allow_pickle=False)


def test_an_unknown_codec_name_is_refused(codec: StepOutputCodec) -> None:
    with pytest.raises(InvalidInput, match=r"unknown step output codec 'parquet-v9'"):
        codec.decode("parquet-v9", b"anything", allow_pickle=True)
    with pytest.raises(InvalidInput, match=r"unknown model flavor 'nope'"):
        codec.decode("model:nope", b"anything", allow_pickle=True)


def test_xgboost_and_lightgbm_models_use_their_native_formats(codec: StepOutputCodec) -> None:
    import lightgbm
    import xgboost

    x, y = xy()
    for model, expected in (
        (xgboost.XGBRegressor(n_estimators=3).fit(x, y), "model:xgboost"),
        (lightgbm.LGBMRegressor(n_estimators=3, verbose=-1).fit(x, y), "model:lightgbm"),
    ):
        name, data = codec.encode(model, allow_pickle=False)
        assert name == expected
        back: Any = codec.decode(name, data, allow_pickle=False)
        np.testing.assert_allclose(back.predict(x), model.predict(x), rtol=1e-6)
