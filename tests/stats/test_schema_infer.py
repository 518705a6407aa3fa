from __future__ import annotations

import math
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import loopml
from loopml.domain.data_schema import SERVING, TRAINING, ColumnRule, TypeFamily
from loopml.domain.errors import InvalidInput
from loopml.domain.schema_file import schema_from_toml, schema_to_toml
from loopml.stats.schema import MAX_CATEGORIES, infer_schema, widen
from loopml.stats.validate import validate

F = TypeFamily
BIKES = Path(loopml.__file__).parent / "data" / "bike_sharing_hourly.parquet"


def rule(schema_columns: tuple[ColumnRule, ...], name: str) -> ColumnRule:
    return next(r for r in schema_columns if r.name == name)


def test_types_map_to_families() -> None:
    table = pa.table(
        {
            "i8": pa.array([1, 2, 3], pa.int8()),
            "u64": pa.array([1, 2, 3], pa.uint64()),
            "f32": pa.array([0.5, 1.5, 2.5], pa.float32()),
            "b": [True, False, True],
            "s": ["alpha", "beta", "gamma"],
            "d": pa.array([date(2024, 1, 1), date(2024, 1, 2), date(2024, 1, 3)]),
            "t": pa.array([datetime(2024, 1, 1)] * 3, pa.timestamp("ns")),
            "tz": pa.array([datetime(2024, 1, 1, tzinfo=UTC)] * 3, pa.timestamp("ms", "UTC")),
            "l": [[1], [2], []],
            "n": pa.array([None, None, None], pa.null()),
        }
    )
    schema = infer_schema(table)
    families = {r.name: r.family for r in schema.columns}
    assert families == {
        "i8": F.INT,
        "u64": F.INT,
        "f32": F.FLOAT,
        "b": F.BOOL,
        "s": F.STRING,  # three distinct values in three rows: free text
        "d": F.DATE,
        "t": F.DATETIME,
        "tz": F.DATETIME,
        "l": F.OTHER,
        "n": F.OTHER,
    }
    assert rule(schema.columns, "tz").minimum == datetime(2024, 1, 1, tzinfo=UTC)
    assert rule(schema.columns, "t").minimum == datetime(2024, 1, 1)
    nulls = rule(schema.columns, "n")
    assert nulls.nullable
    assert nulls.max_null_fraction == 1.0


def test_nullability_and_the_allowed_share_of_missing_values() -> None:
    values = [1.0] * 90 + [None] * 5 + [math.nan] * 5  # NaN counts as missing
    table = pa.table({"full": list(range(100)), "gappy": values})
    schema = infer_schema(table, tolerance=0.1)
    full, gappy = schema.columns
    assert not full.nullable
    assert full.max_null_fraction is None
    assert gappy.nullable
    # 10% missing, times (1 + 0.1), plus 0.01, rounded up to 4 decimals
    assert gappy.max_null_fraction == pytest.approx(0.12)


def test_int_ranges_widen_by_tolerance_and_do_not_cross_zero() -> None:
    table = pa.table(
        {"count": [50, 0, 100], "temp": [0, -20, 20], "debt": [-50, -100, -1], "k": [7, 7, 7]}
    )
    schema = infer_schema(table, tolerance=0.1)
    count, temp, debt, constant = schema.columns
    assert (count.minimum, count.maximum) == (0, 110)  # no negative counts from a tolerance
    assert (temp.minimum, temp.maximum) == (-24, 24)
    assert (debt.minimum, debt.maximum) == (-110, 0)  # nor positive ones
    assert (constant.minimum, constant.maximum) == (6, 8)  # 10% of the value itself


def test_float_ranges_round_outwards_to_readable_bounds() -> None:
    table = pa.table({"x": [0.123456, 3.14159, 9.87654], "y": [-1.0, 0.5, 2.0]})
    x, y = infer_schema(table, tolerance=0.1).columns
    assert x.minimum == 0.0  # would be negative: clipped at zero
    assert x.maximum == 10.9  # 9.87654 + 0.975... rounded up to the tenth
    assert y.minimum == -1.3  # pad 0.3: bounds to the tenth
    assert y.maximum == 2.3
    exact = infer_schema(table, tolerance=0).columns[0]
    assert (exact.minimum, exact.maximum) == (0.123456, 9.87654)


def test_widen_keeps_non_finite_floats_and_huge_ints_exact() -> None:
    assert widen(F.FLOAT, -math.inf, 1.0, 0.1) == (-math.inf, 1.0)
    big = 2**63 - 1
    assert widen(F.INT, big, big, 0.0) == (big, big)


