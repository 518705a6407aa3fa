from __future__ import annotations

import json
import math
import tomllib
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopml.domain.data_schema import (
    DEFAULT_ENVIRONMENTS,
    FORMAT_VERSION,
    INFER_COMMAND,
    SERVING,
    TRAINING,
    ColumnRule,
    DataSchema,
    TypeFamily,
)
from loopml.domain.errors import InvalidInput
from loopml.domain.schema_file import schema_from_toml, schema_to_toml
from loopml.domain.validation_report import Check, Finding, Severity, ValidationReport

F = TypeFamily


def full_schema() -> DataSchema:
    return DataSchema(
        columns=(
            ColumnRule("id", F.INT, nullable=False, minimum=0),
            ColumnRule("amount", F.FLOAT, max_null_fraction=0.05, minimum=-2.5, maximum=math.inf),
            ColumnRule("flag", F.BOOL, nullable=False),
            ColumnRule("note", F.STRING),
            ColumnRule("colour", F.CATEGORY, categories=("red", 'say "hi"', "back\\slash", "é\n")),
            ColumnRule("day", F.DATE, minimum=date(2020, 1, 1), maximum=date(2030, 12, 31)),
            ColumnRule("at", F.DATETIME, minimum=datetime(2020, 1, 1, 8, 30, 0, 123456)),
            ColumnRule(
                "at_utc",
                F.DATETIME,
                minimum=datetime(2020, 1, 1, tzinfo=UTC),
                maximum=datetime(2021, 1, 1, 12, tzinfo=timezone(timedelta(hours=2))),
            ),
            ColumnRule("tags", F.OTHER),
            ColumnRule("weird name = [x]", F.INT, minimum=-(2**70), maximum=2**70),
            ColumnRule("y", F.BOOL, environments=(TRAINING,)),
        ),
        label="y",
        key=("id", "day"),
    )


def test_round_trip_of_every_field_is_exact() -> None:
    schema = full_schema()
    text = schema_to_toml(schema)
    assert schema_from_toml(text, "schema.toml") == schema
    # and writing the result again gives the same text, byte for byte
    assert schema_to_toml(schema_from_toml(text, "schema.toml")) == text


def test_emitted_toml_explains_every_field_in_comments() -> None:
    text = schema_to_toml(full_schema())
    comments = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    for key in ("format_version", "label", "key", "environments", "name", "type", "nullable"):
        assert key in comments
    for key in ("max_null_fraction", "min, max", "categories"):
        assert key in comments
    assert INFER_COMMAND in comments


def test_schema_without_label_or_key_emits_commented_placeholders() -> None:
    schema = DataSchema(columns=(ColumnRule("x", F.FLOAT),))
    text = schema_to_toml(schema)
    assert '# label = "target"' in text
    assert '# key = ["id"]' in text
    assert "label" not in tomllib.loads(text)
    assert schema_from_toml(text, "s.toml") == schema


def test_long_category_lists_wrap_and_still_round_trip() -> None:
    values = tuple(f"category-number-{i}" for i in range(30))
    schema = DataSchema(columns=(ColumnRule("c", F.CATEGORY, categories=values),))
    text = schema_to_toml(schema)
    assert max(len(line) for line in text.splitlines()) <= 100
    assert schema_from_toml(text, "s.toml") == schema


def test_a_minimal_hand_written_file_gets_defaults() -> None:
    text = """
format_version = 1
[[columns]]
name = "age"
type = "int"
min = 0
[[columns]]
name = "score"
type = "float"
max = 1
"""
    schema = schema_from_toml(text, "mine.toml")
    assert schema.environments == DEFAULT_ENVIRONMENTS
    assert schema.label is None
    assert schema.key == ()
    age, score = schema.columns
    assert age.nullable is True
    assert age.minimum == 0
    assert age.maximum is None
    assert score.maximum == 1.0
    assert isinstance(score.maximum, float)  # an int in the file becomes the float it means


_SCALAR_NAMES = st.text(
    st.characters(exclude_categories=("Cs",)), min_size=1, max_size=12
)  # any text a column can be called, control characters and quotes included


