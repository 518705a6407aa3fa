"""The retrain loop of a deployment, as a state machine that survives restarts.

An alert rule with ``action = "retrain"`` starts a :class:`LoopRun`. Each stage is stored
(with its audit record) before the next begins, so an agent that crashes resumes the run
at the stage it reached instead of starting over, and no stage's effect happens twice::

    started -> trained -> evaluated -> gated -> canary -> promoted
                   \\           \\          \\         \\-> rolled_back
                    `-----------`----------`-> failed / rejected

* ``trained``: the pipeline ran on the newest data (labelled production rows added);
  ``candidate`` is the registered version.
* ``evaluated``: candidate and champion were scored on the same held-out data.
* ``gated``: the production gates passed against the champion (else ``rejected``: the
  production route never changes).
* ``canary``: the candidate takes ``canary_share`` percent of the traffic from
  ``canary_since_ms``; it is watched until ``watch_until_ms``.
* ``promoted`` (through the gates again) or ``rolled_back`` (the canary removed, production
  as it was).

Standard library only, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from loopml.domain.errors import InvalidState


class LoopState(StrEnum):
    STARTED = "started"
    TRAINED = "trained"
    EVALUATED = "evaluated"
    GATED = "gated"
    CANARY = "canary"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    REJECTED = "rejected"
    FAILED = "failed"


FINAL = frozenset({LoopState.PROMOTED, LoopState.ROLLED_BACK, LoopState.REJECTED, LoopState.FAILED})
_NEXT: dict[LoopState, frozenset[LoopState]] = {
    LoopState.STARTED: frozenset({LoopState.TRAINED}),
    LoopState.TRAINED: frozenset({LoopState.EVALUATED}),
    LoopState.EVALUATED: frozenset({LoopState.GATED, LoopState.REJECTED}),
    LoopState.GATED: frozenset({LoopState.CANARY}),
    LoopState.CANARY: frozenset({LoopState.PROMOTED, LoopState.ROLLED_BACK}),
}


@dataclass(frozen=True, slots=True)
class LoopStep:
    state: LoopState
    time_ms: int
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state.value, "time_ms": self.time_ms, "detail": self.detail}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LoopStep:
        return cls(LoopState(data["state"]), int(data["time_ms"]), str(data["detail"]))


@dataclass(frozen=True, slots=True)
class LoopRun:
    id: str
    deployment: str
    trigger: str  # the alert id, or "manual"
    created_ms: int
    state: LoopState = LoopState.STARTED
    revision: int = 1
    updated_ms: int = 0
    champion: int | None = None  # production version when the loop started
    model: str = ""
    candidate: int | None = None
    canary_since_ms: int | None = None
    watch_until_ms: int | None = None
    steps: tuple[LoopStep, ...] = ()
    facts: Mapping[str, Any] = field(default_factory=dict)  # figures gathered on the way

    def __post_init__(self) -> None:
        if not self.steps:
            step = LoopStep(LoopState.STARTED, self.created_ms, f"triggered by {self.trigger}")
            object.__setattr__(self, "steps", (step,))
        if not self.updated_ms:
            object.__setattr__(self, "updated_ms", self.created_ms)

    @property
    def finished(self) -> bool:
        return self.state in FINAL

    def advance(self, state: LoopState, time_ms: int, detail: str, **changes: Any) -> LoopRun:
        """The next state, with its step recorded and the revision bumped. ``failed`` is
        reachable from every unfinished state; other moves follow the diagram."""
        allowed = _NEXT.get(self.state, frozenset())
        if self.finished or (state is not LoopState.FAILED and state not in allowed):
            raise InvalidState(
                f"loop {self.id} of {self.deployment!r} is {self.state.value}; it cannot "
                f"move to {state.value} (allowed: "
                f"{', '.join(sorted(s.value for s in allowed)) or 'nothing, it is finished'})"
            )
        facts = {**self.facts, **changes.pop("facts", {})}
        return replace(
            self,
            state=state,
            revision=self.revision + 1,
            updated_ms=time_ms,
            steps=(*self.steps, LoopStep(state, time_ms, detail)),
            facts=facts,
            **changes,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "deployment": self.deployment,
            "trigger": self.trigger,
            "created_ms": self.created_ms,
            "state": self.state.value,
            "revision": self.revision,
            "updated_ms": self.updated_ms,
            "champion": self.champion,
            "model": self.model,
            "candidate": self.candidate,
            "canary_since_ms": self.canary_since_ms,
            "watch_until_ms": self.watch_until_ms,
            "steps": [s.to_dict() for s in self.steps],
            "facts": dict(self.facts),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LoopRun:
        return cls(
            id=data["id"],
            deployment=data["deployment"],
            trigger=data["trigger"],
            created_ms=int(data["created_ms"]),
            state=LoopState(data["state"]),
            revision=int(data["revision"]),
            updated_ms=int(data["updated_ms"]),
            champion=data.get("champion"),
            model=data.get("model", ""),
            candidate=data.get("candidate"),
            canary_since_ms=data.get("canary_since_ms"),
            watch_until_ms=data.get("watch_until_ms"),
            steps=tuple(LoopStep.from_dict(s) for s in data.get("steps", [])),
            facts=dict(data.get("facts", {})),
        )


class JobState(StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class JobRun:
    """One run of a scheduled agent job at one due time; stored before the job starts, so
    a restarted agent sees what it already began and never starts the same slot twice."""

    job: str
    due_ms: int
    started_ms: int
    state: JobState = JobState.RUNNING
    finished_ms: int | None = None
    detail: str = ""
