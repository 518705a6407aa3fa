"""The ReviewStore contract, run against memory, SQLite and PostgreSQL.

Each ``(request_id, row)`` enters the queue once, however often (and in however large a
batch) it is offered. The queue hands out the oldest open item; an answer is final, is
written with its audit event in one transaction, and of two reviewers answering at once
only one wins. A refused call writes nothing; a damaged row is a StorageError naming it.
"""

from __future__ import annotations

import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import update

from loopml.adapters.memory.monitoring import MemoryReviewStore
from loopml.adapters.memory.stores import MemoryDatabase
from loopml.adapters.sql import schema as t
from loopml.adapters.sql.database import SqlDatabase
from loopml.adapters.sql.review import SqlReviewStore
from loopml.domain.audit import AuditRecord, verify_chain
from loopml.domain.errors import InvalidInput, InvalidState, NotFound, StorageError
from loopml.domain.review import ReviewItem, ReviewStatus
from loopml.ports import AuditLog
from loopml.ports.monitoring import ReviewStore

if TYPE_CHECKING:
    from tests.contract.conftest import Stores


def item(
    request_id: str = "req-1",
    row: int = 0,
    time_ms: int = 1_000,
    deployment: str = "api",
    **changes: Any,
) -> ReviewItem:
    values: dict[str, Any] = {
        "model": "iris",
        "version": 2,
        "inputs": {"petal": 1.5, "colour": "blue", "tags": ["a", "b"], "extra": None},
        "output": "setosa",
        "confidence": 0.41,
    }
    values.update(changes)
    return ReviewItem(deployment, request_id, row, time_ms=time_ms, **values)


def record(item_id: int, actor: str = "ana") -> AuditRecord:
    return AuditRecord(
        action="review.label",
        object_type="review_item",
        object_id=f"review/{item_id}",
        actor=actor,
        before={"status": "open"},
        after={"status": "labelled"},
    )


def answer(
    store: ReviewStore, item_id: int, label: Any = "virginica", who: str = "ana", at: int = 9_000
) -> ReviewItem:
    return store.label_item(item_id, label, who, at, label == "setosa", record(item_id, who))


def ids(items: list[ReviewItem]) -> list[tuple[str, int]]:
    return [(i.request_id, i.row) for i in items]


def test_queued_items_read_back_equal_with_an_id_given_by_the_store(
    reviews: ReviewStore,
) -> None:
    queued = [
        item("req-1", 0),
        item("req-1", 1, output=[0.25, 1], confidence=0.0, request_rows=2),
        item("req-2", 0, deployment="web", output=None, inputs={}, confidence=-1.5),
    ]
    assert reviews.add_items(queued) == 3
    stored = reviews.list_items(None)
    assert sorted(i.id for i in stored) == sorted({i.id for i in stored})  # distinct
    assert all(i.id > 0 for i in stored)
    for original in queued:
        [back] = [i for i in stored if (i.request_id, i.row) == (original.request_id, original.row)]
        assert back == dataclasses.replace(original, id=back.id)
        assert reviews.get_item(back.id) == back
    [two_rows] = [i for i in stored if i.row == 1]
    assert two_rows.request_rows == 2


def test_values_come_back_as_json_gives_them_on_every_backend(reviews: ReviewStore) -> None:
    reviews.add_items([item(inputs={"pair": (1, 2), "nested": {"k": (3,)}}, output=(0.5, 0.5))])
    [back] = reviews.list_items(None)
    assert back.inputs == {"pair": [1, 2], "nested": {"k": [3]}}
    assert back.output == [0.5, 0.5]


def test_an_item_json_cannot_hold_refuses_the_whole_batch(reviews: ReviewStore) -> None:
    with pytest.raises(InvalidInput, match=r"the output of review item req-2/0 must be plain"):
        reviews.add_items([item("req-1"), item("req-2", output={1, 2})])
    with pytest.raises(InvalidInput, match=r"the inputs of review item req-3/0 must be plain"):
        reviews.add_items([item("req-3", inputs={"raw": b"bytes"})])
    assert reviews.list_items(None) == []
    assert reviews.open_stats(None) == (0, None)


def test_an_item_that_is_not_open_cannot_be_queued(reviews: ReviewStore) -> None:
    answered = item(status=ReviewStatus.LABELLED, label="x", reviewer="ana")
    with pytest.raises(InvalidInput, match=r"req-1/0 is labelled; items are queued open"):
        reviews.add_items([item("req-0"), answered])
    assert reviews.list_items(None) == []