def test_dates_and_datetimes_get_only_a_lower_bound() -> None:
    table = pa.table(
        {
            "d": pa.array([date(2024, 1, 1), date(2024, 1, 11)]),
            "t": pa.array([datetime(2024, 1, 1, 12, 0, 0, 5), datetime(2024, 1, 1, 12, 0, 10)]),
            "long": pa.array([datetime(2024, 1, 1, 12), datetime(2024, 3, 1)]),
        }
    )
    d, t, long = infer_schema(table, tolerance=0.1).columns
    assert (d.minimum, d.maximum) == (date(2023, 12, 31), None)
    assert (t.minimum, t.maximum) == (datetime(2024, 1, 1, 11, 59, 59), None)  # to the second
    assert (long.minimum, long.maximum) == (datetime(2023, 12, 26), None)  # to the day


def test_low_cardinality_text_becomes_a_category() -> None:
    rng = np.random.default_rng(1)
    many = [f"user-{i}" for i in range(MAX_CATEGORIES + 50)] * 4
    table = pa.table(
        {
            "colour": rng.choice(["red", "green", "blue"], 300),
            "name": many[:300],
            "coded": pa.array(["a", "b", "c"] * 100).dictionary_encode(),
        }
    )
    colour, name, coded = infer_schema(table).columns
    assert colour.family is F.CATEGORY
    assert colour.categories == ("blue", "green", "red")
    assert name.family is F.STRING  # 150 distinct values: more than MAX_CATEGORIES
    assert name.categories is None
    assert coded.family is F.CATEGORY
    assert coded.categories == ("a", "b", "c")


def test_text_seen_about_once_per_value_stays_free_text() -> None:
    table = pa.table({"word": ["a", "b", "c", "d", "a"]})
    assert infer_schema(table).columns[0].family is F.STRING
    table = pa.table({"word": ["a", "b", "a", "b"]})
    assert infer_schema(table).columns[0].family is F.CATEGORY


def test_an_id_named_unique_column_becomes_the_key() -> None:
    table = pa.table({"amount": [5, 3, 9], "user_id": ["u3", "u1", "u2"], "x": [3, 1, 2]})
    schema = infer_schema(table)
    assert schema.key == ("user_id",)
    assert not rule(schema.columns, "user_id").nullable


@pytest.mark.parametrize("name", ["id", "ID", "userId", "order_key", "row-uuid", "customer.id"])
def test_id_names_are_recognised(name: str) -> None:
    table = pa.table({"v": [1, 1, 2], name: [30, 10, 20]})
    assert infer_schema(table).key == (name,)


@pytest.mark.parametrize("name", ["paid", "valid", "monkey", "idle"])
def test_words_ending_like_id_are_not_ids(name: str) -> None:
    table = pa.table({name: [30, 10, 20]})
    assert infer_schema(table).key == ()


def test_a_repeated_or_incomplete_id_is_not_a_key() -> None:
    assert infer_schema(pa.table({"id": [3, 1, 3]})).key == ()
    assert infer_schema(pa.table({"id": [3, None, 4]})).key == ()


def test_an_increasing_int_column_is_the_fallback_key_without_an_upper_bound() -> None:
    batches = [
        pa.record_batch({"instant": [1, 2, 3], "v": [5, 5, 6]}),
        pa.record_batch({"instant": [4, 9, 10], "v": [5, 5, 6]}),
    ]
    schema = infer_schema(batches)
    assert schema.key == ("instant",)
    instant = rule(schema.columns, "instant")
    assert instant.minimum == 0
    assert instant.maximum is None  # new rows bring new ids
    # decreasing across a batch boundary is not a row number
    broken = [batches[1], batches[0]]
    assert infer_schema(broken).key == ()


def test_shuffled_ids_under_another_name_are_not_guessed() -> None:
    table = pa.table({"number": np.random.default_rng(0).permutation(100)})
    assert infer_schema(table).key == ()


def test_a_given_key_is_kept_when_complete_and_unique() -> None:
    table = pa.table({"shop": ["a", "a", "b"], "day": [1, 2, 1], "sales": [5, 6, 7]})
    schema = infer_schema(table, key=["shop", "day"])
    assert schema.key == ("shop", "day")


def test_a_given_key_that_repeats_is_refused_with_examples() -> None:
    table = pa.table({"shop": ["a", "a", "b", "a"], "day": [1, 2, 1, 1]})
    with pytest.raises(InvalidInput, match=r"1 of 4 rows repeat an earlier key, e\.g\. \('a', 1\)"):
        infer_schema(table, key=["shop", "day"])


