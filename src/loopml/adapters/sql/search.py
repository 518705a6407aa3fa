"""Compile the run search language (:mod:`loopml.domain.search`) to SQL.

Conditions on metrics, params and tags become ``EXISTS`` sub-queries on their tables, so
a run matches only if it has the key; each is served by a ``(key, value)`` index. Metric
conditions read ``latest_metrics``: the last value of each series, by step then time.
Order keys become outer joins, with runs lacking the key sorted last.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Select, and_, exists, func, literal, not_, or_, select

from loopml.adapters.sql import schema as t
from loopml.domain.search import And, Comparison, Expr, Or, OrderKey

if TYPE_CHECKING:
    from sqlalchemy.sql.elements import ColumnClause

_ATTR_COLUMNS = {
    "status": t.runs.c.status,
    "name": t.runs.c.name,
    "run_id": t.runs.c.id,
    "parent_id": t.runs.c.parent_id,
    "start_time": t.runs.c.start_ms,
    "end_time": t.runs.c.end_ms,
}
_KEY_TABLES = {"metric": t.latest_metrics, "param": t.params, "tag": t.tags}


def compile_filter(expr: Expr) -> ColumnElement[bool]:
    if isinstance(expr, And):
        return and_(*(compile_filter(e) for e in expr.items))
    if isinstance(expr, Or):
        return or_(*(compile_filter(e) for e in expr.items))
    return _comparison(expr)


def _comparison(c: Comparison) -> ColumnElement[bool]:
    if c.kind == "attr":
        column: Any = _ATTR_COLUMNS[c.key]
        value = c.value
        if c.key == "status":
            value = (
                tuple(str(v).lower() for v in value)
                if isinstance(value, tuple)
                else str(value).lower()
            )
        return _apply(column, c.op, value)
    table = _KEY_TABLES[c.kind].alias()
    return exists(
        select(literal(1)).where(
            table.c.run_pk == t.runs.c.pk,
            table.c.key == c.key,
            _apply(table.c.value, c.op, c.value),
        )
    )


def _apply(column: Any, op: str, value: Any) -> ColumnElement[bool]:
    if op == "=":
        return column == value  # type: ignore[no-any-return]
    if op == "!=":
        return column != value  # type: ignore[no-any-return]
    if op == "<":
        return column < value  # type: ignore[no-any-return]
    if op == "<=":
        return column <= value  # type: ignore[no-any-return]
    if op == ">":
        return column > value  # type: ignore[no-any-return]
    if op == ">=":
        return column >= value  # type: ignore[no-any-return]
    if op == "like":
        return column.like(value, escape="\\")  # type: ignore[no-any-return]
    if op == "ilike":
        matched: ColumnElement[bool] = func.lower(column).like(
            func.lower(literal(value)), escape="\\"
        )
        return matched
    if op == "in":
        return column.in_(list(value))  # type: ignore[no-any-return]
    if op == "not in":
        excluded: ColumnElement[bool] = not_(column.in_(list(value)))
        return excluded
    raise AssertionError(f"operator {op!r} passed the parser but has no SQL")


def apply_order(query: Select[Any], order: Sequence[OrderKey]) -> Select[Any]:
    clauses: list[Any] = []
    for i, key in enumerate(order):
        if key.kind == "attr":
            column: ColumnClause[Any] | Any = _ATTR_COLUMNS[key.key]
        else:
            table = _KEY_TABLES[key.kind].alias(f"o{i}")
            query = query.outerjoin(
                table, and_(table.c.run_pk == t.runs.c.pk, table.c.key == key.key)
            )
            column = table.c.value
        clauses += [column.is_(None), column.desc() if key.descending else column.asc()]
    clauses += [t.runs.c.start_ms.desc(), t.runs.c.pk.desc()]
    return query.order_by(*clauses)
