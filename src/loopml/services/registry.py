"""The model registry: versions, flavors, aliases, and lifecycle moves under audit.

Registration serialises a model with its flavor's own safe format, stores the file in the
content-addressed blob store and records the version with its signature and lineage.
Stage moves go through the domain state machine and are written together with their
audit events, compare-and-set, so two people promoting at once cannot both win. A stage
whose gate policy requires approval is entered only with an approved request of this very
version and stage (``request_approval`` then ``approve``); each step is audited.
"""

from __future__ import annotations

import re
import secrets
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from loopml.domain.approvals import (
    ApprovalRequest,
    ApprovalStatus,
    ForcedPromotion,
    authorize_promotion,
)
from loopml.domain.artifacts import ArtifactRef, Digest
from loopml.domain.audit import AuditRecord
from loopml.domain.errors import (
    InvalidInput,
    InvalidState,
    NotFound,
    PermissionDenied,
)
from loopml.domain.gate_checks import ModelFacts, evaluate_gates
from loopml.domain.gate_events import approval_decided, approval_requested, gates_checked
from loopml.domain.gate_report import GateReport
from loopml.domain.gates import GATED_STAGES, GatePolicy, gated_stage
from loopml.domain.lifecycle import Stage, check_transition
from loopml.domain.names import validate_artifact_name, validate_identifier
from loopml.domain.paging import Page, check_page_size
from loopml.domain.registry import Model, ModelUri, ModelVersion, Signature
from loopml.domain.registry_events import alias_deleted, alias_set, stage_changed
from loopml.domain.tracking import DatasetRef, Run
from loopml.ports import (
    ApprovalStore,
    BlobStore,
    Clock,
    EvaluationStore,
    FlavorCatalog,
    ModelCache,
    ModelFlavor,
    NewModelVersion,
    RegistryStore,
    StageChange,
    TrackingStore,
)
from loopml.services.model_loader import ModelLoader, require_trust

_RUN_SOURCE = re.compile(r"^runs:/(?P<run>[0-9a-f]{32})/(?P<path>.+)$")


