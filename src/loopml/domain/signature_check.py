"""Checking request data against a model's signature, before the model sees it.

Input arrives as JSON: rows (``[{"temp": 0.3, ...}, ...]``) or columns (``{"temp": [0.3,
...]}``). :func:`columns_from_rows` turns rows into columns; :func:`check_columns` checks
the columns against the signature's input columns and returns every
:class:`FieldProblem` it finds (missing and extra columns, columns of different lengths,
wrong types, nulls where the signature allows none, NaN or infinity in numbers), each
naming the field, what was expected and what was received: what a 4xx answer says.
Standard library only, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loopml.domain.registry import ColumnSpec, Signature

MAX_PROBLEMS = 20


@dataclass(frozen=True, slots=True)
class FieldProblem:
    field: str  # the column name, or "" for the request as a whole
    expected: str
    received: str
    row: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "expected": self.expected,
            "received": self.received,
            "row": self.row,
        }

    @property
    def message(self) -> str:
        where = f"field {self.field!r}" if self.field else "request"
        at = f" (row {self.row})" if self.row is not None else ""
        return f"{where}{at}: expected {self.expected}, received {self.received}"


def columns_from_rows(rows: object) -> tuple[dict[str, list[Any]], list[FieldProblem]]:
    """Rows of JSON objects as columns (a key missing from a row is a null there)."""
    if not isinstance(rows, list) or not rows:
        return {}, [FieldProblem("", "a non-empty list of row objects", _kind(rows))]
    names: dict[str, None] = {}
    for row in rows:
        if not isinstance(row, dict):
            return {}, [FieldProblem("", "every row to be an object", _kind(row))]
        names.update(dict.fromkeys(row))
    return {name: [row.get(name) for row in rows] for name in names}, []


def check_columns(columns: Mapping[str, Any], signature: Signature | None) -> list[FieldProblem]:
    """Every problem of ``columns`` against ``signature`` (none without a signature)."""
    problems: list[FieldProblem] = []
    lengths = set()
    for name, values in columns.items():
        if not isinstance(values, list):
            problems.append(FieldProblem(name, "a list of values", _kind(values)))
        else:
            lengths.add(len(values))
    if problems:
        return problems
    if len(lengths) > 1:
        sizes = ", ".join(f"{n}: {len(v)}" for n, v in list(columns.items())[:10])
        return [FieldProblem("", "columns of one length", f"lengths {sizes}")]
    if lengths == {0} or not columns:
        return [FieldProblem("", "at least one row", "no rows")]
    if signature is None or not signature.inputs:
        return []
    wanted = {c.name: c for c in signature.inputs}
    for name, spec in wanted.items():
        if name not in columns:
            problems.append(FieldProblem(name, f"a column of {spec.type}", "nothing"))
    for name in columns:
        if name not in wanted:
            problems.append(
                FieldProblem(
                    name, f"one of the model's inputs ({', '.join(wanted)})", "an extra column"
                )
            )
    for name, values in columns.items():
        column = wanted.get(name)
        if column is not None:
            problem = _check_values(column, values)
            if problem is not None:
                problems.append(problem)
        if len(problems) >= MAX_PROBLEMS:
            break
    return problems


_NUMBER_TYPES = ("integer", "double")


def _check_values(spec: ColumnSpec, values: Sequence[Any]) -> FieldProblem | None:
    """The first problem in one column, or None."""
    kind = spec.type
    for i, v in enumerate(values):
        if v is None:
            if not spec.nullable:
                return FieldProblem(spec.name, f"{kind} (not null)", "null", i)
            continue
        if kind in _NUMBER_TYPES:
            if isinstance(v, bool) or not isinstance(v, int | float):
                return FieldProblem(spec.name, kind, f"{_kind(v)} {_short(v)}", i)
            if isinstance(v, float):
                if not math.isfinite(v):
                    return FieldProblem(spec.name, f"a finite {kind}", repr(v), i)
                if kind == "integer" and not v.is_integer():
                    return FieldProblem(spec.name, "integer", f"number {v!r}", i)
        elif kind == "boolean":
            if not isinstance(v, bool):
                return FieldProblem(spec.name, "boolean", f"{_kind(v)} {_short(v)}", i)
        elif kind in ("string", "datetime") and not isinstance(v, str):
            return FieldProblem(spec.name, kind, f"{_kind(v)} {_short(v)}", i)
    return None


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
