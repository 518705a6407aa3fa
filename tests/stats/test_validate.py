from __future__ import annotations

import io
import json
import math
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import loopml
from loopml.domain.data_schema import (
    INFER_COMMAND,
    SERVING,
    TRAINING,
    ColumnRule,
    DataSchema,
    TypeFamily,
)
from loopml.domain.errors import InvalidInput
from loopml.domain.validation_report import Check, Finding, Severity, ValidationReport
from loopml.stats.keys import DuplicateKeyFinder
from loopml.stats.schema import infer_schema
from loopml.stats.validate import validate

F = TypeFamily
BIKES = Path(loopml.__file__).parent / "data" / "bike_sharing_hourly.parquet"

SCHEMA = DataSchema(
    columns=(
        ColumnRule("id", F.INT, nullable=False, minimum=1),
        ColumnRule("age", F.INT, nullable=False, minimum=0, maximum=120),
        ColumnRule("score", F.FLOAT, max_null_fraction=0.25, minimum=0.0, maximum=1.0),
        ColumnRule("colour", F.CATEGORY, categories=("red", "green", "blue")),
        ColumnRule("joined", F.DATE, minimum=date(2020, 1, 1)),
        ColumnRule("y", F.BOOL, nullable=False),
    ),
    label="y",
    key=("id",),
)


def clean_table(rows: int = 8) -> pa.Table:
    return pa.table(
        {
            "id": list(range(1, rows + 1)),
            "age": [20 + i % 50 for i in range(rows)],
            "score": [i / rows for i in range(rows)],
            "colour": [("red", "green", "blue")[i % 3] for i in range(rows)],
            "joined": [date(2021, 1, 1 + i % 28) for i in range(rows)],
            "y": [i % 2 == 0 for i in range(rows)],
        }
    )


def with_column(table: pa.Table, name: str, values: object) -> pa.Table:
    at = table.schema.get_field_index(name)
    array = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(values)
    return table.set_column(at, name, array)


def only(report: ValidationReport, check: Check) -> Finding:
    found = [f for f in report.findings if f.check is check]
    assert len(found) == 1, [f.message for f in report.findings]
    return found[0]


def checks(report: ValidationReport) -> list[Check]:
    return [f.check for f in report.findings]


def test_clean_data_has_no_findings() -> None:
    report = validate(clean_table(), SCHEMA)
    assert report.ok
    assert report.findings == ()
    assert report.rows == 8
    assert report.columns == ("id", "age", "score", "colour", "joined", "y")


def test_clean_real_data_streamed_has_no_findings() -> None:
    table = pq.read_table(BIKES)
    schema = infer_schema(table, label="cnt")
    report = validate(table.to_batches(max_chunksize=4096), schema)
    assert report.ok
    assert report.findings == ()
    assert report.rows == table.num_rows
    assert report.batches == math.ceil(table.num_rows / 4096)


def test_missing_column() -> None:
    report = validate(clean_table().drop_columns(["age"]), SCHEMA)
    finding = only(report, Check.MISSING_COLUMN)
    assert finding.severity is Severity.ERROR
    assert finding.column == "age"
    assert finding.seen == "no such column"
    assert "add the column" in finding.hint
    assert not report.ok


def test_column_missing_from_some_batches_only() -> None:
    batches = clean_table().to_batches(max_chunksize=4)
    second = batches[1].drop_columns(["score"])
    report = validate([batches[0], second], SCHEMA)
    finding = only(report, Check.MISSING_COLUMN)
    assert finding.seen == "absent from 1 of 2 batches (4 rows)"
    assert finding.count == 4


def test_extra_column_is_a_warning() -> None:
    table = clean_table().append_column("notes", pa.array(["x"] * 8))
    report = validate(table, SCHEMA)
    finding = only(report, Check.EXTRA_COLUMN)
    assert finding.severity is Severity.WARNING
    assert finding.column == "notes"
    assert "string" in finding.seen
    assert report.ok


def test_text_that_does_not_parse_is_a_type_mismatch_with_examples() -> None:
    table = with_column(clean_table(), "age", ["20", "31", "n/a", "44", "", "x1", "7", "8"])
    report = validate(table, SCHEMA)
    finding = only(report, Check.TYPE_MISMATCH)
    assert finding.severity is Severity.ERROR
    assert finding.column == "age"
    assert finding.expected == "type int"
    assert finding.count == 3
    assert finding.examples == ("n/a", "", "x1")
    assert "3 of 8 values do not convert to int" in finding.seen
    assert "string values" in finding.seen


