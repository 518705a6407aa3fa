"""Registered models, their versions, signatures, aliases and model URIs.

A model version is immutable content (artifact, signature, flavor, lineage) plus two
mutable pointers that the registry moves under audit: its lifecycle ``stage`` and the
aliases that name it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from loopml.domain.artifacts import ArtifactRef
from loopml.domain.errors import InvalidInput
from loopml.domain.lifecycle import Stage
from loopml.domain.names import validate_identifier
from loopml.domain.tracking import CodeVersion, DatasetRef

COLUMN_TYPES = ("boolean", "integer", "double", "string", "datetime", "binary", "tensor")


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    name: str
    type: str
    nullable: bool = False
    shape: tuple[int, ...] | None = None  # for tensors; -1 is a free dimension

    def __post_init__(self) -> None:
        if self.type not in COLUMN_TYPES:
            raise InvalidInput(
                f"column {self.name!r} has unknown type {self.type!r}; "
                f"expected one of {', '.join(COLUMN_TYPES)}"
            )


@dataclass(frozen=True, slots=True)
class Signature:
    """Input and output schema of a model, inferred from a sample or declared."""

    inputs: tuple[ColumnSpec, ...]
    outputs: tuple[ColumnSpec, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "inputs": [_col_dict(c) for c in self.inputs],
            "outputs": [_col_dict(c) for c in self.outputs],
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Signature:
        def cols(items: object) -> tuple[ColumnSpec, ...]:
            if not isinstance(items, list):
                raise InvalidInput(f"signature columns must be a list, got {items!r}")
            return tuple(
                ColumnSpec(
                    name=str(c["name"]),
                    type=str(c["type"]),
                    nullable=bool(c.get("nullable", False)),
                    shape=tuple(c["shape"]) if c.get("shape") is not None else None,
                )
                for c in items
            )

        return cls(cols(data.get("inputs", [])), cols(data.get("outputs", [])))


def _col_dict(c: ColumnSpec) -> dict[str, object]:
    d: dict[str, object] = {"name": c.name, "type": c.type, "nullable": c.nullable}
    if c.shape is not None:
        d["shape"] = list(c.shape)
    return d


@dataclass(frozen=True, slots=True)
class Model:
    name: str
    created_ms: int
    description: str = ""
    latest_version: int = 0
    aliases: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ModelVersion:
    model: str
    version: int
    flavor: str
    artifact: ArtifactRef
    stage: Stage
    created_ms: int
    signature: Signature | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    run_id: str | None = None
    inputs: tuple[DatasetRef, ...] = ()
    code: CodeVersion | None = None
    description: str = ""
    flavor_info: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    @property
    def uri(self) -> str:
        return f"models:/{self.model}/{self.version}"


_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>[^/@]+)|@(?P<alias>[^/@]+))$")


@dataclass(frozen=True, slots=True)
class ModelUri:
    """``models:/NAME/VERSION``, ``models:/NAME@ALIAS`` or ``models:/NAME/STAGE``."""

    name: str
    version: int | None = None
    alias: str | None = None
    stage: Stage | None = None

    @classmethod
    def parse(cls, text: str) -> ModelUri:
        examples = "expected models:/NAME/VERSION, models:/NAME@ALIAS or models:/NAME/STAGE"
        m = _URI.match(text) if isinstance(text, str) else None
        if not m:
            raise InvalidInput(f"model URI {text!r} is not valid; {examples}")
        name = validate_identifier("model name", m["name"])
        if m["alias"] is not None:
            return cls(name, alias=validate_identifier("alias", m["alias"]))
        ref = m["version"]
        if ref.isdigit():
            version = int(ref)
            if version < 1:
                raise InvalidInput(f"model URI {text!r}: versions start at 1")
            return cls(name, version=version)
        try:
            return cls(name, stage=Stage(ref.lower()))
        except ValueError:
            raise InvalidInput(
                f"model URI {text!r}: {ref!r} is neither a version number nor a stage; {examples}"
            ) from None

    def __str__(self) -> str:
        if self.alias is not None:
            return f"models:/{self.name}@{self.alias}"
        if self.stage is not None:
            return f"models:/{self.name}/{self.stage.value}"
        return f"models:/{self.name}/{self.version}"
