"""Experiments, runs and their records in SQL.

Metric points arrive in groups (see :mod:`loopml.services.metric_buffer`): one write
transaction stores each run's points as one packed chunk (:mod:`.metric_chunks`) and
upserts the latest value of each series, which is what search filters and orders on.
There a NaN is stored as NULL, because SQLite cannot store NaN, and read back as NaN.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from math import isnan
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.exc import IntegrityError as SqlIntegrityError

from loopml.adapters.sql import schema as t
from loopml.adapters.sql.database import SqlDatabase
from loopml.adapters.sql.mapping import code_from_json, code_to_json, env_from_json, env_to_json
from loopml.adapters.sql.metric_chunks import history, pack
from loopml.adapters.sql.search import apply_order, compile_filter
from loopml.domain.artifacts import ArtifactRef, Digest
from loopml.domain.errors import AlreadyExists, NotFound
from loopml.domain.paging import Page, decode_token, encode_token, query_fingerprint
from loopml.domain.search import parse_filter, parse_order_by
from loopml.domain.tracking import (
    DatasetRef,
    Experiment,
    Metric,
    Run,
    RunStatus,
    check_params_unchanged,
)
from loopml.ports import NewRun

_INSERT_CHUNK = "INSERT INTO metric_chunks (run_pk, points, data)"
_INSERT_LATEST = "INSERT INTO latest_metrics (run_pk, key, value, step, timestamp_ms)"
_LATEST_SLICE = 2_000  # rows per multi-row upsert on SQLite: 10,000 bound parameters
# The newest point of a series wins: highest step, then latest timestamp (same on both
# dialects: row values and ON CONFLICT ... DO UPDATE ... WHERE).
_ON_CONFLICT_LATEST = (
    "ON CONFLICT (run_pk, key) DO UPDATE SET value = excluded.value, step = excluded.step, "
    "timestamp_ms = excluded.timestamp_ms WHERE (excluded.step, excluded.timestamp_ms) >= "
    "(latest_metrics.step, latest_metrics.timestamp_ms)"
)


class SqlTrackingStore:
    def __init__(self, db: SqlDatabase) -> None:
        self.db = db
        self._run_pks: dict[str, int] = {}

    def _insert(self, table: Any) -> Any:
        return self.db.upsert(table)

    # experiments -------------------------------------------------------------------------
    def create_experiment(self, name: str, now_ms: int) -> Experiment:
        try:
            with self.db.write() as conn:
                new_id = conn.execute(
                    t.experiments.insert()
                    .values(name=name, created_ms=now_ms)
                    .returning(t.experiments.c.id)
                ).scalar_one()
        except SqlIntegrityError as exc:
            raise AlreadyExists(
                f"experiment {name!r} already exists; use it, or pick another name"
            ) from exc
        return Experiment(int(new_id), name, now_ms)

    def find_experiment(self, name: str) -> Experiment | None:
        with self.db.read() as conn:
            row = conn.execute(select(t.experiments).where(t.experiments.c.name == name)).first()
        return None if row is None else Experiment(int(row.id), row.name, int(row.created_ms))

    def get_experiment(self, name: str) -> Experiment:
        found = self.find_experiment(name)
        if found is None:
            raise NotFound(
                f"experiment {name!r} does not exist; list them with `loopml experiments list`"
            )
        return found

    def list_experiments(self, page_size: int, page_token: str | None) -> Page[Experiment]:
        fp = query_fingerprint("experiments")
        offset = decode_token(page_token, fp)
        with self.db.read() as conn:
            rows = conn.execute(
                select(t.experiments)
                .order_by(t.experiments.c.name)
                .limit(page_size + 1)
                .offset(offset)
            ).all()
        items = [Experiment(int(r.id), r.name, int(r.created_ms)) for r in rows[:page_size]]
        return Page(items, encode_token(offset + page_size, fp) if len(rows) > page_size else None)

    # runs --------------------------------------------------------------------------------
    def create_run(self, run: NewRun) -> None:
        with self.db.write() as conn:
            conn.execute(
                self._insert(t.experiments)
                .values(name=run.experiment, created_ms=run.start_ms)
                .on_conflict_do_nothing()
            )
            exp_id = conn.execute(
                select(t.experiments.c.id).where(t.experiments.c.name == run.experiment)
            ).scalar_one()
            if run.parent_id is not None:
                self._pk(conn, run.parent_id)
            if conn.execute(select(t.runs.c.pk).where(t.runs.c.id == run.id)).first():
                raise AlreadyExists(f"run {run.id!r} already exists; run ids must be unique")
            pk = conn.execute(
                t.runs.insert()
                .values(
                    id=run.id,
                    experiment_id=exp_id,
                    name=run.name,
                    status=RunStatus.RUNNING.value,
                    start_ms=run.start_ms,
                    parent_id=run.parent_id,
                    code=code_to_json(run.code),
                    environment=env_to_json(run.environment),
                )
                .returning(t.runs.c.pk)
            ).scalar_one()
            if run.tags:
                conn.execute(
                    t.tags.insert(),
                    [{"run_pk": pk, "key": k, "value": v} for k, v in run.tags.items()],
                )
        self._run_pks[run.id] = int(pk)

    def finish_run(self, run_id: str, status: RunStatus, end_ms: int) -> None:
        with self.db.write() as conn:
            result = conn.execute(
                update(t.runs)
                .where(t.runs.c.id == run_id)
                .values(status=status.value, end_ms=end_ms)
            )
            if result.rowcount == 0:
                raise _no_run(run_id)

    def find_run(self, run_id: str) -> Run | None:
        with self.db.read() as conn:
            pk = conn.execute(select(t.runs.c.pk).where(t.runs.c.id == run_id)).scalar()
            return None if pk is None else _load_runs(conn, [int(pk)])[0]

    def get_run(self, run_id: str) -> Run:
        run = self.find_run(run_id)
        if run is None:
            raise _no_run(run_id)
        return run

    def _pk(self, conn: Connection, run_id: str) -> int:
        pk = self._run_pks.get(run_id)
        if pk is None:
            found = conn.execute(select(t.runs.c.pk).where(t.runs.c.id == run_id)).scalar()
            if found is None:
                raise _no_run(run_id)
            pk = self._run_pks[run_id] = int(found)
        return pk

    # records -----------------------------------------------------------------------------
    def log_params(self, run_id: str, params: Mapping[str, str]) -> None:
        if not params:
            return
        with self.db.write() as conn:
            pk = self._pk(conn, run_id)
            conn.execute(
                self._insert(t.params).on_conflict_do_nothing(),
                [{"run_pk": pk, "key": k, "value": v} for k, v in params.items()],
            )
            stored = dict(
                conn.execute(
                    select(t.params.c.key, t.params.c.value).where(
                        t.params.c.run_pk == pk, t.params.c.key.in_(list(params))
                    )
                ).all()
            )
            check_params_unchanged(run_id, stored, params)  # rolls the inserts back

    def log_metrics(self, batches: Sequence[tuple[str, Sequence[Metric]]]) -> None:
        # One packed chunk per run (metric_chunks.py) and one executemany upsert of each
        # series' newest point, over plain tuples: at these volumes, compiling statements
        # or building a dict per row costs more than the database's own work.
        mark = "?" if self.db.is_sqlite else "%s"
        chunks: list[tuple[int, int, bytes]] = []
        latest_rows: list[tuple[int, str, float | None, int, int]] = []
        with self.db.write() as conn:
            for run_id, points in batches:
                if not points:
                    continue
                pk = self._pk(conn, run_id)
                chunks.append((pk, len(points), pack(points)))
                latest: dict[str, Metric] = {}
                for point in points:  # the per-value loop: kept to tuple operations
                    best = latest.get(point[0])
                    if best is None or (point[2], point[3]) >= (best[2], best[3]):
                        latest[point[0]] = point  # ties: the last logged wins
                latest_rows += [  # NaN is stored as NULL (SQLite has no NaN)
                    (pk, k, None if isnan(v) else v, st, ts) for k, (_, v, st, ts) in latest.items()
                ]
            if not chunks:
                return
            conn.exec_driver_sql(f"{_INSERT_CHUNK} VALUES ({mark}, {mark}, {mark})", chunks)
            if self.db.is_sqlite:
                _upsert_latest_sqlite(conn, latest_rows)
            else:
                conn.exec_driver_sql(
                    f"{_INSERT_LATEST} VALUES (%s, %s, %s, %s, %s) {_ON_CONFLICT_LATEST}",
                    latest_rows,
                )

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        self._upsert(run_id, t.tags, ["key"], [{"key": k, "value": v} for k, v in tags.items()])

    def add_artifacts(self, run_id: str, artifacts: Sequence[ArtifactRef]) -> None:
        self._upsert(
            run_id,
            t.run_artifacts,
            ["name"],
            [{"name": a.name, "digest": str(a.digest), "size": a.size} for a in artifacts],
        )

    def add_inputs(self, run_id: str, inputs: Sequence[DatasetRef]) -> None:
        self._upsert(
            run_id,
            t.run_inputs,
            ["dataset", "version"],
            [{"dataset": i.name, "version": i.version, "digest": i.digest} for i in inputs],
        )

    def _upsert(self, run_id: str, table: Any, keys: list[str], rows: list[dict[str, Any]]) -> None:
        unique = list({tuple(r[k] for k in keys): r for r in rows}.values())  # last one wins
        if not unique:
            return
        with self.db.write() as conn:
            pk = self._pk(conn, run_id)
            stmt = self._insert(table).values([{"run_pk": pk, **r} for r in unique])
            updates = {c: stmt.excluded[c] for c in unique[0] if c not in keys}
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[table.c.run_pk, *(table.c[k] for k in keys)], set_=updates
                )
            )

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        c = t.metric_chunks.c
        with self.db.read() as conn:
            pk = self._pk(conn, run_id)
            chunks = conn.execute(select(c.data).where(c.run_pk == pk).order_by(c.id)).scalars()
            return history(chunks, key)

    def referenced_digests(self) -> set[str]:
        with self.db.read() as conn:
            return set(conn.execute(select(t.run_artifacts.c.digest).distinct()).scalars())

    # search ------------------------------------------------------------------------------
    def search_runs(
        self,
        experiments: Sequence[str],
        filter_text: str | None,
        order_by: Sequence[str],
        page_size: int,
        page_token: str | None,
    ) -> Page[Run]:
        expr = parse_filter(filter_text)
        order = parse_order_by(order_by)
        fp = query_fingerprint("runs", tuple(experiments), filter_text, tuple(order_by))
        offset = decode_token(page_token, fp)
        query = select(t.runs.c.pk).select_from(t.runs)
        with self.db.read() as conn:
            if experiments:
                found = dict(
                    conn.execute(
                        select(t.experiments.c.name, t.experiments.c.id).where(
                            t.experiments.c.name.in_(experiments)
                        )
                    ).all()
                )
                missing = [e for e in experiments if e not in found]
                if missing:
                    raise NotFound(f"experiments not found: {', '.join(missing)}")
                query = query.where(t.runs.c.experiment_id.in_(list(found.values())))
            if expr is not None:
                query = query.where(compile_filter(expr))
            query = apply_order(query, order).limit(page_size + 1).offset(offset)
            pks = [int(pk) for pk in conn.execute(query).scalars()]
            runs = _load_runs(conn, pks[:page_size])
        token = encode_token(offset + page_size, fp) if len(pks) > page_size else None
        return Page(runs, token)


# One JSON object of a run's text values; {table} is filled in now, {{keys}} later.
_AGGREGATE = {
    True: "SELECT run_pk, json_group_object(key, value) FROM {table} "
    "WHERE run_pk IN ({{keys}}) GROUP BY run_pk",
    False: "SELECT run_pk, json_object_agg(key, value) FROM {table} "
    "WHERE run_pk IN ({{keys}}) GROUP BY run_pk",
}


def _objects(rows: list[Any]) -> dict[int, dict[str, Any]]:
    """Rows of (run_pk, JSON object): SQLite returns the text, psycopg the parsed value."""
    return {pk: json.loads(obj) if isinstance(obj, str) else obj for pk, obj in rows}


def _upsert_latest_sqlite(conn: Connection, rows: list[tuple[Any, ...]]) -> None:
    """Upsert with multi-row ``VALUES`` statements: SQLite's ``executemany`` steps and
    re-binds a statement per row, which costs about twice the work here (1,000 series:
    about 4 ms against 8 ms). Slices stay well under SQLite's limit of 32,766 bound
    parameters."""
    for first in range(0, len(rows), _LATEST_SLICE):
        part = rows[first : first + _LATEST_SLICE]
        values = ", ".join(["(?, ?, ?, ?, ?)"] * len(part))
        conn.exec_driver_sql(
            f"{_INSERT_LATEST} VALUES {values} {_ON_CONFLICT_LATEST}",
            tuple(x for row in part for x in row),
        )


def _no_run(run_id: str) -> NotFound:
    return NotFound(f"run {run_id!r} does not exist; find run ids with `loopml runs list`")


def _load_runs(conn: Connection, pks: list[int]) -> list[Run]:
    """Load runs with all their records in one query per table, in ``pks`` order.

    This is the cost of every search page, so it reads through the DBAPI cursor with
    ``fetchall`` and inlines the integer keys in the ``IN`` list (they come from our own
    query, and ``int()`` makes any other value impossible): SQLAlchemy's per-row result
    processing and bound-list expansion cost more than SQLite's own work here. Params
    and tags (text) come as one JSON object per run, built by the database: fewer Python
    objects, which matters in a large process where each garbage collection walks a big
    heap. Metrics stay rows: JSON would round doubles to 15 digits on SQLite.
    """
    if not pks:
        return []
    keys = ",".join(str(int(pk)) for pk in pks)
    sqlite = conn.dialect.name == "sqlite"
    cursor = conn.connection.cursor()
    try:

        def fetch(sql: str) -> list[Any]:
            cursor.execute(sql.format(keys=keys))
            return list(cursor.fetchall())

        runs = fetch(
            "SELECT r.pk, r.id, e.name, r.name, r.status, r.start_ms, r.end_ms, r.parent_id, "
            "r.code, r.environment FROM runs r JOIN experiments e ON e.id = r.experiment_id "
            "WHERE r.pk IN ({keys})"
        )
        params = _objects(fetch(_AGGREGATE[sqlite].format(table="params")))
        tags = _objects(fetch(_AGGREGATE[sqlite].format(table="tags")))
        metrics: dict[int, dict[str, float]] = {}
        for pk, key, value in fetch(  # doubles stay exact: not through JSON text
            "SELECT run_pk, key, value FROM latest_metrics WHERE run_pk IN ({keys})"
        ):
            metrics.setdefault(pk, {})[key] = math.nan if value is None else value
        artifacts: dict[int, list[ArtifactRef]] = {pk: [] for pk in pks}
        inputs: dict[int, list[DatasetRef]] = {pk: [] for pk in pks}
        for pk, name, digest, size in fetch(
            "SELECT run_pk, name, digest, size FROM run_artifacts WHERE run_pk IN ({keys}) "
            "ORDER BY name"
        ):
            artifacts[pk].append(ArtifactRef(name, Digest.parse(digest), int(size)))
        for pk, dataset, version, digest in fetch(
            "SELECT run_pk, dataset, version, digest FROM run_inputs WHERE run_pk IN ({keys}) "
            "ORDER BY dataset, version"
        ):
            inputs[pk].append(DatasetRef(dataset, int(version), digest))
    finally:
        cursor.close()
    by_pk = {
        pk: Run(
            id=run_id,
            experiment=experiment,
            name=name,
            status=RunStatus(status),
            start_ms=int(start_ms),
            end_ms=None if end_ms is None else int(end_ms),
            parent_id=parent_id,
            params=params.get(pk, {}),
            metrics=metrics.get(pk, {}),
            tags=tags.get(pk, {}),
            code=code_from_json(code),
            environment=env_from_json(environment),
            artifacts=tuple(artifacts[pk]),
            inputs=tuple(inputs[pk]),
        )
        for (
            pk,
            run_id,
            experiment,
            name,
            status,
            start_ms,
            end_ms,
            parent_id,
            code,
            environment,
        ) in runs
    }
    return [by_pk[pk] for pk in pks]