def test_each_request_row_enters_once_across_calls_and_within_a_batch(
    reviews: ReviewStore,
) -> None:
    assert reviews.add_items([]) == 0
    assert reviews.add_items([item("req-1", 0), item("req-1", 0, time_ms=5), item("req-1", 1)]) == 2
    assert reviews.add_items([item("req-1", 1), item("req-2", 0)]) == 1
    # the same request and row from another deployment is still the same prediction row
    assert reviews.add_items([item("req-2", 0, deployment="web")]) == 0
    assert sorted(ids(reviews.list_items(None))) == [("req-1", 0), ("req-1", 1), ("req-2", 0)]
    [first] = [i for i in reviews.list_items(None) if (i.request_id, i.row) == ("req-1", 0)]
    assert first.time_ms == 1_000  # the first offer is kept


def test_a_batch_larger_than_one_insert_is_counted_whole(reviews: ReviewStore) -> None:
    assert reviews.add_items([item(f"req-{i}", time_ms=i) for i in range(0, 1_200, 2)]) == 600
    offered = [item(f"req-{i}", time_ms=i) for i in range(1_200)]  # half are queued already
    assert reviews.add_items(offered) == 600
    assert reviews.open_stats(None) == (1_200, 0)
    assert len(reviews.list_items(None, limit=5_000)) == 1_200


def test_the_next_item_is_the_oldest_open_one(reviews: ReviewStore) -> None:
    assert reviews.next_item(None) is None
    reviews.add_items(
        [
            item("late", time_ms=3_000),
            item("early-b", time_ms=1_000),
            item("web", time_ms=500, deployment="web"),
            item("early-a", time_ms=1_000, row=1),
        ]
    )
    first = reviews.next_item(None)
    assert first is not None and first.request_id == "web"
    nxt = reviews.next_item("api")
    assert nxt is not None and nxt.request_id == "early-b"  # same time: queued first
    answer(reviews, nxt.id)
    after = reviews.next_item("api")
    assert after is not None and after.request_id == "early-a"
    assert reviews.next_item("nobody") is None


def test_an_answer_is_stored_with_its_audit_event(reviews: ReviewStore, audit: AuditLog) -> None:
    reviews.add_items([item("req-1"), item("req-2")])
    target = reviews.next_item("api")
    assert target is not None
    answered = reviews.label_item(
        target.id, {"class": "setosa", "why": ["petal"]}, "ana", 9_000, False, record(target.id)
    )
    assert answered == dataclasses.replace(
        target,
        status=ReviewStatus.LABELLED,
        label={"class": "setosa", "why": ["petal"]},
        reviewer="ana",
        labelled_ms=9_000,
        agrees=False,
    )
    assert reviews.get_item(target.id) == answered
    [event] = list(audit.iter_events())
    assert (event.action, event.object_id, event.actor, event.time_ms) == (
        "review.label",
        f"review/{target.id}",
        "ana",
        9_000,
    )
    agreeing = reviews.next_item("api")
    assert agreeing is not None
    assert answer(reviews, agreeing.id, label="setosa", who="bob", at=9_500).agrees is True
    assert [e.actor for e in audit.iter_events()] == ["ana", "bob"]
    assert verify_chain(audit.iter_events(), audit.head()).ok


def test_an_answered_item_cannot_be_answered_again(reviews: ReviewStore, audit: AuditLog) -> None:
    reviews.add_items([item()])
    [queued] = reviews.list_items(None)
    first = answer(reviews, queued.id, label="versicolor", who="ana")
    head = audit.head()
    with pytest.raises(InvalidState, match=r"answered already by 'ana' .* 'versicolor'"):
        answer(reviews, queued.id, label="setosa", who="bob", at=9_999)
    assert audit.head() == head
    assert reviews.get_item(queued.id) == first


def test_an_unknown_item_is_not_found_and_nothing_is_written(
    reviews: ReviewStore, audit: AuditLog
) -> None:
    with pytest.raises(NotFound, match=r"review item 404 does not exist"):
        reviews.get_item(404)
    with pytest.raises(NotFound, match=r"review item 404 does not exist"):
        answer(reviews, 404)
    assert list(audit.iter_events()) == []


def test_an_answer_json_cannot_hold_leaves_the_item_open(
    reviews: ReviewStore, audit: AuditLog
) -> None:
    reviews.add_items([item()])
    [queued] = reviews.list_items(None)
    with pytest.raises(InvalidInput, match=r"label of review item \d+ must be plain JSON"):
        answer(reviews, queued.id, label=object())
    with pytest.raises(InvalidInput, match=r"needs a reviewer"):
        answer(reviews, queued.id, who="")
    assert reviews.get_item(queued.id) == queued
    assert list(audit.iter_events()) == []


