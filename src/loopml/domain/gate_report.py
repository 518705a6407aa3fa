"""The report of a gate evaluation: one :class:`CheckResult` per check, and the verdict.

A :class:`GateReport` passes when no check failed (skipped checks do not block). It
renders as a dict for JSON (:meth:`GateReport.to_dict`) and as a Markdown table fit for a
pull-request comment (:meth:`GateReport.to_markdown`). The number formats used in check
messages live here too, so that a message and its table cell always agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from loopml.domain.lifecycle import Stage


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


class CheckKind(StrEnum):
    THRESHOLD = "threshold"
    CHAMPION = "champion"
    SLICE_REGRESSION = "slice_regression"
    FAIRNESS = "fairness"
    DATA_VALIDATION = "data_validation"
    LATENCY = "latency_p99"
    MODEL_SIZE = "model_size"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check of a gate: what was compared with what, and the verdict in one line.

    ``name`` is stable for programs: ``min:accuracy``, ``max:rmse``, ``champion:rmse``,
    ``slice_regression:slice:region=eu/accuracy``,
    ``max:fairness:sex/demographic_parity_difference``, ``data_validation:training``,
    ``latency_p99``, ``model_size``. ``comparison`` says how ``value`` must relate to
    ``bound`` (``">="`` or ``"<="``); ``champion`` is the champion's value in relative
    checks; ``unit`` is ``"ms"`` or ``"bytes"`` where one applies.
    """

    name: str
    kind: CheckKind
    subject: str
    outcome: Outcome
    message: str
    value: float | bool | None = None
    bound: float | None = None
    comparison: str | None = None
    champion: float | None = None
    unit: str = ""

    @property
    def passed(self) -> bool:
        return self.outcome is Outcome.PASSED

    @property
    def failed(self) -> bool:
        return self.outcome is Outcome.FAILED

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind.value,
            "subject": self.subject,
            "outcome": self.outcome.value,
            "value": _json(self.value),
            "bound": _json(self.bound),
            "comparison": self.comparison,
            "champion": _json(self.champion),
            "unit": self.unit,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class GateReport:
    """Every check of moving ``model`` (version ``candidate_version``) into ``stage``.

    ``gated`` is false when no policy applies to that move (the report then has no checks
    and passes). ``requires_approval`` and ``allow_self_approval`` carry the policy's
    approval rule to whoever performs the move: passing the checks is not approval.
    """

    model: str
    stage: Stage
    checks: tuple[CheckResult, ...]
    candidate_version: int | None = None
    champion_version: int | None = None
    gated: bool = True
    has_champion: bool = False
    requires_approval: bool = False
    allow_self_approval: bool = False

    @property
    def passed(self) -> bool:
        """True when no check failed; skipped checks do not block."""
        return not self.failures

    @property
    def failures(self) -> tuple[CheckResult, ...]:
        return tuple(c for c in self.checks if c.outcome is Outcome.FAILED)

    @property
    def skipped(self) -> tuple[CheckResult, ...]:
        return tuple(c for c in self.checks if c.outcome is Outcome.SKIPPED)

    def count(self, outcome: Outcome) -> int:
        return sum(1 for c in self.checks if c.outcome is outcome)

    @property
    def subject(self) -> str:
        """``bike-demand v7 -> production``, for headings and messages."""
        version = f" v{self.candidate_version}" if self.candidate_version is not None else ""
        return f"{self.model}{version} -> {self.stage.value}"

    def summary(self) -> str:
        """One line: the verdict and the counts, e.g. ``failed: 2 failed, 5 passed, 1 skipped``."""
        if not self.gated:
            return f"no gates apply to {self.subject}"
        order = (Outcome.FAILED, Outcome.PASSED, Outcome.SKIPPED)
        counts = ", ".join(
            f"{self.count(o)} {o.value}" for o in order if self.count(o) or o is Outcome.PASSED
        )
        return f"{'passed' if self.passed else 'failed'}: {counts}"

    def failure_text(self, limit: int = 3) -> str:
        """The first failures' messages joined, for one-line errors."""
        shown = [c.message for c in self.failures[:limit]]
        more = len(self.failures) - len(shown)
        return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (non-finite floats become text such as ``"nan"``)."""
        return {
            "model": self.model,
            "stage": self.stage.value,
            "candidate_version": self.candidate_version,
            "champion_version": self.champion_version,
            "gated": self.gated,
            "passed": self.passed,
            "has_champion": self.has_champion,
            "requires_approval": self.requires_approval,
            "allow_self_approval": self.allow_self_approval,
            "counts": {o.value: self.count(o) for o in Outcome},
            "checks": [c.to_dict() for c in self.checks],
        }

    def to_markdown(self) -> str:
        """The report as Markdown for a pull-request comment: a heading with the verdict,
        the champion and approval notes, and one table row per check."""
        mark = "✅" if self.passed else "❌"
        lines = [f"#### {mark} Gates for {_cell(self.subject)}: {self.summary()}", ""]
        if not self.gated:
            return "\n".join(lines).rstrip() + "\n"
        if self.champion_version is not None:
            lines.append(f"Compared with the champion, v{self.champion_version}.")
        elif self.has_champion:
            lines.append("Compared with the current champion.")
        else:
            lines.append("No champion yet: checks against the champion are skipped.")
        if self.requires_approval:
            who = "a person" if self.allow_self_approval else "a person other than the requester"
            lines.append(f"Approval: {who} must approve this promotion.")
        lines += ["", "| | Check | Value | Bound | Details |", "|:-:|---|--:|---|---|"]
        for check in self.checks:
            cells = (
                _MARKS[check.outcome],
                check.name,
                value_text(check),
                bound_text(check),
                check.message,
            )
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        return "\n".join(lines) + "\n"


_MARKS = {Outcome.PASSED: "✅", Outcome.FAILED: "❌", Outcome.SKIPPED: "⏭️"}
_SYMBOLS = {">=": "≥", "<=": "≤"}


def value_text(check: CheckResult) -> str:
    """A check's value as a table shows it (with its unit; `not run` for validation)."""
    value = check.value
    if isinstance(value, bool):
        return "passed" if value else "failed"
    if value is None:
        return "not run" if check.kind is CheckKind.DATA_VALIDATION else "—"
    return _with_unit(value, check.unit)


