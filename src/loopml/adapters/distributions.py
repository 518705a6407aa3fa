"""The Python distributions installed on ``sys.path``, read from the names of their
``*.dist-info`` / ``*.egg-info`` folders, without importing any package or parsing any
metadata file: one listing of each ``sys.path`` folder.

The model cache fingerprints the environment with them (names and modification times);
a run's provenance reads package versions from them.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator


def distribution_folders(path: list[str] | None = None) -> Iterator[os.DirEntry[str]]:
    """Each ``*.dist-info`` and ``*.egg-info`` folder on ``path`` (``sys.path``), in path
    order; folders that cannot be listed are skipped."""
    for entry in sys.path if path is None else path:
        try:
            with os.scandir(entry or ".") as listing:
                found = [e for e in listing if e.name.endswith((".dist-info", ".egg-info"))]
        except OSError:
            continue
        yield from found


def installed_versions(path: list[str] | None = None) -> dict[str, str | None]:
    """Each distribution on ``path`` (``sys.path``) by normalised name: its version as
    its folder names it, or None when the name holds none; the first folder of a name
    wins, as for ``importlib.metadata``."""
    found: dict[str, str | None] = {}
    for folder in distribution_folders(path):
        # name-version.dist-info; name-version-py3.11.egg-info; name.egg-info
        name, dash, rest = folder.name.rpartition(".")[0].partition("-")
        version = rest.split("-")[0] if dash else None
        found.setdefault(normalized(name), version or None)
    return found


def normalized(name: str) -> str:
    """A distribution name as packaging compares it (PEP 503): lowercase, runs of
    ``-``, ``_`` and ``.`` as one ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()
