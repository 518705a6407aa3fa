"""What changed between two dataset versions: columns, rows and statistics."""

from __future__ import annotations

from dataclasses import dataclass, field

from loopml.domain.datasets import DataColumn


@dataclass(frozen=True, slots=True)
class ColumnChange:
    name: str
    change: str  # "added", "removed" or "type"
    before: str | None = None  # the type before, if the column existed
    after: str | None = None


@dataclass(frozen=True, slots=True)
class RowChanges:
    """Rows in ``after`` but not ``before`` (added), the reverse (removed), and, when a key
    is declared, rows whose key is in both but whose values differ (changed)."""

    added: int
    removed: int
    unchanged: int
    changed: int = 0
    key: tuple[str, ...] = ()
    examples: dict[str, tuple[str, ...]] = field(default_factory=dict)  # kind -> keys
    skipped_chunks: int = 0  # chunks both versions share: identical rows, never read


@dataclass(frozen=True, slots=True)
class StatMove:
    """How far one column's statistics moved, in units explained by ``measure``."""

    column: str
    score: float
    measure: str
    detail: str


@dataclass(frozen=True, slots=True)
class DatasetDiff:
    before: str  # NAME@V refs
    after: str
    columns: tuple[ColumnChange, ...]
    rows: RowChanges
    moves: tuple[StatMove, ...] = ()


def column_changes(
    before: tuple[DataColumn, ...], after: tuple[DataColumn, ...]
) -> tuple[ColumnChange, ...]:
    old = {c.name: c.type for c in before}
    new = {c.name: c.type for c in after}
    changes = [ColumnChange(n, "removed", before=t) for n, t in old.items() if n not in new]
    changes += [ColumnChange(n, "added", after=t) for n, t in new.items() if n not in old]
    changes += [
        ColumnChange(n, "type", before=old[n], after=t)
        for n, t in new.items()
        if n in old and old[n] != t
    ]
    return tuple(changes)
