"""The audit records of registry changes: one definition of each payload, for every store.

Object ids are URIs: ``models:/NAME`` for a model, ``models:/NAME/VERSION`` for a version,
``models:/NAME@ALIAS`` for an alias, so ``loopml audit log --object models:/NAME`` finds a
model's whole history.
"""

from __future__ import annotations

from loopml.domain.audit import AuditRecord
from loopml.domain.lifecycle import Stage
from loopml.domain.registry import ModelVersion


def model_created(name: str, description: str, actor: str) -> AuditRecord:
    return AuditRecord(
        "model.create",
        "model",
        f"models:/{name}",
        actor,
        None,
        {"name": name, "description": description},
    )


def version_created(mv: ModelVersion, actor: str) -> AuditRecord:
    return AuditRecord(
        "model_version.create",
        "model_version",
        mv.uri,
        actor,
        None,
        {
            "flavor": mv.flavor,
            "artifact": str(mv.artifact.digest),
            "stage": mv.stage.value,
            "run_id": mv.run_id,
        },
    )


def stage_changed(
    name: str, version: int, before: Stage, after: Stage, actor: str, reason: str | None
) -> AuditRecord:
    return AuditRecord(
        "model_version.stage",
        "model_version",
        f"models:/{name}/{version}",
        actor,
        {"stage": before.value},
        {"stage": after.value},
        reason,
    )


def alias_set(name: str, alias: str, before: int | None, version: int, actor: str) -> AuditRecord:
    return AuditRecord(
        "alias.set",
        "alias",
        f"models:/{name}@{alias}",
        actor,
        None if before is None else {"version": before},
        {"version": version},
    )


def alias_deleted(name: str, alias: str, version: int, actor: str) -> AuditRecord:
    return AuditRecord(
        "alias.delete", "alias", f"models:/{name}@{alias}", actor, {"version": version}, None
    )
