"""Gathering a model card: what loopml knows about a model version, in one value.

:meth:`ModelCardService.card` reads the registered version, the stored profile of each
dataset version it was trained on, its newest evaluation, the verdict of the gates of
every stage a policy guards, and its lineage, and joins them with the sections people
write (:func:`loopml.domain.card_sections.parse_sections`) into a
:class:`~loopml.domain.model_card.ModelCard`. Only the version itself is required:
whatever is missing or unreadable is named in the card, so a card can be written on the
day a model is registered and grow as the model is evaluated and gated.
"""

from __future__ import annotations

from dataclasses import replace

from loopml.domain.card_sections import parse_sections
from loopml.domain.datasets import DatasetVersion
from loopml.domain.errors import IntegrityError, NotFound
from loopml.domain.evaluation import parse_metric_name
from loopml.domain.gate_report import format_number
from loopml.domain.gates import GATED_STAGES
from loopml.domain.model_card import (
    CardEvaluation,
    ColumnSummary,
    ModelCard,
    ModelDetails,
    StageGates,
    TrainingData,
)
from loopml.domain.registry import ModelVersion
from loopml.domain.tracking import DatasetRef
from loopml.services.datasets import DatasetService
from loopml.services.lineage import LineageService
from loopml.services.model_evaluation import EvaluationService
from loopml.services.registry import RegistryService
from loopml.stats.profile import ColumnProfile

MAX_COLUMNS = 50  # per training dataset; `loopml data show` lists every one
TOP_CATEGORIES = 3
MAX_CATEGORY_CHARS = 40


class ModelCardService:
    def __init__(
        self,
        registry: RegistryService,
        evaluations: EvaluationService,
        datasets: DatasetService,
        lineage: LineageService,
    ) -> None:
        self.registry = registry
        self.evaluations = evaluations
        self.datasets = datasets
        self.lineage = lineage

    def card(
        self, uri: str, sections_text: str | None, *, sections_file: str | None = None
    ) -> ModelCard:
        """The card of the version ``uri`` names.

        ``sections_text`` is the Markdown of the user's sections file, or None when there
        is none; ``sections_file`` is where that file is (or should be), named in the
        placeholders (default ``cards/NAME.md``).

        Raises:
            NotFound: ``uri`` names no version.
        """
        mv = self.registry.resolve(uri)
        notes: list[str] = []
        return ModelCard(
            details=ModelDetails.of(mv),
            training=tuple(self._training(ref) for ref in mv.inputs),
            evaluation=self._evaluation(mv, notes),
            gates=self._gates(mv),
            lineage=tuple(self.lineage.of_model(mv.uri).lines()),
            sections=() if sections_text is None else parse_sections(sections_text),
            sections_file=sections_file or f"cards/{mv.model}.md",
            sections_found=sections_text is not None,
            notes=tuple(notes),
        )

    def _training(self, ref: DatasetRef) -> TrainingData:
        name = f"{ref.name}@{ref.version}"
        try:
            version = self.datasets.get(name)
        except NotFound:
            return TrainingData(
                name, note="not in this workspace: its rows and profile are unknown"
            )
        note = ""
        if ref.digest is not None and ref.digest != version.digest:
            note = "its content differs from what the training run recorded"
        return TrainingData(
            ref=version.ref,
            rows=version.rows,
            column_count=len(version.columns),
            columns=self._columns(version),
            created_ms=version.created_ms,
            message=version.message,
            digest=version.digest,
            note=note,
        )

    def _columns(self, version: DatasetVersion) -> tuple[ColumnSummary, ...]:
        try:
            profile = self.datasets.profile(version)
        except (NotFound, IntegrityError):
            # No stored profile (or its blob is gone): the names and types still help.
            return tuple(
                ColumnSummary(c.name, c.type, summary="no stored profile")
                for c in version.columns[:MAX_COLUMNS]
            )
        return tuple(summarize_column(c) for c in profile.columns[:MAX_COLUMNS])

    def _evaluation(self, mv: ModelVersion, notes: list[str]) -> CardEvaluation | None:
        try:
            record = self.evaluations.latest(mv.uri)
        except NotFound:
            return None  # the card says how to evaluate it
        base = CardEvaluation(
            task=record.task,
            rows=record.rows,
            created_ms=record.created_ms,
            actor=record.actor,
            metrics={
                k: v for k, v in record.metrics.items() if parse_metric_name(k).scope == "overall"
            },
            dataset=record.dataset,
            data_validation=dict(record.data_validation),
            latency_p99_ms=record.latency_p99_ms,
        )
        try:
            full = self.evaluations.load(record)
        except (NotFound, IntegrityError) as exc:
            notes.append(
                f"the full evaluation of {mv.uri} could not be read ({exc}): only its overall "
                "metrics are shown; evaluate it again to restore slices and fairness"
            )
            return base
        return replace(
            base,
            metrics=dict(full.metrics),
            label=full.label,
            slices=full.slices,
            fairness=full.fairness,
            notes=full.notes,
        )

    def _gates(self, mv: ModelVersion) -> tuple[StageGates, ...]:
        guarded = [s for s in GATED_STAGES if self.registry.gates.for_stage(mv.model, s)]
        return tuple(
            StageGates.of(self.registry.gate_report(mv.model, mv.version, stage))
            for stage in guarded
        )


def summarize_column(column: ColumnProfile) -> ColumnSummary:
    """A column's profile in one short line: its range and mean, share of true, or most
    frequent categories, with infinite values counted."""
    return ColumnSummary(
        name=column.name,
        type=column.dtype,
        missing=column.nulls,
        distinct=column.distinct,
        distinct_exact=column.distinct_exact,
        summary=_summary(column),
    )


def _summary(c: ColumnProfile) -> str:
    if c.count == 0:
        return "no values"
    parts: list[str] = []
    if c.kind == "numeric":
        parts.append(f"{_number(c.min)} to {_number(c.max)}")
        if c.mean is not None:
            std = "" if c.std is None else f", std {_number(c.std)}"
            parts.append(f"mean {_number(c.mean)}{std}")
    elif c.kind == "datetime":
        parts.append(f"{c.min} to {c.max}")
    elif c.kind == "boolean" and c.mean is not None:
        parts.append(f"{c.mean:.1%} true")
    elif c.kind == "categorical" and c.top:
        shown = ", ".join(
            f"{_short(value)} {count / c.count:.1%}" for value, count in c.top[:TOP_CATEGORIES]
        )
        more = len(c.top) > TOP_CATEGORIES or not c.top_complete
        parts.append(f"top: {shown}{', …' if more else ''}")
    if c.infinite:
        parts.append(f"{c.infinite:,} infinite")
    return "; ".join(parts)


def _number(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return format_number(value, digits=4)


def _short(text: str) -> str:
    return text if len(text) <= MAX_CATEGORY_CHARS else text[: MAX_CATEGORY_CHARS - 1] + "…"
