"""Reading a parsed TOML table with errors that name the file, the key path and the fix.

The configuration readers (gates, alerts) share this base: each error says where the bad
value is (``loopml.toml: alerts.rules[2].threshold``), what was expected, what was found
(with its TOML type), and which page documents the format. Standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any, NoReturn

from loopml.domain.errors import InvalidInput
from loopml.domain.metric_directions import closest


def toml_type(value: object) -> str:
    """The TOML name of a parsed value's type, for messages."""
    names = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array"}
    if isinstance(value, datetime):
        return "datetime"
    if isinstance(value, date):
        return "date"
    if isinstance(value, dict):
        return "table"
    return names.get(type(value), type(value).__name__)


class TomlReader:
    """Type checks of a parsed TOML document from ``source_name``, its format in ``docs``."""

    def __init__(self, source_name: str, docs: str) -> None:
        self.source = source_name
        self.docs = docs

    def fail(self, path: str, expected: str, value: object) -> NoReturn:
        raise InvalidInput(
            f"{self.source}: {path} must be {expected}, got {toml_type(value)} {value!r}; "
            f"fix it in the file (the format is described in {self.docs})"
        )

    def error(self, path: str, message: str) -> NoReturn:
        raise InvalidInput(f"{self.source}: {path}: {message}")

    def wrap(self, path: str, build: Any, *args: Any) -> Any:
        """``build(*args)``, with the path and the file name added to its error (a value it
        refuses, or a key its constructor does not take)."""
        try:
            return build(*args)
        except (InvalidInput, TypeError) as exc:
            raise InvalidInput(f"{self.source}: {path}: {exc}") from exc

    def check_keys(self, table: Mapping[str, object], allowed: Sequence[str], path: str) -> None:
        for key in table:
            if key not in allowed:
                close = closest(key, allowed)
                guess = f" (did you mean {close!r}?)" if close else ""
                self.error(
                    path,
                    f"unknown key {key!r}{guess}; expected only {', '.join(allowed)}. "
                    "Remove or rename it",
                )

    def table(self, value: object, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(path, f"a table, written [{path}] or {{ ... }}", value)
        return value
