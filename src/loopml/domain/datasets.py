"""Datasets and their immutable, content-addressed versions.

A dataset version is a list of Parquet *chunks* in the artifact store, each a run of at
most ``CHUNK_ROWS`` rows of one source file, plus the metadata that makes it usable
without reading the rows: row count, columns, profile, where it came from, its parent.
Chunks are cut at fixed row offsets of each file, so appending rows to a file changes only
its last chunk and adds new ones; every earlier chunk keeps its bytes and its digest, and
the artifact store keeps it once.

The version's ``digest`` hashes its columns and the ordered chunk digests: the same
content added twice has the same digest, which is how ``add`` recognises it and returns
the existing version.

References: ``NAME`` or ``NAME@latest`` is the newest version, ``NAME@3`` version 3.
Object ids in the audit trail are ``datasets:/NAME/VERSION``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from loopml.domain.artifacts import Digest
from loopml.domain.audit import AuditRecord
from loopml.domain.errors import InvalidInput, NotFound
from loopml.domain.names import validate_identifier

TABLE_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}  # file -> reader
CHUNK_ROWS = 131_072  # rows per chunk: small enough to append cheaply, big for Parquet
# Consecutive small files share chunks (a pack): a pack ends after a file whose content hash
# is 0 modulo PACK_EVERY, so that editing, adding or removing a file changes its own pack
# and leaves the others' chunks as they were, or once it holds PACK_BYTES.
PACK_FILE_BYTES = 256 << 10  # files up to this size are packed
PACK_EVERY = 128  # files per pack, on average
PACK_BYTES = 8 << 20


def ends_pack(digest: str, pack_bytes: int) -> bool:
    """Whether a pack ends after a file of hex content hash ``digest``, the pack then
    holding ``pack_bytes`` bytes of files."""
    return pack_bytes >= PACK_BYTES or int(digest[:8], 16) % PACK_EVERY == 0


@dataclass(frozen=True, slots=True)
class DataColumn:
    """A stored column: its name and its Arrow type, as Arrow prints it (``int64``)."""

    name: str
    type: str


@dataclass(frozen=True, slots=True)
class DataChunk:
    """Rows ``[offset, offset + rows)`` of source file ``file``, stored as one Parquet blob;
    for a chunk of a pack of small files, ``file`` is the pack's first file (offset 0) and
    the rows run on through the next files, in path order."""

    digest: Digest
    rows: int
    size: int
    file: str = ""
    offset: int = 0


@dataclass(frozen=True, slots=True)
class SourceFile:
    """A file a version was read from: path relative to the added path, size, content hash.

    ``loopml data status`` compares a folder against these to say what changed."""

    path: str
    size: int
    digest: str


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a version is made of, stored as a JSON blob beside its chunks: a folder of
    100,000 files has 100,000 entries, too many for a metadata row."""

    chunks: tuple[DataChunk, ...]
    files: tuple[SourceFile, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "format": 1,
            "chunks": [[str(c.digest), c.rows, c.size, c.file, c.offset] for c in self.chunks],
            "files": [[f.path, f.size, f.digest] for f in self.files],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        return cls(
            tuple(
                DataChunk(Digest.parse(d), int(r), int(s), str(f), int(o))
                for d, r, s, f, o in data["chunks"]
            ),
            tuple(SourceFile(str(p), int(s), str(d)) for p, s, d in data["files"]),
        )

    @property
    def size(self) -> int:
        """Bytes of the stored chunks, each distinct chunk counted once."""
        return sum({c.digest: c.size for c in self.chunks}.values())


@dataclass(frozen=True, slots=True)
class DatasetVersion:
    """An immutable snapshot; ``manifest`` and ``profile`` are JSON blobs by digest."""

    name: str
    version: int
    digest: str
    rows: int
    columns: tuple[DataColumn, ...]
    manifest: Digest
    size: int
    created_ms: int
    author: str
    source: str = ""
    message: str = ""
    parent: int | None = None
    profile: Digest | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def uri(self) -> str:
        return f"datasets:/{self.name}/{self.version}"


@dataclass(frozen=True, slots=True)
class FolderStatus:
    """What changed in a folder since ``version``: paths relative to the folder."""

    version: int
    added: tuple[str, ...]
    removed: tuple[str, ...]
    modified: tuple[str, ...]
    unchanged: int
    rehashed: int  # files whose stat had changed, so their content was hashed again

    @property
    def clean(self) -> bool:
        return not (self.added or self.removed or self.modified)


@dataclass(frozen=True, slots=True)
class Dataset:
    name: str
    created_ms: int
    latest_version: int


def content_digest(columns: tuple[DataColumn, ...], chunks: tuple[DataChunk, ...]) -> str:
    """The identity of a version's content: its columns and its chunks, in order."""
    canonical = json.dumps(
        {
            "columns": [[c.name, c.type] for c in columns],
            "chunks": [str(c.digest) for c in chunks],
        },
        separators=(",", ":"),
    )
    return "blake2b:" + hashlib.blake2b(canonical.encode(), digest_size=32).hexdigest()


def parse_dataset_ref(text: str) -> tuple[str, int | None]:
    """``'bikes@3'`` -> ``('bikes', 3)``; ``'bikes'``, ``'bikes@latest'`` -> ``('bikes', None)``."""
    name, sep, version = text.partition("@")
    validate_identifier("dataset name", name)
    if not sep or version == "latest":
        return name, None
    if not version.isdigit() or int(version) < 1:
        raise InvalidInput(
            f"dataset reference {text!r} has version {version!r}; expected NAME, "
            "NAME@latest or NAME@N with N a version number from 1 (e.g. 'bikes@3')"
        )
    return name, int(version)


def dataset_version_created(v: DatasetVersion) -> AuditRecord:
    """The audit record of a new version, one definition for every store."""
    return AuditRecord(
        "dataset_version.create",
        "dataset_version",
        v.uri,
        v.author,
        None,
        {"digest": v.digest, "rows": v.rows, "parent": v.parent, "source": v.source},
    )


def no_dataset(name: str) -> NotFound:
    return NotFound(
        f"dataset {name!r} does not exist; list datasets with `loopml data list`, "
        f"or add it with `loopml data add {name} PATH`"
    )


def no_version(name: str, version: int) -> NotFound:
    return NotFound(
        f"dataset {name!r} has no version {version}; list its versions with "
        f"`loopml data log {name}`"
    )
