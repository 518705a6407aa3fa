"""The DatasetStore contract, run against memory, SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses

import pytest

from loopml.domain.artifacts import Digest
from loopml.domain.datasets import DataColumn
from loopml.domain.errors import InvalidInput, NotFound
from loopml.ports import AuditLog, DatasetStore, NewDatasetVersion

_COLUMNS = (DataColumn("hr", "int64"), DataColumn("cnt", "double"))


def _new(name: str = "bikes", digest: str = "blake2b:aa", rows: int = 10) -> NewDatasetVersion:
    return NewDatasetVersion(
        name=name,
        digest=digest,
        rows=rows,
        columns=_COLUMNS,
        manifest=Digest("blake3", "1" * 64),
        size=123,
        created_ms=1_000,
        author="ana",
        source="data/bikes.csv",
        message="first",
        profile=Digest("blake3", "2" * 64),
    )


def test_versions_are_numbered_with_their_parent_and_read_back_whole(
    datasets: DatasetStore,
) -> None:
    first, created = datasets.create_version(_new())
    assert created
    assert (first.version, first.parent) == (1, None)
    second, _ = datasets.create_version(_new(digest="blake2b:bb", rows=12))
    assert (second.version, second.parent) == (2, 1)
    assert datasets.get_version("bikes", 1) == first
    assert datasets.get_version("bikes", None) == second
    assert second.columns == _COLUMNS
    assert second.profile == Digest("blake3", "2" * 64)
    assert (second.rows, second.size, second.author, second.source) == (
        12,
        123,
        "ana",
        "data/bikes.csv",
    )


def test_the_same_content_returns_the_existing_version_and_writes_nothing(
    datasets: DatasetStore, audit: AuditLog
) -> None:
    first, _ = datasets.create_version(_new())
    datasets.create_version(_new(digest="blake2b:bb"))
    before = audit.head()
    again, created = datasets.create_version(dataclasses.replace(_new(), message="again"))
    assert not created
    assert again == first
    assert audit.head() == before
    assert datasets.get_version("bikes", None).version == 2


def test_each_new_version_is_audited(datasets: DatasetStore, audit: AuditLog) -> None:
    datasets.create_version(_new())
    [event] = audit.list_events("datasets:/bikes/1", 10, None)
    assert (event.action, event.actor) == ("dataset_version.create", "ana")
    assert event.after is not None and event.after["digest"] == "blake2b:aa"


def test_missing_datasets_and_versions_say_what_to_run(datasets: DatasetStore) -> None:
    with pytest.raises(NotFound, match=r"dataset 'nope' does not exist.*loopml data list"):
        datasets.get_version("nope", None)
    datasets.create_version(_new())
    with pytest.raises(NotFound, match=r"'bikes' has no version 7.*loopml data log bikes"):
        datasets.get_version("bikes", 7)
    assert datasets.find_dataset("nope") is None
    found = datasets.find_dataset("bikes")
    assert found is not None and found.latest_version == 1


def test_listings_page_in_order(datasets: DatasetStore) -> None:
    for name in ("c", "a", "b"):
        datasets.create_version(_new(name=name))
    for digest in ("blake2b:bb", "blake2b:cc"):
        datasets.create_version(_new(name="a", digest=digest))
    page = datasets.list_datasets(2, None)
    assert [d.name for d in page] == ["a", "b"]
    assert [d.name for d in datasets.list_datasets(2, page.next_page_token)] == ["c"]
    versions = datasets.list_versions("a", 2, None)
    assert [v.version for v in versions] == [3, 2]
    assert [v.version for v in datasets.list_versions("a", 2, versions.next_page_token)] == [1]
    with pytest.raises(InvalidInput):
        datasets.list_versions("b", 2, versions.next_page_token)  # a token of another query


def test_version_blobs_name_each_manifest_and_profile(datasets: DatasetStore) -> None:
    datasets.create_version(_new())
    datasets.create_version(dataclasses.replace(_new(digest="blake2b:bb"), profile=None))
    assert sorted(datasets.version_blobs(), key=str) == sorted(
        [
            (str(Digest("blake3", "1" * 64)), str(Digest("blake3", "2" * 64))),
            (str(Digest("blake3", "1" * 64)), None),
        ],
        key=str,
    )
