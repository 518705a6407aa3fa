from __future__ import annotations

import io
import json
import math
from collections.abc import Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

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
from loopml.stats import validate as validate_module
from loopml.stats.keys import DuplicateKeyFinder
from loopml.stats.schema import infer_schema
from loopml.stats.validate import validate

H = TypeVar("H", bound=Hashable)

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


def test_a_float_column_with_nulls_counts_nan_and_range_on_present_values() -> None:
    scores = [0.5, None, 1.5, math.nan, None, -0.25, 0.75, 2.0]
    report = validate(with_column(clean_table(), "score", scores), SCHEMA)
    finding = only(report, Check.OUT_OF_RANGE)
    assert finding.count == 3
    assert finding.examples == (1.5, -0.25, 2.0)  # in row order, nulls skipped
    assert dict(finding.details) == {"below": 1, "above": 2, "min_seen": -0.25, "max_seen": 2.0}
    assert only(report, Check.NULL_FRACTION).count == 3  # two nulls and a NaN


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


# --- the shape of the speed benchmark (benchmarks/data.py), with and without threads --------


def wide_table(rows: int, seed: int = 0) -> tuple[pa.Table, DataSchema]:
    """20 columns: a shuffled unique id, 7 int counts, 7 float measures (two with about 1%
    missing) and 5 text columns of 6 to 10 categories; and rules that they pass."""
    rng = np.random.default_rng(seed)
    columns = {"id": pa.array(rng.permutation(rows).astype(np.int64))}
    rules = [ColumnRule("id", F.INT, nullable=False, minimum=0, maximum=rows - 1)]
    for i in range(7):
        top = 1000 * (i + 1) - 1
        columns[f"count_{i}"] = pa.array(rng.integers(0, top + 1, rows))
        rules.append(ColumnRule(f"count_{i}", F.INT, nullable=False, minimum=0, maximum=top))
    for i in range(7):
        mask = rng.random(rows) < 0.01 if i < 2 else None
        columns[f"measure_{i}"] = pa.array(rng.normal(i, 1 + i, rows), mask=mask)
        low, high = i - 10.0 * (1 + i), i + 10.0 * (1 + i)
        rules.append(ColumnRule(f"measure_{i}", F.FLOAT, nullable=i < 2, minimum=low, maximum=high))
    for i in range(5):
        levels = tuple(f"level_{i}_{j}" for j in range(6 + i))
        choice = rng.choice(np.array(levels, dtype=object), rows)
        columns[f"category_{i}"] = pa.array(choice, pa.string())
        rules.append(ColumnRule(f"category_{i}", F.CATEGORY, nullable=False, categories=levels))
    return pa.table(columns), DataSchema(columns=tuple(rules), key=("id",))


def dirty(table: pa.Table) -> pa.Table:
    """Something wrong in every kind of column, and repeated ids."""
    ids = table["id"].to_numpy().copy()
    ids[[5, 900, 7000]] = ids[[10, 3, 10]]
    counts = table["count_2"].to_numpy().copy()
    counts[11::500] = 3000
    counts[13::700] = -5
    missing = table["measure_0"].is_null().to_numpy(zero_copy_only=False)
    measures = table["measure_0"].to_numpy(zero_copy_only=False).copy()
    measures[17::300] = 1e6
    categories = table["category_3"].to_numpy(zero_copy_only=False).copy()
    categories[19::250] = "level_3_99"
    categories[23::900] = None
    table = with_column(table, "id", ids)
    table = with_column(table, "count_2", counts)
    table = with_column(table, "measure_0", pa.array(measures, mask=missing))  # still missing
    return with_column(table, "category_3", pa.array(categories, pa.string()))


@dataclass
class Threads:
    """How validation runs in a test: ``use()`` one thread, or every batch on 3 threads."""

    monkeypatch: pytest.MonkeyPatch
    pools: list[ThreadPoolExecutor] = field(default_factory=list)

    def use(self, threads: bool) -> None:
        pools = self.pools

        class Recorded(ThreadPoolExecutor):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                pools.append(self)

        self.monkeypatch.setattr(validate_module, "ThreadPoolExecutor", Recorded)
        self.monkeypatch.setattr(validate_module, "_workers", lambda: 3)
        self.monkeypatch.setattr(validate_module, "PARALLEL_ROWS", 1 if threads else 10**12)


@pytest.fixture
def threads(monkeypatch: pytest.MonkeyPatch) -> Threads:
    return Threads(monkeypatch)


