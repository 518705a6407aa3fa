"""The editable file form of a data schema: TOML with comments on every field.

Read with :mod:`tomllib`, written by a small emitter for this fixed shape so that a person
can edit it: see :func:`schema_to_toml` and :func:`schema_from_toml`. Reading it back gives
an equal schema (the round trip is exact). A mistake in the file is an
:class:`~loopml.domain.errors.InvalidInput` naming the file, the position and the key; the
checks themselves are the rules' own (:class:`~loopml.domain.data_schema.ColumnRule`).
Standard library only, no I/O: the caller reads and writes the text.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from loopml.domain.data_schema import (
    DEFAULT_ENVIRONMENTS,
    FORMAT_VERSION,
    INFER_COMMAND,
    Bound,
    ColumnRule,
    DataSchema,
)
from loopml.domain.errors import InvalidInput
from loopml.domain.toml_reader import toml_type

# --- the TOML file format ------------------------------------------------------------------

_TOP_KEYS = ("format_version", "label", "key", "environments", "columns")
_COLUMN_KEYS = (
    "name",
    "type",
    "nullable",
    "max_null_fraction",
    "min",
    "max",
    "categories",
    "environments",
)
_HEADER = f"""\
# loopml data schema: what a dataset must look like. `loopml data validate` checks data
# against it; `{INFER_COMMAND}` writes a first version from data. Edit freely: the
# fields are explained below, and loopml names the key of any mistake.
#
# format_version  the version of this file format; leave it as it is.
# label           the column a model learns to predict. It must be present when training and
#                 absent when serving, unless its [[columns]] entry lists other environments.
# key             columns whose values together identify a row; repeated keys are errors.
# environments    where data is validated (e.g. "training", "serving").
"""
_COLUMNS_HEADER = """\
# One [[columns]] entry per expected column, in order:
#   name               the column name, exactly as in the data
#   type               int, float, bool, string, category, date, datetime or other
#                      (other: lists, structs, binary... only presence and nulls are checked)
#   nullable           false: any missing value (null, or NaN in a float column) is an error
#   max_null_fraction  warn when more than this share of the rows is missing (0 to 1)
#   min, max           the allowed range, inclusive, tolerance included (int, float, date and
#                      datetime only); remove one to leave that side unbounded
#   categories         the allowed values of a category column; new values are errors
#   environments       where the column must be present; it must be absent elsewhere
#                      (default: every environment)
"""
_WRAP = 96


def schema_to_toml(schema: DataSchema) -> str:
    """Write ``schema`` as commented TOML that :func:`schema_from_toml` reads back equal."""
    lines = [_HEADER, f"format_version = {schema.format_version}"]
    if schema.label is not None:
        lines.append(f"label = {_toml_string(schema.label)}")
    else:
        lines.append('# label = "target"    (no label yet: uncomment and name the column)')
    if schema.key:
        lines.append(_toml_assign("key", schema.key))
    else:
        lines.append('# key = ["id"]        (no key: rows are not checked for duplicates)')
    lines.append(_toml_assign("environments", schema.environments))
    lines.append("")
    lines.append(_COLUMNS_HEADER)
    for rule in schema.columns:
        lines.append("[[columns]]")
        lines.append(f"name = {_toml_string(rule.name)}")
        lines.append(f"type = {_toml_string(rule.family.value)}")
        lines.append(f"nullable = {_toml_value(rule.nullable)}")
        if rule.max_null_fraction is not None:
            lines.append(f"max_null_fraction = {_toml_value(rule.max_null_fraction)}")
        if rule.minimum is not None:
            lines.append(f"min = {_toml_value(rule.minimum)}")
        if rule.maximum is not None:
            lines.append(f"max = {_toml_value(rule.maximum)}")
        if rule.categories is not None:
            lines.append(_toml_assign("categories", rule.categories))
        if rule.environments is not None:
            lines.append(_toml_assign("environments", rule.environments))
        lines.append("")
    return "\n".join(lines)


def _toml_assign(key: str, values: Sequence[str]) -> str:
    items = [_toml_string(v) for v in values]
    inline = f"{key} = [{', '.join(items)}]"
    if len(inline) <= _WRAP:
        return inline
    return "\n".join([f"{key} = [", *(f"  {item}," for item in items), "]"])


def _toml_value(value: Bound | bool | str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, float):
        # repr is the shortest text that reads back as the same float; TOML spells the
        # infinities inf and -inf, as repr does (NaN never reaches here: rules refuse it).
        return repr(value)
    if isinstance(value, int):
        return str(value)
    return value.isoformat()  # TOML dates, local and offset datetimes are RFC 3339


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f"}
_ESCAPES["\r"] = "\\r"


def _toml_string(text: str) -> str:
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def schema_from_toml(text: str, source_name: str) -> DataSchema:
    """Read a schema written by :func:`schema_to_toml` (or by hand).

    Args:
        text: the TOML text.
        source_name: where the text came from (usually the file path), named in errors.

    Raises:
        InvalidInput: the text is not TOML, or a key is unknown, missing, of the wrong type
            or inconsistent (``min`` above ``max``, a label that is not a column...). The
            message names ``source_name``, the key and what was expected.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(
            f"{source_name}: not valid TOML: {exc}; fix the syntax there, or write the file "
            f"again with `{INFER_COMMAND}`"
        ) from exc
    reader = _Reader(source_name)
    reader.check_keys(data, _TOP_KEYS, "the top level")
    version = reader.require(data, "format_version", "the top level")
    if isinstance(version, bool) or not isinstance(version, int):
        reader.fail(
            "the top level", "format_version", f"an integer such as {FORMAT_VERSION}", version
        )
    label = data.get("label")
    if label is not None and not isinstance(label, str):
        reader.fail("the top level", "label", 'a column name in quotes, e.g. label = "y"', label)
    key = reader.string_list(data, "key", "the top level") or ()
    environments = reader.string_list(data, "environments", "the top level")
    raw_columns = reader.require(data, "columns", "the top level")
    if not isinstance(raw_columns, list) or not all(isinstance(c, dict) for c in raw_columns):
        reader.fail("the top level", "columns", "one or more [[columns]] tables", raw_columns)
    rules = tuple(reader.column(i, raw) for i, raw in enumerate(raw_columns, start=1))
    try:
        return DataSchema(
            columns=rules,
            label=label,
            key=tuple(key),
            environments=DEFAULT_ENVIRONMENTS if environments is None else tuple(environments),
            format_version=version,
        )
    except InvalidInput as exc:
        raise InvalidInput(f"{source_name}: {exc}") from exc


