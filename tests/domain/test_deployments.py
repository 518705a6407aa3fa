"""Deployment state and its pure changes: revisions, canary shares, promotion and rollback,
sticky canary routing, the revision in force at a time, and the audit payload."""

from __future__ import annotations

import json
import math
import random
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loopml.domain.deployments import (
    Action,
    Deployment,
    Revision,
    Target,
    canary_takes,
    check_share,
    deployment_changed,
    serving_at,
)
from loopml.domain.errors import InvalidInput, InvalidState, NotFound

V1, V2, V3 = Target("m", 1), Target("m", 2), Target("m", 3)


def fresh(name: str = "api") -> Deployment:
    return Deployment(name, V1, created_ms=1_000, updated_ms=1_000)


def with_previous() -> Deployment:
    """Production v2 after promoting a canary over v1 (revision 3)."""
    return fresh().with_canary(V2, 10, 2_000).promoted(3_000)


# --- every change bumps the revision and the time ------------------------------------------

CHANGES: dict[str, Any] = {
    "canary": lambda d, t: d.with_canary(V2, 10, t),
    "stop canary": lambda d, t: d.with_canary(V2, 10, t - 1).with_canary(None, 0, t),
    "share": lambda d, t: d.with_canary(V2, 10, t - 1).with_share(30, t),
    "shadow": lambda d, t: d.with_shadow(V3, t),
    "stop shadow": lambda d, t: d.with_shadow(V3, t - 1).with_shadow(None, t),
    "promote": lambda d, t: d.with_canary(V2, 10, t - 1).promoted(t),
    "rollback": lambda d, t: d.with_canary(V2, 10, t - 2).promoted(t - 1).rolled_back(t),
    "retire": lambda d, t: d.retired_at(t),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_every_change_bumps_the_revision_and_the_time_and_leaves_the_original(
    change: str,
) -> None:
    before = fresh()
    after = CHANGES[change](before, 5_000)
    steps = {"canary": 1, "shadow": 1, "retire": 1, "rollback": 3}.get(change, 2)
    assert after.revision == before.revision + steps
    assert after.updated_ms == 5_000
    assert after.created_ms == 1_000 and after.name == "api"
    assert before == fresh()  # frozen: a change is a new value


def test_a_new_deployment_is_revision_1_serving_production_only() -> None:
    d = fresh()
    assert (d.revision, d.canary, d.canary_share, d.shadow, d.previous, d.retired) == (
        1,
        None,
        0.0,
        None,
        None,
        False,
    )
    assert d.targets() == [("production", V1)]
    both = d.with_canary(V2, 5, 2).with_shadow(V3, 3)
    assert both.targets() == [("production", V1), ("canary", V2), ("shadow", V3)]
    assert V2.uri == "models:/m/2"


@pytest.mark.parametrize("name", ["", "has space", "../up", "x" * 129])
def test_a_bad_deployment_name_is_refused(name: str) -> None:
    with pytest.raises(InvalidInput, match="deployment name"):
        fresh(name)


# --- canary share bounds -------------------------------------------------------------------


@pytest.mark.parametrize("share", [0.001, 1, 10, 50.5, 99.999])
def test_shares_strictly_between_0_and_100_are_accepted_as_floats(share: float) -> None:
    d = fresh().with_canary(V2, share, 2)
    assert d.canary_share == share and isinstance(d.canary_share, float)
    assert d.with_share(share, 3).canary_share == share


@pytest.mark.parametrize("share", [0, 0.0, 100, 100.0, -5, 150, -0.0])
def test_shares_at_or_outside_the_bounds_are_refused_naming_the_value(share: float) -> None:
    with pytest.raises(InvalidInput, match=r"between 0 and 100 percent \(exclusive\).*promote"):
        fresh().with_canary(V2, share, 2)
    with_canary = fresh().with_canary(V2, 10, 2)
    with pytest.raises(InvalidInput, match=rf"got {share}"):
        with_canary.with_share(share, 3)


@pytest.mark.parametrize(
    "share", [math.nan, math.inf, -math.inf, True, False, "10", None, [10]], ids=repr
)
def test_a_share_that_is_not_a_finite_number_is_refused(share: object) -> None:
    with pytest.raises(InvalidInput, match=r"canary share must be a number of percent, got"):
        check_share(share)
    with pytest.raises(InvalidInput, match=r"must be a number"):
        fresh().with_canary(V2, share, 2)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match=rf"got {re.escape(repr(share))}"):
        fresh().with_canary(V2, 10, 2).with_share(share, 3)  # type: ignore[arg-type]


