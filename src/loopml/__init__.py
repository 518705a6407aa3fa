"""loopml: the loop of a model's life in one package.

    import loopml

    with loopml.start_run(experiment="bikes") as run:
        run.log_params({"alpha": 0.1})
        run.log_metric("rmse", 41.2)
        loopml.register_model(model, "bike-demand", sample=X_train)

Names are imported lazily, so ``import loopml`` stays fast: the database and model
libraries load only when first used.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Client": "loopml.client",
    "ActiveRun": "loopml.client",
    "start_run": "loopml.fluent",
    "active_run": "loopml.fluent",
    "get_client": "loopml.fluent",
    "set_client": "loopml.fluent",
    "log_param": "loopml.fluent",
    "log_params": "loopml.fluent",
    "log_metric": "loopml.fluent",
    "log_metrics": "loopml.fluent",
    "set_tags": "loopml.fluent",
    "log_artifact": "loopml.fluent",
    "log_dataset": "loopml.fluent",
    "register_model": "loopml.fluent",
    "load_model": "loopml.fluent",
    "search_runs": "loopml.fluent",
    "sweep": "loopml.fluent",
    "run_pipeline": "loopml.fluent",
    "step": "loopml.domain.pipelines",
    "Pipeline": "loopml.domain.pipelines",
    "flush": "loopml.fluent",
    "Stage": "loopml.domain.lifecycle",
    "RunStatus": "loopml.domain.tracking",
    "Signature": "loopml.domain.registry",
    "ColumnSpec": "loopml.domain.registry",
    "DatasetRef": "loopml.domain.tracking",
    "LoopmlError": "loopml.domain.errors",
    "NotFound": "loopml.domain.errors",
    "AlreadyExists": "loopml.domain.errors",
    "InvalidInput": "loopml.domain.errors",
    "InvalidState": "loopml.domain.errors",
    "IntegrityError": "loopml.domain.errors",
    "PermissionDenied": "loopml.domain.errors",
}

__all__ = [
    "ActiveRun",
    "AlreadyExists",
    "Client",
    "ColumnSpec",
    "DatasetRef",
    "IntegrityError",
    "InvalidInput",
    "InvalidState",
    "LoopmlError",
    "NotFound",
    "PermissionDenied",
    "Pipeline",
    "RunStatus",
    "Signature",
    "Stage",
    "__version__",
    "active_run",
    "flush",
    "get_client",
    "load_model",
    "log_artifact",
    "log_dataset",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "register_model",
    "run_pipeline",
    "search_runs",
    "set_client",
    "set_tags",
    "start_run",
    "step",
    "sweep",
]

if TYPE_CHECKING:
    from loopml.client import ActiveRun, Client
    from loopml.domain.errors import (
        AlreadyExists,
        IntegrityError,
        InvalidInput,
        InvalidState,
        LoopmlError,
        NotFound,
        PermissionDenied,
    )
    from loopml.domain.lifecycle import Stage
    from loopml.domain.pipelines import Pipeline, step
    from loopml.domain.registry import ColumnSpec, Signature
    from loopml.domain.tracking import DatasetRef, RunStatus
    from loopml.fluent import (
        active_run,
        flush,
        get_client,
        load_model,
        log_artifact,
        log_metric,
        log_metrics,
        log_param,
        log_params,
        register_model,
        run_pipeline,
        search_runs,
        set_client,
        set_tags,
        start_run,
        sweep,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'loopml' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
