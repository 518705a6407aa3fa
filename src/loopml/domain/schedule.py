"""Schedules: when the agent's jobs are due, written as cron writes them, in UTC.

Three forms are understood by :meth:`Schedule.parse`:

* **Five cron fields**, ``minute hour day-of-month month day-of-week``. Each field is
  ``*``, a value (``5``), a range (``9-17``), a step over the whole range (``*/15``), over
  a range (``9-17/2``) or from a start (``5/15``, the same as ``5-59/15``), or a comma
  list of those (``0,30``). Months may be named ``jan``..``dec`` and weekdays
  ``sun``..``sat`` (any case); weekday ``0`` and ``7`` are both Sunday. Days follow cron's
  rule: when both day fields are restricted (neither starts with ``*``), a day is due
  when *either* matches (``0 0 1 * mon``: the 1st of each month and every Monday);
  otherwise both must (``0 0 */2 * mon`` is a Monday on an odd day).
* **Shorthands**: ``@hourly``, ``@daily`` (``@midnight``), ``@weekly`` (Sunday),
  ``@monthly``, ``@yearly`` (``@annually``).
* **Intervals**: ``@every 30s``, ``@every 5m``, ``@every 1h30m`` (units ``s m h d``). They
  are due at whole multiples of the period since the Unix epoch, so a restart never
  shifts the grid and two agents agree on the due times.

Times are integer milliseconds since the epoch, in UTC (so daylight saving never applies);
cron fields have minute resolution, intervals second resolution.

**Catching up after a stop.** :func:`catch_up` tells an agent what is due now. The agent
passes ``since_ms``, the due time of the newest run of the job it *started* (or, for a new
job, the time the job was first scheduled, so it does not run at once): every due time
after it and at or before now was missed. The policy: **a missed job runs once, not once
per missed slot**; the newest missed slot is the one run (``due_ms``), the earlier ones are
skipped and counted (``missed``) so the agent can say so. To run each slot exactly once
across crashes, the agent records ``(job, due_ms)`` in a store with a unique key *before*
starting the job, and passes that ``due_ms`` as the next ``since_ms``: a slot already
recorded is never returned again. A slot recorded but never finished was interrupted by
a crash; it is reported, not re-run (at most once), because an action such as a retrain
must not happen twice.

Standard library only, no I/O.
"""

from __future__ import annotations

import calendar
import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from loopml.domain.errors import InvalidInput

MINUTE_MS = 60_000
MAX_COUNTED = 10_000  # missed slots counted beyond this are reported as this many
_SEARCH_STEPS = 200_000  # far more than any satisfiable schedule needs (see _check_days)
_FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_NAMES = {3: {n: i + 1 for i, n in enumerate(_MONTHS)}, 4: {n: i for i, n in enumerate(_WEEKDAYS)}}
_SHORTHANDS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_UNITS_MS = {"d": 86_400_000, "h": 3_600_000, "m": MINUTE_MS, "s": 1_000}
_DURATION = re.compile(r"(\d+)([dhms])")
_HINT = "e.g. '*/15 * * * *', '0 6 * * mon-fri', '@daily' or '@every 5m'"
_LONGEST_MONTH = {m: 29 if m == 2 else calendar.monthrange(2001, m)[1] for m in range(1, 13)}