class RegistryService:
    def __init__(
        self,
        store: RegistryStore,
        blobs: BlobStore,
        flavors: FlavorCatalog,
        clock: Clock,
        runs: TrackingStore,
        gates: GatePolicy | None = None,
        *,
        approvals: ApprovalStore,
        evaluations: EvaluationStore,
        model_cache: ModelCache | None = None,
    ) -> None:
        self.store = store
        self.model_cache = model_cache
        self.loader = ModelLoader(blobs, flavors, model_cache)
        self.approvals = approvals
        self.evaluations = evaluations
        self.blobs = blobs
        self.flavors = flavors
        self.clock = clock
        self.runs = runs
        self.gates = gates if gates is not None else GatePolicy()

    # models ------------------------------------------------------------------------------
    def create_model(self, name: str, actor: str, description: str = "") -> Model:
        return self.store.create_model(
            validate_identifier("model name", name), description, self.clock.now_ms(), actor
        )

    def get_model(self, name: str) -> Model:
        return self.store.get_model(name)

    def list_models(self, page_size: int = 100, page_token: str | None = None) -> Page[Model]:
        return self.store.list_models(check_page_size(page_size), page_token)

    def list_versions(
        self,
        name: str,
        stage: Stage | None = None,
        page_size: int = 100,
        page_token: str | None = None,
    ) -> Page[ModelVersion]:
        return self.store.list_versions(name, stage, check_page_size(page_size), page_token)

    # registration ------------------------------------------------------------------------
    def register(
        self,
        model: object,
        name: str,
        actor: str,
        *,
        flavor: str | None = None,
        signature: Signature | None = None,
        run_id: str | None = None,
        metrics: Mapping[str, float] | None = None,
        inputs: Sequence[DatasetRef] = (),
        description: str = "",
        trusted: bool = False,
    ) -> ModelVersion:
        """Serialise ``model`` with its flavor and record a new version of ``name``."""
        validate_identifier("model name", name)
        chosen = self.flavors.get(flavor) if flavor else self.flavors.detect(model)
        require_trust(chosen.name, trusted, f"register {name!r}")
        run = self.runs.get_run(run_id) if run_id is not None else None  # before any work
        if flavor and not chosen.accepts(model):
            raise InvalidInput(
                f"flavor {flavor!r} cannot save a {type(model).__module__}."
                f"{type(model).__qualname__}; leave flavor unset to detect it"
            )
        with tempfile.TemporaryDirectory(prefix="loopml-register-") as tmp:
            path = Path(tmp) / chosen.file_name
            chosen.save(model, path)
            digest, size = self.blobs.put_file(path)
            self._fill_cache(chosen, path, digest)
        artifact = ArtifactRef(f"model/{chosen.file_name}", digest, size)
        return self._create(
            name,
            actor,
            chosen.name,
            artifact,
            signature,
            run,
            metrics,
            inputs,
            description,
            chosen.describe(model),
        )

    def _fill_cache(self, flavor: ModelFlavor, path: Path, digest: Digest) -> None:
        """Load a version just saved as a server would, and keep it in the model cache.

        The first ``loopml serve`` or ``loopml predict`` on this machine then starts
        without skops. A model that needs ``trusted=True`` to load is not cached here: it
        is cached at its first trusted load, for trusted loads only."""
        if self.model_cache is None or not flavor.load_cache:
            return
        try:
            loaded = flavor.load(path, trusted=False)
        except PermissionDenied:
            return
        self.model_cache.put(digest, loaded)

    def register_from_run(
        self,
        source: str,
        name: str,
        flavor: str,
        actor: str,
        *,
        signature: Signature | None = None,
        metrics: Mapping[str, float] | None = None,
        description: str = "",
        trusted: bool = False,
    ) -> ModelVersion:
        """Register a model file a run already logged: ``runs:/RUN_ID/ARTIFACT_NAME``.

        The version points at the same stored bytes; nothing is copied.
        """
        validate_identifier("model name", name)
        m = _RUN_SOURCE.match(source) if isinstance(source, str) else None
        if not m:
            raise InvalidInput(
                f"model source {source!r} is not valid; expected "
                "runs:/RUN_ID/ARTIFACT_NAME (a 32-hex run id and a relative name)"
            )
        artifact_name = validate_artifact_name(m["path"])
        chosen = self.flavors.get(flavor)
        require_trust(chosen.name, trusted, f"register {name!r}")
        run = self.runs.get_run(m["run"])
        ref = next((a for a in run.artifacts if a.name == artifact_name), None)
        if ref is None:
            known = ", ".join(a.name for a in run.artifacts) or "none"
            raise NotFound(f"run {run.id} has no artifact {artifact_name!r}; it has: {known}")
        return self._create(
            name, actor, chosen.name, ref, signature, run, metrics, (), description, {}
        )

    def _create(
        self,
        name: str,
        actor: str,
        flavor: str,
        artifact: ArtifactRef,
        signature: Signature | None,
        run: Run | None,
        metrics: Mapping[str, float] | None,
        inputs: Sequence[DatasetRef],
        description: str,
        flavor_info: Mapping[str, str],
    ) -> ModelVersion:
        code = None
        lineage = list(inputs)
        if run is not None:
            code = run.code
            lineage += [i for i in run.inputs if i not in lineage]
            if metrics is None:
                metrics = run.metrics
        return self.store.create_version(
            NewModelVersion(
                model=name,
                flavor=flavor,
                artifact=artifact,
                created_ms=self.clock.now_ms(),
                signature=signature,
                metrics=dict(metrics or {}),
                run_id=None if run is None else run.id,
                inputs=tuple(lineage),
                code=code,
                description=description,
                flavor_info=dict(flavor_info),
            ),
            actor,
        )

    # resolution and loading --------------------------------------------------------------
    def resolve(self, uri: str | ModelUri) -> ModelVersion:
        """The version a ``models:/`` URI names (a stage must name exactly one version)."""
        parsed = ModelUri.parse(uri) if isinstance(uri, str) else uri
        if parsed.version is not None:
            return self.store.get_version(parsed.name, parsed.version)
        if parsed.alias is not None:
            model = self.store.get_model(parsed.name)
            if parsed.alias not in model.aliases:
                known = ", ".join(sorted(model.aliases)) or "none"
                raise NotFound(
                    f"model {parsed.name!r} has no alias {parsed.alias!r}; its aliases are: {known}"
                )
            return self.store.get_version(parsed.name, model.aliases[parsed.alias])
        assert parsed.stage is not None  # guaranteed by ModelUri.parse
        page = self.store.list_versions(parsed.name, parsed.stage, 2, None)
        if not page.items:
            raise NotFound(f"model {parsed.name!r} has no version in {parsed.stage.value}")
        if len(page.items) > 1:
            raise InvalidState(
                f"{parsed} is ambiguous: several versions are in "
                f"{parsed.stage.value}; name a version or an alias instead"
            )
        return page.items[0]

    def load(self, uri: str | ModelUri, *, trusted: bool = False) -> object:
        """Load a registered model after verifying its artifact's hash
        (:meth:`loopml.services.model_loader.ModelLoader.load`)."""
        return self.loader.load(self.resolve(uri), trusted=trusted)

    # lifecycle ---------------------------------------------------------------------------
    def transition(
        self,
        name: str,
        version: int,
        target: Stage | str,
        actor: str,
        *,
        reason: str | None = None,
        archive_existing: bool = False,
        allow_multiple: bool = False,
        force_reason: str | None = None,
        demote_existing: bool = False,
    ) -> ModelVersion:
        """Move a version to ``target``. Production holds one version per model unless
        ``allow_multiple``; ``archive_existing`` archives the current one in the same step,
        ``demote_existing`` moves it back to staging (a deployment's promotion, which keeps
        it ready for a rollback).

        A move into a stage the gate policy guards runs the gates first and is refused
        (:class:`GatesFailed`, naming each failed check, its value and its bound) unless
        ``force_reason`` gives a written reason; the verdict, and any force, is audited
        with the stage change in one transaction. A policy that requires approval also
        needs an approved request for this version and stage (:class:`PermissionDenied`
        otherwise; forcing never replaces it)."""
        target = Stage.parse(target) if isinstance(target, str) else target
        mv = self.store.get_version(name, version)
        check_transition(mv.uri, mv.stage, target)
        gate_audit = self._check_gates(mv, target, actor, force_reason)
        changes = [StageChange(version, mv.stage, target)]
        exclusive = None
        if target is Stage.PRODUCTION and not allow_multiple:
            exclusive = Stage.PRODUCTION
            current = [
                v
                for v in self.store.list_versions(name, Stage.PRODUCTION, 1000, None)
                if v.version != version
            ]
            if current and not (archive_existing or demote_existing):
                listed = ", ".join(v.uri for v in current)
                raise InvalidState(
                    f"{listed} is already in production and a model holds one production "
                    "version: pass archive_existing=True (--archive-existing) to archive it in "
                    "the same step, or allow_multiple=True (--allow-multiple) to keep both"
                )
            retired = Stage.STAGING if demote_existing else Stage.ARCHIVED
            changes += [StageChange(v.version, Stage.PRODUCTION, retired) for v in current]
        audits = [
            stage_changed(name, c.version, c.expected, c.target, actor, reason) for c in changes
        ]
        if gate_audit is not None:
            audits.insert(0, gate_audit)
        self.store.set_stages(name, changes, exclusive, audits)
        return self.store.get_version(name, version)

    def gate_report(self, name: str, version: int, target: Stage | str) -> GateReport:
        """What the gates say about moving a version into ``target``, without moving it."""
        target = Stage.parse(target) if isinstance(target, str) else target
        mv = self.store.get_version(name, version)
        return self.judge(name, target, self.facts(mv))

    def judge(self, name: str, target: Stage | str, facts: ModelFacts) -> GateReport:
        """What the gates of ``target`` say about a candidate with ``facts``, registered or
        not (a pipeline's gate step judges a model before registering it), against the
        current champion of model ``name`` if it has one."""
        target = Stage.parse(target) if isinstance(target, str) else target
        champion = None
        if self.store.find_model(name) is not None:
            champion = self._champion(name, facts.version)
        return evaluate_gates(
            self.gates,
            name,
            target,
            facts,
            None if champion is None else self.facts(champion),
        )

    def _check_gates(
        self, mv: ModelVersion, target: Stage, actor: str, force_reason: str | None
    ) -> AuditRecord | None:
        if target not in GATED_STAGES or self.gates.for_stage(mv.model, target) is None:
            if force_reason is not None:
                raise InvalidInput(
                    f"--force was given but no gate guards {target.value} for model "
                    f"{mv.model!r}; promote without it"
                )
            return None
        report = self.gate_report(mv.model, mv.version, target)
        force = None if force_reason is None else ForcedPromotion(force_reason)
        approval = None
        if report.requires_approval:
            approval = self.approvals.find_approved(mv.model, mv.version, target)
        authorize_promotion(report, force=force, approval=approval)
        return gates_checked(report, actor, force, approval)

    def facts(self, mv: ModelVersion) -> ModelFacts:
        """What is known of a version for the gates: its registered metrics, overridden by
        those of its newest evaluation, which also gives the outcome of data validation
        and the predict latency p99; and its artifact size. A version never evaluated
        has no validation or latency facts: gates that need them report them missing."""
        evaluation = self.evaluations.latest_evaluation(mv.model, mv.version)
        if evaluation is not None:
            return evaluation.facts(mv.metrics, mv.artifact.size)
        return ModelFacts.from_flat_metrics(
            mv.metrics, model_size_bytes=mv.artifact.size, version=mv.version
        )

    def _champion(self, name: str, candidate: int | None) -> ModelVersion | None:
        """The version a candidate is judged against: the one the ``champion`` alias names,
        else the production version (the newest, if several); never the candidate."""
        model = self.store.get_model(name)
        number = model.aliases.get("champion")
        if number is None:
            current = list(self.store.list_versions(name, Stage.PRODUCTION, 1000, None))
            number = max((v.version for v in current), default=None)
        if number is None or number == candidate:
            return None
        return self.store.get_version(name, number)

    # approvals ---------------------------------------------------------------------------
    def request_approval(
        self, name: str, version: int, stage: Stage | str, actor: str
    ) -> ApprovalRequest:
        """Ask that a person approve moving a version into ``stage``; returns the pending
        request, whose id the approver passes to :meth:`approve`.

        Raises:
            InvalidInput: ``stage`` takes no gates, or its policy requires no approval.
            InvalidState: the version is archived, or cannot move to ``stage`` from its
                current stage (:class:`IllegalTransition`).
            AlreadyExists: the version has an open request for ``stage``, named.
        """
        target = gated_stage(stage)
        mv = self.store.get_version(name, version)
        policy = self.gates.for_stage(name, target)
        if policy is None or not policy.require_approval:
            raise InvalidInput(
                f"the gate policy does not require approval for {name} -> {target.value}; "
                f"promote it directly (`loopml models promote {name} {version} "
                f"{target.value}`)"
            )
        if mv.stage is Stage.ARCHIVED:
            raise InvalidState(
                f"{mv.uri} is archived; approval is asked for versions on their way to "
                f"{target.value}, not for retired ones"
            )
        check_transition(mv.uri, mv.stage, target)
        request = ApprovalRequest(
            id=_new_approval_id(),
            model=name,
            version=version,
            stage=target,
            requested_by=actor,
            created_ms=self.clock.now_ms(),
        )
        self.approvals.create(request, approval_requested(request))
        return request

    def approve(self, request_id: str, actor: str, comment: str | None = None) -> ApprovalRequest:
        """Approve a pending request; its requester may only if the policy of its stage
        sets ``allow_self_approval`` (:class:`PermissionDenied` otherwise)."""
        request = self.approvals.get(request_id)
        policy = self.gates.for_stage(request.model, request.stage)
        allow_self = policy is not None and policy.allow_self_approval
        decided = request.approve(
            actor, self.clock.now_ms(), allow_self_approval=allow_self, comment=comment
        )
        self.approvals.decide(decided, approval_decided(request, decided))
        return decided

    def reject(self, request_id: str, actor: str, comment: str) -> ApprovalRequest:
        """Reject a pending request, saying why (a comment is required)."""
        request = self.approvals.get(request_id)
        decided = request.reject(actor, self.clock.now_ms(), comment)
        self.approvals.decide(decided, approval_decided(request, decided))
        return decided

    def cancel(self, request_id: str, actor: str, comment: str | None = None) -> ApprovalRequest:
        """Withdraw a pending request; only its requester may."""
        request = self.approvals.get(request_id)
        decided = request.cancel(actor, self.clock.now_ms(), comment)
        self.approvals.decide(decided, approval_decided(request, decided))
        return decided

    def get_approval(self, request_id: str) -> ApprovalRequest:
        return self.approvals.get(request_id)

    def list_approvals(
        self,
        model: str | None = None,
        status: ApprovalStatus | str | None = None,
        page_size: int = 100,
        page_token: str | None = None,
    ) -> Page[ApprovalRequest]:
        """Approval requests, newest first; of one model and one status when given."""
        parsed = _approval_status(status) if isinstance(status, str) else status
        return self.approvals.list(model, parsed, check_page_size(page_size), page_token)

    def archive(
        self, name: str, version: int, actor: str, reason: str | None = None
    ) -> ModelVersion:
        return self.transition(name, version, Stage.ARCHIVED, actor, reason=reason)

    def set_alias(self, name: str, alias: str, version: int, actor: str) -> None:
        validate_identifier("alias", alias)
        if isinstance(version, bool) or not isinstance(version, int):
            raise InvalidInput(f"alias {alias!r} must point at a version number, got {version!r}")
        self.store.get_version(name, version)
        before = self.store.get_model(name).aliases.get(alias)
        self.store.set_alias(name, alias, version, alias_set(name, alias, before, version, actor))

    def delete_alias(self, name: str, alias: str, actor: str) -> None:
        model = self.store.get_model(name)
        if alias not in model.aliases:
            raise NotFound(f"model {name!r} has no alias {alias!r}")
        self.store.delete_alias(
            name, alias, alias_deleted(name, alias, model.aliases[alias], actor)
        )


def _new_approval_id() -> str:
    """A short random request id people can type: ``apr-`` and 10 hex digits."""
    return f"apr-{secrets.token_hex(5)}"


def _approval_status(text: str) -> ApprovalStatus:
    try:
        return ApprovalStatus(text.strip().lower())
    except ValueError:
        known = ", ".join(s.value for s in ApprovalStatus)
        raise InvalidInput(f"unknown approval status {text!r}; expected one of {known}") from None