def test_a_share_needs_a_canary_and_a_canary_needs_a_share() -> None:
    with pytest.raises(InvalidState, match=r"'api' has no canary.*deploy canary api"):
        fresh().with_share(10, 2)
    with pytest.raises(InvalidInput, match="needs a canary version"):
        Deployment("api", V1, 1, 1, canary_share=10)
    with pytest.raises(InvalidInput, match="between 0 and 100"):
        Deployment("api", V1, 1, 1, canary=V2)  # share 0 with a canary


def test_stopping_the_canary_resets_its_share() -> None:
    d = fresh().with_canary(V2, 10, 2).with_canary(None, 99, 3)
    assert (d.canary, d.canary_share) == (None, 0.0)


def test_a_canary_or_shadow_equal_to_production_is_refused() -> None:
    with pytest.raises(InvalidInput, match=r"models:/m/1 already serves production on 'api'"):
        fresh().with_canary(V1, 10, 2)
    with pytest.raises(InvalidInput, match=r"models:/m/1 already serves production on 'api'"):
        fresh().with_shadow(V1, 2)
    # another model's version 1 is another version
    assert fresh().with_canary(Target("other", 1), 10, 2).canary == Target("other", 1)


# --- promote, rollback, retire -------------------------------------------------------------


def test_promote_makes_the_canary_production_and_keeps_the_old_one_for_a_rollback() -> None:
    d = fresh().with_canary(V2, 10, 2).with_shadow(V3, 3).promoted(4)
    assert (d.production, d.previous, d.canary, d.canary_share, d.shadow) == (
        V2,
        V1,
        None,
        0.0,
        V3,
    )


def test_promote_without_a_canary_names_the_deployment_and_the_command() -> None:
    with pytest.raises(InvalidState, match=r"'api' has no canary to promote.*deploy canary api"):
        fresh().promoted(2)


def test_rollback_without_a_previous_version_names_what_serves() -> None:
    with pytest.raises(
        InvalidState, match=r"'api' has no previous production.*served models:/m/1 since"
    ):
        fresh().rolled_back(2)


def test_promote_rollback_rollback_swaps_production_and_previous() -> None:
    promoted = with_previous()
    back = promoted.with_canary(V3, 20, 4).rolled_back(5)
    assert (back.production, back.previous, back.canary, back.canary_share) == (V1, V2, None, 0.0)
    again = back.rolled_back(6)
    assert (again.production, again.previous) == (V2, V1)
    assert again.revision == promoted.revision + 3


def test_a_promoted_shadow_no_longer_shadows_itself() -> None:
    # shadow v2, then canary v2, then promote: v2 answers production and must not also get
    # a copy of every request as its own shadow
    d = fresh().with_shadow(V2, 2).with_canary(V2, 10, 3).promoted(4)
    assert (d.production, d.shadow) == (V2, None)
    assert ("shadow", V2) not in d.targets()
    kept = fresh().with_shadow(V3, 2).with_canary(V2, 10, 3).promoted(4)
    assert kept.shadow == V3  # a shadow of another version stays
    # the same after a rollback to the version the shadow copies
    back = with_previous().with_shadow(V1, 5).rolled_back(6)
    assert (back.production, back.shadow) == (V1, None)


def test_retiring_drops_canary_and_shadow_and_every_later_change_is_refused() -> None:
    d = fresh().with_canary(V2, 10, 2).with_shadow(V3, 3)
    d = d.with_canary(V2, 10, 4).promoted(5).with_canary(V3, 10, 6).retired_at(7)
    assert (d.retired, d.canary, d.canary_share, d.shadow, d.production) == (
        True,
        None,
        0.0,
        None,
        V2,
    )
    refused = [
        lambda: d.with_canary(V3, 10, 8),
        lambda: d.with_canary(None, 0, 8),
        lambda: d.with_share(10, 8),
        lambda: d.with_shadow(V3, 8),
        lambda: d.with_shadow(None, 8),
        lambda: d.promoted(8),
        lambda: d.rolled_back(8),
        lambda: d.retired_at(8),
    ]
    for change in refused:
        with pytest.raises(InvalidState, match=r"'api' is retired; create a new deployment"):
            change()


# --- sticky canary routing -----------------------------------------------------------------


def keys(count: int = 20_000, seed: int = 5) -> list[str]:
    rng = random.Random(seed)
    return [f"user-{rng.getrandbits(64):016x}" for _ in range(count)]


def test_the_same_key_always_gets_the_same_answer_whatever_the_draw() -> None:
    for key in keys(500):
        first = canary_takes(30, key, 0.0)
        assert all(canary_takes(30, key, draw) is first for draw in (0.0, 0.5, 0.999999))


