"""Validation of every user-supplied name that ends up in a key, a URI or a path.

Names are checked against an allow-list of characters, not filtered for known-bad ones.
Artifact names are logical: they live in the metadata store only, and the bytes behind them
are addressed by content hash, so no name can ever reach the file system. The checks here
exist so that a bad name is refused early with a message that says why.
"""

from __future__ import annotations

import re

from loopml.domain.errors import InvalidInput, UnsafeName

_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+=@,-]*$")
_IDENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./:@ -]*$")
MAX_NAME = 128
MAX_KEY = 250
MAX_ARTIFACT_NAME = 1024
# Keys already found valid: a training loop logs the same few keys millions of times.
_VALID_KEYS: set[str] = set()
_MAX_REMEMBERED_KEYS = 100_000


def validate_artifact_name(name: object) -> str:
    """Return ``name`` if it is a safe relative artifact name, else raise :class:`UnsafeName`.

    A safe name is one or more ``/``-separated segments of letters, digits and ``_.+=@,-``,
    none of them empty, ``.`` or ``..``; it is never absolute and holds no backslash, NUL,
    control character or drive letter.
    """
    if not isinstance(name, str):
        raise UnsafeName(f"artifact name must be a string, got {type(name).__name__} {name!r}")
    hint = "use a relative name such as 'model/model.skops' or 'plots/residuals.png'"
    if not name:
        raise UnsafeName(f"artifact name is empty; {hint}")
    if len(name) > MAX_ARTIFACT_NAME:
        raise UnsafeName(
            f"artifact name is {len(name)} characters long; at most {MAX_ARTIFACT_NAME} "
            f"are allowed; {hint}"
        )
    reason = _unsafe_reason(name)
    if reason:
        raise UnsafeName(f"artifact name {name!r} is refused: {reason}; {hint}")
    return name


def _unsafe_reason(name: str) -> str | None:
    if "\x00" in name:
        return "it contains a NUL byte"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "it contains a control character"
    if "\\" in name:
        return "it contains a backslash (use '/' to separate folders)"
    if name.startswith("/"):
        return "it is an absolute path"
    if re.match(r"^[A-Za-z]:", name):
        return "it starts with a drive letter"
    for segment in name.split("/"):
        if segment in ("", ".", ".."):
            return f"it has an empty, '.' or '..' path segment ({segment!r})"
        if not _SEGMENT.match(segment):
            return (
                f"segment {segment!r} has characters outside letters, digits and '_.+=@,-' "
                "or starts with one of '.+=@,-'"
            )
    return None


def validate_identifier(kind: str, value: object) -> str:
    """Validate a model, experiment or alias name: letters, digits, ``_.-``, at most 128."""
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{kind} must be a non-empty string, got {value!r}")
    if len(value) > MAX_NAME or not _IDENT.match(value):
        raise InvalidInput(
            f"{kind} {value!r} is not valid: expected 1 to {MAX_NAME} characters of letters, "
            "digits and '_.-', starting with a letter or digit (e.g. 'bike-demand')"
        )
    return value


def is_known_key(value: str) -> bool:
    """True if ``value`` already passed :func:`validate_key` in this process."""
    return value in _VALID_KEYS


def validate_key(kind: str, value: object) -> str:
    """Validate a param, metric or tag key: letters, digits and ``_./:@ -``, at most 250."""
    if isinstance(value, str) and value in _VALID_KEYS:  # the hot path of log_metric
        return value
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{kind} key must be a non-empty string, got {value!r}")
    if len(value) > MAX_KEY or not _KEY.match(value):
        raise InvalidInput(
            f"{kind} key {value!r} is not valid: expected 1 to {MAX_KEY} characters of letters, "
            "digits and '_./:@ -', starting with a letter, digit or '_' (e.g. 'val/rmse')"
        )
    if len(_VALID_KEYS) < _MAX_REMEMBERED_KEYS:
        _VALID_KEYS.add(value)
    return value
