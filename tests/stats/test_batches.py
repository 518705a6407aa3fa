"""Streams of batches: work on threads, results in order, memory bounded, errors in turn."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pytest

from loopml.stats.batches import cores, map_ordered, map_widening


def test_results_come_in_the_order_of_the_items_whatever_finishes_first() -> None:
    def slow_for_small(n: int) -> int:
        time.sleep(0.002 * (10 - n % 10))  # later items finish first
        return n * n

    assert list(map_ordered(slow_for_small, range(40), 4, "t")) == [n * n for n in range(40)]


def test_the_work_runs_on_several_threads_at_once() -> None:
    barrier = threading.Barrier(3, timeout=5)

    def meet(n: int) -> str:
        barrier.wait()  # only returns once three items are being worked on together
        return threading.current_thread().name

    names = list(map_ordered(meet, range(3), 3, "loopml-test"))
    assert len(set(names)) == 3 and all(n.startswith("loopml-test") for n in names)


def test_items_are_read_at_most_ahead_of_the_results_taken() -> None:
    taken = 0
    read_ahead = []

    def items() -> Iterator[int]:
        for n in range(50):
            read_ahead.append(n - taken)
            yield n

    for _ in map_ordered(lambda n: n, items(), 2, "t", ahead=3):
        taken += 1
    assert max(read_ahead) <= 3


def test_items_in_flight_weigh_at_most_the_budget_or_are_one_item() -> None:
    sizes = [5, 1, 1, 1, 30, 2, 2, 2, 2, 2, 9, 1]
    taken = 0
    held_at_read = []

    def items() -> Iterator[int]:
        for i in range(len(sizes)):
            # Read only when the items read and not yet taken leave room under the budget.
            held_at_read.append(sum(sizes[taken:i]))
            yield i

    for i in map_ordered(
        lambda i: i, items(), 4, "t", ahead=10, weight=sizes.__getitem__, max_weight=8
    ):
        assert i == taken
        taken += 1
    assert taken == len(sizes)
    assert max(held_at_read) <= 8
    assert held_at_read[5] == 0  # after the item of 30: nothing else was in flight with it


def test_an_error_is_raised_at_its_items_turn_and_stops_the_rest() -> None:
    started: list[int] = []

    def fail_at_five(n: int) -> int:
        started.append(n)
        if n == 5:
            raise ValueError("five")
        return n

    results = map_ordered(fail_at_five, range(1000), 2, "t")
    assert [next(results) for _ in range(5)] == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="five"):
        next(results)
    assert max(started) < 20  # the items not started were cancelled


def _closable(closed: threading.Event) -> Iterator[int]:
    """Numbers 0..999 that set ``closed`` when the generator is closed (or runs out)."""
    try:
        yield from range(1000)
    finally:
        closed.set()


def test_closing_stops_the_threads_and_closes_the_items() -> None:
    closed = threading.Event()
    results = map_ordered(lambda n: n, _closable(closed), 2, "loopml-closing")
    assert next(results) == 0
    results.close()
    assert closed.is_set()
    assert not [t for t in threading.enumerate() if t.name.startswith("loopml-closing")]


# map_widening ------------------------------------------------------------------------------
def test_a_slow_function_widens_to_the_most_and_keeps_the_order() -> None:
    widths: list[int] = []
    running = 0
    most_running = 0
    lock = threading.Lock()

    def slow(n: int, width: int) -> int:
        nonlocal running, most_running
        widths.append(width)
        with lock:
            running += 1
            most_running = max(most_running, running)
        time.sleep(0.02 if n % 2 else 0.01)  # sleeps release the GIL, like Arrow and numpy
        with lock:
            running -= 1
        return n * n

    started = time.perf_counter()
    assert list(map_widening(slow, range(24), 3, "t")) == [n * n for n in range(24)]
    assert widths[0] == 1 and max(widths) == 3 and most_running == 3
    assert time.perf_counter() - started < 24 * 0.015 / 1.5  # one at a time would take 0.36 s


def test_a_slow_caller_keeps_the_work_to_one_item_beside_it() -> None:
    widths: list[int] = []

    def cheap(n: int, width: int) -> int:
        widths.append(width)
        return n

    for _ in map_widening(cheap, range(12), 4, "t"):
        time.sleep(0.01)  # the caller is the slower side: more threads would not help it
    assert set(widths) == {1}


def test_the_width_narrows_again_when_the_caller_becomes_the_slower_side() -> None:
    widths: list[int] = []

    def work(n: int, width: int) -> int:
        widths.append(width)
        time.sleep(0.01 if n < 10 else 0)
        return n

    for n in map_widening(work, range(30), 4, "t"):
        if n >= 10:
            time.sleep(0.01)
    assert max(widths[:12]) > 1 and widths[-5:] == [1] * 5


def test_widening_raises_an_error_at_its_items_turn_and_leaves_no_thread() -> None:
    started: list[int] = []
    closed = threading.Event()

    def fail_at_five(n: int, width: int) -> int:
        started.append(n)
        time.sleep(0.002)
        if n == 5:
            raise ValueError("five")
        return n

    results = map_widening(fail_at_five, _closable(closed), 2, "loopml-widening")
    assert [next(results) for _ in range(5)] == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="five"):
        next(results)
    assert max(started) < 10 and closed.is_set()
    assert not [t for t in threading.enumerate() if t.name.startswith("loopml-widening")]


def test_cores_counts_what_this_process_may_use() -> None:
    assert 1 <= cores() <= (os.cpu_count() or 1)
