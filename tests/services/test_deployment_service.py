"""DeploymentService on the in-memory app: routes from registry URIs, promotion through the
registry's gates, rollback, what actually serves once versions are archived, and the
revision in force at a time."""

from __future__ import annotations

from typing import Any

import pytest
from sklearn.linear_model import LinearRegression

from loopml.bootstrap import Loopml
from loopml.client import Client
from loopml.domain.approvals import GatesFailed
from loopml.domain.deployments import Action, Target
from loopml.domain.errors import (
    AlreadyExists,
    ConcurrentModification,
    IllegalTransition,
    InvalidInput,
    InvalidState,
    NotFound,
)
from loopml.domain.gate_file import policy_from_toml
from loopml.domain.lifecycle import Stage
from loopml.services.deployments import DeploymentService

V1, V2, V3 = Target("m", 1), Target("m", 2), Target("m", 3)
GATED = """
[gates.default.production.thresholds]
rmse = 40.0
"""


def _model() -> LinearRegression:
    return LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0])


@pytest.fixture
def models(client: Client) -> Client:
    """Model m: v1 in production (the champion, rmse 30), v2 (rmse 41.2) and v3 (rmse 35)
    in staging."""
    for rmse in (30.0, 41.2, 35.0):
        mv = client.register_model(_model(), "m", metrics={"rmse": rmse})
        client.promote("m", mv.version, "staging")
    client.promote("m", 1, "production")
    client.set_alias("m", "champion", 1)
    return client


@pytest.fixture
def service(app: Loopml, models: Client) -> DeploymentService:
    return app.deployments


def stages(client: Client) -> dict[int, Stage]:
    return {v.version: v.stage for v in client.list_versions("m")}


def deployment_events(client: Client, name: str = "api") -> list[str]:
    return [e.action for e in client.app.audit.list_events(f"deployments:/{name}", 100, None)]


# --- create ---------------------------------------------------------------------------------


def test_create_from_an_alias_resolves_the_version_and_is_audited(
    service: DeploymentService, models: Client
) -> None:
    d = service.create("api", "models:/m@champion", "ana", reason="first")
    assert (d.production, d.revision, d.canary, d.shadow, d.previous) == (V1, 1, None, None, None)
    assert service.get("api") == d
    [entry] = service.history("api")
    assert (entry.action, entry.actor, entry.reason, entry.state) == (
        Action.CREATE,
        "ana",
        "first",
        d,
    )
    [event] = models.app.audit.list_events("deployments:/api", 10, None)
    assert (event.action, event.actor, event.before) == ("deployment.create", "ana", None)
    assert event.after is not None and event.after["production"] == "models:/m/1"
    # moving the alias later does not move the deployment: it pinned version 1
    models.set_alias("m", "champion", 3)
    assert service.get("api").production == V1
    assert service.create("by-stage", "models:/m/production", "ana").production == V1


def test_create_refuses_archived_unknown_and_taken(
    service: DeploymentService, models: Client
) -> None:
    models.archive("m", 2)
    with pytest.raises(InvalidState, match=r"models:/m/2 is archived.*models promote m 2 staging"):
        service.create("api", "models:/m/2", "ana")
    with pytest.raises(NotFound):
        service.get("api")
    with pytest.raises(NotFound, match=r"no version 9"):
        service.create("api", "models:/m/9", "ana")
    with pytest.raises(InvalidInput, match="deployment name"):
        service.create("bad name", "models:/m/1", "ana")
    service.create("api", "models:/m/1", "ana")
    with pytest.raises(AlreadyExists, match=r"'api' already exists"):
        service.create("api", "models:/m/3", "ana")
    assert service.get("api").production == V1
    assert deployment_events(models) == ["deployment.create"]


# --- canary, share, shadow ----------------------------------------------------------------


def test_canary_share_and_shadow_change_the_routes_in_history(
    service: DeploymentService,
) -> None:
    service.create("api", "models:/m/1", "ana")
    d = service.canary("api", "models:/m/2", 10, "ana")
    assert (d.canary, d.canary_share, d.revision) == (V2, 10.0, 2)
    d = service.share("api", 25, "bob", reason="looks fine")
    assert (d.canary, d.canary_share, d.revision) == (V2, 25.0, 3)
    d = service.shadow("api", "models:/m/3", "ana")
    assert (d.shadow, d.canary) == (V3, V2)
    d = service.canary("api", None, 0, "ana")
    assert (d.canary, d.canary_share, d.shadow) == (None, 0.0, V3)
    d = service.shadow("api", None, "ana")
    assert d.shadow is None and d.revision == 6
    actions = [e.action for e in service.history("api")]
    assert actions == [
        Action.CREATE,
        Action.CANARY,
        Action.SHARE,
        Action.SHADOW,
        Action.CANARY,
        Action.SHADOW,
    ]
    assert service.history("api")[2].reason == "looks fine"


