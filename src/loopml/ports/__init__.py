"""The interfaces services depend on. Adapters implement them; services never see which.

Each port is small and shaped as commands a remote server could carry: one call is one
transaction, arguments are plain values, and every state change of a model carries the
audit record that must be written with it. ``get_*`` raises NotFound, ``find_*`` returns
None, ``list_*`` and ``search_*`` return a :class:`~loopml.domain.paging.Page`,
``create_*`` raises AlreadyExists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from loopml.domain.datasets import DatasetVersion
from loopml.domain.lifecycle import Stage
from loopml.domain.registry import ModelVersion

if TYPE_CHECKING:  # annotations only: importing ports stays cheap
    from loopml.domain.approvals import ApprovalRequest, ApprovalStatus
    from loopml.domain.artifacts import ArtifactRef, Digest
    from loopml.domain.audit import AuditEvent, AuditRecord
    from loopml.domain.datasets import DataColumn, Dataset, FolderStatus, SourceFile
    from loopml.domain.deployments import Deployment, Revision
    from loopml.domain.model_evaluation import ModelEvaluation
    from loopml.domain.paging import Page
    from loopml.domain.registry import Model, Signature
    from loopml.domain.step_cache import StepRecord
    from loopml.domain.tracking import (
        CodeVersion,
        DatasetRef,
        EnvironmentInfo,
        Experiment,
        Metric,
        Run,
        RunStatus,
    )


class Clock(Protocol):
    def now_ms(self) -> int: ...


@dataclass(frozen=True, slots=True)
class StoredObject:
    digest: Digest
    size: int
    modified_s: float  # last written or re-stored (seconds since the epoch)


class BlobStore(Protocol):
    """Content-addressed bytes. Writes are atomic and deduplicated; reads verify the hash."""

    def put_bytes(self, data: bytes) -> Digest: ...

    def store_bytes(self, data: bytes) -> tuple[Digest, bool]:
        """``put_bytes``, also saying whether this call stored the content (True) or found
        it stored already (False; it is then marked as just stored, for gc)."""
        ...

    def put_file(self, path: Path) -> tuple[Digest, int]:
        """Store a file's content; return its digest and size."""
        ...

    def get_bytes(self, digest: Digest) -> bytes:
        """Return verified content; IntegrityError if it no longer matches its digest."""
        ...

    def get_file(self, digest: Digest, dest: Path) -> None:
        """Write verified content to ``dest`` atomically."""
        ...

    def exists(self, digest: Digest) -> bool: ...

    def list_objects(self) -> Iterator[StoredObject]:
        """Every stored object; for garbage collection."""
        ...

    def delete(self, digest: Digest) -> None:
        """Remove an object (nothing happens if it is already gone)."""
        ...

    def sweep_temporaries(self, before_s: float) -> tuple[int, int]:
        """Remove half-written temporary files last touched before ``before_s`` (left by
        a killed process); return (files, bytes) removed."""
        ...


@dataclass(frozen=True, slots=True)
class NewRun:
    id: str
    experiment: str
    name: str
    start_ms: int
    parent_id: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    code: CodeVersion | None = None
    environment: EnvironmentInfo | None = None


class TrackingStore(Protocol):
    def create_experiment(self, name: str, now_ms: int) -> Experiment: ...
    def get_experiment(self, name: str) -> Experiment: ...
    def find_experiment(self, name: str) -> Experiment | None: ...
    def list_experiments(self, page_size: int, page_token: str | None) -> Page[Experiment]: ...

    def create_run(self, run: NewRun) -> None:
        """Create the run, and its experiment if it does not exist yet."""
        ...

    def finish_run(self, run_id: str, status: RunStatus, end_ms: int) -> None: ...
    def get_run(self, run_id: str) -> Run: ...
    def find_run(self, run_id: str) -> Run | None: ...

    def log_params(self, run_id: str, params: Mapping[str, str]) -> None:
        """Set params; ParamConflict if one is already set to a different value."""
        ...

    def log_metrics(self, batches: Sequence[tuple[str, Sequence[Metric]]]) -> None:
        """Append metric points for one or more runs in one transaction (group commit)."""
        ...

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None: ...
    def add_artifacts(self, run_id: str, artifacts: Sequence[ArtifactRef]) -> None: ...
    def add_inputs(self, run_id: str, inputs: Sequence[DatasetRef]) -> None: ...
    def get_metric_history(self, run_id: str, key: str) -> list[Metric]: ...
    def referenced_digests(self) -> set[str]:
        """Digests of every run artifact, as ``algorithm:hex`` text."""
        ...

    def search_runs(
        self,
        experiments: Sequence[str],
        filter_text: str | None,
        order_by: Sequence[str],
        page_size: int,
        page_token: str | None,
    ) -> Page[Run]:
        """Runs of the named experiments (all when empty) matching the filter language of
        :mod:`loopml.domain.search`, ordered, one page at a time."""
        ...


