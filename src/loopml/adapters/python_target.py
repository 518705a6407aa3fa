"""Loading ``FILE.py:NAME`` targets: the user's pipeline, sweep objective or hook.

The file's folder goes first on ``sys.path`` and the file is imported under its own stem
(``pipeline.py`` as ``pipeline``), exactly as ``python -c "import pipeline"`` would, so the
modules it imports beside it resolve and its functions have the same names whether it is
run by the CLI or imported by a script.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from loopml.domain.errors import InvalidInput, NotFound


def load_target(target: str, root: Path, what: str) -> object:
    """The object ``FILE.py:NAME`` names (``what`` says what it should be, for errors).

    The file is looked up from the current folder, then from ``root``."""
    path_text, colon, attr = target.rpartition(":")
    if not colon or not path_text or not attr:
        raise InvalidInput(
            f"{what} {target!r} is not valid; expected FILE.py:NAME, e.g. pipeline.py:pipeline"
        )
    path = Path(path_text).expanduser()
    places = [path] if path.is_absolute() else [Path.cwd() / path, root / path]
    found = next((p.resolve() for p in places if p.is_file()), None)
    if found is None:
        looked = " or ".join(str(p) for p in places)
        raise NotFound(f"{what} file {path_text!r} does not exist (looked for {looked})")
    if found.suffix != ".py" or not found.stem.isidentifier():
        raise InvalidInput(
            f"{what} file {str(found)!r} must be a Python file whose name is a valid module "
            "name (letters, digits and _; ending in .py)"
        )
    folder = str(found.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    loaded = sys.modules.get(found.stem)
    try:
        if loaded is not None and Path(getattr(loaded, "__file__", "") or "").resolve() == found:
            module = loaded
        else:
            sys.modules.pop(found.stem, None)
            module = importlib.import_module(found.stem)
    except Exception as exc:  # the user's file: any error is its own; report it
        raise InvalidInput(f"loading {str(found)!r} failed: {type(exc).__name__}: {exc}") from exc
    if not hasattr(module, attr):
        names = sorted(n for n in vars(module) if not n.startswith("_"))
        raise NotFound(f"{found.name} has no {attr!r}; it defines: {', '.join(names) or 'nothing'}")
    return getattr(module, attr)


def load_function(target: str, root: Path, what: str) -> Callable[..., Any]:
    """:func:`load_target`, refusing anything that cannot be called."""
    found = load_target(target, root, what)
    if not callable(found):
        raise InvalidInput(f"{what} {target!r} is a {type(found).__name__}, not a function")
    return cast("Callable[..., Any]", found)