@pytest.mark.parametrize("on_threads", [False, True])
def test_the_benchmark_shape_passes_clean_and_reports_exactly_the_planted_values(
    threads: Threads, on_threads: bool
) -> None:
    threads.use(on_threads)
    table, schema = wide_table(20_000)
    assert validate(table, schema).findings == ()
    assert validate(table.to_batches(max_chunksize=3000), schema).findings == ()
    counts = table["count_3"].to_numpy().copy()
    counts[7::100] = -1  # 1% below the range, as the benchmark plants them
    report = validate(with_column(table, "count_3", counts), schema)
    assert [(f.column, f.check, f.count) for f in report.findings] == [
        ("count_3", Check.OUT_OF_RANGE, 200)
    ]
    finding = report.findings[0]
    assert finding.severity is Severity.ERROR
    assert finding.expected == "values from 0 to 3999"
    assert finding.seen.startswith("200 values outside (200 below, 0 above); min seen -1, max ")
    assert finding.examples == (-1, -1, -1, -1, -1)
    assert dict(finding.details)["below"] == 200
    assert "widen min/max of 'count_3'" in finding.hint
    assert len(threads.pools) == (3 if on_threads else 0)  # one pool per threaded run...
    assert all(pool._shutdown for pool in threads.pools)  # ...closed when it ends


def test_threads_change_nothing_in_the_findings(threads: Threads) -> None:
    table, schema = wide_table(20_000, seed=4)
    table = dirty(table)
    batches = table.to_batches(max_chunksize=3000)
    threads.use(False)
    alone = [validate(table, schema), validate(iter(batches), schema)]
    alone.append(validate(broken_table(), SCHEMA))
    assert not threads.pools
    threads.use(True)
    together = [validate(table, schema), validate(iter(batches), schema)]
    together.append(validate(broken_table(), SCHEMA))
    assert len(threads.pools) == 3
    assert [r.findings for r in together] == [r.findings for r in alone]
    assert alone[1].findings == alone[0].findings  # streamed or whole, the same
    assert [(f.column, f.check, f.count) for f in alone[0].findings] == [
        ("id", Check.DUPLICATE_KEY, 3),
        ("count_2", Check.OUT_OF_RANGE, 69),
        ("measure_0", Check.OUT_OF_RANGE, 67),
        ("category_3", Check.NULLS_NOT_ALLOWED, 23),
        ("category_3", Check.UNSEEN_CATEGORY, 80),
    ]
    ids = table["id"]  # rows 10 and 7000 repeat row 5's id, row 900 row 3's: in row order
    assert only(alone[0], Check.DUPLICATE_KEY).examples == (ids[10].as_py(), ids[3].as_py())


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
    duplicates, repeats = repeats_in_order(present)
    assert result.rows == len(present)
    assert result.duplicates == duplicates
    # examples are real repeated keys, in the order their repeats appear
    assert [e[0] for e in result.examples] == repeats[: len(result.examples)]
    assert len(result.examples) == min(5, len(repeats))


def repeats_in_order(values: Sequence[H]) -> tuple[int, list[H]]:
    """How many values repeat an earlier one, and the repeated values in order of repeat."""
    seen: set[H] = set()
    repeated: list[H] = []
    for v in values:
        if v in seen and v not in repeated:
            repeated.append(v)
        seen.add(v)
    return len(values) - len(seen), repeated


@settings(max_examples=120, deadline=None)
@given(
    size=st.integers(0, 300),
    copies=st.lists(st.tuples(st.integers(0, 299), st.integers(0, 299)), max_size=4),
    step=st.sampled_from([1, 2, 9]),
    offset=st.sampled_from([0, 1, -7, 2**40, -(2**63), 2**63 - 3000]),
    seed=st.integers(0, 2**32 - 1),
    block=st.sampled_from([7, 64, 1 << 20]),
    split=st.integers(1, 120),
    again=st.lists(st.sampled_from([0, 1, -2, -1]), max_size=3),
)
def test_finder_is_exact_on_shuffled_integer_ids(
    size: int,
    copies: list[tuple[int, int]],
    step: int,
    offset: int,
    seed: int,
    block: int,
    split: int,
    again: list[int],
) -> None:
    """Ids from a narrow range in any order (sorted by bitmap), with a few repeats or none,
    near either end of int64, split into any batches and blocks; ``again`` repeats the
    lowest or highest ids at the end, where only the runs of earlier blocks can catch them."""
    ids = np.random.default_rng(seed).permutation(size).astype(np.int64) * step + offset
    for to, source in copies:
        if to < size and source < size:
            ids[to] = ids[source]
    if size:
        ids = np.concatenate([ids, np.sort(ids)[[a % size for a in again]]])
    size = ids.size
    finder = DuplicateKeyFinder([F.INT], block_rows=block)
    for start in range(0, size, split):
        finder.add([pa.array(ids[start : start + split])])
    result = finder.result()
    duplicates, repeated = repeats_in_order(ids.tolist())
    assert result.rows == size
    assert result.duplicates == duplicates
    assert [e[0] for e in result.examples] == repeated[:5]


def test_finder_reads_unsigned_ids_near_the_top_of_their_range() -> None:
    finder = DuplicateKeyFinder([F.INT])
    top = 2**64 - 1
    finder.add([pa.array([top, top - 2, top - 1, 5, 3, 4], pa.uint64())])
    assert finder.result().duplicates == 0
    finder.add([pa.array([top - 1, 4], pa.uint64())])
    result = finder.result()
    assert result.duplicates == 2
    assert result.examples == ((top - 1,), (4,))


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
