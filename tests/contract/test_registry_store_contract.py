"""The RegistryStore contract, run against every backend (see ``conftest.py``).

Models and versions, compare-and-set stage moves, the exclusive-stage check and aliases.
Every change is checked together with the audit trail it must (or must not) leave: a
refused change leaves neither a state change nor an audit event behind.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import blake3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopml.domain.artifacts import ArtifactRef, Digest
from loopml.domain.audit import AuditRecord, verify_chain
from loopml.domain.errors import AlreadyExists, ConcurrentModification, InvalidInput, NotFound
from loopml.domain.lifecycle import Stage
from loopml.domain.registry import ColumnSpec, Model, ModelVersion, Signature
from loopml.domain.tracking import CodeVersion, DatasetRef
from loopml.ports import NewModelVersion, NewRun, StageChange

if TYPE_CHECKING:
    from tests.contract.conftest import FakeClock

    from loopml.domain.audit import AuditEvent
    from loopml.ports import AuditLog, RegistryStore, TrackingStore

C, S, P, A = Stage.CANDIDATE, Stage.STAGING, Stage.PRODUCTION, Stage.ARCHIVED


def artifact(data: bytes = b"weights") -> ArtifactRef:
    return ArtifactRef(
        "model/model.skops", Digest("blake3", blake3.blake3(data).hexdigest()), len(data)
    )


def new_version(name: str = "m", created_ms: int = 1000, **kw: Any) -> NewModelVersion:
    return NewModelVersion(
        model=name,
        flavor=kw.pop("flavor", "sklearn"),
        artifact=kw.pop("artifact", artifact()),
        created_ms=created_ms,
        **kw,
    )


def events(audit: AuditLog) -> list[AuditEvent]:
    return list(audit.iter_events())


def stage_records(name: str, changes: list[StageChange]) -> list[AuditRecord]:
    return [
        AuditRecord(
            "model_version.stage",
            "model_version",
            f"models:/{name}/{c.version}",
            "ana",
            {"stage": c.expected.value},
            {"stage": c.target.value},
        )
        for c in changes
    ]


def move(
    registry: RegistryStore,
    name: str,
    *changes: tuple[int, Stage, Stage],
    exclusive: Stage | None = None,
) -> None:
    moves = [StageChange(v, e, t) for v, e, t in changes]
    registry.set_stages(name, moves, exclusive, stage_records(name, moves))


def stages(registry: RegistryStore, name: str) -> dict[int, Stage]:
    return {v.version: v.stage for v in registry.list_versions(name, None, 1000, None)}


def chain_ok(audit: AuditLog) -> bool:
    return verify_chain(audit.iter_events(), audit.head()).ok


# models ------------------------------------------------------------------------------------
def test_create_model_and_read_it_back(registry: RegistryStore, audit: AuditLog) -> None:
    created = registry.create_model("bikes", "demand forecast", 5000, "ana")
    assert created == Model("bikes", 5000, "demand forecast")
    assert registry.get_model("bikes") == created
    assert registry.find_model("bikes") == created
    assert registry.find_model("cars") is None
    with pytest.raises(NotFound, match="'cars'"):
        registry.get_model("cars")
    [event] = events(audit)
    assert (event.action, event.object_type, event.object_id, event.actor, event.time_ms) == (
        "model.create",
        "model",
        "models:/bikes",
        "ana",
        5000,
    )
    assert event.before is None
    assert event.after == {"name": "bikes", "description": "demand forecast"}


def test_create_model_twice_raises_and_audits_once(
    registry: RegistryStore, audit: AuditLog
) -> None:
    registry.create_model("bikes", "first", 1, "ana")
    with pytest.raises(AlreadyExists, match="'bikes'"):
        registry.create_model("bikes", "second", 2, "bob")
    assert registry.get_model("bikes").description == "first"
    assert [e.action for e in events(audit)] == ["model.create"]
    assert chain_ok(audit)


def test_list_models_pages_in_name_order(registry: RegistryStore) -> None:
    names = ["m3", "m1", "M2", "m5", "m4"]
    for name in names:
        registry.create_model(name, "", 0, "ana")
    registry.create_version(new_version("m1"), "ana")
    first = registry.list_models(2, None)
    second = registry.list_models(2, first.next_page_token)
    third = registry.list_models(2, second.next_page_token)
    assert [m.name for page in (first, second, third) for m in page] == sorted(names)
    assert third.next_page_token is None
    assert next(m for m in first if m.name == "m1").latest_version == 1
    with pytest.raises(InvalidInput):
        registry.list_versions("m1", None, 2, first.next_page_token)


# versions ----------------------------------------------------------------------------------
def test_create_version_creates_the_model_and_audits_both(
    registry: RegistryStore, audit: AuditLog
) -> None:
    mv = registry.create_version(new_version("bikes", 7000), "ana")
    assert (mv.model, mv.version, mv.stage, mv.created_ms, mv.aliases) == ("bikes", 1, C, 7000, ())
    assert registry.get_model("bikes") == Model("bikes", 7000, "", 1)
    model_event, version_event = events(audit)
    assert (model_event.action, model_event.object_id, model_event.time_ms) == (
        "model.create",
        "models:/bikes",
        7000,
    )
    assert model_event.after == {"name": "bikes", "description": ""}
    assert (version_event.action, version_event.object_type, version_event.object_id) == (
        "model_version.create",
        "model_version",
        "models:/bikes/1",
    )
    assert (version_event.actor, version_event.time_ms, version_event.before) == ("ana", 7000, None)
    assert version_event.after == {
        "flavor": "sklearn",
        "artifact": str(artifact().digest),
        "stage": "candidate",
        "run_id": None,
    }
    assert chain_ok(audit)


def test_versions_are_numbered_from_one_without_gaps(
    registry: RegistryStore, audit: AuditLog
) -> None:
    registry.create_model("bikes", "kept", 1, "ana")
    numbers = [
        registry.create_version(new_version("bikes", 10 + i), "ana").version for i in range(5)
    ]
    other = registry.create_version(new_version("cars"), "ana").version
    assert numbers == [1, 2, 3, 4, 5]
    assert other == 1
    assert registry.get_model("bikes") == Model("bikes", 1, "kept", 5)
    assert [e.action for e in events(audit)].count("model.create") == 2


def test_version_content_round_trips(registry: RegistryStore, tracking: TrackingStore) -> None:
    run_id = uuid.uuid4().hex
    tracking.create_run(NewRun(run_id, "exp", "run", 1))
    signature = Signature(
        (ColumnSpec("hour", "integer"), ColumnSpec("x", "tensor", True, (-1, 3))),
        (ColumnSpec("count", "double"),),
    )
    new = new_version(
        "bikes",
        1234,
        flavor="xgboost",
        artifact=artifact(b"xgb"),
        signature=signature,
        metrics={"rmse": 0.25, "r2": 0.9},
        run_id=run_id,
        inputs=(DatasetRef("rides", 3, "blake3:" + "a" * 64), DatasetRef("weather", 1)),
        code=CodeVersion("abc", None, False),
        description="first try",
        flavor_info={"xgboost": "2.1.0", "python": "3.11"},
    )
    mv = registry.create_version(new, "ana")
    expected = ModelVersion(
        model="bikes",
        version=1,
        flavor="xgboost",
        artifact=artifact(b"xgb"),
        stage=C,
        created_ms=1234,
        signature=signature,
        metrics={"rmse": 0.25, "r2": 0.9},
        run_id=run_id,
        inputs=tuple(new.inputs),
        code=new.code,
        description="first try",
        flavor_info={"xgboost": "2.1.0", "python": "3.11"},
    )
    assert mv == expected
    assert registry.get_version("bikes", 1) == expected


def test_create_version_for_an_unknown_run_raises_not_found(
    registry: RegistryStore, audit: AuditLog
) -> None:
    with pytest.raises(NotFound, match="'f00d'"):
        registry.create_version(new_version("bikes", run_id="f00d"), "ana")
    assert registry.find_model("bikes") is None
    assert events(audit) == []


def test_get_version_not_found(registry: RegistryStore) -> None:
    registry.create_version(new_version("bikes"), "ana")
    with pytest.raises(NotFound, match="'bikes' has no version 2"):
        registry.get_version("bikes", 2)
    with pytest.raises(NotFound, match="'cars'"):
        registry.get_version("cars", 1)
    with pytest.raises(NotFound, match="'cars'"):
        registry.list_versions("cars", None, 10, None)


def test_list_versions_newest_first_with_stage_filter_and_paging(registry: RegistryStore) -> None:
    for _ in range(7):
        registry.create_version(new_version("bikes"), "ana")
    move(registry, "bikes", (2, C, S), (5, C, S), (6, C, S), (6, S, P))
    first = registry.list_versions("bikes", None, 3, None)
    second = registry.list_versions("bikes", None, 3, first.next_page_token)
    third = registry.list_versions("bikes", None, 3, second.next_page_token)
    assert [v.version for p in (first, second, third) for v in p] == [7, 6, 5, 4, 3, 2, 1]
    assert third.next_page_token is None
    staging = registry.list_versions("bikes", S, 1, None)
    assert [v.version for v in staging] == [5]
    rest = registry.list_versions("bikes", S, 1, staging.next_page_token)
    assert [v.version for v in rest] == [2]
    assert rest.next_page_token is None
    assert [v.version for v in registry.list_versions("bikes", P, 10, None)] == [6]
    assert list(registry.list_versions("bikes", A, 10, None)) == []
    with pytest.raises(InvalidInput, match="different query"):
        registry.list_versions("bikes", C, 1, staging.next_page_token)


# stages ------------------------------------------------------------------------------------
def test_set_stages_moves_and_audits_at_clock_time(
    registry: RegistryStore, audit: AuditLog, clock: FakeClock
) -> None:
    registry.create_version(new_version("bikes"), "ana")
    registry.create_version(new_version("bikes"), "ana")
    clock.advance(500)
    move(registry, "bikes", (1, C, S), (2, C, A))
    assert stages(registry, "bikes") == {1: S, 2: A}
    stage_events = events(audit)[-2:]
    assert [(e.action, e.object_id, e.before, e.after, e.time_ms) for e in stage_events] == [
        (
            "model_version.stage",
            "models:/bikes/1",
            {"stage": "candidate"},
            {"stage": "staging"},
            clock.now_ms(),
        ),
        (
            "model_version.stage",
            "models:/bikes/2",
            {"stage": "candidate"},
            {"stage": "archived"},
            clock.now_ms(),
        ),
    ]
    assert chain_ok(audit)


def test_set_stages_applies_changes_in_order(registry: RegistryStore) -> None:
    registry.create_version(new_version("bikes"), "ana")
    move(registry, "bikes", (1, C, S), (1, S, P), exclusive=P)
    assert stages(registry, "bikes") == {1: P}


@pytest.mark.parametrize(
    "changes",
    [
        [(1, C, S), (2, S, P)],  # the second change expects a stage version 2 is not in
        [(1, C, S), (1, C, A)],  # the first change already moved version 1
        [(1, C, S), (9, C, S)],  # version 9 does not exist
    ],
)
def test_compare_and_set_failure_changes_nothing(
    registry: RegistryStore, audit: AuditLog, changes: list[tuple[int, Stage, Stage]]
) -> None:
    registry.create_version(new_version("bikes"), "ana")
    registry.create_version(new_version("bikes"), "ana")
    head = audit.head()
    with pytest.raises(ConcurrentModification, match="no longer in"):
        move(registry, "bikes", *changes)
    assert stages(registry, "bikes") == {1: C, 2: C}
    assert audit.head() == head
    assert chain_ok(audit)


def test_exclusive_stage_refuses_a_second_version(registry: RegistryStore, audit: AuditLog) -> None:
    for _ in range(2):
        registry.create_version(new_version("bikes"), "ana")
    move(registry, "bikes", (1, C, S), (1, S, P), (2, C, S), exclusive=P)
    head = audit.head()
    with pytest.raises(ConcurrentModification, match="would have 2 versions in production"):
        move(registry, "bikes", (2, S, P), exclusive=P)
    assert stages(registry, "bikes") == {1: P, 2: S}
    assert audit.head() == head
    move(registry, "bikes", (2, S, P), (1, P, A), exclusive=P)  # swap in one step
    assert stages(registry, "bikes") == {1: A, 2: P}


def test_without_exclusive_two_versions_may_share_a_stage(registry: RegistryStore) -> None:
    for _ in range(2):
        registry.create_version(new_version("bikes"), "ana")
    move(registry, "bikes", (1, C, S), (1, S, P), (2, C, S), (2, S, P))
    assert stages(registry, "bikes") == {1: P, 2: P}


def test_set_stages_on_unknown_model_raises_not_found(
    registry: RegistryStore, audit: AuditLog
) -> None:
    with pytest.raises(NotFound, match="'ghost'"):
        move(registry, "ghost", (1, C, S))
    assert audit.head() is None


stage_moves = st.lists(
    st.tuples(st.integers(1, 3), st.sampled_from(list(Stage)), st.booleans()),
    min_size=1,
    max_size=12,
)


@settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(moves=stage_moves)
def test_random_stage_moves_keep_one_production_version(
    registry: RegistryStore, audit: AuditLog, moves: list[tuple[int, Stage, bool]]
) -> None:
    name = f"m-{uuid.uuid4().hex[:8]}"
    for _ in range(3):
        registry.create_version(new_version(name), "ana")
    truth = {1: C, 2: C, 3: C}
    for version, target, stale in moves:
        expected = C if stale else truth[version]  # a stale caller believes it is a candidate
        others_in_production = any(s is P for v, s in truth.items() if v != version)
        should_apply = expected is truth[version] and not (target is P and others_in_production)
        seq_before = audit.head()[0]  # type: ignore[index]  # versions were created: not None
        try:
            move(registry, name, (version, expected, target), exclusive=P)
        except ConcurrentModification:
            assert not should_apply
            assert audit.head()[0] == seq_before  # type: ignore[index]
        else:
            assert should_apply
            truth[version] = target
            assert audit.head()[0] == seq_before + 1  # type: ignore[index]
        assert stages(registry, name) == truth
        assert sum(1 for s in truth.values() if s is P) <= 1
    assert chain_ok(audit)


# aliases -----------------------------------------------------------------------------------
def alias_record(name: str, alias: str, before: int | None, after: int | None) -> AuditRecord:
    return AuditRecord(
        "alias.set" if after is not None else "alias.delete",
        "alias",
        f"models:/{name}@{alias}",
        "ana",
        None if before is None else {"version": before},
        None if after is None else {"version": after},
    )


def test_aliases_set_move_and_delete_with_audit(
    registry: RegistryStore, audit: AuditLog, clock: FakeClock
) -> None:
    for _ in range(2):
        registry.create_version(new_version("bikes"), "ana")
    registry.set_alias("bikes", "champion", 1, alias_record("bikes", "champion", None, 1))
    registry.set_alias("bikes", "latest", 1, alias_record("bikes", "latest", None, 1))
    assert registry.get_model("bikes").aliases == {"champion": 1, "latest": 1}
    assert registry.get_version("bikes", 1).aliases == ("champion", "latest")

    clock.advance(10)
    registry.set_alias("bikes", "champion", 2, alias_record("bikes", "champion", 1, 2))
    assert registry.get_model("bikes").aliases == {"champion": 2, "latest": 1}
    assert registry.get_version("bikes", 1).aliases == ("latest",)
    assert [v.aliases for v in registry.list_versions("bikes", None, 10, None)] == [
        ("champion",),
        ("latest",),
    ]

    registry.delete_alias("bikes", "latest", alias_record("bikes", "latest", 1, None))
    assert registry.get_model("bikes").aliases == {"champion": 2}
    assert registry.get_version("bikes", 1).aliases == ()

    alias_events = [e for e in events(audit) if e.object_type == "alias"]
    assert [(e.action, e.object_id, e.before, e.after) for e in alias_events] == [
        ("alias.set", "models:/bikes@champion", None, {"version": 1}),
        ("alias.set", "models:/bikes@latest", None, {"version": 1}),
        ("alias.set", "models:/bikes@champion", {"version": 1}, {"version": 2}),
        ("alias.delete", "models:/bikes@latest", {"version": 1}, None),
    ]
    assert alias_events[2].time_ms == clock.now_ms()
    assert chain_ok(audit)


def test_alias_errors_change_nothing(registry: RegistryStore, audit: AuditLog) -> None:
    registry.create_version(new_version("bikes"), "ana")
    head = audit.head()
    with pytest.raises(NotFound, match="'ghost'"):
        registry.set_alias("ghost", "champion", 1, alias_record("ghost", "champion", None, 1))
    with pytest.raises(NotFound, match="'ghost'"):
        registry.delete_alias("ghost", "champion", alias_record("ghost", "champion", 1, None))
    with pytest.raises(NotFound, match="'champion'"):
        registry.delete_alias("bikes", "champion", alias_record("bikes", "champion", 1, None))
    assert audit.head() == head
    assert registry.get_model("bikes").aliases == {}


def test_referenced_digests_name_every_version_artifact(registry: RegistryStore) -> None:
    registry.create_version(new_version("a", artifact=artifact(b"one")), "ana")
    registry.create_version(new_version("b", artifact=artifact(b"two")), "ana")
    assert registry.referenced_digests() == {
        str(artifact(b"one").digest),
        str(artifact(b"two").digest),
    }