@st.composite
def column_rules(draw: st.DrawFn, name: str, environments: tuple[str, ...]) -> ColumnRule:
    family = draw(st.sampled_from(list(TypeFamily)))
    nullable = draw(st.booleans())
    fraction = draw(st.none() | st.floats(0, 1, allow_nan=False)) if nullable else None
    low = high = None
    if family is F.INT:
        low, high = draw(st.none() | st.integers()), draw(st.none() | st.integers())
    elif family is F.FLOAT:
        floats = st.floats(allow_nan=False)
        low, high = draw(st.none() | floats), draw(st.none() | floats)
    elif family is F.DATE:
        low, high = draw(st.none() | st.dates()), draw(st.none() | st.dates())
    elif family is F.DATETIME:
        zone = draw(st.sampled_from([None, UTC, timezone(timedelta(hours=-5, minutes=-30))]))
        times = (
            st.datetimes(
                min_value=datetime(1, 1, 2),
                max_value=datetime(9999, 12, 30),
                timezones=st.just(zone),
            )
            if zone is not None
            else st.datetimes()
        )
        low, high = draw(st.none() | times), draw(st.none() | times)
    if low is not None and high is not None and low > high:
        low, high = high, low
    categories = (
        tuple(draw(st.lists(_SCALAR_NAMES | st.just(""), min_size=1, max_size=5, unique=True)))
        if family is F.CATEGORY
        else None
    )
    envs = draw(st.none() | st.lists(st.sampled_from(environments), min_size=1, unique=True))
    return ColumnRule(
        name=name,
        family=family,
        nullable=nullable,
        max_null_fraction=fraction,
        minimum=low,
        maximum=high,
        categories=categories,
        environments=None if envs is None else tuple(envs),
    )


@st.composite
def schemas(draw: st.DrawFn) -> DataSchema:
    environments = tuple(draw(st.lists(_SCALAR_NAMES, min_size=1, max_size=3, unique=True)))
    names = draw(st.lists(_SCALAR_NAMES, min_size=1, max_size=6, unique=True))
    rules = tuple(draw(column_rules(name, environments)) for name in names)
    label = draw(st.none() | st.sampled_from(names))
    keyable = [r.name for r in rules if r.family is not F.OTHER]
    key = tuple(draw(st.lists(st.sampled_from(keyable), unique=True))) if keyable else ()
    return DataSchema(rules, label=label, key=key, environments=environments)


@settings(max_examples=200, deadline=None)
@given(schemas())
def test_any_schema_round_trips_through_toml(schema: DataSchema) -> None:
    assert schema_from_toml(schema_to_toml(schema), "gen.toml") == schema


_GOOD = """\
format_version = 1
label = "y"
key = ["id"]
environments = ["training", "serving"]

[[columns]]
name = "id"
type = "int"
nullable = false
min = 0

[[columns]]
name = "y"
type = "bool"
"""


def test_the_good_base_file_reads() -> None:
    schema = schema_from_toml(_GOOD, "schema.toml")
    assert schema.column_names == ("id", "y")


def _edit(old: str, new: str) -> str:
    assert old in _GOOD
    return _GOOD.replace(old, new, 1)


