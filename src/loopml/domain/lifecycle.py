"""The lifecycle of a model version: a small, explicit state machine.

``candidate -> staging -> production -> archived``, with the moves back that real work
needs (demote production to staging, send staging back to candidate, restore an archived
version to staging). Anything else raises :class:`IllegalTransition`, naming the moves that
are allowed from the current stage.
"""

from __future__ import annotations

from enum import StrEnum

from loopml.domain.errors import IllegalTransition, InvalidInput


class Stage(StrEnum):
    CANDIDATE = "candidate"
    STAGING = "staging"
    PRODUCTION = "production"
    ARCHIVED = "archived"

    @classmethod
    def parse(cls, text: str) -> Stage:
        try:
            return cls(text.strip().lower())
        except ValueError:
            allowed = ", ".join(s.value for s in cls)
            raise InvalidInput(f"unknown stage {text!r}; expected one of {allowed}") from None


ALLOWED_MOVES: dict[Stage, tuple[Stage, ...]] = {
    Stage.CANDIDATE: (Stage.STAGING, Stage.ARCHIVED),
    Stage.STAGING: (Stage.PRODUCTION, Stage.CANDIDATE, Stage.ARCHIVED),
    Stage.PRODUCTION: (Stage.STAGING, Stage.ARCHIVED),
    Stage.ARCHIVED: (Stage.STAGING,),
}


def check_transition(subject: str, current: Stage, target: Stage) -> None:
    """Raise :class:`IllegalTransition` unless ``current -> target`` is an allowed move."""
    allowed = ALLOWED_MOVES[current]
    if target in allowed:
        return
    names = ", ".join(s.value for s in allowed)
    if current is target:
        raise IllegalTransition(f"{subject} is already in {current.value}; nothing to do")
    hint = ""
    if current is Stage.CANDIDATE and target is Stage.PRODUCTION:
        hint = " Promote it to staging first."
    raise IllegalTransition(
        f"cannot move {subject} from {current.value} to {target.value}: "
        f"allowed moves from {current.value} are {names}.{hint}"
    )
