"""Arbitrary Python models, stored with cloudpickle: the one flavor that can run code.

Unpickling a file runs whatever code the file names, so this flavor is never picked by
detection; callers ask for it by name, and the registry service requires explicit trust
when registering. :meth:`PythonFunctionFlavor.load` refuses before reading a single byte
unless ``trusted=True``: pass it only for files you produced or audited. Pickles also tie a
model to the Python version and the modules that defined it, which ``describe`` records.
"""

from __future__ import annotations

import pickle
import platform
from typing import TYPE_CHECKING

from loopml.domain.errors import InvalidInput, PermissionDenied

if TYPE_CHECKING:
    from pathlib import Path


class PythonFunctionFlavor:
    """Saves any callable, or object with a callable ``predict``, with cloudpickle."""

    name = "python_function"
    file_name = "model.cloudpickle"
    load_cache = False

    def accepts(self, model: object) -> bool:
        return callable(getattr(model, "predict", None)) or callable(model)

    def save(self, model: object, path: Path) -> None:
        if not self.accepts(model):
            raise InvalidInput(
                f"the python_function flavor stores callables or objects with a callable "
                f"predict(), got {type(model).__module__}.{type(model).__qualname__}"
            )
        import cloudpickle

        try:
            data = cloudpickle.dumps(model)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise InvalidInput(
                f"cannot pickle the {type(model).__qualname__} model: {exc}; models holding "
                f"locks, open files, sockets or database connections cannot be stored"
            ) from exc
        path.write_bytes(data)

    def load(self, path: Path, *, trusted: bool) -> object:
        if not trusted:
            # Refuse before opening the file: not one byte of it is read untrusted.
            raise PermissionDenied(
                f"refusing to load {path}: python_function models are pickles, and "
                f"unpickling runs arbitrary code chosen by whoever wrote the file. Pass "
                f"trusted=True only for files you produced or audited"
            )
        import cloudpickle

        data = path.read_bytes()
        try:
            return cloudpickle.loads(data)
        except (pickle.UnpicklingError, EOFError) as exc:
            raise InvalidInput(f"{path} is not a valid pickle: {exc}") from exc
        except (ImportError, AttributeError) as exc:
            raise InvalidInput(
                f"cannot load {path}: {exc}; the modules and classes the model was defined "
                f"with must be importable here"
            ) from exc

    def concurrent_predict(self, model: object) -> bool:
        return False  # user code: thread-safety unknown

    def block_model(self, model: object, columns: tuple[str, ...]) -> object | None:
        # arbitrary Python code: nothing is known about what it does with the frame.
        return None

    def describe(self, model: object) -> dict[str, str]:
        import cloudpickle

        return {
            "cloudpickle": str(cloudpickle.__version__),
            "python": platform.python_version(),
            "python_class": f"{type(model).__module__}.{type(model).__qualname__}",
        }