@dataclass(frozen=True, slots=True)
class NewModelVersion:
    model: str
    flavor: str
    artifact: ArtifactRef
    created_ms: int
    signature: Signature | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    run_id: str | None = None
    inputs: Sequence[DatasetRef] = ()
    code: CodeVersion | None = None
    description: str = ""
    flavor_info: Mapping[str, str] = field(default_factory=dict)

    def to_version(self, number: int) -> ModelVersion:
        """The version as stored: numbered, and a candidate until someone promotes it."""
        return ModelVersion(
            model=self.model,
            version=number,
            flavor=self.flavor,
            artifact=self.artifact,
            stage=Stage.CANDIDATE,
            created_ms=self.created_ms,
            signature=self.signature,
            metrics=dict(self.metrics),
            run_id=self.run_id,
            inputs=tuple(self.inputs),
            code=self.code,
            description=self.description,
            flavor_info=dict(self.flavor_info),
        )


@dataclass(frozen=True, slots=True)
class StageChange:
    """Move ``version`` from ``expected`` to ``target``; refused if it is no longer
    ``expected`` when the transaction runs (compare-and-set)."""

    version: int
    expected: Stage
    target: Stage


class RegistryStore(Protocol):
    def create_model(self, name: str, description: str, now_ms: int, actor: str) -> Model: ...
    def get_model(self, name: str) -> Model: ...
    def find_model(self, name: str) -> Model | None: ...
    def list_models(self, page_size: int, page_token: str | None) -> Page[Model]: ...

    def create_version(self, new: NewModelVersion, actor: str) -> ModelVersion:
        """Assign the next version number, create the model if needed, audit both."""
        ...

    def get_version(self, name: str, version: int) -> ModelVersion: ...
    def list_versions(
        self, name: str, stage: Stage | None, page_size: int, page_token: str | None
    ) -> Page[ModelVersion]: ...

    def set_stages(
        self,
        name: str,
        changes: Sequence[StageChange],
        exclusive: Stage | None,
        audits: Sequence[AuditRecord],
    ) -> None:
        """Apply stage moves atomically with their audit events. With ``exclusive``, refuse
        (ConcurrentModification) if more than one version would end up in that stage."""
        ...

    def set_alias(self, name: str, alias: str, version: int, audit: AuditRecord) -> None: ...
    def delete_alias(self, name: str, alias: str, audit: AuditRecord) -> None: ...
    def referenced_digests(self) -> set[str]:
        """Digests of every model version's artifact, as ``algorithm:hex`` text."""
        ...


class ApprovalStore(Protocol):
    """Approval requests of promotions, each change stored with its audit record."""

    def create(self, request: ApprovalRequest, audit: AuditRecord) -> None:
        """Store a pending request. NotFound if its model version does not exist;
        AlreadyExists if the id is taken or the version already has an open (pending)
        request for the same stage, naming that request."""
        ...

    def get(self, request_id: str) -> ApprovalRequest:
        """NotFound, naming the id and `loopml approvals list`, if there is no such request."""
        ...

    def list(
        self,
        model: str | None,
        status: ApprovalStatus | None,
        page_size: int,
        page_token: str | None,
    ) -> Page[ApprovalRequest]:
        """Newest first; of one model and one status when given."""
        ...

    def decide(self, decided: ApprovalRequest, audit: AuditRecord) -> None:
        """Store the decision, compare-and-set: refused (ConcurrentModification) unless the
        stored request is still pending, so the first decision wins."""
        ...

    def find_approved(self, model: str, version: int, stage: Stage) -> ApprovalRequest | None:
        """The newest approved request to move ``version`` of ``model`` into ``stage``."""
        ...