_COLUMN = '\n[[columns]]\nname = "c"\n'


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        pytest.param("format_version = ", ["not valid TOML"], id="syntax"),
        pytest.param(
            _edit('label = "y"', 'lable = "y"'),
            ["the top level", "unknown key 'lable'", "did you mean 'label'", "Remove or rename"],
            id="unknown-top-key",
        ),
        pytest.param(
            _edit("nullable = false", "nulable = false"),
            ["[[columns]] #1 ('id')", "unknown key 'nulable'", "did you mean 'nullable'"],
            id="unknown-column-key",
        ),
        pytest.param(
            _edit("format_version = 1\n", ""), ["key 'format_version' is missing"], id="no-version"
        ),
        pytest.param(
            _edit("format_version = 1", 'format_version = "1"'),
            ["key 'format_version' must be an integer", "got string '1'"],
            id="version-type",
        ),
        pytest.param(
            _edit("format_version = 1", "format_version = 2"),
            ["format_version 2 is newer", "upgrade loopml"],
            id="version-newer",
        ),
        pytest.param(
            _edit("format_version = 1", "format_version = 0"),
            ["format_version 0 is not valid"],
            id="version-zero",
        ),
        pytest.param("format_version = 1\n", ["key 'columns' is missing"], id="no-columns"),
        pytest.param(
            "format_version = 1\ncolumns = 3\n",
            ["key 'columns' must be one or more [[columns]] tables", "got integer 3"],
            id="columns-type",
        ),
        pytest.param(
            "format_version = 1\ncolumns = []\n",
            ["at least one column"],
            id="columns-empty",
        ),
        pytest.param(
            _GOOD + '\n[[columns]]\ntype = "int"\n',
            ["[[columns]] #3", "key 'name' is missing"],
            id="no-name",
        ),
        pytest.param(
            _GOOD + '\n[[columns]]\nname = 5\ntype = "int"\n',
            ["[[columns]] #3", "key 'name' must be the column name in quotes", "got integer 5"],
            id="name-type",
        ),
        pytest.param(
            _GOOD + '\n[[columns]]\nname = ""\ntype = "int"\n',
            ["non-empty string"],
            id="name-empty",
        ),
        pytest.param(
            _GOOD + _COLUMN,
            ["[[columns]] #3 ('c')", "key 'type' is missing"],
            id="no-type",
        ),
        pytest.param(
            _GOOD + _COLUMN + 'type = "integer"\n',
            ["[[columns]] #3", "type 'integer' is not known", "bool, int, float"],
            id="type-unknown",
        ),
        pytest.param(
            _GOOD + _COLUMN + "type = 1\n",
            ["key 'type' must be a type name in quotes", "got integer 1"],
            id="type-type",
        ),
        pytest.param(
            _GOOD + _COLUMN + 'type = "int"\nnullable = "yes"\n',
            ["key 'nullable' must be true or false", "got string 'yes'"],
            id="nullable-type",
        ),
        pytest.param(
            _GOOD + _COLUMN + 'type = "int"\nmin = 10\nmax = 1\n',
            ["column 'c'", "min 10 is greater than max 1", "expected min <= max"],
            id="min-above-max",
        ),
        pytest.param(
            _GOOD + _COLUMN + 'type = "float"\nmin = 1.5\nmax = 0.5\n',
            ["min 1.5 is greater than max 0.5"],
            id="float-min-above-max",
        ),
        pytest.param(
            _GOOD + _COLUMN + 'type = "date"\nmin = 2024-02-01\nmax = 2024-01-01\n',
            ["min 2024-02-01 is greater than max 2024-01-01"],
            id="date-min-above-max",
        ),
        pytest.param(
            _GOOD + _COLUMN + 'type = "int"\nmin = 1.5\n',
            ["min must be a whole number such as 0 for type 'int'", "got float 1.5"],
            id="int-bound-float",
        ),
        pytest.param(
            _GOOD + _COLUMN + 'type = "int"\nmin = "0"\n',
            ["key 'min' must be a number, a date or a date and time (no quotes)"],
            id="bound-quoted",
        ),
        pytest.param(
            _GOOD + _COLUMN + 'type = "float"\nmax = nan\n',
            ["got nan", "remove max"],
            id="bound-nan",
        ),
        pytest.param(
            _GOOD + _COLUMN + 'type = "string"\nmin = 0\n',
            ["min is set (0) but type 'string' has no range"],
            id="bound-on-string",
        ),
        pytest.param(
            _GOOD + _COLUMN + 'type = "datetime"\nmin = 2024-01-01\n',
            ["min must be a date and time", "for type 'datetime'", "got date"],
            id="datetime-bound-date",
        ),
        pytest.param(
            _GOOD + _COLUMN + 'type = "date"\nmin = 2024-01-01T00:00:00\n',
            ["min must be a date such as", "got datetime"],
            id="date-bound-datetime",
        ),
        pytest.param(
            _GOOD
            + _COLUMN
            + 'type = "datetime"\nmin = 2024-01-01T00:00:00\nmax = 2024-02-01T00:00:00Z\n',
            ["time zone", "both with an offset"],
            id="datetime-mixed-zones",
        ),
        pytest.param(
            _GOOD + _COLUMN + 'type = "int"\ncategories = ["a"]\n',
            ["categories are only allowed for type 'category'", "type is 'int'"],
            id="categories-on-int",
        ),
        pytest.param(
            _GOOD + _COLUMN + 'type = "category"\n',
            ["type 'category' needs categories"],
            id="category-without-values",
        ),
        pytest.param(
            _GOOD + _COLUMN + 'type = "category"\ncategories = []\n',
            ["categories is empty"],
            id="categories-empty",
        ),
        pytest.param(
            _GOOD + _COLUMN + 'type = "category"\ncategories = [1, 2]\n',
            ["key 'categories' must be a list of names in quotes", "got array [1, 2]"],
            id="categories-not-text",
        ),
        pytest.param(
            _GOOD + _COLUMN + 'type = "category"\ncategories = ["a", "b", "a"]\n',
            ["categories repeat ['a']"],
            id="categories-repeat",
        ),
        pytest.param(
            _GOOD + _COLUMN + 'type = "int"\nmax_null_fraction = 1.5\n',
            ["max_null_fraction is 1.5", "from 0 to 1"],
            id="fraction-range",
        ),
        pytest.param(
            _GOOD + _COLUMN + 'type = "int"\nmax_null_fraction = "5%"\n',
            ["key 'max_null_fraction' must be a number from 0 to 1", "got string '5%'"],
            id="fraction-type",
        ),
        pytest.param(
            _GOOD + _COLUMN + 'type = "int"\nnullable = false\nmax_null_fraction = 0.1\n',
            ["but nullable is false"],
            id="fraction-not-nullable",
        ),
        pytest.param(
            _edit('label = "y"', 'label = "target"'),
            ["label 'target' is not one of the columns ['id', 'y']"],
            id="label-unknown",
        ),
        pytest.param(
            _edit('label = "y"', "label = 1"),
            ["key 'label' must be a column name in quotes", "got integer 1"],
            id="label-type",
        ),
        pytest.param(
            _edit('key = ["id"]', 'key = ["user"]'),
            ["key column 'user' is not one of the columns"],
            id="key-unknown",
        ),
        pytest.param(
            _edit('key = ["id"]', 'key = "id"'),
            ["key 'key' must be a list of names in quotes", "got string 'id'"],
            id="key-type",
        ),
        pytest.param(
            _edit('key = ["id"]', 'key = ["id", "id"]'),
            ["repeats a column"],
            id="key-repeat",
        ),
        pytest.param(
            _edit('key = ["id"]', 'key = ["blob"]')
            + '\n[[columns]]\nname = "blob"\ntype = "other"\n',
            ["key column 'blob' has type 'other'"],
            id="key-other",
        ),
        pytest.param(
            _GOOD + '\n[[columns]]\nname = "id"\ntype = "int"\n',
            ["columns repeat the names ['id']"],
            id="column-repeat",
        ),
        pytest.param(
            _GOOD + _COLUMN + 'type = "int"\nenvironments = ["evaluation"]\n',
            ["environments ['evaluation'] are not among the schema's environments"],
            id="column-environment-unknown",
        ),
        pytest.param(
            _edit('environments = ["training", "serving"]', "environments = []"),
            ["environments must list at least one non-empty name"],
            id="environments-empty",
        ),
        pytest.param(
            _GOOD + _COLUMN + 'type = "int"\nenvironments = ["training", "training"]\n',
            ["repeats a name"],
            id="environments-repeat",
        ),
    ],
)
def test_bad_files_are_refused_naming_file_key_and_expectation(
    text: str, fragments: list[str]
) -> None:
    with pytest.raises(InvalidInput) as info:
        schema_from_toml(text, "schema.toml")
    message = str(info.value)
    assert message.startswith("schema.toml: ")
    for fragment in fragments:
        assert fragment in message, message


