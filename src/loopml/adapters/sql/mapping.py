"""Conversions between domain values and column values (JSON text, digests, stages)."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from typing import Any

from loopml.domain.artifacts import ArtifactRef, Digest
from loopml.domain.audit import AuditEvent, canonical_json
from loopml.domain.lifecycle import Stage
from loopml.domain.registry import ModelVersion, Signature
from loopml.domain.tracking import CodeVersion, DatasetRef, EnvironmentInfo


def dump(value: object) -> str | None:
    return None if value is None else canonical_json(value)


def load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def code_to_json(code: CodeVersion | None) -> str | None:
    if code is None:
        return None
    return dump(
        {
            "commit": code.commit,
            "branch": code.branch,
            "dirty": code.dirty,
            "diff_hash": code.diff_hash,
            "repo_path": code.repo_path,
        }
    )


@functools.lru_cache(maxsize=256)  # runs of one process share the same text
def code_from_json(text: str | None) -> CodeVersion | None:
    data = load(text)
    if data is None:
        return None
    return CodeVersion(
        data["commit"],
        data.get("branch"),
        bool(data["dirty"]),
        data.get("diff_hash"),
        data.get("repo_path"),
    )


def env_to_json(env: EnvironmentInfo | None) -> str | None:
    if env is None:
        return None
    return dump({"python": env.python, "platform": env.platform, "packages": dict(env.packages)})


@functools.lru_cache(maxsize=256)
def env_from_json(text: str | None) -> EnvironmentInfo | None:
    data = load(text)
    if data is None:
        return None
    return EnvironmentInfo(
        data["python"], data["platform"], tuple(sorted(data.get("packages", {}).items()))
    )


def inputs_to_json(inputs: Sequence[DatasetRef]) -> str:
    return canonical_json(
        [{"name": i.name, "version": i.version, "digest": i.digest} for i in inputs]
    )


def inputs_from_json(text: str) -> tuple[DatasetRef, ...]:
    return tuple(
        DatasetRef(i["name"], int(i["version"]), i.get("digest")) for i in json.loads(text)
    )


def version_from_row(row: Mapping[Any, Any], model: str, aliases: Sequence[str]) -> ModelVersion:
    signature = load(row["signature"])
    return ModelVersion(
        model=model,
        version=int(row["version"]),
        flavor=row["flavor"],
        artifact=ArtifactRef(
            row["artifact_name"], Digest.parse(row["artifact_digest"]), int(row["artifact_size"])
        ),
        stage=Stage(row["stage"]),
        created_ms=int(row["created_ms"]),
        signature=None if signature is None else Signature.from_dict(signature),
        metrics={k: float(v) for k, v in json.loads(row["metrics"]).items()},
        run_id=row["run_id"],
        inputs=inputs_from_json(row["inputs"]),
        code=code_from_json(row["code"]),
        description=row["description"],
        flavor_info=dict(json.loads(row["flavor_info"])),
        aliases=tuple(sorted(aliases)),
    )


def event_from_row(row: Mapping[Any, Any]) -> AuditEvent:
    """Map a stored event leniently: a value edited into something unreadable is kept as
    it is, so the hash check reports that event instead of the reader crashing."""
    return AuditEvent(
        seq=int(row["seq"]),
        time_ms=_lenient_int(row["time_ms"]),
        actor=row["actor"],
        action=row["action"],
        object_type=row["object_type"],
        object_id=row["object_id"],
        before=_lenient_json(row["before"]),
        after=_lenient_json(row["after"]),
        reason=row["reason"],
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )


def _lenient_json(text: str | None) -> Any:
    try:
        return load(text)
    except ValueError:
        return {"unreadable": text}


def _lenient_int(value: object) -> int:
    try:
        return int(value)  # type: ignore[call-overload, no-any-return]
    except (TypeError, ValueError):
        return -1