def test_bad_canaries_are_refused_and_leave_the_deployment(
    service: DeploymentService, models: Client
) -> None:
    service.create("api", "models:/m/1", "ana")
    models.archive("m", 3)
    with pytest.raises(InvalidInput, match="already serves production"):
        service.canary("api", "models:/m@champion", 10, "ana")
    with pytest.raises(InvalidState, match="archived"):
        service.canary("api", "models:/m/3", 10, "ana")
    with pytest.raises(InvalidInput, match="between 0 and 100"):
        service.canary("api", "models:/m/2", 100, "ana")
    with pytest.raises(InvalidState, match="has no canary"):
        service.share("api", 20, "ana")
    with pytest.raises(NotFound, match="'nope' does not exist"):
        service.canary("nope", "models:/m/2", 10, "ana")
    assert service.get("api").revision == 1
    assert len(service.history("api")) == 1


# --- promote --------------------------------------------------------------------------------


def test_promote_moves_the_canary_to_production_in_the_registry_and_on_the_route(
    service: DeploymentService, models: Client
) -> None:
    service.create("api", "models:/m/1", "ana")
    service.canary("api", "models:/m/3", 10, "ana")
    d = service.promote("api", "bob", reason="canary is healthy")
    assert (d.production, d.previous, d.canary, d.canary_share) == (V3, V1, None, 0.0)
    # the old production version is demoted, kept ready for a rollback, not archived
    assert stages(models) == {1: Stage.STAGING, 2: Stage.STAGING, 3: Stage.PRODUCTION}
    assert service.history("api")[-1].action is Action.PROMOTE
    assert deployment_events(models)[0] == "deployment.promote"
    moves = [
        (e.object_id, e.action, e.reason)
        for e in models.app.audit.list_events("models:/m", 100, None)
    ]
    assert ("models:/m/3", "model_version.stage", "canary is healthy") in moves
    assert ("models:/m/1", "model_version.stage", "canary is healthy") in moves
    assert models.verify_audit().ok


def test_promote_of_a_version_already_in_production_only_moves_the_route(
    service: DeploymentService, models: Client
) -> None:
    service.create("api", "models:/m/3", "ana")  # v3 is in staging
    service.canary("api", "models:/m/1", 10, "ana")  # v1 is in production already
    d = service.promote("api", "bob")
    assert (d.production, d.previous) == (V1, V3)
    assert stages(models) == {1: Stage.PRODUCTION, 2: Stage.STAGING, 3: Stage.STAGING}


def test_promote_without_a_canary_is_refused_naming_the_deployment(
    service: DeploymentService,
) -> None:
    service.create("api", "models:/m/1", "ana")
    with pytest.raises(InvalidState, match=r"'api' has no canary to promote"):
        service.promote("api", "bob")
    assert service.get("api").revision == 1


def test_a_gate_refusal_leaves_registry_and_deployment_unchanged(
    app: Loopml, service: DeploymentService, models: Client
) -> None:
    app.registry.gates = policy_from_toml(GATED, "loopml.toml")
    service.create("api", "models:/m/1", "ana")
    before = service.canary("api", "models:/m/2", 10, "ana")  # v2: rmse 41.2
    registry_before = stages(models)
    head = app.stores.audit.head()
    with pytest.raises(GatesFailed, match=r"rmse 41\.2 is above the maximum 40\.0"):
        service.promote("api", "bob")
    assert stages(models) == registry_before
    assert service.get("api") == before  # revision and routes
    assert len(service.history("api")) == 2
    assert app.stores.audit.head() == head  # nothing written anywhere