@dataclass(frozen=True, slots=True)
class Schedule:
    """A parsed schedule; build it with :meth:`parse`. ``str()`` gives the text back."""

    text: str
    every_ms: int | None = None  # set for ``@every``; the cron fields are then unused
    minutes: tuple[int, ...] = ()
    hours: frozenset[int] = frozenset()
    days: frozenset[int] = frozenset()
    months: frozenset[int] = frozenset()
    weekdays: frozenset[int] = frozenset()  # 0 = Sunday .. 6 = Saturday
    either_day: bool = False  # both day fields restricted: a day matches if either does

    def __post_init__(self) -> None:
        if self.every_ms is not None:
            if self.every_ms <= 0:
                raise InvalidInput(f"schedule {self.text!r}: the period must be positive")
        elif not (self.minutes and self.hours and self.months and self.days and self.weekdays):
            raise InvalidInput(
                f"schedule {self.text!r} has an empty field; build schedules with "
                "Schedule.parse(text)"
            )

    def __str__(self) -> str:
        return self.text

    @classmethod
    def parse(cls, text: object) -> Schedule:
        """Read a schedule (see the module docstring for the forms).

        Raises:
            InvalidInput: the text is not a schedule, naming the field and the value at
                fault, or it can never be due (``0 0 31 2 *``).
        """
        if not isinstance(text, str) or not text.strip():
            raise InvalidInput(f"schedule must be a non-empty string, got {text!r}; {_HINT}")
        source = " ".join(text.split())
        lowered = source.lower()
        if lowered.startswith("@every"):
            return cls(source, every_ms=_every(source, lowered[len("@every") :].strip()))
        if lowered.startswith("@"):
            if lowered not in _SHORTHANDS:
                raise InvalidInput(
                    f"schedule {source!r}: unknown shorthand; known: "
                    f"{', '.join(_SHORTHANDS)} and '@every <duration>' (e.g. '@every 5m')"
                )
            return _cron(source, _SHORTHANDS[lowered])
        return _cron(source, source)

    def next_after(self, time_ms: int) -> int:
        """The first due time strictly after ``time_ms``."""
        if self.every_ms is not None:
            return (time_ms // self.every_ms + 1) * self.every_ms
        at = _datetime((time_ms // MINUTE_MS + 1) * MINUTE_MS)
        for _ in range(_SEARCH_STEPS):
            if at.month not in self.months:
                at = _first_of_next_month(at)
            elif not self._day_matches(at):
                at = at.replace(hour=0, minute=0) + timedelta(days=1)
            elif at.hour not in self.hours:
                at = at.replace(minute=0) + timedelta(hours=1)
            else:
                index = bisect_left(self.minutes, at.minute)
                if index == len(self.minutes):
                    at = at.replace(minute=0) + timedelta(hours=1)
                else:
                    return _ms(at.replace(minute=self.minutes[index]))
        raise InvalidInput(f"schedule {self.text!r} has no due time after {time_ms}")

    def last_at_or_before(self, time_ms: int) -> int:
        """The newest due time at or before ``time_ms``."""
        if self.every_ms is not None:
            return (time_ms // self.every_ms) * self.every_ms
        at = _datetime((time_ms // MINUTE_MS) * MINUTE_MS)
        for _ in range(_SEARCH_STEPS):
            if at.month not in self.months:
                at = at.replace(day=1, hour=0, minute=0) - timedelta(minutes=1)
            elif not self._day_matches(at):
                at = at.replace(hour=0, minute=0) - timedelta(minutes=1)
            elif at.hour not in self.hours:
                at = at.replace(minute=0) - timedelta(minutes=1)
            else:
                index = bisect_right(self.minutes, at.minute)
                if index == 0:
                    at = at.replace(minute=0) - timedelta(minutes=1)
                else:
                    return _ms(at.replace(minute=self.minutes[index - 1]))
        raise InvalidInput(f"schedule {self.text!r} has no due time before {time_ms}")

    def _day_matches(self, at: datetime) -> bool:
        in_month = at.day in self.days
        in_week = (at.weekday() + 1) % 7 in self.weekdays  # Python: Monday 0; cron: Sunday 0
        return (in_month or in_week) if self.either_day else (in_month and in_week)


def due_times(schedule: Schedule, since_ms: int, now_ms: int, limit: int = 1000) -> tuple[int, ...]:
    """The due times after ``since_ms`` and at or before ``now_ms``, oldest first, at most
    ``limit`` of them (the oldest)."""
    if limit < 0:
        raise InvalidInput(f"limit must be >= 0, got {limit}")
    found: list[int] = []
    at = since_ms
    while len(found) < limit:
        at = schedule.next_after(at)
        if at > now_ms:
            break
        found.append(at)
    return tuple(found)


@dataclass(frozen=True, slots=True)
class CatchUp:
    """What is due for one job now (see "Catching up" in the module docstring)."""

    due_ms: int | None  # the slot to run now: the newest due time in (since, now], or None
    missed: int  # earlier slots in (since, due_ms) that are skipped, at most MAX_COUNTED
    next_ms: int  # the first due time after now (and after since): when to look again


def catch_up(schedule: Schedule, since_ms: int, now_ms: int) -> CatchUp:
    """The one slot to run now, if any, and how many older ones are skipped.

    Args:
        schedule: the job's schedule.
        since_ms: the due time of the newest run of the job already started, or when the
            job was first scheduled; slots at or before it are never returned.
        now_ms: the agent's clock. If it is behind ``since_ms`` (the clock stepped back),
            nothing is due until a slot after ``since_ms``.
    """
    next_ms = schedule.next_after(max(since_ms, now_ms))
    if now_ms <= since_ms:
        return CatchUp(None, 0, next_ms)
    newest = schedule.last_at_or_before(now_ms)
    if newest <= since_ms:
        return CatchUp(None, 0, next_ms)
    if schedule.every_ms is not None:
        missed = newest // schedule.every_ms - 1 - since_ms // schedule.every_ms
    else:
        missed = len(due_times(schedule, since_ms, newest - 1, limit=MAX_COUNTED))
    return CatchUp(newest, min(missed, MAX_COUNTED), next_ms)


def _every(source: str, spec: str) -> int:
    example = "e.g. '@every 30s', '@every 5m', '@every 1h30m' (units d, h, m, s)"
    if not spec:
        raise InvalidInput(f"schedule {source!r}: @every needs a duration; {example}")
    compact = spec.replace(" ", "").lower()
    parts = _DURATION.findall(compact)
    if "".join(n + u for n, u in parts) != compact:
        raise InvalidInput(f"schedule {source!r}: {spec!r} is not a duration; {example}")
    units = [u for _, u in parts]
    if len(set(units)) != len(units):
        raise InvalidInput(f"schedule {source!r}: {spec!r} repeats a unit; {example}")
    total = sum(int(n) * _UNITS_MS[u] for n, u in parts)
    if total <= 0:
        raise InvalidInput(f"schedule {source!r}: the period must be at least 1s; {example}")
    return total


def _cron(source: str, expression: str) -> Schedule:
    fields = expression.split()
    if len(fields) != len(_FIELDS):
        raise InvalidInput(
            f"schedule {source!r} has {len(fields)} field(s); cron needs 5 "
            f"({' '.join(_FIELDS)}); {_HINT}"
        )
    values = [_field(source, i, text) for i, text in enumerate(fields)]
    weekdays = frozenset(v % 7 for v in values[4])  # 7 is Sunday too
    restricted = [not fields[2].startswith("*"), not fields[4].startswith("*")]
    schedule = Schedule(
        source,
        minutes=tuple(sorted(values[0])),
        hours=frozenset(values[1]),
        days=frozenset(values[2]),
        months=frozenset(values[3]),
        weekdays=weekdays,
        either_day=all(restricted),
    )
    if restricted[0] and not schedule.either_day:
        _check_days(source, schedule)
    return schedule


def _check_days(source: str, schedule: Schedule) -> None:
    """Refuse day-of-month and month combinations that never happen (``31 2``). With a
    possible date, every weekday comes round within 28 years, so the search ends."""
    if not any(min(schedule.days) <= _LONGEST_MONTH[m] for m in schedule.months):
        months = ", ".join(_MONTHS[m - 1] for m in sorted(schedule.months))
        days = ", ".join(map(str, sorted(schedule.days)))
        raise InvalidInput(
            f"schedule {source!r} is never due: day(s) {days} do not occur in {months}; "
            "fix the day-of-month or the month field"
        )


def _field(source: str, index: int, text: str) -> set[int]:
    name = _FIELDS[index]
    low, high = _RANGES[index]
    where = f"schedule {source!r}, {name} field {text!r}"
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise InvalidInput(f"{where}: empty list item; write e.g. '1,15'")
        span, slash, step_text = part.partition("/")
        step = 1
        if slash:
            step = _number(where, step_text, "step")
            if step < 1:
                raise InvalidInput(f"{where}: step must be at least 1, got {step_text!r}")
        if span == "*":
            start, end = low, high
        elif "-" in span:
            first, _, last = span.partition("-")
            start, end = _value(where, index, first), _value(where, index, last)
            if start > end:
                raise InvalidInput(
                    f"{where}: range {span!r} runs backwards; write it low to high, or as two "
                    f"ranges ('{first}-{high},{low}-{last}')"
                )
        else:
            start = _value(where, index, span)
            end = high if slash else start  # '5/15' steps from 5 to the end of the range
        values.update(range(start, end + 1, step))
    return values


def _value(where: str, index: int, text: str) -> int:
    names = _NAMES.get(index, {})
    if text.lower() in names:
        return names[text.lower()]
    low, high = _RANGES[index]
    named = f" or {_names_of(index)}" if names else ""
    if not text.isdigit() or not text.isascii():
        raise InvalidInput(f"{where}: {text!r} is not a value; expected {low}-{high}{named}")
    value = int(text)
    if not low <= value <= high:
        raise InvalidInput(f"{where}: {value} is out of range; expected {low}-{high}{named}")
    return value


def _names_of(index: int) -> str:
    names = list(_NAMES[index])
    return f"{names[0]}..{names[-1]}"


def _number(where: str, text: str, what: str) -> int:
    if not text.isdigit() or not text.isascii():
        raise InvalidInput(f"{where}: {what} {text!r} is not a whole number; {_HINT}")
    return int(text)


def _datetime(time_ms: int) -> datetime:
    return datetime.fromtimestamp(time_ms // 1000, tz=UTC)


def _first_of_next_month(at: datetime) -> datetime:
    year, month = (at.year + 1, 1) if at.month == 12 else (at.year, at.month + 1)
    return at.replace(year=year, month=month, day=1, hour=0, minute=0)


def _ms(at: datetime) -> int:
    return int(at.timestamp()) * 1000