def test_a_csv_column_that_no_longer_parses_is_found() -> None:
    data = b"id,age\n1,20\n2,thirty\n3,40\n"
    table = pacsv.read_csv(io.BytesIO(data))
    schema = DataSchema(columns=(ColumnRule("id", F.INT), ColumnRule("age", F.INT)))
    finding = only(validate(table, schema), Check.TYPE_MISMATCH)
    assert finding.examples == ("thirty",)


def test_text_that_parses_is_a_type_change_and_is_still_checked() -> None:
    table = with_column(clean_table(), "age", [" 20", "+31", "200", "44", "5", "6", "7", "8"])
    report = validate(table, SCHEMA)
    changed = only(report, Check.TYPE_CHANGED)
    assert changed.severity is Severity.WARNING
    assert "string values that parse as int" in changed.seen
    out = only(report, Check.OUT_OF_RANGE)  # the converted values still meet the range check
    assert out.examples == (200,)


@pytest.mark.parametrize(
    ("family", "text", "bad"),
    [
        (F.FLOAT, ["1.5", "1e3", "-.5", "inf", "abc"], ("abc",)),
        (F.BOOL, ["true", "FALSE", "1", "0", "yes"], ("yes",)),
        (F.DATE, ["2024-01-31", "2024-02-01", "31/01/2024", None, "2024-03-01"], ("31/01/2024",)),
        (
            F.DATETIME,
            ["2024-01-31T08:00:00", "2024-01-31 08:00:00.5", "2024-01-31", "soon", None],
            ("soon",),
        ),
    ],
)
def test_text_is_parsed_for_each_family(family: F, text: list[str | None], bad: tuple[str]) -> None:
    schema = DataSchema(columns=(ColumnRule("v", family),))
    report = validate(pa.table({"v": pa.array(text, pa.string())}), schema)
    assert only(report, Check.TYPE_MISMATCH).examples == bad


def test_whole_floats_in_an_int_column_are_a_change_fractions_a_mismatch() -> None:
    table = with_column(clean_table(), "age", [20.0, 30.0, 40.0, 50.0, 1.0, 2.0, 3.0, 4.0])
    assert checks(validate(table, SCHEMA)) == [Check.TYPE_CHANGED]
    table = with_column(clean_table(), "age", [20.5, 30.0, 40.0, 50.0, 1.0, 2.0, 3.0, math.inf])
    finding = only(validate(table, SCHEMA), Check.TYPE_MISMATCH)
    assert finding.examples == (20.5, math.inf)
    assert "fractional part" in finding.seen


def test_ints_in_a_float_column_are_fine() -> None:
    table = with_column(clean_table(), "score", [0, 1, 0, 1, 0, 1, 0, 1])
    assert validate(table, SCHEMA).findings == ()


def test_an_incompatible_type_is_a_mismatch() -> None:
    table = with_column(clean_table(), "age", [[1]] * 8)
    finding = only(validate(table, SCHEMA), Check.TYPE_MISMATCH)
    assert finding.seen.startswith("list<")
    assert finding.count == 8


def test_numbers_in_a_category_column_are_compared_as_text() -> None:
    schema = DataSchema(columns=(ColumnRule("zip", F.CATEGORY, categories=("01234", "75001")),))
    report = validate(pa.table({"zip": [1234, 75001]}), schema)
    assert only(report, Check.TYPE_CHANGED).severity is Severity.WARNING
    assert only(report, Check.UNSEEN_CATEGORY).examples == ("1234",)  # the lost leading zero


def test_values_out_of_range_are_counted_with_examples_and_extremes() -> None:
    ages = [20, -3, 130, 40, 150, 121, 50, 60]
    report = validate(with_column(clean_table(), "age", ages), SCHEMA)
    finding = only(report, Check.OUT_OF_RANGE)
    assert finding.severity is Severity.ERROR
    assert finding.column == "age"
    assert finding.count == 4
    assert finding.examples == (-3, 130, 150, 121)  # in row order
    assert dict(finding.details) == {"below": 1, "above": 3, "min_seen": -3, "max_seen": 150}
    assert finding.expected == "values from 0 to 120"
    assert INFER_COMMAND in finding.hint
    assert "widen min/max of 'age'" in finding.hint


def test_out_of_range_examples_are_capped() -> None:
    ages = [500 + i for i in range(8)]
    finding = only(validate(with_column(clean_table(), "age", ages), SCHEMA), Check.OUT_OF_RANGE)
    assert finding.count == 8
    assert len(finding.examples) == 5