def test_syntax_errors_say_where() -> None:
    with pytest.raises(InvalidInput, match=r"line 2") as info:
        schema_from_toml("format_version = 1\nlabel = \n", "bad.toml")
    assert isinstance(info.value.__cause__, tomllib.TOMLDecodeError)


def test_rules_normalise_their_values() -> None:
    rule = ColumnRule(
        "x",
        "float",  # type: ignore[arg-type]  # text is accepted, as from a file
        minimum=1,
        maximum=2,
    )
    assert rule.family is F.FLOAT
    assert rule.minimum == 1.0
    assert isinstance(rule.minimum, float)
    stamp = ColumnRule(
        "t", F.DATETIME, minimum=datetime(2024, 1, 1, 2, tzinfo=timezone(timedelta(hours=2)))
    )
    assert stamp.minimum == datetime(2024, 1, 1, tzinfo=UTC)
    assert stamp.minimum.tzinfo is UTC  # type: ignore[union-attr]
    listed = ColumnRule("c", F.CATEGORY, categories=["a", "b"])  # type: ignore[arg-type]
    assert listed.categories == ("a", "b")


def test_bool_is_not_a_number_for_bounds_or_fractions() -> None:
    with pytest.raises(InvalidInput, match="got bool True"):
        ColumnRule("x", F.INT, minimum=True)
    with pytest.raises(InvalidInput, match="number from 0 to 1"):
        ColumnRule("x", F.INT, max_null_fraction=True)  # type: ignore[arg-type]


