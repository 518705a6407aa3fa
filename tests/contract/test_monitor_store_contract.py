"""The MonitorStore contract, run against memory, SQLite and PostgreSQL.

A window is stored once per ``(deployment, window_key)``: storing it again is a no-op that
says so, even from two stores racing. Listing gives the newest windows oldest first.
Reports come back equal, infinite scores included; references are replaced whole; a
damaged row is reported as a StorageError naming it, never as a stray JSON error.
"""

from __future__ import annotations

import math
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select, update

from loopml.adapters.memory.monitoring import MemoryMonitorStore
from loopml.adapters.memory.stores import MemoryDatabase
from loopml.adapters.sql import schema as t
from loopml.adapters.sql.database import SqlDatabase
from loopml.adapters.sql.monitoring import SqlMonitorStore
from loopml.domain.drift import DriftMethod, FeatureDrift
from loopml.domain.errors import InvalidInput, NotFound, StorageError
from loopml.domain.monitoring import WindowReport
from loopml.ports.monitoring import MonitorStore

if TYPE_CHECKING:
    from tests.contract.conftest import FakeClock, Stores


def drift(column: str, score: float, threshold: float = 0.2, **extra: object) -> FeatureDrift:
    return FeatureDrift(
        column=column,
        kind="numeric",
        rows=100,
        method=DriftMethod.WASSERSTEIN,
        score=score,
        threshold=threshold,
        drifted=score >= threshold,
        **extra,  # type: ignore[arg-type]
    )


def window(
    key: str = "rows:0-99", deployment: str = "api", created_ms: int = 1_000, rows: int = 100
) -> WindowReport:
    return WindowReport(
        deployment, key, created_ms - 500, created_ms - 1, rows, created_ms=created_ms
    )


def full_window() -> WindowReport:
    return WindowReport(
        deployment="api",
        window_key="time:1000-61000",
        start_ms=1_000,
        end_ms=61_000,
        rows=250,
        model="house",
        version=3,
        reference="houses@2",
        features=(
            drift("size", 0.05, p_value=0.4, measures={"psi": 0.01}, detail="mean 3 -> 3.1"),
            drift("flat", math.inf, measures={"wasserstein": math.inf, "psi": 0.0}),
        ),
        outputs=(drift("price", 0.3, measures={"psi": 0.42}),),
        segments={"north": (drift("size", 0.5),), "south": ()},
        segment_by="region",
        performance={"rmse": 1.25, "mae": 0.5},
        labelled_rows=40,
        latency_p99_ms=12.5,
        log_dropped=3,
        created_ms=62_000,
        note="",
    )


def damage(stores: Stores, deployment: str, key: str, text: str) -> None:
    db = stores.database
    if isinstance(db, MemoryDatabase):
        db.windows[deployment, key]["report"] = text
        return
    w = t.monitor_windows.c
    with db.write() as conn:
        conn.execute(
            update(t.monitor_windows)
            .where(w.deployment == deployment, w.window_key == key)
            .values(report=text)
        )


def stored_score(stores: Stores, deployment: str, key: str) -> float | None:
    db = stores.database
    if isinstance(db, MemoryDatabase):
        value: float | None = db.windows[deployment, key]["score"]
        return value
    w = t.monitor_windows.c
    with db.read() as conn:
        return conn.execute(
            select(w.score).where(w.deployment == deployment, w.window_key == key)
        ).scalar()


def test_a_report_reads_back_equal_in_every_field(monitors: MonitorStore) -> None:
    report = full_window()
    assert monitors.add_window(report) is True
    [back] = monitors.list_windows("api")
    assert back == report
    assert back.score == math.inf and back.drifted == ("flat", "price")
    assert back.segments["north"][0].score == 0.5 and back.segments["south"] == ()
    assert back.observations() == report.observations()


def test_the_score_column_holds_infinity_as_the_largest_float(
    monitors: MonitorStore, stores: Stores
) -> None:
    monitors.add_window(full_window())
    monitors.add_window(window("w-calm"))
    assert stored_score(stores, "api", "time:1000-61000") == sys.float_info.max
    assert stored_score(stores, "api", "w-calm") == 0.0


def test_a_window_is_stored_once_and_the_second_add_says_so(monitors: MonitorStore) -> None:
    first = window("rows:0-99", rows=100)
    assert monitors.add_window(first) is True
    again = window("rows:0-99", rows=999, created_ms=5_000)
    assert monitors.add_window(again) is False
    assert monitors.list_windows("api") == [first]
    # the same key on another deployment is another window
    other = window("rows:0-99", deployment="web")
    assert monitors.add_window(other) is True
    assert monitors.list_windows("web") == [other]
    assert monitors.list_windows("api") == [first]


def test_listing_gives_the_newest_windows_oldest_first(monitors: MonitorStore) -> None:
    added = [window(f"w{i}", created_ms=1_000 * (i + 1)) for i in range(12)]
    for report in reversed(added):  # stored out of order: listing sorts by creation time
        monitors.add_window(report)
    monitors.add_window(window("elsewhere", deployment="web", created_ms=5_500))
    assert monitors.list_windows("api") == added
    assert monitors.list_windows("api", limit=3) == added[-3:]
    assert monitors.list_windows("api", since_ms=10_000) == added[9:]  # at or after
    assert monitors.list_windows("api", since_ms=10_001, limit=1) == added[-1:]
    assert monitors.list_windows("api", since_ms=99_000) == []
    assert monitors.list_windows("nobody") == []
    assert [w.window_key for w in monitors.list_windows("web")] == ["elsewhere"]


