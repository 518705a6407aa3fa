"""The report of ``loopml repro``: did re-running a model version's lineage give the same
outputs and metrics? Standard library only, no I/O."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

METRIC_REL_TOL = 1e-9


class Match(StrEnum):
    IDENTICAL = "identical"  # the same bytes for every output
    METRICS_MATCH = "metrics match"  # different bytes, the same logged metrics
    DIFFERS = "differs"
    FAILED = "failed"  # the step raised, or did not run


@dataclass(frozen=True, slots=True)
class ReproStep:
    step: str
    match: Match
    notes: tuple[str, ...] = ()
    nondeterministic: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "match": self.match.value,
            "notes": list(self.notes),
            "nondeterministic": self.nondeterministic,
        }


@dataclass(frozen=True, slots=True)
class ReproReport:
    uri: str
    pipeline: str
    run_id: str  # the re-run's pipeline run
    steps: tuple[ReproStep, ...] = field(default=())

    @property
    def reproduced(self) -> bool:
        return bool(self.steps) and all(
            s.match in (Match.IDENTICAL, Match.METRICS_MATCH) for s in self.steps
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "pipeline": self.pipeline,
            "run_id": self.run_id,
            "reproduced": self.reproduced,
            "steps": [s.to_dict() for s in self.steps],
        }


def metric_differences(before: Mapping[str, float], after: Mapping[str, float]) -> list[str]:
    """``name before -> after`` for each metric that is not the same on both sides."""
    out = []
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key), after.get(key)
        if a is None or b is None:
            out.append(f"metric {key} {'added' if a is None else 'missing'}")
        elif not (
            (math.isnan(a) and math.isnan(b))
            or math.isclose(a, b, rel_tol=METRIC_REL_TOL, abs_tol=1e-12)
        ):
            out.append(f"metric {key} {a!r} -> {b!r}")
    return out
