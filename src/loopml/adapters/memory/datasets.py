"""The in-memory dataset store, sharing :class:`MemoryDatabase` with the other stores."""

from __future__ import annotations

from typing import TYPE_CHECKING

from loopml.adapters.memory.stores import MemoryDatabase, page_of
from loopml.domain.datasets import (
    Dataset,
    DatasetVersion,
    dataset_version_created,
    no_dataset,
    no_version,
)
from loopml.domain.paging import Page, decode_token, query_fingerprint

if TYPE_CHECKING:
    from loopml.ports import NewDatasetVersion


class MemoryDatasetStore:
    def __init__(self, db: MemoryDatabase) -> None:
        self.db = db

    def create_version(self, new: NewDatasetVersion) -> tuple[DatasetVersion, bool]:
        with self.db.lock:
            versions = self.db.datasets.setdefault(new.name, [])
            for existing in versions:
                if existing.digest == new.digest:
                    return existing, False
            version = new.to_version(len(versions) + 1, versions[-1].version if versions else None)
            versions.append(version)
            self.db.append_event(dataset_version_created(version), new.created_ms)
            return version, True

    def get_version(self, name: str, version: int | None) -> DatasetVersion:
        with self.db.lock:
            versions = self._versions(name)
            if version is None:
                return versions[-1]
            if not 1 <= version <= len(versions):
                raise no_version(name, version)
            return versions[version - 1]

    def find_dataset(self, name: str) -> Dataset | None:
        with self.db.lock:
            versions = self.db.datasets.get(name)
            if not versions:
                return None
            return Dataset(name, versions[0].created_ms, versions[-1].version)

    def version_blobs(self) -> list[tuple[str, str | None]]:
        with self.db.lock:
            versions = [v for vs in self.db.datasets.values() for v in vs]
            return [
                (str(v.manifest), None if v.profile is None else str(v.profile)) for v in versions
            ]

    def list_datasets(self, page_size: int, page_token: str | None) -> Page[Dataset]:
        with self.db.lock:
            fp = query_fingerprint("datasets")
            names = sorted(self.db.datasets)
            items = [d for d in (self.find_dataset(n) for n in names) if d is not None]
            return page_of(items, page_size, decode_token(page_token, fp), fp)

    def list_versions(
        self, name: str, page_size: int, page_token: str | None
    ) -> Page[DatasetVersion]:
        with self.db.lock:
            fp = query_fingerprint("dataset_versions", name)
            items = self._versions(name)[::-1]
            return page_of(items, page_size, decode_token(page_token, fp), fp)

    def _versions(self, name: str) -> list[DatasetVersion]:
        versions = self.db.datasets.get(name)
        if not versions:
            raise no_dataset(name)
        return versions