def test_windows_created_at_the_same_time_list_in_the_order_they_were_added(
    monitors: MonitorStore,
) -> None:
    same = [window(key, created_ms=7_000) for key in ("b", "a", "c")]
    for report in same:
        monitors.add_window(report)
    assert monitors.list_windows("api") == same
    assert monitors.list_windows("api", limit=2) == same[1:]


@pytest.mark.parametrize("limit", [0, -1])
def test_a_limit_below_one_is_refused(monitors: MonitorStore, limit: int) -> None:
    with pytest.raises(InvalidInput, match=rf"limit must be a positive integer, got {limit}"):
        monitors.list_windows("api", limit=limit)


def test_an_overlong_window_key_is_refused_on_every_backend(monitors: MonitorStore) -> None:
    with pytest.raises(InvalidInput, match=r"window key must be .* at most 256 characters"):
        monitors.add_window(window("k" * 257))
    assert monitors.list_windows("api") == []


def test_two_stores_adding_the_same_window_at_once_store_it_once(
    stores: Stores, twin_database: MemoryDatabase | SqlDatabase, clock: FakeClock
) -> None:
    other: MonitorStore = (
        MemoryMonitorStore(twin_database, clock)
        if isinstance(twin_database, MemoryDatabase)
        else SqlMonitorStore(twin_database, clock)
    )
    barrier = threading.Barrier(2)

    def add(store: MonitorStore, key: str) -> bool:
        barrier.wait(timeout=10)
        return store.add_window(window(key))

    keys = [f"rows:{i}" for i in range(10)]
    with ThreadPoolExecutor(2) as pool:
        for key in keys:
            results = list(pool.map(add, [stores.monitors, other], [key, key]))
            assert sorted(results) == [False, True], key
    assert [w.window_key for w in stores.monitors.list_windows("api")] == keys


def test_references_are_found_replaced_and_none_when_missing(
    monitors: MonitorStore, clock: FakeClock
) -> None:
    assert monitors.find_reference("houses@2") is None
    data = {"columns": {"size": {"quantiles": [1.0, 2.5], "missing": 0.0}}, "rows": 10}
    monitors.put_reference("houses@2", data)
    assert monitors.find_reference("houses@2") == data
    clock.advance(1_000)
    monitors.put_reference("houses@2", {"rows": 11})
    assert monitors.find_reference("houses@2") == {"rows": 11}
    assert monitors.find_reference("houses@3") is None


def test_a_reference_json_cannot_hold_is_refused_and_nothing_is_stored(
    monitors: MonitorStore,
) -> None:
    monitors.put_reference("r", {"ok": True})
    with pytest.raises(InvalidInput, match=r"monitoring reference 'r' must be plain JSON data"):
        monitors.put_reference("r", {"values": {1, 2}})
    assert monitors.find_reference("r") == {"ok": True}


def test_a_damaged_window_is_a_storage_error_naming_it(
    monitors: MonitorStore, stores: Stores
) -> None:
    monitors.add_window(window("rows:0-99"))
    damage(stores, "api", "rows:0-99", '{"deployment": "api", "window_k')
    with pytest.raises(StorageError, match=r"monitoring window 'rows:0-99' of 'api'.*damaged"):
        monitors.list_windows("api")
    damage(stores, "api", "rows:0-99", '{"deployment": "api"}')  # JSON, but not a report
    with pytest.raises(StorageError, match=r"window 'rows:0-99' of 'api' cannot be read"):
        monitors.list_windows("api")


def test_a_damaged_reference_is_a_storage_error_naming_it(
    monitors: MonitorStore, stores: Stores
) -> None:
    monitors.put_reference("houses@2", {"rows": 1})
    for text in ("{not json", "[1, 2]"):
        db = stores.database
        if isinstance(db, MemoryDatabase):
            db.references["houses@2"] = text
        else:
            with db.write() as conn:
                conn.execute(update(t.monitor_references).values(data=text))
        with pytest.raises(StorageError, match=r"monitoring reference 'houses@2' cannot be read"):
            monitors.find_reference("houses@2")


def test_a_stored_window_can_be_replaced_by_a_newer_report_in_place(
    monitors: MonitorStore,
) -> None:
    first, second = window("rows:0-99", created_ms=1_000), window("rows:100-199", created_ms=2_000)
    assert monitors.add_window(first) and monitors.add_window(second)
    later = replace(first, performance={"rmse": 12.5}, labelled_rows=60)
    monitors.replace_window(later)
    listed = monitors.list_windows("api")
    assert [w.window_key for w in listed] == ["rows:0-99", "rows:100-199"]  # order kept
    assert listed[0] == later and listed[1] == second


def test_replacing_a_window_never_stored_is_not_found(monitors: MonitorStore) -> None:
    with pytest.raises(NotFound, match="is not stored"):
        monitors.replace_window(window("rows:5-9"))
    assert monitors.list_windows("api") == []
