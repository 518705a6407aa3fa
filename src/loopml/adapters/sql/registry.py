"""Registered models and versions in SQL, each change written with its audit event.

Every write locks the model's row first (``FOR UPDATE`` on PostgreSQL; SQLite's write
transaction already holds the database lock), so version numbers are assigned without
gaps or duplicates and stage moves are compare-and-set.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, delete, func, select, update
from sqlalchemy.exc import IntegrityError as SqlIntegrityError

from loopml.adapters.sql import schema as t
from loopml.adapters.sql.audit import append_event
from loopml.adapters.sql.database import SqlDatabase
from loopml.adapters.sql.mapping import code_to_json, dump, inputs_to_json, version_from_row
from loopml.domain.audit import AuditRecord
from loopml.domain.errors import AlreadyExists, ConcurrentModification, NotFound
from loopml.domain.lifecycle import Stage
from loopml.domain.paging import Page, decode_token, encode_token, query_fingerprint
from loopml.domain.registry import Model, ModelVersion
from loopml.domain.registry_events import model_created, version_created
from loopml.ports import Clock, NewModelVersion, StageChange


class SqlRegistryStore:
    def __init__(self, db: SqlDatabase, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    def create_model(self, name: str, description: str, now_ms: int, actor: str) -> Model:
        try:
            with self.db.write() as conn:
                self._insert_model(conn, name, description, now_ms, actor)
        except SqlIntegrityError as exc:
            raise AlreadyExists(
                f"model {name!r} already exists; register a new version of it instead"
            ) from exc
        return Model(name, now_ms, description)

    def _insert_model(
        self, conn: Connection, name: str, description: str, now_ms: int, actor: str
    ) -> int:
        model_id = conn.execute(
            t.models.insert()
            .values(
                name=name,
                description=description,
                created_ms=now_ms,
                latest_version=0,
            )
            .returning(t.models.c.id)
        ).scalar_one()
        append_event(conn, model_created(name, description, actor), now_ms)
        return int(model_id)

    def find_model(self, name: str) -> Model | None:
        with self.db.read() as conn:
            return self._find_model(conn, name)

    def _find_model(self, conn: Connection, name: str) -> Model | None:
        row = conn.execute(select(t.models).where(t.models.c.name == name)).first()
        if row is None:
            return None
        a = t.model_aliases.c
        aliases = dict(conn.execute(select(a.alias, a.version).where(a.model_id == row.id)).all())
        return Model(
            row.name,
            int(row.created_ms),
            row.description,
            int(row.latest_version),
            {k: int(v) for k, v in aliases.items()},
        )

    def get_model(self, name: str) -> Model:
        model = self.find_model(name)
        if model is None:
            raise _no_model(name)
        return model

    def list_models(self, page_size: int, page_token: str | None) -> Page[Model]:
        fp = query_fingerprint("models")
        offset = decode_token(page_token, fp)
        with self.db.read() as conn:
            names = list(
                conn.execute(
                    select(t.models.c.name)
                    .order_by(t.models.c.name)
                    .limit(page_size + 1)
                    .offset(offset)
                ).scalars()
            )
            items = [m for n in names[:page_size] if (m := self._find_model(conn, n))]
        return Page(items, encode_token(offset + page_size, fp) if len(names) > page_size else None)

    def create_version(self, new: NewModelVersion, actor: str) -> ModelVersion:
        with self.db.write() as conn:
            if (
                new.run_id is not None
                and not conn.execute(select(t.runs.c.pk).where(t.runs.c.id == new.run_id)).first()
            ):
                raise NotFound(
                    f"run {new.run_id!r} does not exist; a model version can only "
                    "point at a run of this workspace"
                )
            model_id = self._lock_model(conn, new.model, must_exist=False)
            if model_id is None:
                model_id = self._insert_model(conn, new.model, "", new.created_ms, actor)
            number = conn.execute(
                update(t.models)
                .where(t.models.c.id == model_id)
                .values(latest_version=t.models.c.latest_version + 1)
                .returning(t.models.c.latest_version)
            ).scalar_one()
            mv = new.to_version(int(number))
            conn.execute(
                t.model_versions.insert().values(
                    model_id=model_id,
                    version=mv.version,
                    flavor=mv.flavor,
                    artifact_name=mv.artifact.name,
                    artifact_digest=str(mv.artifact.digest),
                    artifact_size=mv.artifact.size,
                    stage=mv.stage.value,
                    created_ms=mv.created_ms,
                    signature=dump(mv.signature.to_dict()) if mv.signature else None,
                    metrics=dump(mv.metrics),
                    run_id=mv.run_id,
                    inputs=inputs_to_json(mv.inputs),
                    code=code_to_json(mv.code),
                    description=mv.description,
                    flavor_info=dump(mv.flavor_info),
                )
            )
            append_event(conn, version_created(mv, actor), new.created_ms)
        return mv

    def referenced_digests(self) -> set[str]:
        with self.db.read() as conn:
            c = t.model_versions.c
            return set(conn.execute(select(c.artifact_digest).distinct()).scalars())

    def _lock_model(self, conn: Connection, name: str, must_exist: bool = True) -> int | None:
        model_id = conn.execute(
            select(t.models.c.id).where(t.models.c.name == name).with_for_update()
        ).scalar()
        if model_id is None and must_exist:
            raise _no_model(name)
        return None if model_id is None else int(model_id)

    def get_version(self, name: str, version: int) -> ModelVersion:
        with self.db.read() as conn:
            found = self._versions(conn, name, version=version)
        if not found:
            raise NotFound(
                f"model {name!r} has no version {version}; list its versions with "
                f"`loopml models show {name}`"
            )
        return found[0]

    def list_versions(
        self, name: str, stage: Stage | None, page_size: int, page_token: str | None
    ) -> Page[ModelVersion]:
        fp = query_fingerprint("versions", name, stage)
        offset = decode_token(page_token, fp)
        with self.db.read() as conn:
            items = self._versions(conn, name, stage=stage, limit=page_size + 1, offset=offset)
        token = encode_token(offset + page_size, fp) if len(items) > page_size else None
        return Page(items[:page_size], token)

    def _versions(
        self,
        conn: Connection,
        name: str,
        *,
        version: int | None = None,
        stage: Stage | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[ModelVersion]:
        model_id = conn.execute(select(t.models.c.id).where(t.models.c.name == name)).scalar()
        if model_id is None:
            raise _no_model(name)
        v = t.model_versions.c
        query: Any = select(t.model_versions).where(v.model_id == model_id)
        if version is not None:
            query = query.where(v.version == version)
        if stage is not None:
            query = query.where(v.stage == stage.value)
        query = query.order_by(v.version.desc()).offset(offset)
        if limit is not None:
            query = query.limit(limit)
        rows = conn.execute(query).mappings().all()
        a = t.model_aliases.c
        aliases: dict[int, list[str]] = defaultdict(list)
        for alias, number in conn.execute(select(a.alias, a.version).where(a.model_id == model_id)):
            aliases[int(number)].append(alias)
        return [version_from_row(r, name, aliases[int(r["version"])]) for r in rows]

    def set_stages(
        self,
        name: str,
        changes: Sequence[StageChange],
        exclusive: Stage | None,
        audits: Sequence[AuditRecord],
    ) -> None:
        v = t.model_versions.c
        with self.db.write() as conn:
            model_id = self._lock_model(conn, name)
            for change in changes:
                result = conn.execute(
                    update(t.model_versions)
                    .where(
                        v.model_id == model_id,
                        v.version == change.version,
                        v.stage == change.expected.value,
                    )
                    .values(stage=change.target.value)
                )
                if result.rowcount != 1:
                    raise ConcurrentModification(
                        f"models:/{name}/{change.version} is no longer in "
                        f"{change.expected.value} (someone changed it meanwhile); "
                        "look at it again and retry"
                    )
            if exclusive is not None:
                count = conn.execute(
                    select(func.count())
                    .select_from(t.model_versions)
                    .where(v.model_id == model_id, v.stage == exclusive.value)
                ).scalar_one()
                if count > 1:
                    raise ConcurrentModification(
                        f"model {name!r} would have {count} versions in {exclusive.value}; "
                        "another promotion happened meanwhile. Look again and retry"
                    )
            for record in audits:
                append_event(conn, record, self.clock.now_ms())

    def set_alias(self, name: str, alias: str, version: int, audit: AuditRecord) -> None:
        with self.db.write() as conn:
            model_id = self._lock_model(conn, name)
            insert = self.db.upsert
            stmt = insert(t.model_aliases).values(model_id=model_id, alias=alias, version=version)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[t.model_aliases.c.model_id, t.model_aliases.c.alias],
                    set_={"version": stmt.excluded.version},
                )
            )
            append_event(conn, audit, self.clock.now_ms())

    def delete_alias(self, name: str, alias: str, audit: AuditRecord) -> None:
        a = t.model_aliases.c
        with self.db.write() as conn:
            model_id = self._lock_model(conn, name)
            result = conn.execute(
                delete(t.model_aliases).where(a.model_id == model_id, a.alias == alias)
            )
            if result.rowcount == 0:
                raise NotFound(f"model {name!r} has no alias {alias!r}")
            append_event(conn, audit, self.clock.now_ms())


def _no_model(name: str) -> NotFound:
    return NotFound(f"model {name!r} does not exist; list models with `loopml models list`")
