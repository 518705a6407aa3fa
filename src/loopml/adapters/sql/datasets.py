"""Dataset versions in SQL, each new version written with its audit event.

A new version locks its dataset's row first (``FOR UPDATE`` on PostgreSQL; SQLite's write
transaction already holds the database lock), so numbers are assigned without gaps and
two processes adding the same content at once get one version, not two.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, select, update

from loopml.adapters.sql import schema as t
from loopml.adapters.sql.audit import append_event
from loopml.adapters.sql.database import SqlDatabase
from loopml.domain.artifacts import Digest
from loopml.domain.datasets import (
    DataColumn,
    Dataset,
    DatasetVersion,
    dataset_version_created,
    no_dataset,
    no_version,
)
from loopml.domain.paging import Page, decode_token, encode_token, query_fingerprint
from loopml.ports import NewDatasetVersion

_d = t.datasets.c
_v = t.dataset_versions.c


class SqlDatasetStore:
    def __init__(self, db: SqlDatabase) -> None:
        self.db = db

    def create_version(self, new: NewDatasetVersion) -> tuple[DatasetVersion, bool]:
        insert = self.db.upsert
        with self.db.write() as conn:
            conn.execute(
                insert(t.datasets)
                .values(name=new.name, created_ms=new.created_ms, latest_version=0)
                .on_conflict_do_nothing()
            )
            dataset_id, latest = conn.execute(
                select(_d.id, _d.latest_version).where(_d.name == new.name).with_for_update()
            ).one()
            same = conn.execute(
                _select_versions().where(_v.dataset_id == dataset_id, _v.digest == new.digest)
            ).first()
            if same is not None:
                return _version(same), False
            version = new.to_version(int(latest) + 1, int(latest) or None)
            conn.execute(
                update(t.datasets).where(_d.id == dataset_id).values(latest_version=version.version)
            )
            conn.execute(
                t.dataset_versions.insert().values(
                    dataset_id=dataset_id,
                    version=version.version,
                    digest=version.digest,
                    rows=version.rows,
                    columns=json.dumps([[c.name, c.type] for c in version.columns]),
                    manifest=str(version.manifest),
                    size=version.size,
                    profile=None if version.profile is None else str(version.profile),
                    source=version.source,
                    message=version.message,
                    parent=version.parent,
                    author=version.author,
                    created_ms=version.created_ms,
                )
            )
            append_event(conn, dataset_version_created(version), new.created_ms)
        return version, True

    def get_version(self, name: str, version: int | None) -> DatasetVersion:
        with self.db.read() as conn:
            dataset_id, latest = self._dataset(conn, name)
            number = latest if version is None else version
            row = conn.execute(
                _select_versions().where(_v.dataset_id == dataset_id, _v.version == number)
            ).first()
        if row is None:
            raise no_version(name, number)
        return _version(row)

    def find_dataset(self, name: str) -> Dataset | None:
        with self.db.read() as conn:
            row = conn.execute(select(t.datasets).where(_d.name == name)).first()
        return None if row is None else _dataset(row)

    def version_blobs(self) -> list[tuple[str, str | None]]:
        with self.db.read() as conn:
            return [(m, p) for m, p in conn.execute(select(_v.manifest, _v.profile))]

    def list_datasets(self, page_size: int, page_token: str | None) -> Page[Dataset]:
        fp = query_fingerprint("datasets")
        offset = decode_token(page_token, fp)
        with self.db.read() as conn:
            rows = conn.execute(
                select(t.datasets).order_by(_d.name).limit(page_size + 1).offset(offset)
            ).all()
        items = [_dataset(r) for r in rows[:page_size]]
        return Page(items, encode_token(offset + page_size, fp) if len(rows) > page_size else None)

    def list_versions(
        self, name: str, page_size: int, page_token: str | None
    ) -> Page[DatasetVersion]:
        fp = query_fingerprint("dataset_versions", name)
        offset = decode_token(page_token, fp)
        with self.db.read() as conn:
            dataset_id, _ = self._dataset(conn, name)
            rows = conn.execute(
                _select_versions()
                .where(_v.dataset_id == dataset_id)
                .order_by(_v.version.desc())
                .limit(page_size + 1)
                .offset(offset)
            ).all()
        items = [_version(r) for r in rows[:page_size]]
        return Page(items, encode_token(offset + page_size, fp) if len(rows) > page_size else None)

    def _dataset(self, conn: Connection, name: str) -> tuple[int, int]:
        row = conn.execute(select(_d.id, _d.latest_version).where(_d.name == name)).first()
        if row is None or not row.latest_version:
            raise no_dataset(name)
        return int(row.id), int(row.latest_version)


def _select_versions() -> Any:
    return select(t.dataset_versions, _d.name).join(t.datasets, _d.id == _v.dataset_id)


def _dataset(row: Any) -> Dataset:
    return Dataset(row.name, int(row.created_ms), int(row.latest_version))


def _version(row: Any) -> DatasetVersion:
    return DatasetVersion(
        name=row.name,
        version=int(row.version),
        digest=row.digest,
        rows=int(row.rows),
        columns=tuple(DataColumn(n, ty) for n, ty in json.loads(row.columns)),
        manifest=Digest.parse(row.manifest),
        size=int(row.size),
        created_ms=int(row.created_ms),
        author=row.author,
        source=row.source,
        message=row.message,
        parent=None if row.parent is None else int(row.parent),
        profile=None if row.profile is None else Digest.parse(row.profile),
    )