def bound_text(check: CheckResult) -> str:
    """A check's bound as a table shows it (`≥ 0.8`, `≤ 50.0 ms`)."""
    if check.kind is CheckKind.DATA_VALIDATION:
        return "passed"
    if check.bound is None or check.comparison is None:
        return "—"
    return f"{_SYMBOLS[check.comparison]} {_with_unit(check.bound, check.unit)}"


def _with_unit(value: float, unit: str) -> str:
    if unit == "bytes":
        return format_bytes(value)
    return format_ms(value) if unit == "ms" else format_number(value)


def _cell(text: str) -> str:
    """Text safe in a Markdown table cell: pipes escaped, line breaks flattened."""
    return " ".join(text.replace("\\", "\\\\").replace("|", "\\|").split())


def _json(value: float | bool | None) -> float | bool | str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "nan", "inf", "-inf": strict JSON has no such numbers
    return value


def format_number(value: float, digits: int = 6) -> str:
    """A number for people: ``digits`` significant digits, ``.0`` on whole floats."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    text = f"{value:.{digits}g}"
    if text.lstrip("-").isdigit():
        text += ".0"
    return text


def format_pair(value: float, bound: float) -> tuple[str, str]:
    """Both numbers, with enough digits that different numbers never read the same."""
    for digits in range(6, 18):
        shown = format_number(value, digits), format_number(bound, digits)
        if shown[0] != shown[1] or value == bound:
            return shown
    return repr(value), repr(bound)


def format_ms(value: float) -> str:
    return f"{format_number(value)} ms"


def format_bytes(value: float) -> str:
    """``52,428,800 bytes (52.4 MB)``: exact, with a decimal unit for reading."""
    count = int(value)
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count:,} bytes ({count / scale:.1f} {unit})"
    return f"{count:,} bytes"