def test_a_given_key_with_missing_values_is_refused() -> None:
    with pytest.raises(InvalidInput, match="has 1 missing values"):
        infer_schema(pa.table({"id": [1, None, 3]}), key=["id"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"key": ["nope"]}, "key column 'nope' is not in the data"),
        ({"key": "id"}, "key must be a list of column names"),
        ({"label": "target"}, "label 'target' is not a column of the data"),
        ({"tolerance": -0.1}, "tolerance must be a finite number of at least 0"),
        ({"tolerance": math.nan}, "tolerance must be a finite number"),
        ({"tolerance": "0.1"}, "tolerance must be a number"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        infer_schema(pa.table({"id": [1, 2]}), **kwargs)  # type: ignore[arg-type]


def test_empty_data_cannot_give_a_schema() -> None:
    with pytest.raises(InvalidInput, match="from 0 rows"):
        infer_schema(pa.table({"x": pa.array([], pa.int64())}))
    with pytest.raises(InvalidInput, match="from 0 rows"):
        infer_schema([])


def test_the_label_belongs_to_training_only() -> None:
    schema = infer_schema(pa.table({"x": [1.0, 2.0], "y": [0, 1]}), label="y")
    assert schema.label == "y"
    y = rule(schema.columns, "y")
    assert y.environments == (TRAINING,)
    assert schema.expects(y, TRAINING)
    assert not schema.expects(y, SERVING)


def test_batches_give_the_same_schema_as_one_table() -> None:
    table = pq.read_table(BIKES)
    whole = infer_schema(table, label="cnt")
    streamed = infer_schema(table.to_batches(max_chunksize=1000), label="cnt")
    assert streamed == whole


def test_ints_and_floats_across_batches_become_float() -> None:
    batches = [pa.record_batch({"x": [1, 2]}), pa.record_batch({"x": [0.5, 3.5]})]
    x = infer_schema(batches, tolerance=0).columns[0]
    assert x.family is F.FLOAT
    assert (x.minimum, x.maximum) == (0.5, 3.5)


def test_a_column_of_nulls_in_one_batch_takes_the_type_of_the_others() -> None:
    batches = [
        pa.record_batch({"x": pa.array([None, None], pa.null())}),
        pa.record_batch({"x": [1, 2]}),
    ]
    x = infer_schema(batches, tolerance=0).columns[0]
    assert x.family is F.INT
    assert x.max_null_fraction == pytest.approx(0.51)  # half missing, plus 0.01


def test_a_type_change_across_batches_is_refused() -> None:
    batches = [pa.record_batch({"x": [1, 2]}), pa.record_batch({"x": ["a", "b"]})]
    with pytest.raises(InvalidInput, match=r"column 'x' holds int .* but string .* in batch 2"):
        infer_schema(batches)


def test_batches_with_other_columns_are_refused() -> None:
    batches = [pa.record_batch({"x": [1]}), pa.record_batch({"x": [2], "y": [3]})]
    with pytest.raises(InvalidInput, match="batch 2 has the columns"):
        infer_schema(batches)


def test_something_else_than_arrow_is_refused() -> None:
    with pytest.raises(InvalidInput, match="expected a pyarrow Table"):
        infer_schema({"x": [1, 2]})  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="expected pyarrow RecordBatches"):
        infer_schema([{"x": [1]}])  # type: ignore[list-item]


def test_the_bike_sharing_schema_validates_its_own_data_and_round_trips() -> None:
    table = pq.read_table(BIKES)
    schema = infer_schema(table, label="cnt")
    assert schema.key == ("instant",)
    report = validate(table, schema)
    assert report.ok
    assert report.findings == ()
    assert schema_from_toml(schema_to_toml(schema), "bikes.toml") == schema


_COLUMN_VALUES = {
    "int": st.integers(-(2**40), 2**40),
    "float": st.floats(allow_nan=True, allow_infinity=False, width=64),
    "text": st.sampled_from(["a", "b", "c", "dd", ""]) | st.text(max_size=5),
    "bool": st.booleans(),
}


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(sorted(_COLUMN_VALUES)),
    data=st.data(),
    tolerance=st.sampled_from([0.0, 0.1, 0.5]),
)
def test_inferred_schemas_accept_the_data_they_came_from(
    kind: str, data: st.DataObject, tolerance: float
) -> None:
    values = data.draw(st.lists(st.none() | _COLUMN_VALUES[kind], min_size=1, max_size=40))
    if all(v is None for v in values):
        values.append(data.draw(_COLUMN_VALUES[kind]))
    table = pa.table({"v": values})
    schema = infer_schema(table, tolerance=tolerance)
    report = validate(table, schema)
    assert report.ok, [f.message for f in report.findings]
    assert not report.findings