@dataclass(frozen=True, slots=True)
class NewDatasetVersion:
    name: str
    digest: str
    rows: int
    columns: tuple[DataColumn, ...]
    manifest: Digest
    size: int
    created_ms: int
    author: str
    source: str = ""
    message: str = ""
    profile: Digest | None = None

    def to_version(self, number: int, parent: int | None) -> DatasetVersion:
        return DatasetVersion(
            name=self.name,
            version=number,
            digest=self.digest,
            rows=self.rows,
            columns=self.columns,
            manifest=self.manifest,
            size=self.size,
            created_ms=self.created_ms,
            author=self.author,
            source=self.source,
            message=self.message,
            parent=parent,
            profile=self.profile,
        )


@dataclass(frozen=True, slots=True)
class TableFile:
    """A file of rows to add: ``path`` relative to what was added, its size and content
    hash, and ``batches()`` to stream its rows as pyarrow record batches (typed ``Any``
    to keep this module free of pyarrow)."""

    path: str
    size: int
    digest: str
    batches: Callable[[], Iterator[Any]]
    mtime_ns: int = 0  # stat taken before hashing; 0 for data that is not a file
    inode: int = 0
    location: str = ""  # the file's absolute path; "" for data that is not a file
    content: bytes | None = None  # a small file's bytes as hashed, when the reader kept them


class FileIndex(Protocol):
    """Local stat records of added folders, so status re-hashes only what changed."""

    def record(self, name: str, version: int, root: Path, files: list[TableFile]) -> None: ...
    def holds(self, name: str, version: int) -> bool: ...
    def status(
        self, name: str, version: int, root: Path, baseline: list[SourceFile] | None
    ) -> FolderStatus: ...


class TableReader(Protocol):
    def files(self, path: Path) -> list[TableFile]:
        """The file at ``path``, or the table files under the folder, in path order."""
        ...

    def read_together(self, files: Sequence[TableFile], schema: Any) -> Any | None:
        """The rows of several small ``files``, in order, as one pyarrow Table with the
        columns and types of ``schema``, read in one go; None when they cannot be read
        that way (the caller then reads them one by one, which names any file at fault)."""
        ...


class DatasetStore(Protocol):
    def create_version(self, new: NewDatasetVersion) -> tuple[DatasetVersion, bool]:
        """Add the next version (its parent: the newest so far), creating the dataset if
        needed, with its audit event. If the dataset already has a version with the same
        content digest, return that one and False instead: nothing is written."""
        ...

    def get_version(self, name: str, version: int | None) -> DatasetVersion:
        """Version ``version``, or the newest when None."""
        ...

    def find_dataset(self, name: str) -> Dataset | None: ...
    def version_blobs(self) -> list[tuple[str, str | None]]:
        """(manifest, profile) digests of every version; chunks are in the manifests."""
        ...

    def list_datasets(self, page_size: int, page_token: str | None) -> Page[Dataset]: ...
    def list_versions(
        self, name: str, page_size: int, page_token: str | None
    ) -> Page[DatasetVersion]:
        """Newest first."""
        ...


class AuditLog(Protocol):
    def append(self, record: AuditRecord) -> AuditEvent:
        """Append one event on its own (state changes append inside their own call)."""
        ...

    def list_events(
        self, object_id: str | None, page_size: int, page_token: str | None
    ) -> Page[AuditEvent]:
        """Newest first; ``object_id`` matches exactly or as a prefix ending in '/'."""
        ...

    def iter_events(self, until_seq: int | None = None) -> Iterator[AuditEvent]:
        """Events in sequence order, streamed; only those with ``seq <= until_seq`` if set."""
        ...

    def head(self) -> tuple[int, str] | None: ...