def test_out_of_range_dates_show_as_text() -> None:
    joined = [date(2019, 12, 31)] + [date(2021, 1, 1)] * 7
    report = validate(with_column(clean_table(), "joined", joined), SCHEMA)
    finding = only(report, Check.OUT_OF_RANGE)
    assert finding.examples == ("2019-12-31",)
    assert finding.expected == "values of at least '2020-01-01'"


def test_datetime_ranges_compare_instants_across_units_and_zones() -> None:
    schema = DataSchema(
        columns=(
            ColumnRule(
                "t",
                F.DATETIME,
                minimum=datetime(2024, 1, 1, tzinfo=UTC),
                maximum=datetime(2024, 12, 31, tzinfo=UTC),
            ),
        )
    )
    inside = pa.array([datetime(2024, 6, 1)], pa.timestamp("ns", "Europe/Paris"))
    assert validate(pa.table({"t": inside}), schema).findings == ()
    outside = pa.array([datetime(2025, 1, 1, 0, 0, 1)], pa.timestamp("s"))
    finding = only(validate(pa.table({"t": outside}), schema), Check.OUT_OF_RANGE)
    assert finding.examples == ("2025-01-01T00:00:01",)


def test_values_beyond_the_storage_type_are_compared_safely() -> None:
    schema = DataSchema(columns=(ColumnRule("v", F.INT, minimum=1000, maximum=2**70),))
    table = pa.table({"v": pa.array([1, 2], pa.int8())})
    assert only(validate(table, schema), Check.OUT_OF_RANGE).count == 2
    table = pa.table({"v": pa.array([2**64 - 1], pa.uint64())})
    assert validate(table, schema).findings == ()


def test_unseen_categories_are_counted_by_value() -> None:
    colours = ["red", "pink", "pink", "teal", None, "blue", "pink", "teal"]
    report = validate(with_column(clean_table(), "colour", colours), SCHEMA)
    finding = only(report, Check.UNSEEN_CATEGORY)
    assert finding.severity is Severity.ERROR
    assert finding.count == 5
    assert finding.examples == ("pink", "teal")  # most frequent first
    assert dict(finding.details) == {"distinct_unseen": 2}
    assert "'pink' (3)" in finding.seen
    assert "add them to the categories of 'colour'" in finding.hint


def test_dictionary_encoded_categories_are_checked() -> None:
    good = pa.array(["red", "green"] * 4).dictionary_encode()
    assert validate(with_column(clean_table(), "colour", good), SCHEMA).findings == ()
    bad = pa.array(["red", "mauve"] * 4).dictionary_encode()
    finding = only(
        validate(with_column(clean_table(), "colour", bad), SCHEMA), Check.UNSEEN_CATEGORY
    )
    assert finding.count == 4
    assert finding.examples == ("mauve",)


def test_nulls_where_not_allowed() -> None:
    report = validate(with_column(clean_table(), "age", [1, None, 3, 4, 5, 6, 7, 8]), SCHEMA)
    finding = only(report, Check.NULLS_NOT_ALLOWED)
    assert finding.severity is Severity.ERROR
    assert finding.count == 1
    assert finding.seen == "1 of 8 rows missing (12.50%)"
    assert "nullable = true" in finding.hint


def test_nan_counts_as_missing() -> None:
    schema = DataSchema(columns=(ColumnRule("x", F.FLOAT, nullable=False),))
    report = validate(pa.table({"x": [1.0, math.nan, None]}), schema)
    assert only(report, Check.NULLS_NOT_ALLOWED).count == 2


