"""Loading a registered model version: the artifact's hash checked, its flavor's safe
format, and the local model cache.

:class:`ModelLoader` is what :meth:`loopml.services.registry.RegistryService.load` runs
once a URI is resolved to a version; a server that reads its routes without the registry
service (:mod:`loopml.bootstrap_lean`) loads through it directly.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from loopml.domain.errors import IntegrityError, PermissionDenied
from loopml.domain.registry import ModelVersion
from loopml.ports import BlobStore, FlavorCatalog, ModelCache

UNTRUSTED_FLAVORS = ("python_function",)
PICKLE_RISK = (
    "a python_function model is stored with cloudpickle, and loading a pickle runs whatever "
    "code the file contains. Pass trusted=True (--trusted) only for models you produced "
    "yourself or audited; prefer a safe flavor (sklearn via skops, xgboost, lightgbm, onnx)"
)


class ModelLoader:
    def __init__(
        self, blobs: BlobStore, flavors: FlavorCatalog, cache: ModelCache | None = None
    ) -> None:
        self.blobs = blobs
        self.flavors = flavors
        self.cache = cache

    def load(self, mv: ModelVersion, *, trusted: bool = False) -> object:
        """Load version ``mv`` after verifying its artifact's hash.

        The loaded model is also kept in the local model cache, when there is one, and
        taken from there next time, once the artifact's hash has been verified again
        (:mod:`loopml.adapters.model_cache`). A trusted load is kept apart: it is found
        by trusted loads only (which also take an entry loaded with default trust)."""
        flavor = self.flavors.get(mv.flavor)
        require_trust(mv.flavor, trusted, f"load {mv.uri}")
        cache = self.cache if flavor.load_cache else None
        with tempfile.TemporaryDirectory(prefix="loopml-load-") as tmp:
            path = Path(tmp) / flavor.file_name
            try:
                self.blobs.get_file(mv.artifact.digest, path)
            except IntegrityError as exc:
                raise IntegrityError(
                    f"artifact {mv.artifact.name!r} of {mv.uri} is corrupt and was not loaded: "
                    f"{exc}"
                ) from exc
            if cache is not None and (cached := _cached(cache, mv, trusted)) is not None:
                return cached
            model = flavor.load(path, trusted=trusted)
        if cache is not None:
            cache.put(mv.artifact.digest, model, trusted=trusted)
        return model

    def block_model(self, mv: ModelVersion, model: object) -> object | None:
        """``model`` (loaded from ``mv``) in the form that predicts a float block of the
        signature's inputs, in order, as it predicts their DataFrame; None if its flavor
        cannot guarantee that (:meth:`loopml.ports.ModelFlavor.block_model`)."""
        if mv.signature is None or not mv.signature.inputs:
            return None
        columns = tuple(column.name for column in mv.signature.inputs)
        return self.flavors.get(mv.flavor).block_model(model, columns)

    def concurrent_predict(self, mv: ModelVersion, model: object) -> bool:
        """Whether ``model`` (loaded from ``mv``) may predict on several threads at once
        (:meth:`loopml.ports.ModelFlavor.concurrent_predict`)."""
        return self.flavors.get(mv.flavor).concurrent_predict(model)


def _cached(cache: ModelCache, mv: ModelVersion, trusted: bool) -> object | None:
    """The cached model of ``mv`` that a load with this trust may use: a trusted load may
    also use the one loaded with default trust (the same object, built from the same file)."""
    digest = mv.artifact.digest
    found = cache.get(digest, trusted=True) if trusted else None
    return found if found is not None else cache.get(digest)


def require_trust(flavor: str, trusted: bool, action: str) -> None:
    """Refuse to ``action`` a model of a flavor that runs code on load, unless trusted."""
    if flavor in UNTRUSTED_FLAVORS and not trusted:
        raise PermissionDenied(f"refusing to {action}: {PICKLE_RISK}")