def test_environments_decide_where_a_column_belongs() -> None:
    schema = DataSchema(
        columns=(
            ColumnRule("x", F.FLOAT),
            ColumnRule("y", F.BOOL),
            ColumnRule("weight", F.FLOAT, environments=(TRAINING,)),
        ),
        label="y",
    )
    x, y, weight = schema.columns
    assert schema.expects(x, TRAINING)
    assert schema.expects(x, SERVING)
    # the label, without environments of its own, is absent when serving
    assert schema.expects(y, TRAINING)
    assert not schema.expects(y, SERVING)
    assert schema.expects(weight, TRAINING)
    assert not schema.expects(weight, SERVING)
    assert schema.check_environment(SERVING) == SERVING
    with pytest.raises(InvalidInput, match=r"environment 'staging' is not one of.*'training'"):
        schema.check_environment("staging")


def test_a_label_with_its_own_environments_follows_them() -> None:
    schema = DataSchema(
        columns=(ColumnRule("y", F.BOOL, environments=(TRAINING, SERVING)),), label="y"
    )
    assert schema.expects(schema.columns[0], SERVING)


def test_schema_needs_column_rules() -> None:
    with pytest.raises(InvalidInput, match="at least one column rule"):
        DataSchema(columns=())
    with pytest.raises(InvalidInput, match="format_version must be an integer"):
        DataSchema(columns=(ColumnRule("x", F.INT),), format_version=True)
    assert DataSchema(columns=(ColumnRule("x", F.INT),)).format_version == FORMAT_VERSION


def test_find_column() -> None:
    schema = full_schema()
    assert schema.find_column("flag") == ColumnRule("flag", F.BOOL, nullable=False)
    assert schema.find_column("nope") is None


def _finding(severity: Severity, **extra: object) -> Finding:
    return Finding(
        severity,
        Check.OUT_OF_RANGE,
        "x",
        expected="values from 0 to 1",
        seen="2 values outside",
        hint="widen the range",
        **extra,  # type: ignore[arg-type]
    )


def test_report_is_ok_without_errors_and_serialises_to_strict_json() -> None:
    findings = (
        _finding(Severity.ERROR, count=2, examples=(math.inf, -3.0), details=(("max", math.nan),)),
        _finding(Severity.WARNING),
        _finding(Severity.INFO),
    )
    report = ValidationReport(findings=findings, rows=10, environment=TRAINING, columns=("x",))
    assert not report.ok
    assert report.errors == findings[:1]
    assert report.warnings == findings[1:2]
    assert report.count(Severity.INFO) == 1
    data = report.to_dict()
    text = json.dumps(data, allow_nan=False)  # strict JSON: no NaN or Infinity tokens
    assert json.loads(text)["findings"][0]["examples"] == ["inf", -3.0]
    assert data["counts"] == {"error": 1, "warning": 1, "info": 1}
    assert data["ok"] is False
    assert data["findings"][0]["details"] == {"max": "nan"}
    assert ValidationReport(findings=findings[1:], rows=10, environment=TRAINING).ok


def test_finding_message_reads_as_one_sentence() -> None:
    message = _finding(Severity.ERROR).message
    assert message == (
        "column 'x': expected values from 0 to 1; seen 2 values outside. Widen the range"
    )
    assert Severity.ERROR.rank < Severity.WARNING.rank < Severity.INFO.rank