def test_a_jump_in_missing_values_is_a_warning() -> None:
    scores = [0.1, None, None, math.nan, 0.5, 0.6, 0.7, 0.8]
    report = validate(with_column(clean_table(), "score", scores), SCHEMA)
    finding = only(report, Check.NULL_FRACTION)
    assert finding.severity is Severity.WARNING
    assert finding.count == 3
    assert finding.expected == "at most 25.00% missing"
    assert report.ok
    fewer = [0.1, None, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
    assert validate(with_column(clean_table(), "score", fewer), SCHEMA).findings == ()


def test_duplicate_keys_are_counted_with_examples() -> None:
    ids = [1, 2, 3, 2, 5, 3, 3, 8]
    report = validate(with_column(clean_table(), "id", ids), SCHEMA)
    finding = only(report, Check.DUPLICATE_KEY)
    assert finding.severity is Severity.ERROR
    assert finding.column == "id"
    assert finding.count == 3
    assert finding.examples == (2, 3)
    assert "3 of 8 rows repeat a key seen earlier" in finding.seen


def test_duplicate_keys_split_across_batches_are_found() -> None:
    batches = [clean_table(4).to_batches()[0], clean_table(4).to_batches()[0]]
    finding = only(validate(batches, SCHEMA), Check.DUPLICATE_KEY)
    assert finding.count == 4
    assert finding.examples == (1, 2, 3, 4)[:5]


def test_text_and_multi_column_keys() -> None:
    schema = DataSchema(
        columns=(ColumnRule("shop", F.STRING), ColumnRule("day", F.DATE)),
        key=("shop", "day"),
    )
    day = date(2024, 1, 1)
    table = pa.table(
        {"shop": ["a", "b", "a", "a", None], "day": [day, day, day, date(2024, 1, 2), day]}
    )
    finding = only(validate(table, schema), Check.DUPLICATE_KEY)
    assert finding.column is None
    assert finding.count == 1  # the row with a missing shop is not a key
    assert finding.examples == ("('a', '2024-01-01')",)
    assert dict(finding.details)["key"] == "shop, day"


def test_a_key_that_cannot_be_read_is_reported_as_not_checked() -> None:
    table = clean_table().drop_columns(["id"])
    finding = only(validate(table, SCHEMA), Check.DUPLICATE_KEY)
    assert finding.severity is Severity.INFO
    assert "not checked" in finding.seen


def test_empty_data() -> None:
    finding = only(validate([], SCHEMA), Check.EMPTY_DATA)
    assert finding.severity is Severity.ERROR
    assert finding.seen == "no batches at all"
    empty = clean_table().slice(0, 0)
    report = validate(empty, SCHEMA)
    assert checks(report) == [Check.EMPTY_DATA]
    assert only(report, Check.EMPTY_DATA).seen == "0 rows in 1 batch"
    assert report.rows == 0


def test_label_missing_in_training() -> None:
    report = validate(clean_table().drop_columns(["y"]), SCHEMA, environment=TRAINING)
    finding = only(report, Check.LABEL_MISSING)
    assert finding.severity is Severity.ERROR
    assert finding.column == "y"
    assert "environment='serving'" in finding.hint


def test_label_present_when_serving() -> None:
    report = validate(clean_table(), SCHEMA, environment=SERVING)
    finding = only(report, Check.LABEL_PRESENT)
    assert finding.severity is Severity.ERROR
    assert finding.column == "y"
    assert checks(report) == [Check.LABEL_PRESENT]
    served = validate(clean_table().drop_columns(["y"]), SCHEMA, environment=SERVING)
    assert served.ok
    assert served.findings == ()


def test_a_column_limited_to_other_environments() -> None:
    schema = DataSchema(
        columns=(ColumnRule("x", F.INT), ColumnRule("weight", F.FLOAT, environments=(TRAINING,)))
    )
    table = pa.table({"x": [1], "weight": [0.5]})
    finding = only(validate(table, schema, environment=SERVING), Check.COLUMN_NOT_IN_ENVIRONMENT)
    assert "add 'serving' to the column's environments" in finding.hint


def test_unknown_environment_and_bad_input_are_refused() -> None:
    with pytest.raises(InvalidInput, match="environment 'prod' is not one of"):
        validate(clean_table(), SCHEMA, environment="prod")
    with pytest.raises(InvalidInput, match="from_pandas"):
        validate("data.csv", SCHEMA)  # type: ignore[arg-type]


def broken_table() -> pa.Table:
    rng = np.random.default_rng(3)
    rows = 1000
    ids = np.arange(1, rows + 1)
    ids[[10, 500, 999]] = [5, 6, 7]
    ages = rng.integers(0, 120, rows).astype(object)
    ages[[3, 700]] = [-1, 999]
    ages[[40, 41]] = [None, None]
    scores = rng.random(rows)
    scores[rng.random(rows) < 0.4] = np.nan
    colours = rng.choice(["red", "green", "blue", "cyan", "pink"], rows)
    return pa.table(
        {
            "id": ids,
            "age": pa.array(list(ages), pa.int64()),
            "score": scores,
            "colour": colours,
            "joined": [date(2019 + i % 3, 1, 1) for i in range(rows)],
            "extra": ["e"] * rows,
        }
    )


@pytest.mark.parametrize("chunk", [1, 7, 64, 333, 1000])
def test_streaming_gives_the_same_findings_as_one_table(chunk: int) -> None:
    table = broken_table()
    whole = validate(table, SCHEMA)
    assert set(checks(whole)) == {
        Check.LABEL_MISSING,
        Check.NULLS_NOT_ALLOWED,
        Check.OUT_OF_RANGE,
        Check.UNSEEN_CATEGORY,
        Check.DUPLICATE_KEY,
        Check.NULL_FRACTION,
        Check.EXTRA_COLUMN,
    }
    streamed = validate(iter(table.to_batches(max_chunksize=chunk)), SCHEMA)
    assert streamed.findings == whole.findings
    assert streamed.rows == whole.rows


def test_findings_are_sorted_by_severity_then_column_order() -> None:
    report = validate(broken_table(), SCHEMA)
    ranks = [f.severity.rank for f in report.findings]
    assert ranks == sorted(ranks)
    errors = [f.column for f in report.errors]
    assert errors == ["id", "age", "age", "colour", "joined", "y"]


def test_the_report_serialises_to_strict_json() -> None:
    report = validate(broken_table(), SCHEMA)
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["ok"] is False
    assert data["rows"] == 1000
    assert {f["check"] for f in data["findings"]} >= {"duplicate_key", "out_of_range"}
    out = next(f for f in data["findings"] if f["check"] == "out_of_range" and f["column"] == "age")
    assert out["examples"] == [-1, 999]
    assert out["details"]["max_seen"] == 999


# --- the duplicate key finder on its own: blocks, runs and hashes -------------------------


@settings(max_examples=80, deadline=None)
@given(
    keys=st.lists(st.integers(-50, 50) | st.none(), max_size=300),
    split=st.integers(1, 40),
    block=st.sampled_from([1, 5, 64, 1 << 20]),
    as_text=st.booleans(),
)
def test_finder_counts_repeats_exactly_whatever_the_blocks(
    keys: list[int | None], split: int, block: int, as_text: bool
) -> None:
    family = F.STRING if as_text else F.INT
    values = [None if k is None else (f"k{k}" if as_text else k) for k in keys]
    finder = DuplicateKeyFinder([family], block_rows=block)
    for start in range(0, len(values), split):
        finder.add(
            [pa.array(values[start : start + split], pa.string() if as_text else pa.int64())]
        )
    result = finder.result()
    present = [v for v in values if v is not None]
    assert result.rows == len(present)
    assert result.duplicates == len(present) - len(set(present))
    # examples are real repeated keys, in the order their repeats appear
    seen: set[object] = set()
    repeats: list[object] = []
    for v in present:
        if v in seen and v not in repeats:
            repeats.append(v)
        seen.add(v)
    assert [e[0] for e in result.examples] == repeats[: len(result.examples)]
    assert len(result.examples) == min(5, len(repeats))


def test_finder_hashes_text_by_content_not_by_position() -> None:
    finder = DuplicateKeyFinder([F.STRING], block_rows=2)
    finder.add([pa.array(["", "\x00", "\x00\x00", "ab", "ba", "é"])])
    finder.add([pa.array(["zz", "ba", ""], pa.large_string())])
    finder.add([pa.array(["é", "x"]).dictionary_encode()])
    result = finder.result()
    assert result.duplicates == 3
    assert result.examples == (("ba",), ("",), ("é",))


def test_finder_treats_floats_by_value() -> None:
    finder = DuplicateKeyFinder([F.FLOAT])
    finder.add([pa.array([0.0, -0.0, 1.5, math.nan, math.nan, 1.5])])
    assert finder.result().duplicates == 2  # -0.0 repeats 0.0; NaN is missing, not a key


def test_a_csv_read_batch_by_batch_is_validated_as_it_streams() -> None:
    lines = ["id,age,score,colour,joined,y"]
    lines += [f"{i},{i % 100},0.5,red,2021-01-01,true" for i in range(1, 5001)]
    lines.append("3,30,0.5,mauve,2021-01-01,false")  # a repeated id and a new colour at the end
    data = ("\n".join(lines) + "\n").encode()
    reader = pacsv.open_csv(io.BytesIO(data), read_options=pacsv.ReadOptions(block_size=16_384))
    report = validate(reader, SCHEMA)
    assert report.batches > 1
    assert report.rows == 5001
    assert checks(report) == [Check.DUPLICATE_KEY, Check.UNSEEN_CATEGORY]
    assert only(report, Check.DUPLICATE_KEY).examples == (3,)


def test_decimals_are_checked_as_numbers() -> None:
    schema = DataSchema(columns=(ColumnRule("price", F.FLOAT, minimum=0.0, maximum=100.0),))
    prices = pa.array([Decimal("9.99"), Decimal("120.00")], pa.decimal128(10, 2))
    finding = only(validate(pa.table({"price": prices}), schema), Check.OUT_OF_RANGE)
    assert finding.examples == (120.0,)
