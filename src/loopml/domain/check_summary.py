"""The verdict of ``loopml check``: data validation, evaluation and gates, as one Markdown
summary fit for a pull-request comment. Standard library only, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from loopml.domain.gate_report import GateReport, format_ms, format_number
from loopml.domain.model_evaluation import ModelEvaluation
from loopml.domain.validation_report import ValidationReport

MAX_FINDINGS = 5
MAX_METRICS = 12


@dataclass(frozen=True)
class CheckSummary:
    uri: str
    evaluation: ModelEvaluation
    gates: GateReport
    validation: Mapping[str, ValidationReport] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.gates.passed and all(r.ok for r in self.validation.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "passed": self.passed,
            "validation": {role: r.to_dict() for role, r in self.validation.items()},
            "metrics": dict(self.evaluation.metrics),
            "evaluation": str(self.evaluation.evaluation),
            "report": str(self.evaluation.report),
            "gates": self.gates.to_dict(),
        }

    def to_markdown(self) -> str:
        mark = "✅" if self.passed else "❌"
        verdict = "passed" if self.passed else "failed"
        e = self.evaluation
        on = f" on `{e.dataset}`" if e.dataset else ""
        lines = [
            f"### {mark} loopml check: `{self.uri}` {verdict}",
            "",
            f"Evaluated{on}: {e.rows:,} rows ({e.task}).",
            "",
            "#### Data validation",
            "",
        ]
        if not self.validation:
            lines.append("Not run: pass `--schema FILE` (or set `schema` in `[check]`).")
        for role, report in self.validation.items():
            status = "✅ passed" if report.ok else "❌ failed"
            lines.append(
                f"- **{role} data**: {status} ({len(report.errors)} errors, "
                f"{len(report.warnings)} warnings)"
            )
            for finding in report.errors[:MAX_FINDINGS]:
                lines.append(f"  - {_inline(finding.message)}")
        lines += ["", "#### Metrics", "", "| Metric | Value |", "|---|--:|"]
        overall = [(k, v) for k, v in e.metrics.items() if ":" not in k][:MAX_METRICS]
        lines += [f"| {k} | {format_number(v)} |" for k, v in overall]
        if e.latency_p99_ms is not None:
            lines.append(f"| predict latency p99 (1 row) | {format_ms(e.latency_p99_ms)} |")
        lines += ["", self.gates.to_markdown().rstrip(), ""]
        lines.append(f"The full HTML report is stored as `{e.report.short}`.")
        return "\n".join(lines) + "\n"


def _inline(text: str) -> str:
    return " ".join(text.split())
