"""Reading ground truth from a file: CSV, Parquet or JSON Lines with request ids and labels.

Request ids are read as text (a CSV column of numeric-looking ids stays ``"0042"``). A
row without a request id is an error naming the row, since the label could belong to any
request; a row without a label is skipped and counted (not labelled yet). Every problem is
an :class:`InvalidInput` naming the file, and for a missing column, the columns it has.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from loopml.domain.errors import InvalidInput, NotFound
from loopml.domain.predictions import Feedback

SUFFIXES = (".csv", ".parquet", ".pq", ".jsonl", ".ndjson")


@dataclass(frozen=True, slots=True)
class FeedbackFile:
    items: list[Feedback]
    skipped: int  # rows without a label


def read_feedback_file(
    path: Path, *, id_column: str, label_column: str, time_ms: int
) -> FeedbackFile:
    """The labelled rows of ``path`` as feedback known at ``time_ms``."""
    table = _read(path, id_column)
    for column in (id_column, label_column):
        if column not in table.column_names:
            raise InvalidInput(
                f"{path} has no column {column!r}; its columns are: "
                f"{', '.join(table.column_names) or '(none)'}. Rename the column or name it "
                "with --id-column / --label-column"
            )
    ids = table[id_column]
    if not pa.types.is_string(ids.type):
        try:
            ids = pc.cast(ids, pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise InvalidInput(
                f"{path}: column {id_column!r} holds {ids.type}; expected request ids as text"
            ) from exc
    id_values = ids.to_pylist()
    labels = table[label_column].to_pylist()
    items: list[Feedback] = []
    skipped = 0
    for number, (request_id, label) in enumerate(zip(id_values, labels, strict=True), 1):
        if not request_id:
            raise InvalidInput(
                f"{path}: data row {number} has no {id_column}; every label must name the "
                "request id the server returned"
            )
        if label is None:
            skipped += 1
            continue
        items.append(Feedback(request_id, time_ms, label))
    return FeedbackFile(items, skipped)


def _read(path: Path, id_column: str) -> pa.Table:
    if not path.is_file():
        raise NotFound(f"feedback file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise InvalidInput(
            f"cannot read feedback from {path}: expected one of {', '.join(SUFFIXES)}"
        )
    try:
        if suffix == ".csv":
            options = pacsv.ConvertOptions(
                column_types={id_column: pa.string()}, strings_can_be_null=True
            )
            return pacsv.read_csv(path, convert_options=options)
        if suffix in (".parquet", ".pq"):
            return pq.read_table(path)
        return pajson.read_json(path)
    except (pa.ArrowException, OSError) as exc:
        raise InvalidInput(f"cannot read feedback file {path}: {exc}") from exc
