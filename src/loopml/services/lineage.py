"""The lineage of a model version: run, datasets, code (see :mod:`loopml.domain.lineage`).

A reference that no longer resolves (a dataset version from another workspace, a run
deleted by hand) stays in the tree marked missing: lineage shows what was recorded,
and says plainly where the trail breaks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loopml.domain.errors import NotFound
from loopml.domain.lineage import LineageNode
from loopml.domain.registry import ModelVersion
from loopml.domain.tracking import CodeVersion, DatasetRef, Run
from loopml.services.registry import RegistryService
from loopml.services.tracking import TrackingService

if TYPE_CHECKING:  # the type only: importing it would load Arrow for every CLI command
    from loopml.services.datasets import DatasetService

_MAX_PARENTS = 20  # dataset ancestors shown; older ones are one `loopml data log` away


class LineageService:
    def __init__(
        self, registry: RegistryService, tracking: TrackingService, datasets: DatasetService
    ) -> None:
        self.registry = registry
        self.tracking = tracking
        self.datasets = datasets

    def of_model(self, uri: str) -> LineageNode:
        mv = self.registry.resolve(uri)
        children: list[LineageNode] = []
        if mv.run_id is not None:
            children.append(self._run(mv.run_id, mv))
        else:
            children += [self._dataset(ref) for ref in mv.inputs]
            if mv.code is not None:
                children.append(_code(mv.code))
        return LineageNode(
            "model_version",
            mv.uri,
            f"{mv.uri}  stage {mv.stage.value}, {mv.flavor}, artifact {mv.artifact.digest.short}",
            {"stage": mv.stage.value, "flavor": mv.flavor, "artifact": str(mv.artifact.digest)},
            tuple(children),
        )

    def _run(self, run_id: str, mv: ModelVersion) -> LineageNode:
        try:
            run = self.tracking.get_run(run_id)
        except NotFound:
            return LineageNode("run", f"runs:/{run_id}", f"run {run_id}  (missing)", missing=True)
        inputs = {(i.name, i.version): i for i in (*run.inputs, *mv.inputs)}
        children = [self._dataset(ref) for ref in inputs.values()]
        code = run.code or mv.code
        if code is not None:
            children.append(_code(code))
        if run.parent_id is not None:
            children.append(self._parent_run(run.parent_id))
        return LineageNode(
            "run",
            f"runs:/{run.id}",
            f"run {run.id[:12]} {run.name!r}  experiment {run.experiment}, {run.status.value}",
            _run_attrs(run),
            tuple(children),
        )

    def _parent_run(self, run_id: str) -> LineageNode:
        try:
            run = self.tracking.get_run(run_id)
        except NotFound:
            return LineageNode(
                "run", f"runs:/{run_id}", f"parent run {run_id}  (missing)", missing=True
            )
        return LineageNode(
            "run", f"runs:/{run.id}", f"parent run {run.id[:12]} {run.name!r}", _run_attrs(run)
        )

    def _dataset(self, ref: DatasetRef, depth: int = 0) -> LineageNode:
        uri = f"datasets:/{ref.name}/{ref.version}"
        try:
            version = self.datasets.get(f"{ref.name}@{ref.version}")
        except NotFound:
            return LineageNode(
                "dataset_version", uri, f"dataset {ref.name}@{ref.version}  (missing)", missing=True
            )
        changed = ref.digest is not None and ref.digest != version.digest
        label = f"dataset {version.ref}  {version.rows:,} rows, {len(version.columns)} columns"
        if changed:
            label += "  (content differs from what the run recorded)"
        parents: tuple[LineageNode, ...] = ()
        if version.parent is not None and depth < _MAX_PARENTS:
            parent_ref = DatasetRef(version.name, version.parent)
            parents = (self._dataset(parent_ref, depth + 1),)
        return LineageNode(
            "dataset_version",
            uri,
            label,
            {
                "digest": version.digest,
                "rows": version.rows,
                "source": version.source,
                "content_differs": changed,
            },
            parents,
        )


def _code(code: CodeVersion) -> LineageNode:
    state = "dirty, diff " + (code.diff_hash or "?")[:12] if code.dirty else "clean"
    return LineageNode(
        "code",
        f"git:{code.commit}",
        f"code {code.commit[:12]} on {code.branch or 'detached HEAD'} ({state})",
        {"commit": code.commit, "branch": code.branch, "dirty": code.dirty},
    )


def _run_attrs(run: Run) -> dict[str, object]:
    return {"experiment": run.experiment, "status": run.status.value, "params": dict(run.params)}
