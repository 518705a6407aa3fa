from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loopml.domain.errors import IllegalTransition, InvalidInput
from loopml.domain.lifecycle import ALLOWED_MOVES, Stage, check_transition


def test_happy_path_through_every_stage() -> None:
    path = [Stage.CANDIDATE, Stage.STAGING, Stage.PRODUCTION, Stage.ARCHIVED, Stage.STAGING]
    for current, target in itertools.pairwise(path):
        check_transition("models:/m/1", current, target)


def test_skipping_staging_names_the_allowed_moves_and_the_fix() -> None:
    with pytest.raises(IllegalTransition) as info:
        check_transition("models:/m/1", Stage.CANDIDATE, Stage.PRODUCTION)
    message = str(info.value)
    assert "from candidate to production" in message
    assert "allowed moves from candidate are staging, archived" in message
    assert "Promote it to staging first" in message


def test_same_stage_is_refused_as_a_no_op() -> None:
    with pytest.raises(IllegalTransition, match="already in production"):
        check_transition("models:/m/1", Stage.PRODUCTION, Stage.PRODUCTION)


@given(st.sampled_from(list(Stage)), st.sampled_from(list(Stage)))
def test_transition_is_allowed_exactly_when_listed(current: Stage, target: Stage) -> None:
    allowed = target in ALLOWED_MOVES[current]
    try:
        check_transition("m", current, target)
        assert allowed
    except IllegalTransition:
        assert not allowed


def test_every_stage_can_reach_archived_or_back_to_service() -> None:
    for stage in Stage:
        assert ALLOWED_MOVES[stage], f"{stage} is a dead end"


def test_stage_parse() -> None:
    assert Stage.parse(" Production ") is Stage.PRODUCTION
    with pytest.raises(InvalidInput, match="unknown stage 'prod'; expected one of candidate"):
        Stage.parse("prod")