def test_two_reviewers_answering_at_once_one_wins(
    stores: Stores, twin_database: MemoryDatabase | SqlDatabase, audit: AuditLog
) -> None:
    other: ReviewStore = (
        MemoryReviewStore(twin_database)
        if isinstance(twin_database, MemoryDatabase)
        else SqlReviewStore(twin_database)
    )
    stores.reviews.add_items([item(f"req-{i}") for i in range(8)])
    barrier = threading.Barrier(2)

    def attempt(store: ReviewStore, item_id: int, who: str) -> str:
        barrier.wait(timeout=10)
        try:
            return answer(store, item_id, label=who, who=who).reviewer or ""
        except InvalidState:
            return "refused"

    with ThreadPoolExecutor(2) as pool:
        for queued in stores.reviews.list_items(None):
            results = list(pool.map(attempt, [stores.reviews, other], [queued.id] * 2, ["a", "b"]))
            assert sorted(results) in (["a", "refused"], ["b", "refused"]), results
            winner = next(r for r in results if r != "refused")
            assert stores.reviews.get_item(queued.id).label == winner
    assert len(list(audit.iter_events())) == 8
    assert verify_chain(audit.iter_events(), audit.head()).ok


def test_listing_is_newest_first_and_filters(reviews: ReviewStore) -> None:
    reviews.add_items([item(f"req-{i}", time_ms=1_000 + i) for i in range(5)])
    reviews.add_items([item("web-0", deployment="web", time_ms=2_000)])
    [one] = [i for i in reviews.list_items("api") if i.request_id == "req-1"]
    answer(reviews, one.id)
    assert ids(reviews.list_items(None)) == [("web-0", 0)] + [
        (f"req-{i}", 0) for i in (4, 3, 2, 1, 0)
    ]
    assert ids(reviews.list_items("api", limit=2)) == [("req-4", 0), ("req-3", 0)]
    assert ids(reviews.list_items("api", ReviewStatus.LABELLED)) == [("req-1", 0)]
    assert ids(reviews.list_items("api", ReviewStatus.OPEN)) == [
        (f"req-{i}", 0) for i in (4, 3, 2, 0)
    ]
    assert ids(reviews.list_items(None, ReviewStatus.OPEN, limit=1)) == [("web-0", 0)]
    assert reviews.list_items("nobody") == []
    with pytest.raises(InvalidInput, match=r"limit must be a positive integer, got 0"):
        reviews.list_items(None, limit=0)


def test_open_stats_count_open_items_and_the_oldest_time(reviews: ReviewStore) -> None:
    assert reviews.open_stats(None) == (0, None)
    reviews.add_items([item("a", time_ms=3_000), item("b", time_ms=2_000)])
    reviews.add_items([item("w", time_ms=1_000, deployment="web")])
    assert reviews.open_stats(None) == (3, 1_000)
    assert reviews.open_stats("api") == (2, 2_000)
    oldest = reviews.next_item("api")
    assert oldest is not None
    answer(reviews, oldest.id)
    assert reviews.open_stats("api") == (1, 3_000)
    assert reviews.open_stats("nobody") == (0, None)


def test_cursors_start_at_zero_and_are_kept_per_deployment(reviews: ReviewStore) -> None:
    assert reviews.get_cursor("api") == 0
    reviews.set_cursor("api", 5_000)
    reviews.set_cursor("web", 7_000)
    reviews.set_cursor("api", 6_000)
    assert (reviews.get_cursor("api"), reviews.get_cursor("web")) == (6_000, 7_000)
    reviews.set_cursor("api", 10**15)  # times are milliseconds: past 32 bits
    assert reviews.get_cursor("api") == 10**15


def test_a_damaged_item_is_a_storage_error_naming_it(reviews: ReviewStore, stores: Stores) -> None:
    reviews.add_items([item()])
    [queued] = reviews.list_items(None)
    db = stores.database
    if isinstance(db, MemoryDatabase):
        db.review_items[queued.id]["inputs"] = '{"petal": 1.'
    else:
        with db.write() as conn:
            conn.execute(update(t.review_items).values(inputs='{"petal": 1.'))
    message = rf"the inputs of review item {queued.id} cannot be read .*damaged"
    with pytest.raises(StorageError, match=message):
        reviews.get_item(queued.id)
    with pytest.raises(StorageError, match=message):
        reviews.list_items("api")
    with pytest.raises(StorageError, match=message):
        reviews.next_item(None)
