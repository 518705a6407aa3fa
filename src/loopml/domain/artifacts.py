"""Content addresses and references to stored artifacts.

A :class:`Digest` names bytes by their hash and records the algorithm beside it, so that a
future change of algorithm never makes an old hash ambiguous. An :class:`ArtifactRef` ties a
validated logical name (``model/model.skops``) to a digest and a size.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from loopml.domain.errors import InvalidInput
from loopml.domain.names import validate_artifact_name

_HEX = re.compile(r"^[0-9a-f]{64}$")
SUPPORTED_ALGORITHMS = ("blake3",)


@dataclass(frozen=True, slots=True)
class Digest:
    """A content hash: ``algorithm`` and lowercase ``hexdigest`` (64 hex characters)."""

    algorithm: str
    hexdigest: str

    def __post_init__(self) -> None:
        if self.algorithm not in SUPPORTED_ALGORITHMS:
            raise InvalidInput(
                f"unsupported hash algorithm {self.algorithm!r}; expected one of "
                f"{', '.join(SUPPORTED_ALGORITHMS)}"
            )
        if not _HEX.match(self.hexdigest):
            raise InvalidInput(
                f"digest {self.hexdigest!r} is not 64 lowercase hexadecimal characters"
            )

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hexdigest}"

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse ``'blake3:<64 hex>'`` into a :class:`Digest`."""
        algorithm, sep, hexdigest = text.partition(":")
        if not sep:
            raise InvalidInput(f"digest {text!r} must look like 'blake3:<64 hex characters>'")
        return cls(algorithm, hexdigest)

    @property
    def short(self) -> str:
        return f"{self.algorithm}:{self.hexdigest[:12]}"


@dataclass(frozen=True, slots=True)
class ArtifactRef:
    """A named artifact: logical ``name``, content ``digest`` and ``size`` in bytes."""

    name: str
    digest: Digest
    size: int

    def __post_init__(self) -> None:
        validate_artifact_name(self.name)
        if self.size < 0:
            raise InvalidInput(f"artifact size must be >= 0, got {self.size}")
