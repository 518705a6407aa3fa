"""scikit-learn estimators and pipelines, stored with skops: never with pickle.

A skops file is a ZIP archive describing the object tree as data. Loading rebuilds only
types on an allow-list and never runs pickle ``__reduce__`` code from the file. skops trusts
scikit-learn's public estimators, numpy and builtins by default; anything else must be
trusted explicitly with ``trusted=True`` after auditing the file. That includes custom
classes and, on purpose, scikit-learn's tree internals (``sklearn.tree._tree.Tree``, used
by decision trees and random forests), whose raw index arrays are not bounds-checked, so
a crafted file could crash the process. A file that is not a skops archive (a pickle, a
joblib dump) is refused: this flavor never falls back to pickle.

skops names array files and object ids after memory addresses and stamps the archive with
the time, so the same model would give different bytes on every save. ``save`` renumbers
both in document order and writes the archive with fixed times and sorted entries: the
same fitted model always gives the same file, so the content-addressed store keeps it once
and ``loopml repro`` can compare models byte for byte.
"""

from __future__ import annotations

import copy
import io
import json
import re
import zipfile
from typing import TYPE_CHECKING, Any

from loopml.domain.errors import InvalidInput, PermissionDenied

if TYPE_CHECKING:
    from pathlib import Path

# What skops raises on a file that is not a well-formed skops archive: not a ZIP, no
# schema.json, malformed JSON or an unknown protocol.
_MALFORMED = (zipfile.BadZipFile, KeyError, ValueError, TypeError)


_ARRAY_FILE = re.compile(r"^\d+\.npy$")
_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a ZIP entry can hold


def canonical_skops(data: bytes) -> bytes:
    """The skops archive ``data`` with address-derived names and ids renumbered in
    document order, fixed entry times and sorted entries (see the module docstring)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        schema = json.loads(archive.read("schema.json"))
        ids: dict[int, int] = {}
        files: dict[str, str] = {}

        def renumber(node: Any) -> Any:
            if isinstance(node, dict):
                out: dict[str, Any] = {}
                for key, value in node.items():
                    if key == "__id__" and isinstance(value, int):
                        out[key] = ids.setdefault(value, len(ids) + 1)
                    elif key == "file" and isinstance(value, str) and _ARRAY_FILE.match(value):
                        out[key] = files.setdefault(value, f"{len(files):06d}.npy")
                    else:
                        out[key] = renumber(value)
                return out
            if isinstance(node, list):
                return [renumber(v) for v in node]
            return node

        entries = {"schema.json": json.dumps(renumber(schema), indent=1).encode()}
        for info in archive.infolist():
            if info.filename != "schema.json":
                entries[files.get(info.filename, info.filename)] = archive.read(info)
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as out:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            out.writestr(info, entries[name])
    return sink.getvalue()


# Estimator families whose predict() converts its input to a float array and uses nothing
# else of a DataFrame: linear models, trees and forests, gradient boosting, neighbours,
# SVMs, naive Bayes, discriminant analysis, kernel ridge, MLPs.
_BLOCK_FAMILIES = frozenset(
    f"sklearn.{family}"
    for family in (
        "linear_model",
        "tree",
        "ensemble._forest",
        "ensemble._gb",
        "ensemble._hist_gradient_boosting",
        "neighbors",
        "svm",
        "naive_bayes",
        "discriminant_analysis",
        "kernel_ridge",
        "neural_network",
    )
)


def _in_family(module: str) -> bool:
    """True for a module of :data:`_BLOCK_FAMILIES` or below one."""
    parts = module.split(".")
    return any(".".join(parts[:n]) in _BLOCK_FAMILIES for n in range(2, len(parts) + 1))


_THREAD_SAFE = ("sklearn", "numpy", "scipy")


def _library_only(model: object) -> bool:
    """True if ``model`` and every estimator or function among its parameters (deep)
    comes from scikit-learn, numpy or scipy."""
    parts = [model]
    get_params = getattr(model, "get_params", None)
    if callable(get_params):
        parts += list(get_params(deep=True).values())
    return all(_library_part(part) for part in parts)


def _library_part(part: object) -> bool:
    """Estimators by their class, functions by their module; plain values (numbers,
    text, arrays, lists of steps) hold no code of their own."""
    if hasattr(part, "fit") or hasattr(part, "transform") or hasattr(part, "predict"):
        module = type(part).__module__
    elif callable(part):
        module = getattr(part, "__module__", None) or type(part).__module__
    else:
        return True
    return str(module).split(".")[0] in _THREAD_SAFE


def _comes_from_sklearn(model: object) -> bool:
    """True if any class in the model's MRO is defined in scikit-learn (imports nothing)."""
    return any(
        cls.__module__ == "sklearn" or cls.__module__.startswith("sklearn.")
        for cls in type(model).__mro__
    )