@pytest.mark.parametrize("share", [1, 10, 25, 50, 90])
def test_a_share_of_s_percent_sends_about_s_percent_of_keys(share: float) -> None:
    n, p = 20_000, share / 100
    taken = sum(canary_takes(share, key, 0.0) for key in keys(n))
    sigma = math.sqrt(n * p * (1 - p))
    assert abs(taken - n * p) <= 4.5 * sigma, (taken, n * p, sigma)


def test_raising_the_share_only_adds_keys_to_the_canary() -> None:
    sample = keys()
    at = {s: {k for k in sample if canary_takes(s, k, 0.0)} for s in (5, 10, 20, 50)}
    assert at[5] <= at[10] <= at[20] <= at[50]
    assert len(at[20] - at[10]) > 1_000  # and does add some


def test_without_a_key_the_draw_decides() -> None:
    assert canary_takes(10, None, 0.0)
    assert canary_takes(10, None, 0.0999)
    assert not canary_takes(10, None, 0.1)  # a share of 10 takes draws in [0, 0.1)
    assert not canary_takes(10, None, 0.9)
    rng = random.Random(1)
    taken = sum(canary_takes(25, None, rng.random()) for _ in range(20_000))
    assert abs(taken - 5_000) <= 4.5 * math.sqrt(20_000 * 0.25 * 0.75)


# --- the revision in force at a time --------------------------------------------------------


def history() -> list[Revision]:
    d1 = fresh()
    d2 = d1.with_canary(V2, 10, 2_000)
    d3 = d2.promoted(3_000)
    return [
        Revision("api", 1, 1_000, "ana", Action.CREATE, d1),
        Revision("api", 2, 2_000, "ana", Action.CANARY, d2),
        Revision("api", 3, 3_000, "bob", Action.PROMOTE, d3, "looks good"),
    ]


@pytest.mark.parametrize(
    ("time_ms", "revision"),
    [(1_000, 1), (1_999, 1), (2_000, 2), (2_999, 2), (3_000, 3), (10**13, 3)],
)
def test_serving_at_picks_the_revision_in_force(time_ms: int, revision: int) -> None:
    assert serving_at(history(), time_ms).revision == revision


def test_serving_at_before_the_first_revision_is_not_found_naming_the_deployment() -> None:
    with pytest.raises(NotFound, match=r"deployment 'api' did not exist at 999"):
        serving_at(history(), 999)
    with pytest.raises(NotFound):
        serving_at([], 1_000)


# --- serialisation and audit ---------------------------------------------------------------

targets = st.builds(Target, st.sampled_from(["m", "churn", "bike-demand"]), st.integers(1, 10_000))


@st.composite
def deployments(draw: st.DrawFn) -> Deployment:
    production = draw(targets)
    canary = draw(st.none() | targets.filter(lambda t: t != production))
    share = draw(st.floats(0, 100, exclude_min=True, exclude_max=True)) if canary else 0.0
    created = draw(st.integers(0, 2**53))
    return Deployment(
        name=draw(st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,20}", fullmatch=True)),
        production=production,
        created_ms=created,
        updated_ms=created + draw(st.integers(0, 10**9)),
        revision=draw(st.integers(1, 10**6)),
        canary=canary,
        canary_share=share,
        shadow=draw(st.none() | targets),
        previous=draw(st.none() | targets),
        retired=draw(st.booleans()),
    )


@given(deployments())
def test_to_dict_from_dict_round_trips_through_json(d: Deployment) -> None:
    assert Deployment.from_dict(d.to_dict()) == d
    assert Deployment.from_dict(json.loads(json.dumps(d.to_dict()))) == d


def test_the_audit_payload_has_the_routes_before_and_after() -> None:
    before = fresh().with_canary(V2, 10, 2).with_shadow(V3, 3)
    after = before.promoted(4)
    record = deployment_changed(before, after, Action.PROMOTE, "bob", "looks good")
    assert (record.action, record.object_type, record.object_id) == (
        "deployment.promote",
        "deployment",
        "deployments:/api",
    )
    assert (record.actor, record.reason) == ("bob", "looks good")
    assert record.before == {
        "production": "models:/m/1",
        "canary": "models:/m/2",
        "canary_share": 10.0,
        "shadow": "models:/m/3",
        "retired": False,
        "revision": 3,
    }
    assert record.after == {
        "production": "models:/m/2",
        "canary": None,
        "canary_share": 0.0,
        "shadow": "models:/m/3",
        "retired": False,
        "revision": 4,
    }
    created = deployment_changed(None, fresh(), Action.CREATE, "ana", None)
    assert (created.action, created.before, created.reason) == ("deployment.create", None, None)
    assert created.after is not None and created.after["production"] == "models:/m/1"