class _Reader:
    """Type checks of the parsed TOML, with messages naming the file and the key."""

    def __init__(self, source_name: str) -> None:
        self.source = source_name

    def fail(self, where: str, key: str, expected: str, value: object) -> NoReturn:
        raise InvalidInput(
            f"{self.source}: {where}: key {key!r} must be {expected}, got "
            f"{toml_type(value)} {value!r}; fix it in the file"
        )

    def check_keys(self, table: Mapping[str, object], allowed: Sequence[str], where: str) -> None:
        for key in table:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                guess = f" (did you mean {close[0]!r}?)" if close else ""
                raise InvalidInput(
                    f"{self.source}: {where}: unknown key {key!r}{guess}; expected only "
                    f"{', '.join(allowed)}. Remove or rename it"
                )

    def require(self, table: Mapping[str, object], key: str, where: str) -> Any:
        if key not in table:
            raise InvalidInput(
                f"{self.source}: {where}: key {key!r} is missing; add it (see the comments "
                f"at the top of a file written by `{INFER_COMMAND}`)"
            )
        return table[key]

    def string_list(self, table: Mapping[str, object], key: str, where: str) -> list[str] | None:
        value = table.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(where, key, f'a list of names in quotes, e.g. {key} = ["a", "b"]', value)
        return value

    def column(self, index: int, raw: dict[str, Any]) -> ColumnRule:
        name = raw.get("name")
        where = f"[[columns]] #{index}" + (f" ({name!r})" if isinstance(name, str) else "")
        self.check_keys(raw, _COLUMN_KEYS, where)
        name = self.require(raw, "name", where)
        if not isinstance(name, str):
            self.fail(where, "name", "the column name in quotes", name)
        family = self.require(raw, "type", where)
        if not isinstance(family, str):
            self.fail(where, "type", 'a type name in quotes, e.g. type = "int"', family)
        nullable = raw.get("nullable", True)
        if not isinstance(nullable, bool):
            self.fail(where, "nullable", "true or false", nullable)
        fraction = raw.get("max_null_fraction")
        if fraction is not None and (
            isinstance(fraction, bool) or not isinstance(fraction, int | float)
        ):
            self.fail(where, "max_null_fraction", "a number from 0 to 1", fraction)
        for bound in ("min", "max"):
            if isinstance(raw.get(bound), list | dict | str):
                self.fail(
                    where, bound, "a number, a date or a date and time (no quotes)", raw[bound]
                )
        categories = self.string_list(raw, "categories", where)
        environments = self.string_list(raw, "environments", where)
        try:
            return ColumnRule(
                name=name,
                family=family,  # type: ignore[arg-type]  # ColumnRule converts and checks it
                nullable=nullable,
                max_null_fraction=fraction,
                minimum=raw.get("min"),
                maximum=raw.get("max"),
                categories=None if categories is None else tuple(categories),
                environments=None if environments is None else tuple(environments),
            )
        except InvalidInput as exc:
            # The rule's message starts with "column 'name'", so only the position is added.
            raise InvalidInput(f"{self.source}: [[columns]] #{index}: {exc}") from exc
