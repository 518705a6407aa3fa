"""The data linter as a use case: infer a schema from a version, validate new data.

Both stream: a version is read chunk by chunk, a file or folder batch by batch, so data
larger than memory is inferred and validated in bounded memory (the duplicate-key check
keeps 8 bytes per row; see :mod:`loopml.stats.keys`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from loopml.domain.data_schema import DataSchema
from loopml.domain.errors import InvalidInput, NotFound
from loopml.domain.schema_file import schema_from_toml
from loopml.domain.validation_report import ValidationReport
from loopml.ports import TableReader
from loopml.services.datasets import DatasetService
from loopml.stats.schema import DEFAULT_TOLERANCE, infer_schema
from loopml.stats.validate import validate


class ValidationService:
    def __init__(self, datasets: DatasetService, reader: TableReader) -> None:
        self.datasets = datasets
        self.reader = reader

    def infer(
        self,
        ref: str,
        label: str | None = None,
        key: list[str] | None = None,
        tolerance: float = DEFAULT_TOLERANCE,
    ) -> DataSchema:
        """A schema that version ``ref`` passes, loosened by ``tolerance``."""
        version = self.datasets.get(ref)
        return infer_schema(
            self.datasets.batches(version), label=label, key=key, tolerance=tolerance
        )

    def validate_path(
        self, path: Path, schema: DataSchema, environment: str = "training"
    ) -> ValidationReport:
        """Check every file at ``path`` (a file or a folder) against ``schema``."""
        files = self.reader.files(path)
        return self.validate_batches((b for f in files for b in f.batches()), schema, environment)

    def validate_batches(
        self, batches: Iterator[Any] | Any, schema: DataSchema, environment: str = "training"
    ) -> ValidationReport:
        return validate(batches, schema, environment=environment)


def read_schema(path: Path) -> DataSchema:
    """Load a schema file written by ``loopml data schema`` (and maybe edited)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise NotFound(
            f"schema file {path} does not exist; write one with "
            "`loopml data schema NAME@VERSION -o FILE`"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read schema file {path}: {exc}") from exc
    return schema_from_toml(text, str(path))
