"""Schedules: cron fields, names, steps and cron's day-of-month OR day-of-week rule against
hand-computed times; shorthands and intervals; clear errors; and catching up after a stop,
each slot at most once."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loopml.domain.errors import InvalidInput
from loopml.domain.schedule import MAX_COUNTED, CatchUp, Schedule, catch_up, due_times

MINUTE = 60_000


def ms(*parts: int) -> int:
    return int(datetime(*parts, tzinfo=UTC).timestamp()) * 1000


def at(time_ms: int) -> datetime:
    return datetime.fromtimestamp(time_ms / 1000, tz=UTC)


def nexts(text: str, start: int, count: int) -> list[datetime]:
    schedule = Schedule.parse(text)
    found, now = [], start
    for _ in range(count):
        now = schedule.next_after(now)
        found.append(at(now))
    return found


def d(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


# 2024-03-15 is a Friday; 2024 is a leap year.
FRIDAY = ms(2024, 3, 15, 10, 7)


@pytest.mark.parametrize(
    ("text", "start", "expected"),
    [
        ("*/15 * * * *", FRIDAY, [d(2024, 3, 15, 10, 15), d(2024, 3, 15, 10, 30)]),
        ("*/15 * * * *", ms(2024, 3, 15, 10, 15), [d(2024, 3, 15, 10, 30)]),  # strictly after
        ("0 9 * * mon-fri", FRIDAY, [d(2024, 3, 18, 9, 0), d(2024, 3, 19, 9, 0)]),
        ("30 4 1,15 * *", FRIDAY, [d(2024, 4, 1, 4, 30), d(2024, 4, 15, 4, 30)]),
        ("0 12 * jan,JUL *", FRIDAY, [d(2024, 7, 1, 12, 0), d(2024, 7, 2, 12, 0)]),
        ("5/20 * * * *", FRIDAY, [d(2024, 3, 15, 10, 25), d(2024, 3, 15, 10, 45)]),
        ("0 8-18/5 * * *", FRIDAY, [d(2024, 3, 15, 13, 0), d(2024, 3, 15, 18, 0)]),
        ("0 0 * * 7", FRIDAY, [d(2024, 3, 17, 0, 0)]),  # 7 is Sunday
        ("0 0 * * 0", FRIDAY, [d(2024, 3, 17, 0, 0)]),
        ("0 0 29 2 *", FRIDAY, [d(2028, 2, 29, 0, 0)]),  # the next leap day
        ("59 23 31 * *", FRIDAY, [d(2024, 3, 31, 23, 59), d(2024, 5, 31, 23, 59)]),
        ("0 0 1 1 *", ms(2024, 12, 31, 23, 59), [d(2025, 1, 1)]),
        # Both day fields restricted: either matches (the 1st, or any Monday).
        (
            "0 0 1 * mon",
            ms(2024, 3, 20),
            [d(2024, 3, 25), d(2024, 4, 1), d(2024, 4, 8), d(2024, 4, 15)],
        ),
        # Day-of-month starts with '*': both must match (a Monday on an odd day).
        (
            "0 0 */2 * mon",
            ms(2024, 3, 20),
            [d(2024, 3, 25), d(2024, 4, 1), d(2024, 4, 15), d(2024, 4, 29)],
        ),
        ("@hourly", FRIDAY, [d(2024, 3, 15, 11)]),
        ("@daily", FRIDAY, [d(2024, 3, 16)]),
        ("@midnight", FRIDAY, [d(2024, 3, 16)]),
        ("@weekly", FRIDAY, [d(2024, 3, 17)]),  # Sunday
        ("@monthly", FRIDAY, [d(2024, 4, 1)]),
        ("@yearly", FRIDAY, [d(2025, 1, 1)]),
        ("@annually", FRIDAY, [d(2025, 1, 1)]),
        ("@every 30s", FRIDAY + 1, [d(2024, 3, 15, 10, 7, 30), d(2024, 3, 15, 10, 8)]),
        ("@every 5m", FRIDAY, [d(2024, 3, 15, 10, 10), d(2024, 3, 15, 10, 15)]),
        ("@every 1h", FRIDAY, [d(2024, 3, 15, 11)]),
        ("@every 1d", FRIDAY, [d(2024, 3, 16)]),
        ("  @EVERY  1h 30m ", FRIDAY, [d(2024, 3, 15, 10, 30), d(2024, 3, 15, 12)]),
    ],
)
def test_known_next_times(text: str, start: int, expected: list[datetime]) -> None:
    assert nexts(text, start, len(expected)) == expected


def test_intervals_are_aligned_to_the_epoch_whatever_the_start() -> None:
    schedule = Schedule.parse("@every 7m")
    assert schedule.every_ms == 7 * MINUTE
    for start in (0, 1, 7 * MINUTE - 1, 7 * MINUTE, FRIDAY):
        due = schedule.next_after(start)
        assert due % (7 * MINUTE) == 0
        assert start < due <= start + 7 * MINUTE


def test_text_is_kept_for_display() -> None:
    assert str(Schedule.parse("  0  9 * *   mon-fri")) == "0 9 * * mon-fri"


PREDICATES: list[tuple[str, Callable[[datetime], bool]]] = [
    (
        "*/20 9-10 * * mon-fri",
        lambda t: t.minute % 20 == 0 and t.hour in (9, 10) and t.weekday() < 5,
    ),
    (
        "0 0 1,15 * sun",
        lambda t: (t.minute, t.hour) == (0, 0) and (t.day in (1, 15) or t.weekday() == 6),
    ),
    ("0 */6 * feb,mar *", lambda t: t.minute == 0 and t.hour % 6 == 0 and t.month in (2, 3)),
    (
        "15 3 */3 * sat",
        lambda t: (t.minute, t.hour) == (15, 3) and t.day % 3 == 1 and t.weekday() == 5,
    ),
    (
        "0-5,58 23 28-31 * *",
        lambda t: t.hour == 23 and t.day >= 28 and (t.minute <= 5 or t.minute == 58),
    ),
]


@pytest.mark.parametrize(("text", "due"), PREDICATES)
def test_due_times_equal_a_minute_by_minute_scan(
    text: str, due: Callable[[datetime], bool]
) -> None:
    """Over 62 days, the schedule's due times are exactly the minutes cron's meaning picks."""
    start = d(2024, 1, 20)
    minutes = 62 * 24 * 60
    expected = [
        int((start + timedelta(minutes=m)).timestamp()) * 1000
        for m in range(1, minutes + 1)
        if due(start + timedelta(minutes=m))
    ]
    begin = int(start.timestamp()) * 1000
    found = due_times(Schedule.parse(text), begin, begin + minutes * MINUTE, limit=100_000)
    assert list(found) == expected
    assert expected  # the scan tests something


@given(
    text=st.sampled_from([p[0] for p in PREDICATES] + ["@every 90s", "@weekly", "0 0 29 2 *"]),
    time_ms=st.integers(min_value=ms(2000, 1, 1), max_value=ms(2060, 1, 1)),
)
def test_next_and_last_are_adjacent_due_times(text: str, time_ms: int) -> None:
    schedule = Schedule.parse(text)
    upcoming = schedule.next_after(time_ms)
    assert upcoming > time_ms
    assert schedule.last_at_or_before(upcoming) == upcoming
    assert schedule.last_at_or_before(upcoming - 1) <= time_ms  # nothing due in between
    previous = schedule.last_at_or_before(time_ms)
    assert previous <= time_ms
    assert schedule.next_after(previous) == upcoming


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "schedule must be a non-empty string"),
        ("* * * *", "has 4 field(s); cron needs 5 (minute hour day-of-month month day-of-week)"),
        ("* * * * * *", "has 6 field(s)"),
        ("60 * * * *", "minute field '60': 60 is out of range; expected 0-59"),
        ("* 24 * * *", "hour field '24': 24 is out of range; expected 0-23"),
        ("* * 0 * *", "day-of-month field '0': 0 is out of range; expected 1-31"),
        ("* * * 13 *", "month field '13': 13 is out of range; expected 1-12 or jan..dec"),
        ("* * * * 8", "day-of-week field '8': 8 is out of range; expected 0-7 or sun..sat"),
        ("* * * * funday", "'funday' is not a value; expected 0-7 or sun..sat"),
        ("* mon * * *", "hour field 'mon': 'mon' is not a value; expected 0-23"),
        ("5-1 * * * *", "range '5-1' runs backwards"),
        ("*/0 * * * *", "step must be at least 1"),
        ("*/x * * * *", "step 'x' is not a whole number"),
        ("1,,2 * * * *", "empty list item"),
        ("0 0 30 2 *", "is never due: day(s) 30 do not occur in feb"),
        ("0 0 31 4,6,9,11 *", "day(s) 31 do not occur in apr, jun, sep, nov"),
        ("@fortnightly", "unknown shorthand; known: @yearly"),
        ("@every", "@every needs a duration"),
        ("@every 5", "'5' is not a duration"),
        ("@every 5 minutes", "is not a duration"),
        ("@every 1m1m", "repeats a unit"),
        ("@every 0s", "the period must be at least 1s"),
    ],
)
def test_bad_schedules_say_what_and_where(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)):
        Schedule.parse(text)


def test_a_leap_day_with_a_weekday_is_possible_in_or_mode() -> None:
    # 31 Feb never happens, but with a weekday the day fields are OR-ed: every Monday in Feb.
    assert nexts("0 0 31 2 mon", FRIDAY, 1) == [d(2025, 2, 3)]


# --- due times and catching up -------------------------------------------------------------


def test_due_times_take_since_exclusive_and_now_inclusive() -> None:
    schedule = Schedule.parse("@every 5m")
    start = ms(2024, 1, 1)
    assert due_times(schedule, start, start + 15 * MINUTE) == (
        start + 5 * MINUTE,
        start + 10 * MINUTE,
        start + 15 * MINUTE,
    )
    assert due_times(schedule, start, start + 15 * MINUTE, limit=2) == (
        start + 5 * MINUTE,
        start + 10 * MINUTE,
    )
    assert due_times(schedule, start, start + 4 * MINUTE) == ()
    with pytest.raises(InvalidInput, match="limit must be >= 0"):
        due_times(schedule, start, start, limit=-1)


def test_after_a_stop_the_newest_missed_slot_runs_once_and_the_rest_are_counted() -> None:
    schedule = Schedule.parse("*/10 * * * *")
    last_run = ms(2024, 1, 1, 0, 0)
    restart = ms(2024, 1, 1, 1, 3)  # down for 63 minutes: 00:10 .. 01:00 were due
    plan = catch_up(schedule, last_run, restart)
    assert plan == CatchUp(ms(2024, 1, 1, 1, 0), 5, ms(2024, 1, 1, 1, 10))
    # The agent records (job, 01:00) and starts it; a second restart finds nothing due.
    assert catch_up(schedule, plan.due_ms or 0, restart + 2 * MINUTE) == CatchUp(
        None, 0, ms(2024, 1, 1, 1, 10)
    )


def test_nothing_missed_and_nothing_due() -> None:
    schedule = Schedule.parse("@hourly")
    assert catch_up(schedule, ms(2024, 1, 1, 5), ms(2024, 1, 1, 5, 59)) == CatchUp(
        None, 0, ms(2024, 1, 1, 6)
    )
    assert catch_up(schedule, ms(2024, 1, 1, 5), ms(2024, 1, 1, 6)) == CatchUp(
        ms(2024, 1, 1, 6), 0, ms(2024, 1, 1, 7)
    )


def test_a_clock_that_steps_back_never_repeats_a_slot() -> None:
    schedule = Schedule.parse("@every 1m")
    since = ms(2024, 1, 1, 12)
    plan = catch_up(schedule, since, since - 30 * MINUTE)
    assert plan == CatchUp(None, 0, since + MINUTE)


def test_missed_slots_are_counted_up_to_the_cap() -> None:
    day, week = 24 * 60 * MINUTE, 7 * 24 * 60 * MINUTE
    since = ms(2024, 1, 1)
    for text in ("@every 1m", "* * * * *"):
        one_day = catch_up(Schedule.parse(text), since, since + day + 30_000)
        assert one_day.due_ms == since + day
        assert one_day.missed == 24 * 60 - 1  # all but the one run
        one_week = catch_up(Schedule.parse(text), since, since + week)
        assert one_week.due_ms == since + week
        assert one_week.missed == MAX_COUNTED
    # since not on the grid
    assert catch_up(Schedule.parse("@every 5m"), since + 1, since + 20 * MINUTE).missed == 3


def test_restarts_at_any_moments_never_run_a_slot_twice() -> None:
    """An agent that records each slot before running it, and crashes and restarts at
    random times, runs strictly increasing slots, each a real due time, once."""
    schedule = Schedule.parse("*/7 * * * *")
    since = ms(2024, 1, 1)
    started: list[int] = []
    now = since
    for step in [1, 3, 9, 9, 40, 2, 600, 7, 0, 61, 1]:
        now += step * MINUTE + 13_000
        plan = catch_up(schedule, started[-1] if started else since, now)
        if plan.due_ms is not None:
            started.append(plan.due_ms)  # recorded before the job starts
        assert plan.next_ms > now
    assert started == sorted(set(started))
    assert all(schedule.last_at_or_before(s) == s for s in started)
    assert len(started) >= 5