class SklearnFlavor:
    """Saves scikit-learn estimators with ``skops.io.dump`` and loads them with an allow-list."""

    name = "sklearn"
    file_name = "model.skops"
    load_cache = True

    def accepts(self, model: object) -> bool:
        # Checked by module name first so that other objects never import scikit-learn.
        if not _comes_from_sklearn(model):
            return False
        from sklearn.base import BaseEstimator

        return isinstance(model, BaseEstimator)

    def save(self, model: object, path: Path) -> None:
        if not self.accepts(model):
            raise InvalidInput(
                f"the sklearn flavor stores scikit-learn estimators, got "
                f"{type(model).__module__}.{type(model).__qualname__}; pass a fitted "
                f"estimator or Pipeline, or choose another flavor"
            )
        import skops.io as sio

        path.write_bytes(canonical_skops(sio.dumps(model)))

    def load(self, path: Path, *, trusted: bool) -> object:
        import skops.io as sio
        from skops.io.exceptions import UntrustedTypesFoundException

        # Read once, so the types audited are the types loaded.
        data = path.read_bytes()
        try:
            untrusted: list[str] = sio.get_untrusted_types(data=data)
        except _MALFORMED as exc:
            raise InvalidInput(
                f"{path} is not a skops archive ({type(exc).__name__}: {exc}); the sklearn "
                f"flavor loads only skops files and never falls back to pickle. Re-save "
                f"the model with loopml (or skops.io.dump) in an environment you trust"
            ) from exc
        if untrusted and not trusted:
            raise PermissionDenied(
                f"{path} contains types that skops does not trust by default: "
                f"{', '.join(untrusted)}. skops never runs pickle __reduce__ code, but it "
                f"would import these types and rebuild them from the file's data. If you "
                f"produced this file or audited it (skops.io.get_untrusted_types lists the "
                f"same types), load it with trusted=True to trust every type in this file"
            )
        try:
            return sio.loads(data, trusted=untrusted)
        except UntrustedTypesFoundException as exc:
            raise PermissionDenied(
                f"{path} still contains untrusted types after auditing it: {exc}"
            ) from exc
        except _MALFORMED as exc:
            raise InvalidInput(
                f"cannot rebuild the model stored in {path} ({type(exc).__name__}: {exc}); "
                f"the file may be corrupt or written by an incompatible scikit-learn"
            ) from exc

    def concurrent_predict(self, model: object) -> bool:
        """True when every estimator and function in ``model`` is scikit-learn's or
        numpy's own: they only read their fitted state to predict. A custom class, or a
        FunctionTransformer of a user's function, may keep state: one chunk at a time."""
        return _library_only(model)

    def block_model(self, model: object, columns: tuple[str, ...]) -> object | None:
        """A shallow copy of ``model`` without ``feature_names_in_``, for estimators that
        turn a DataFrame into its float block and nothing else (see :data:`_BLOCK_FAMILIES`).

        scikit-learn spends about 0.4 ms per call on a DataFrame (dtype checks, feature
        names through narwhals) before arithmetic that takes microseconds on one row. The
        copy shares every fitted array; it still checks the number of columns. Only a
        model of a plain estimator family (whose parts, such as a forest's trees, are
        fitted on arrays) fitted on exactly ``columns`` in this order gets one; pipelines,
        column transformers and meta-estimators live in other modules."""
        if not _in_family(type(model).__module__):
            return None
        names = getattr(model, "feature_names_in_", None)
        if names is None or tuple(names) != columns:
            return None
        twin = copy.copy(model)
        delattr(twin, "feature_names_in_")
        return twin

    def describe(self, model: object) -> dict[str, str]:
        import sklearn
        import skops

        return {"sklearn": str(sklearn.__version__), "skops": str(skops.__version__)}