def test_forcing_past_a_gate_is_audited_and_promotes(
    app: Loopml, service: DeploymentService, models: Client
) -> None:
    app.registry.gates = policy_from_toml(GATED, "loopml.toml")
    service.create("api", "models:/m/1", "ana")
    service.canary("api", "models:/m/2", 10, "ana")
    d = service.promote("api", "bob", force_reason="hotfix: v1 returns garbage")
    assert (d.production, d.previous) == (V2, V1)
    assert stages(models)[2] is Stage.PRODUCTION
    [forced] = [
        e
        for e in app.audit.list_events("models:/m/2", 100, None)
        if e.action == "model_version.gates_forced"
    ]
    assert (forced.actor, forced.reason) == ("bob", "hotfix: v1 returns garbage")
    assert models.verify_audit().ok


def test_a_canary_the_registry_cannot_promote_leaves_the_deployment(
    service: DeploymentService, models: Client
) -> None:
    service.create("api", "models:/m/1", "ana")
    service.canary("api", "models:/m/2", 10, "ana")
    models.archive("m", 2)  # archived after it became the canary
    with pytest.raises(IllegalTransition, match="from archived to production"):
        service.promote("api", "bob")
    assert service.get("api").canary == V2 and service.get("api").revision == 2
    mv = models.register_model(_model(), "m", metrics={"rmse": 1.0})  # a candidate, v4
    service.canary("api", mv.uri, 10, "ana")
    with pytest.raises(IllegalTransition, match="staging first"):
        service.promote("api", "bob")
    assert service.get("api").production == V1


