"""The DeploymentStore contract, run against memory, SQLite and PostgreSQL.

A deployment is created once per name; every change is stored compare-and-set on its
revision, with one history entry and one audit event in the same transaction, and a
refused write leaves state, history and audit trail exactly as they were.
"""

from __future__ import annotations

import pytest

from loopml.domain.audit import verify_chain
from loopml.domain.deployments import Action, Deployment, Revision, Target, deployment_changed
from loopml.domain.errors import AlreadyExists, ConcurrentModification, NotFound
from loopml.ports import AuditLog, DeploymentStore

V1, V2, V3 = Target("m", 1), Target("m", 2), Target("other", 7)


def create(
    store: DeploymentStore, name: str = "api", at: int = 1_000, actor: str = "ana"
) -> Deployment:
    state = Deployment(name, V1, created_ms=at, updated_ms=at)
    store.create_deployment(
        Revision(name, 1, at, actor, Action.CREATE, state),
        deployment_changed(None, state, Action.CREATE, actor, None),
    )
    return state


def change(
    store: DeploymentStore,
    before: Deployment,
    after: Deployment,
    action: Action,
    actor: str = "bob",
    reason: str | None = None,
) -> Revision:
    entry = Revision(after.name, after.revision, after.updated_ms, actor, action, after, reason)
    store.update_deployment(entry, deployment_changed(before, after, action, actor, reason))
    return entry


def events(audit: AuditLog, name: str = "api") -> list[str]:
    return [e.action for e in audit.list_events(f"deployments:/{name}", 100, None)]


def test_a_created_deployment_reads_back_whole_with_its_history_and_audit_event(
    deployments: DeploymentStore, audit: AuditLog
) -> None:
    state = create(deployments)
    assert deployments.get_deployment("api") == state
    [entry] = deployments.deployment_history("api")
    assert (entry.deployment, entry.revision, entry.time_ms, entry.actor, entry.action) == (
        "api",
        1,
        1_000,
        "ana",
        Action.CREATE,
    )
    assert (entry.state, entry.reason) == (state, None)
    [event] = audit.list_events("deployments:/api", 10, None)
    assert (event.action, event.object_type, event.object_id, event.actor, event.time_ms) == (
        "deployment.create",
        "deployment",
        "deployments:/api",
        "ana",
        1_000,
    )
    assert event.before is None
    assert event.after is not None and event.after["production"] == "models:/m/1"


def test_a_taken_name_is_refused_and_nothing_is_written(
    deployments: DeploymentStore, audit: AuditLog
) -> None:
    first = create(deployments)
    head = audit.head()
    with pytest.raises(AlreadyExists, match=r"deployment 'api' already exists.*another name"):
        create(deployments, at=2_000, actor="eve")
    assert audit.head() == head
    assert deployments.get_deployment("api") == first
    assert [e.actor for e in deployments.deployment_history("api")] == ["ana"]


def test_every_field_survives_storage(deployments: DeploymentStore) -> None:
    state = create(deployments)
    full = state.with_canary(V2, 12.5, 2_000)
    change(deployments, state, full, Action.CANARY)
    shadowed = full.with_shadow(V3, 3_000)
    change(deployments, full, shadowed, Action.SHADOW, reason="compare with the other model")
    promoted = shadowed.promoted(4_000)
    change(deployments, shadowed, promoted, Action.PROMOTE)
    retired = promoted.retired_at(5_000)
    change(deployments, promoted, retired, Action.RETIRE)
    assert deployments.get_deployment("api") == retired
    stored = [e.state for e in deployments.deployment_history("api")]
    assert stored == [state, full, shadowed, promoted, retired]
    assert stored[1].canary_share == 12.5 and stored[2].shadow == V3
    assert stored[3].previous == V1 and stored[4].retired


def test_an_update_with_the_next_revision_is_stored_with_its_history_entry(
    deployments: DeploymentStore,
) -> None:
    state = create(deployments)
    after = state.with_canary(V2, 10, 2_000)
    entry = change(deployments, state, after, Action.CANARY, reason="try v2")
    assert deployments.get_deployment("api") == after
    history = deployments.deployment_history("api")
    assert [e.revision for e in history] == [1, 2]
    assert history[1] == entry
    assert (history[1].action, history[1].reason, history[1].actor) == (
        Action.CANARY,
        "try v2",
        "bob",
    )


