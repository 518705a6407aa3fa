"""The LoopStore contract, run against memory, SQLite and PostgreSQL.

A loop run is created once and changed compare-and-set on its revision, each write with
its audit event in the same transaction; a refused write leaves the run and the audit
trail as they were, and of two agents advancing one run at once only one succeeds.
Claiming a job slot succeeds exactly once per ``(job, due_ms)``, even for two stores
racing on the same database; a slot is finished once.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import update

from loopml.adapters.memory.monitoring import MemoryLoopStore
from loopml.adapters.memory.stores import MemoryDatabase
from loopml.adapters.sql import schema as t
from loopml.adapters.sql.database import SqlDatabase
from loopml.adapters.sql.loops import SqlLoopStore
from loopml.domain.audit import AuditRecord, verify_chain
from loopml.domain.errors import (
    AlreadyExists,
    ConcurrentModification,
    InvalidInput,
    InvalidState,
    NotFound,
    StorageError,
)
from loopml.domain.loop import JobRun, JobState, LoopRun, LoopState
from loopml.ports import AuditLog
from loopml.ports.monitoring import LoopStore

if TYPE_CHECKING:
    from tests.contract.conftest import Stores


def new_run(loop_id: str = "0001-ab", deployment: str = "api", at: int = 1_000) -> LoopRun:
    return LoopRun(loop_id, deployment, "alert 7 (drift)", at, champion=3, model="house")


def audit_of(run: LoopRun, actor: str = "agent") -> AuditRecord:
    return AuditRecord(
        action=f"loop.{run.state.value}",
        object_type="loop",
        object_id=f"{run.deployment}/{run.id}",
        actor=actor,
        after={"state": run.state.value, "revision": run.revision},
    )


def create(store: LoopStore, run: LoopRun) -> LoopRun:
    store.create_loop(run, audit_of(run))
    return run


def advance(
    store: LoopStore, run: LoopRun, state: LoopState, at: int, **changes: object
) -> LoopRun:
    nxt = run.advance(state, at, f"now {state.value}", **changes)
    store.update_loop(nxt, audit_of(nxt))
    return nxt


def other_store(twin: MemoryDatabase | SqlDatabase) -> LoopStore:
    return MemoryLoopStore(twin) if isinstance(twin, MemoryDatabase) else SqlLoopStore(twin)


def test_a_created_run_reads_back_equal_with_its_audit_event(
    loops: LoopStore, audit: AuditLog
) -> None:
    run = create(loops, new_run())
    assert loops.get_loop(run.id) == run
    [event] = list(audit.iter_events())
    assert (event.action, event.object_id, event.time_ms) == ("loop.started", "api/0001-ab", 1_000)


def test_every_field_survives_the_whole_way_through_the_states(loops: LoopStore) -> None:
    run = create(loops, new_run())
    run = advance(loops, run, LoopState.TRAINED, 2_000, candidate=4, facts={"rows": 1200})
    run = advance(loops, run, LoopState.EVALUATED, 3_000, facts={"scores": {"rmse": [1.5, 1.7]}})
    run = advance(loops, run, LoopState.GATED, 4_000)
    run = advance(
        loops, run, LoopState.CANARY, 5_000, canary_since_ms=5_000, watch_until_ms=605_000
    )
    run = advance(loops, run, LoopState.PROMOTED, 606_000)
    back = loops.get_loop(run.id)
    assert back == run
    assert back.revision == 6 and back.finished and back.candidate == 4
    assert back.facts == {"rows": 1200, "scores": {"rmse": [1.5, 1.7]}}
    assert [s.state for s in back.steps] == [
        LoopState.STARTED,
        LoopState.TRAINED,
        LoopState.EVALUATED,
        LoopState.GATED,
        LoopState.CANARY,
        LoopState.PROMOTED,
    ]


def test_a_taken_id_is_refused_and_nothing_is_written(loops: LoopStore, audit: AuditLog) -> None:
    first = create(loops, new_run())
    head = audit.head()
    with pytest.raises(AlreadyExists, match=r"loop run '0001-ab' already exists"):
        create(loops, new_run(deployment="web", at=9_000))
    assert audit.head() == head
    assert loops.get_loop("0001-ab") == first


def test_a_stale_revision_is_refused_and_writes_nothing(loops: LoopStore, audit: AuditLog) -> None:
    run = create(loops, new_run())
    mine = advance(loops, run, LoopState.TRAINED, 2_000, candidate=4)
    head = audit.head()
    theirs = run.advance(LoopState.FAILED, 2_001, "crashed")  # made from revision 1 too
    with pytest.raises(
        ConcurrentModification, match=r"'0001-ab' of 'api' is at revision 2.*from revision 1"
    ):
        loops.update_loop(theirs, audit_of(theirs))
    assert audit.head() == head
    assert loops.get_loop(run.id) == mine


def test_a_revision_from_the_future_is_refused_too(loops: LoopStore, audit: AuditLog) -> None:
    run = create(loops, new_run())
    skipped = run.advance(LoopState.TRAINED, 2_000, "t").advance(LoopState.EVALUATED, 3_000, "e")
    head = audit.head()
    with pytest.raises(ConcurrentModification, match=r"at revision 1"):
        loops.update_loop(skipped, audit_of(skipped))
    assert audit.head() == head
    assert loops.get_loop(run.id) == run


def test_unknown_runs_are_not_found_and_nothing_is_written(
    loops: LoopStore, audit: AuditLog
) -> None:
    with pytest.raises(NotFound, match=r"loop run 'ghost' does not exist"):
        loops.get_loop("ghost")
    ghost = new_run("ghost").advance(LoopState.TRAINED, 2_000, "t")
    with pytest.raises(NotFound, match=r"loop run 'ghost' does not exist"):
        loops.update_loop(ghost, audit_of(ghost))
    assert list(audit.iter_events()) == []
    assert loops.list_loops(None) == []


def test_two_agents_advancing_one_run_at_once_one_wins(
    stores: Stores, twin_database: MemoryDatabase | SqlDatabase, audit: AuditLog
) -> None:
    other = other_store(twin_database)
    barrier = threading.Barrier(2)

    def attempt(store: LoopStore, run: LoopRun, state: LoopState) -> str:
        nxt = run.advance(state, run.updated_ms + 1, state.value)
        barrier.wait(timeout=10)
        try:
            store.update_loop(nxt, audit_of(nxt))
        except ConcurrentModification:
            return "refused"
        return state.value

    runs = [create(stores.loops, new_run(f"run-{i}", at=1_000 + i)) for i in range(6)]
    with ThreadPoolExecutor(2) as pool:
        for run in runs:
            results = list(
                pool.map(
                    attempt,
                    [stores.loops, other],
                    [run, run],
                    [LoopState.TRAINED, LoopState.FAILED],
                )
            )
            assert results.count("refused") == 1, results
            [won] = [r for r in results if r != "refused"]
            stored = stores.loops.get_loop(run.id)
            assert (stored.state.value, stored.revision) == (won, 2)
    assert len(list(audit.iter_events())) == 12  # six creations, six winning moves
    assert verify_chain(audit.iter_events(), audit.head()).ok


def test_each_change_appends_one_audit_event_and_the_chain_verifies(
    loops: LoopStore, audit: AuditLog
) -> None:
    run = create(loops, new_run())
    create(loops, new_run("other", deployment="web"))
    for state, at in ((LoopState.TRAINED, 2_000), (LoopState.EVALUATED, 3_000)):
        count = len(list(audit.iter_events()))
        run = advance(loops, run, state, at)
        [new] = list(audit.iter_events())[count:]
        assert (new.action, new.object_id, new.time_ms) == (f"loop.{state}", "api/0001-ab", at)
        assert new.after == {"state": state.value, "revision": run.revision}
    run = advance(loops, run, LoopState.REJECTED, 4_000)
    assert [e.action for e in audit.iter_events()] == [
        "loop.started",
        "loop.started",
        "loop.trained",
        "loop.evaluated",
        "loop.rejected",
    ]
    assert verify_chain(audit.iter_events(), audit.head()).ok


def test_listing_is_newest_first_per_deployment_with_a_limit(loops: LoopStore) -> None:
    a = [create(loops, new_run(f"a{i:02d}", at=1_000 * (12 - i))) for i in range(12)]
    w = create(loops, new_run("w", deployment="web", at=500))
    tie_1 = create(loops, new_run("tie-1", at=50_000))
    tie_2 = create(loops, new_run("tie-2", at=50_000))
    newest_first = sorted(a, key=lambda r: r.created_ms, reverse=True)
    assert loops.list_loops("api") == [tie_2, tie_1, *newest_first]  # ties: id, descending
    assert loops.list_loops("api", limit=3) == [tie_2, tie_1, newest_first[0]]
    assert loops.list_loops("web") == [w]
    assert loops.list_loops(None)[-1] == w
    assert len(loops.list_loops(None, limit=100)) == 15
    moved = advance(loops, a[-1], LoopState.TRAINED, 99_000)  # the oldest run changes last
    assert loops.list_loops("api")[-1] == moved  # ordered by creation, not by change
    with pytest.raises(InvalidInput, match=r"limit must be a positive integer, got 0"):
        loops.list_loops(None, limit=0)


def test_facts_json_cannot_hold_are_refused_and_nothing_is_written(
    loops: LoopStore, audit: AuditLog
) -> None:
    bad = LoopRun("x", "api", "manual", 1_000, facts={"when": {1, 2}})
    with pytest.raises(InvalidInput, match=r"loop run 'x' must be plain JSON data"):
        loops.create_loop(bad, audit_of(bad))
    with pytest.raises(InvalidInput, match=r"loop run id must be .* at most 64 characters"):
        loops.create_loop(new_run("x" * 65), audit_of(new_run()))
    assert loops.list_loops(None) == []
    assert list(audit.iter_events()) == []


def test_a_damaged_run_is_a_storage_error_naming_it(loops: LoopStore, stores: Stores) -> None:
    create(loops, new_run())
    for text in ('{"id": "0001-ab", "state": ', '{"id": "0001-ab", "state": "lost"}'):
        db = stores.database
        if isinstance(db, MemoryDatabase):
            db.loops["0001-ab"]["data"] = text
        else:
            with db.write() as conn:
                conn.execute(update(t.loop_runs).values(data=text))
        with pytest.raises(StorageError, match=r"loop run '0001-ab' cannot be read.*damaged"):
            loops.get_loop("0001-ab")
        with pytest.raises(StorageError, match=r"loop run '0001-ab' cannot be read"):
            loops.list_loops("api")


# the job ledger ---------------------------------------------------------------------------


def test_a_slot_is_claimed_once_and_remembered(loops: LoopStore) -> None:
    assert loops.last_job("monitor:api") is None
    assert loops.claim_job("monitor:api", 60_000, 60_010) is True
    assert loops.claim_job("monitor:api", 60_000, 60_500) is False  # e.g. after a restart
    assert loops.last_job("monitor:api") == JobRun("monitor:api", 60_000, 60_010)
    assert loops.claim_job("review:api", 60_000, 60_020) is True  # another job, same time
    assert loops.last_job("nobody") is None


def test_the_last_job_is_the_slot_due_last_whenever_it_was_claimed(loops: LoopStore) -> None:
    for due in (3 * 10**12, 10**12, 2 * 10**12):  # past 32 bits, claimed out of order
        assert loops.claim_job("j", due, due + 5)
    last = loops.last_job("j")
    assert last is not None and (last.due_ms, last.started_ms) == (3 * 10**12, 3 * 10**12 + 5)


def test_a_finished_slot_keeps_its_outcome(loops: LoopStore) -> None:
    loops.claim_job("j", 1_000, 1_001)
    loops.finish_job("j", 1_000, JobState.FAILED, 1_500, "InvalidInput: no labels")
    assert loops.last_job("j") == JobRun(
        "j", 1_000, 1_001, JobState.FAILED, 1_500, "InvalidInput: no labels"
    )
    loops.claim_job("j", 2_000, 2_001)
    loops.finish_job("j", 2_000, JobState.DONE, 2_100, "")
    assert loops.last_job("j") == JobRun("j", 2_000, 2_001, JobState.DONE, 2_100, "")


def test_finishing_is_refused_when_it_makes_no_sense(loops: LoopStore) -> None:
    with pytest.raises(NotFound, match=r"job 'j' has no claimed slot due at 1000"):
        loops.finish_job("j", 1_000, JobState.DONE, 1_500, "")
    loops.claim_job("j", 1_000, 1_001)
    with pytest.raises(InvalidInput, match=r"needs the final state .* got running"):
        loops.finish_job("j", 1_000, JobState.RUNNING, 1_500, "")
    loops.finish_job("j", 1_000, JobState.DONE, 1_500, "ok")
    with pytest.raises(InvalidState, match=r"slot 1000 finished already \(done at 1500: 'ok'\)"):
        loops.finish_job("j", 1_000, JobState.FAILED, 1_600, "again")
    assert loops.last_job("j") == JobRun("j", 1_000, 1_001, JobState.DONE, 1_500, "ok")


def test_two_stores_racing_for_the_same_slots_each_win_exactly_once(
    stores: Stores, twin_database: MemoryDatabase | SqlDatabase
) -> None:
    other = other_store(twin_database)
    barrier = threading.Barrier(2)

    def claim(store: LoopStore, due_ms: int) -> bool:
        barrier.wait(timeout=10)
        return store.claim_job("monitor:api", due_ms, due_ms + 1)

    with ThreadPoolExecutor(2) as pool:
        for due in range(0, 20 * 60_000, 60_000):
            results = list(pool.map(claim, [stores.loops, other], [due, due]))
            assert sorted(results) == [False, True], (due, results)
    last = other.last_job("monitor:api")
    assert last is not None and last.due_ms == 19 * 60_000
