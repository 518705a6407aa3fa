"""The findings of validating data against a :class:`~loopml.domain.data_schema.DataSchema`.

A :class:`ValidationReport` holds :class:`Finding` values, each saying which column, what
was expected, what was seen (counts and a few examples) and what to do, with a
:class:`Severity`: any error fails validation.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from loopml.domain.data_schema import Scalar
from loopml.domain.json_numbers import encode_number


class Severity(StrEnum):
    """How much a finding matters: an error fails validation, the others inform."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        """0 for the most severe; findings sort by it."""
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}


class Check(StrEnum):
    """The name of the check that produced a finding; stable, for filtering and reports."""

    EMPTY_DATA = "empty_data"
    MISSING_COLUMN = "missing_column"
    EXTRA_COLUMN = "extra_column"
    LABEL_MISSING = "label_missing"
    LABEL_PRESENT = "label_present"
    COLUMN_NOT_IN_ENVIRONMENT = "column_not_in_environment"
    TYPE_MISMATCH = "type_mismatch"
    TYPE_CHANGED = "type_changed"
    NULLS_NOT_ALLOWED = "nulls_not_allowed"
    NULL_FRACTION = "null_fraction"
    OUT_OF_RANGE = "out_of_range"
    UNSEEN_CATEGORY = "unseen_category"
    DUPLICATE_KEY = "duplicate_key"


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing validation noticed.

    ``expected`` and ``seen`` are short phrases for people; ``count`` (offending rows or
    values), ``examples`` (a few offending values) and ``details`` (named figures such as
    ``min_seen``) carry the same facts for programs. ``hint`` says what to do next.
    """

    severity: Severity
    check: Check
    column: str | None
    expected: str
    seen: str
    hint: str
    count: int = 0
    examples: tuple[Scalar, ...] = ()
    details: tuple[tuple[str, Scalar], ...] = ()

    @property
    def message(self) -> str:
        """One line: where, expected, seen, what to do."""
        where = f"column {self.column!r}" if self.column is not None else "data"
        hint = self.hint[:1].upper() + self.hint[1:]
        return f"{where}: expected {self.expected}; seen {self.seen}. {hint}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity.value,
            "check": self.check.value,
            "column": self.column,
            "expected": self.expected,
            "seen": self.seen,
            "hint": self.hint,
            "count": self.count,
            "examples": [_json_scalar(v) for v in self.examples],
            "details": {k: _json_scalar(v) for k, v in self.details},
        }


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """The findings of validating some data against a schema in one environment."""

    findings: tuple[Finding, ...]
    rows: int
    environment: str
    columns: tuple[str, ...] = ()
    batches: int = 0

    @property
    def ok(self) -> bool:
        """True when no finding is an error (warnings and infos do not fail validation)."""
        return not any(f.severity is Severity.ERROR for f in self.findings)

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.ERROR)

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.WARNING)

    def count(self, severity: Severity) -> int:
        return sum(1 for f in self.findings if f.severity is severity)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (non-finite floats become text such as ``"inf"``)."""
        return {
            "ok": self.ok,
            "environment": self.environment,
            "rows": self.rows,
            "batches": self.batches,
            "columns": list(self.columns),
            "counts": {s.value: self.count(s) for s in Severity},
            "findings": [f.to_dict() for f in self.findings],
        }


def _json_scalar(value: Scalar) -> Scalar:
    return encode_number(value)  # type: ignore[return-value]  # strict JSON: no NaN
