"""The workspace's pipeline: the one ``loopml run``, ``loopml repro`` and the retrain loop
run when no other is named (``[pipeline]`` of loopml.toml, else ``pipeline.py:pipeline``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.adapters.python_target import load_target
from loopml.domain.errors import InvalidInput
from loopml.domain.pipelines import DEFAULT_SOURCE, Pipeline, Step

if TYPE_CHECKING:
    from loopml.client import Client


def load_pipeline(client: Client, target: str | None) -> tuple[str, Pipeline]:
    """The pipeline ``target`` names; else the one ``[pipeline]`` in loopml.toml names
    (``source``) or describes (``steps``); else ``pipeline.py:pipeline``."""
    settings = client.app.settings
    table = dict(settings.pipeline) if settings is not None else {}
    root = client.app.root
    if target is None and "steps" in table:
        return "loopml.toml [pipeline]", described(table, root)
    source = target or table.get("source") or DEFAULT_SOURCE
    if not isinstance(source, str):
        raise InvalidInput(f"[pipeline] source in loopml.toml must be text, got {source!r}")
    found = load_target(source, root, "pipeline")
    if isinstance(found, Step):
        raise InvalidInput(
            f"{source} is a step, not a pipeline; name a loopml.Pipeline, or list the steps "
            "under [pipeline] steps in loopml.toml"
        )
    if not isinstance(found, Pipeline):
        raise InvalidInput(
            f"{source} is a {type(found).__name__}, not a loopml.Pipeline; point at the "
            "Pipeline object (e.g. pipeline.py:pipeline)"
        )
    return source, found


def described(table: dict[str, Any], root: Path) -> Pipeline:
    """A pipeline described in loopml.toml: ``name``, ``steps`` (FILE.py:FUNCTION each)
    and ``datasets``; its ``params`` are applied by the caller like any pipeline's."""
    steps, datasets = table.get("steps"), table.get("datasets", {})
    if not isinstance(steps, list) or not all(isinstance(s, str) for s in steps):
        raise InvalidInput(
            f"[pipeline] steps in loopml.toml must be a list of FILE.py:FUNCTION, got {steps!r}"
        )
    if not isinstance(datasets, dict):
        raise InvalidInput(
            f"[pipeline] datasets in loopml.toml must map input names to dataset "
            f"references, got {datasets!r}"
        )
    loaded = []
    for target in steps:
        found = load_target(target, root, "step")
        if not isinstance(found, Step):
            raise InvalidInput(
                f"[pipeline] steps: {target} is not a step; decorate it with @loopml.step"
            )
        loaded.append(found)
    return Pipeline(str(table.get("name", "pipeline")), loaded, datasets=datasets)


def config_params(client: Client) -> dict[str, Any]:
    settings = client.app.settings
    params = settings.pipeline.get("params", {}) if settings else {}
    if not isinstance(params, dict):
        raise InvalidInput(
            f"[pipeline] params in loopml.toml must be a table of STEP.PARAM = value or "
            f"[pipeline.params.STEP] tables, got {params!r}"
        )
    return params