class ModelFlavor(Protocol):
    """Saves and loads one family of models in its own safe format."""

    name: str
    file_name: str
    # True when a pickle of what load() returns loads much faster than the artifact does
    # (skops): the registry may then keep one in a local ModelCache.
    load_cache: bool

    def accepts(self, model: object) -> bool: ...
    def save(self, model: object, path: Path) -> None: ...
    def load(self, path: Path, *, trusted: bool) -> object: ...
    def describe(self, model: object) -> dict[str, str]:
        """Library names and versions that produced the model."""
        ...

    def concurrent_predict(self, model: object) -> bool:
        """True when the loaded ``model`` may predict on several threads at once (batch
        scoring then predicts several chunks side by side); False where its library
        does not promise it, or where it holds user code."""
        ...

    def block_model(self, model: object, columns: tuple[str, ...]) -> object | None:
        """``model`` in a form that predicts a 2-D float64 array whose columns are
        ``columns`` in that order exactly as ``model`` predicts the DataFrame of those
        columns, without the library's per-call DataFrame checks (the server has checked
        the request against the signature); None where that cannot be guaranteed."""
        ...


class ModelCache(Protocol):
    """Loaded models kept on this machine, by artifact digest, for a faster next load.

    ``trusted``: the model was loaded with ``trusted=True``. Such entries are kept apart
    and read only by another trusted load, so that a load without trust never receives
    an object that its flavor would have refused to build."""

    def get(self, digest: Digest, *, trusted: bool = False) -> object | None: ...
    def put(self, digest: Digest, model: object, *, trusted: bool = False) -> None: ...


class FlavorCatalog(Protocol):
    def get(self, name: str) -> ModelFlavor: ...
    def detect(self, model: object) -> ModelFlavor: ...
    def names(self) -> list[str]: ...


class ProvenanceProbe(Protocol):
    def code_version(self) -> CodeVersion | None: ...
    def environment(self) -> EnvironmentInfo: ...


class EvaluationStore(Protocol):
    """Evaluations of model versions (see :mod:`loopml.domain.model_evaluation`)."""

    def add_evaluation(self, record: ModelEvaluation, audit: AuditRecord) -> None: ...
    def latest_evaluation(self, model: str, version: int) -> ModelEvaluation | None:
        """The newest evaluation of the version, or None if it was never evaluated."""
        ...

    def evaluation_blobs(self) -> set[str]:
        """Every blob digest an evaluation references (for garbage collection)."""
        ...


class StepCache(Protocol):
    """Finished pipeline steps by cache key (see :mod:`loopml.domain.step_cache`)."""

    def find_step(self, pipeline: str, step: str, key_digest: str) -> StepRecord | None: ...
    def latest_step(self, pipeline: str, step: str) -> StepRecord | None:
        """The newest record of the step, whatever its key: what a miss is compared to."""
        ...

    def find_by_run(self, run_id: str) -> StepRecord | None: ...
    def put_step(self, record: StepRecord) -> None:
        """Record a finished step; a record with the same key is replaced."""
        ...

    def step_blobs(self) -> set[str]: ...


class OutputCodec(Protocol):
    """Stores step outputs as bytes in a safe format and reads them back."""

    def encode(self, value: object, *, allow_pickle: bool) -> tuple[str, bytes]:
        """``(codec name, bytes)``; :class:`InvalidInput` if no allowed codec fits."""
        ...

    def decode(self, codec: str, data: bytes, *, allow_pickle: bool) -> object: ...


class CodeDigester(Protocol):
    def digest(self, func: Callable[..., Any]) -> dict[str, str]:
        """Digests of the normalised source of ``func`` and of the project's own
        functions it calls, by qualified name."""
        ...

    def library_version(self, distribution: str) -> str:
        """The installed version; :class:`InvalidInput` if it is not installed."""
        ...


class DeploymentStore(Protocol):
    """Deployments and their history; every change with its audit record, compare-and-set
    on the revision (see :mod:`loopml.domain.deployments`)."""

    def create_deployment(self, entry: Revision, audit: AuditRecord) -> None:
        """Store ``entry.state`` as a new deployment; AlreadyExists if the name is taken."""
        ...

    def update_deployment(self, entry: Revision, audit: AuditRecord) -> None:
        """Store ``entry.state`` if the stored revision is ``entry.revision - 1``;
        :class:`ConcurrentModification` if someone changed it meanwhile."""
        ...

    def get_deployment(self, name: str) -> Deployment: ...
    def list_deployments(self) -> list[Deployment]: ...
    def deployment_history(self, name: str) -> list[Revision]: ...