def test_a_canary_changed_during_the_promotion_is_not_promoted_past_the_gates(
    app: Loopml, service: DeploymentService, models: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    service.create("api", "models:/m/1", "ana")
    service.canary("api", "models:/m/3", 10, "ana")
    registry_transition = app.registry.transition

    def someone_else_swaps_the_canary(*args: Any, **kwargs: Any) -> Any:
        moved = registry_transition(*args, **kwargs)  # v3 passes the registry's checks...
        service.canary("api", "models:/m/2", 10, "eve")  # ...while v2 becomes the canary
        return moved

    monkeypatch.setattr(app.registry, "transition", someone_else_swaps_the_canary)
    with pytest.raises(ConcurrentModification, match="'api' was changed by someone else"):
        service.promote("api", "bob")
    d = service.get("api")
    assert (d.production, d.canary) == (V1, V2)  # v2 never went to production unchecked
    assert stages(models)[2] is Stage.STAGING


# --- rollback and retire -------------------------------------------------------------------


def test_rollback_serves_the_previous_version_at_once_without_touching_the_registry(
    service: DeploymentService, models: Client
) -> None:
    service.create("api", "models:/m/1", "ana")
    service.canary("api", "models:/m/3", 10, "ana")
    service.promote("api", "bob")
    registry_after_promote = stages(models)
    service.canary("api", "models:/m/2", 5, "ana")
    d = service.rollback("api", "carol", reason="v3 is broken")
    assert (d.production, d.previous, d.canary) == (V1, V3, None)
    live = service.live(d)
    assert (live.production, live.canary, live.notes) == (V1, None, ())
    assert stages(models) == registry_after_promote
    assert deployment_events(models)[0] == "deployment.rollback"
    assert service.history("api")[-1].reason == "v3 is broken"


def test_retire_stops_serving_keeps_history_and_refuses_later_changes(
    service: DeploymentService,
) -> None:
    service.create("api", "models:/m/1", "ana")
    service.canary("api", "models:/m/2", 10, "ana")
    d = service.retire("api", "ana", reason="replaced")
    assert (d.retired, d.canary, d.shadow) == (True, None, None)
    assert service.live(d).production is None
    assert [e.action for e in service.history("api")][-1] is Action.RETIRE
    with pytest.raises(InvalidState, match="'api' is retired"):
        service.canary("api", "models:/m/3", 10, "ana")
    with pytest.raises(InvalidState, match="'api' is retired"):
        service.promote("api", "ana")
    with pytest.raises(InvalidState, match="'api' is retired"):
        service.retire("api", "ana")
    # the name stays taken, and the message does not send one to retire it
    with pytest.raises(AlreadyExists, match="another name") as refused:
        service.create("api", "models:/m/1", "ana")
    assert "retire it" not in str(refused.value)
    assert [d.name for d in service.list_all()] == ["api"]


# --- what serves once versions are archived --------------------------------------------------


def promoted_with_canary(service: DeploymentService) -> None:
    """api: production v3, previous v1, canary v2 at 10%, shadow v1."""
    service.create("api", "models:/m/1", "ana")
    service.canary("api", "models:/m/3", 10, "ana")
    service.promote("api", "ana")
    service.canary("api", "models:/m/2", 10, "ana")
    service.shadow("api", "models:/m/1", "ana")


def test_live_serves_the_stored_routes_while_nothing_is_archived(
    service: DeploymentService,
) -> None:
    promoted_with_canary(service)
    live = service.live(service.get("api"))
    assert (live.production, live.canary, live.canary_share, live.shadow, live.notes) == (
        V3,
        V2,
        10.0,
        V1,
        (),
    )
    assert (live.deployment, live.revision) == ("api", 5)


def test_an_archived_canary_takes_no_traffic(service: DeploymentService, models: Client) -> None:
    promoted_with_canary(service)
    models.archive("m", 2)
    live = service.live(service.get("api"))
    assert (live.production, live.canary, live.canary_share, live.shadow) == (V3, None, 0.0, V1)
    assert live.notes == ("canary models:/m/2 is archived and serves nothing",)
    assert service.get("api").canary == V2  # the stored routes are not rewritten


def test_an_archived_shadow_gets_no_copy(service: DeploymentService, models: Client) -> None:
    promoted_with_canary(service)
    models.archive("m", 1)  # the shadow (and the previous production version)
    live = service.live(service.get("api"))
    assert (live.production, live.canary, live.shadow) == (V3, V2, None)
    assert live.notes == ("shadow models:/m/1 is archived and serves nothing",)


def test_an_archived_production_version_hands_over_to_the_previous_one(
    service: DeploymentService, models: Client
) -> None:
    promoted_with_canary(service)
    models.archive("m", 3)
    live = service.live(service.get("api"))
    assert (live.production, live.canary) == (V1, V2)
    assert live.notes == ("production models:/m/3 is archived and serves nothing",)


def test_with_production_and_previous_archived_nothing_serves(
    service: DeploymentService, models: Client
) -> None:
    promoted_with_canary(service)
    models.archive("m", 3)
    models.archive("m", 1)
    live = service.live(service.get("api"))
    assert (live.production, live.canary, live.canary_share, live.shadow) == (
        None,
        None,
        0.0,
        None,
    )
    assert live.notes == (
        "production models:/m/3 is archived and serves nothing",
        "previous production models:/m/1 is archived and serves nothing",
    )


def test_an_archived_production_without_a_previous_version_serves_nothing(
    service: DeploymentService, models: Client
) -> None:
    service.create("api", "models:/m/1", "ana")
    service.shadow("api", "models:/m/3", "ana")
    models.archive("m", 1)
    live = service.live(service.get("api"))
    assert (live.production, live.shadow) == (None, None)
    assert live.notes == ("production models:/m/1 is archived and serves nothing",)


# --- which version served when ------------------------------------------------------------


def test_serving_at_answers_which_versions_served_at_a_time(
    app: Loopml, service: DeploymentService
) -> None:
    clock = app.clock
    clock.ms = 10_000  # type: ignore[attr-defined]  # the fake clock ticks 1 ms per call
    service.create("api", "models:/m/1", "ana")
    clock.ms = 20_000  # type: ignore[attr-defined]
    service.canary("api", "models:/m/3", 10, "ana")
    clock.ms = 30_000  # type: ignore[attr-defined]
    service.promote("api", "ana")
    clock.ms = 40_000  # type: ignore[attr-defined]
    service.rollback("api", "ana")
    times = [e.time_ms for e in service.history("api")]
    assert times[:2] == [10_001, 20_001]
    assert 30_000 < times[2] < 30_100 and times[3] == 40_001

    def at(t: int) -> tuple[int, Target, Target | None]:
        entry = service.serving_at("api", t)
        return entry.revision, entry.state.production, entry.state.canary

    with pytest.raises(NotFound, match=r"'api' did not exist at 10000"):
        service.serving_at("api", 10_000)
    assert at(10_001) == (1, V1, None)
    assert at(20_000) == (1, V1, None)
    assert at(20_001) == (2, V1, V3)
    assert at(times[2] - 1) == (2, V1, V3)
    assert at(times[2]) == (3, V3, None)
    assert at(40_000) == (3, V3, None)
    assert at(40_001) == (4, V1, None)
    assert at(10**13) == (4, V1, None)
    with pytest.raises(NotFound, match="'nope' does not exist"):
        service.serving_at("nope", 40_001)