def test_a_stale_revision_is_refused_and_writes_nothing(
    deployments: DeploymentStore, audit: AuditLog
) -> None:
    state = create(deployments)
    # two people read revision 1, then both change it
    mine = state.with_canary(V2, 10, 2_000)
    theirs = state.with_shadow(V3, 2_001)
    change(deployments, state, mine, Action.CANARY)
    head = audit.head()
    with pytest.raises(ConcurrentModification, match=r"'api' was changed by someone else.*show"):
        change(deployments, state, theirs, Action.SHADOW)
    assert audit.head() == head
    assert len(deployments.deployment_history("api")) == 2
    assert deployments.get_deployment("api") == mine
    assert events(audit) == ["deployment.canary", "deployment.create"]


def test_a_revision_from_the_future_is_refused_too(
    deployments: DeploymentStore, audit: AuditLog
) -> None:
    state = create(deployments)
    skipped = state.with_canary(V2, 10, 2_000).with_share(20, 3_000)  # revision 3 over 1
    head = audit.head()
    with pytest.raises(ConcurrentModification):
        change(deployments, state, skipped, Action.SHARE)
    assert audit.head() == head
    assert deployments.get_deployment("api") == state
    assert len(deployments.deployment_history("api")) == 1


def test_unknown_names_are_not_found_naming_the_deployment(
    deployments: DeploymentStore, audit: AuditLog
) -> None:
    with pytest.raises(NotFound, match=r"deployment 'nope' does not exist.*loopml deploy list"):
        deployments.get_deployment("nope")
    with pytest.raises(NotFound, match=r"'nope' does not exist"):
        deployments.deployment_history("nope")
    ghost = Deployment("nope", V1, 1_000, 1_000)
    with pytest.raises(NotFound, match=r"'nope' does not exist"):
        change(deployments, ghost, ghost.with_canary(V2, 10, 2_000), Action.CANARY)
    assert list(audit.iter_events()) == []
    assert deployments.list_deployments() == []


def test_listing_is_by_name_with_the_current_state(deployments: DeploymentStore) -> None:
    assert deployments.list_deployments() == []
    b = create(deployments, "b-api")
    a = create(deployments, "a-api")
    create(deployments, "c.api")
    moved = a.with_canary(V2, 5, 2_000)
    change(deployments, a, moved, Action.CANARY)
    listed = deployments.list_deployments()
    assert [d.name for d in listed] == ["a-api", "b-api", "c.api"]
    assert listed[0] == moved and listed[1] == b


def test_history_is_in_revision_order_and_per_deployment(deployments: DeploymentStore) -> None:
    a = create(deployments, "a")
    create(deployments, "b", at=1_500)
    states = [a]
    for i in range(12):  # past 10, so a text ordering of revisions would show
        before = states[-1]
        after = before.with_shadow(V2 if i % 2 == 0 else None, 2_000 + i)
        change(deployments, before, after, Action.SHADOW)
        states.append(after)
    history = deployments.deployment_history("a")
    assert [e.revision for e in history] == list(range(1, 14))
    assert [e.state for e in history] == states
    assert [e.time_ms for e in history] == [1_000, *range(2_000, 2_012)]
    assert [e.revision for e in deployments.deployment_history("b")] == [1]


def test_each_change_appends_exactly_one_audit_event_on_the_chain(
    deployments: DeploymentStore, audit: AuditLog
) -> None:
    state = create(deployments)
    create(deployments, "api-2")
    steps = [
        (Action.CANARY, lambda d: d.with_canary(V2, 10, d.updated_ms + 1)),
        (Action.SHARE, lambda d: d.with_share(50, d.updated_ms + 1)),
        (Action.SHADOW, lambda d: d.with_shadow(V3, d.updated_ms + 1)),
        (Action.PROMOTE, lambda d: d.promoted(d.updated_ms + 1)),
        (Action.ROLLBACK, lambda d: d.rolled_back(d.updated_ms + 1)),
        (Action.RETIRE, lambda d: d.retired_at(d.updated_ms + 1)),
    ]
    for action, apply in steps:
        count = len(list(audit.iter_events()))
        after = apply(state)
        change(deployments, state, after, action, actor="carol", reason=f"why {action}")
        [new] = list(audit.iter_events())[count:]
        assert (new.action, new.object_id, new.actor, new.reason, new.time_ms) == (
            f"deployment.{action.value}",
            "deployments:/api",
            "carol",
            f"why {action}",
            after.updated_ms,
        )
        assert new.before is not None and new.before["revision"] == state.revision
        assert new.after is not None and new.after["revision"] == after.revision
        state = after
    assert events(audit) == [f"deployment.{a.value}" for a, _ in reversed(steps)] + [
        "deployment.create"
    ]
    assert events(audit, "api-2") == ["deployment.create"]
    assert verify_chain(audit.iter_events(), audit.head()).ok
