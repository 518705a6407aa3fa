"""What several benchmarks share: running loopml from bytecode, as an installed loopml runs.

An installed loopml has bytecode (pip compiles it at install; an editable install writes
``__pycache__`` on first import). With ``PYTHONDONTWRITEBYTECODE`` set and no
``__pycache__`` beside the sources, every ``loopml`` process would compile about a
hundred modules at start, which no user pays. Other packages are not affected: pip
compiled them at install.
"""

from __future__ import annotations

import compileall
import importlib.util
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

import loopml

SNAPSHOT_NOTE = (
    "PYTHONDONTWRITEBYTECODE is set and loopml's sources have no __pycache__, so every "
    "loopml process would compile its modules from source at start, which no installed "
    "loopml does: loopml runs from a byte-compiled copy of its package (PYTHONPATH)"
)


def bytecode_snapshot(tmp: Path) -> Path | None:
    """A byte-compiled copy of the loopml package under ``tmp`` (the folder to put on
    PYTHONPATH) when this environment would otherwise compile loopml at every start."""
    package = Path(loopml.__file__).parent
    cached = Path(importlib.util.cache_from_source(str(package / "__init__.py")))
    if not os.environ.get("PYTHONDONTWRITEBYTECODE") or cached.exists():
        return None
    folder = tmp / "pysrc"
    shutil.copytree(package, folder / "loopml", ignore=shutil.ignore_patterns("__pycache__"))
    if not compileall.compile_dir(folder, quiet=1):
        raise SystemExit("could not byte-compile the loopml copy")
    return folder


def with_snapshot(env: Mapping[str, str], snapshot: Path | None) -> dict[str, str]:
    """``env`` with ``snapshot`` first on PYTHONPATH (unchanged without one)."""
    if snapshot is None:
        return dict(env)
    path = os.pathsep.join(filter(None, [str(snapshot), env.get("PYTHONPATH")]))
    return {**env, "PYTHONPATH": path}
