"""A model card: what loopml knows about a model version, written down for people.

``loopml card models:/NAME/VERSION`` assembles a :class:`ModelCard` from facts loopml
already holds (the registered version, its training data and their profiles, its newest
evaluation, the gates of each guarded stage, its lineage) and the sections people write
beside the code (:mod:`loopml.domain.card_sections`). :meth:`ModelCard.to_markdown`
renders it for a repository or a pull request; ``loopml.adapters.card_html`` renders the
same value as an offline page. What is missing is said in the card, with the command or
file that fills it in, never left out silently (:attr:`ModelCard.missing`).

Values that come from data (column, slice and group names, categories, messages) are
escaped wherever they appear in the Markdown: in a table cell ``|`` and line breaks
cannot break the row, and ``<script>`` stays text. The user's sections are their own
Markdown and are copied as written. Standard library only, no I/O.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from loopml.domain.card_sections import INTENDED_USE, LIMITATIONS, UserSection
from loopml.domain.evaluation_parts import FairnessResult, SliceResult
from loopml.domain.gate_report import (
    CheckResult,
    GateReport,
    bound_text,
    format_bytes,
    format_ms,
    format_number,
    value_text,
)
from loopml.domain.json_numbers import encode_number
from loopml.domain.registry import ColumnSpec, ModelVersion

__all__ = [
    "CardEvaluation",
    "ColumnSummary",
    "GateCheck",
    "ModelCard",
    "ModelDetails",
    "StageGates",
    "TrainingData",
]

_STANDARD_SECTIONS = (INTENDED_USE, LIMITATIONS)


@dataclass(frozen=True, slots=True)
class ModelDetails:
    """The registered version itself; ``metrics`` are those recorded at registration."""

    model: str
    version: int
    stage: str
    flavor: str
    created_ms: int
    description: str = ""
    aliases: tuple[str, ...] = ()
    run_id: str | None = None
    artifact: str = ""  # the artifact's content digest
    size_bytes: int | None = None
    code: str | None = None  # "commit 1a2b3c4d5e6f on main (clean)"
    inputs: tuple[str, ...] = ()  # signature columns as "name (type)"
    outputs: tuple[str, ...] = ()
    metrics: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, mv: ModelVersion) -> ModelDetails:
        code = None
        if mv.code is not None:
            state = "dirty" if mv.code.dirty else "clean"
            code = f"commit {mv.code.commit[:12]} on {mv.code.branch or 'detached HEAD'} ({state})"
        signature = mv.signature
        return cls(
            model=mv.model,
            version=mv.version,
            stage=mv.stage.value,
            flavor=mv.flavor,
            created_ms=mv.created_ms,
            description=mv.description,
            aliases=tuple(mv.aliases),
            run_id=mv.run_id,
            artifact=str(mv.artifact.digest),
            size_bytes=mv.artifact.size,
            code=code,
            inputs=() if signature is None else tuple(map(_spec, signature.inputs)),
            outputs=() if signature is None else tuple(map(_spec, signature.outputs)),
            metrics=dict(mv.metrics),
        )

    @property
    def uri(self) -> str:
        return f"models:/{self.model}/{self.version}"


@dataclass(frozen=True, slots=True)
class ColumnSummary:
    """One column of a training dataset: ``summary`` is a short line from its profile
    (range and mean, or top categories); ``missing`` and ``distinct`` are None when the
    version has no stored profile, and ``distinct_exact`` False when it was estimated."""

    name: str
    type: str
    missing: int | None = None
    distinct: int | None = None
    distinct_exact: bool = True
    summary: str = ""


@dataclass(frozen=True, slots=True)
class TrainingData:
    """A dataset version the model was trained on. ``columns`` may be fewer than
    ``column_count`` (wide tables are cut); ``note`` says what went wrong reading it."""

    ref: str  # name@version
    rows: int | None = None
    column_count: int = 0
    columns: tuple[ColumnSummary, ...] = ()
    created_ms: int | None = None
    message: str = ""
    digest: str | None = None
    note: str = ""


@dataclass(frozen=True, slots=True)
class CardEvaluation:
    """The newest evaluation of the version: overall metrics, slices and fairness gaps."""

    task: str
    rows: int
    created_ms: int
    actor: str
    metrics: Mapping[str, float]
    label: str = ""
    dataset: str | None = None  # name@version when evaluated on a stored dataset
    slices: tuple[SliceResult, ...] = ()
    fairness: tuple[FairnessResult, ...] = ()
    notes: tuple[str, ...] = ()
    data_validation: Mapping[str, bool | None] = field(default_factory=dict)
    latency_p99_ms: float | None = None


@dataclass(frozen=True, slots=True)
class GateCheck:
    """One check of a gate as the card shows it: the outcome and the numbers as text."""

    name: str
    outcome: str  # passed, failed, skipped
    value: str
    bound: str
    message: str

    @classmethod
    def of(cls, check: CheckResult) -> GateCheck:
        return cls(
            check.name, check.outcome.value, value_text(check), bound_text(check), check.message
        )


@dataclass(frozen=True, slots=True)
class StageGates:
    """What the gates of one stage say about the version (see :class:`GateReport`)."""

    stage: str
    passed: bool
    summary: str  # "failed: 1 failed, 2 passed"
    checks: tuple[GateCheck, ...] = ()
    champion_version: int | None = None
    has_champion: bool = False
    requires_approval: bool = False

    @classmethod
    def of(cls, report: GateReport) -> StageGates:
        return cls(
            stage=report.stage.value,
            passed=report.passed,
            summary=report.summary(),
            checks=tuple(GateCheck.of(c) for c in report.checks),
            champion_version=report.champion_version,
            has_champion=report.has_champion,
            requires_approval=report.requires_approval,
        )


@dataclass(frozen=True, slots=True)
class ModelCard:
    """Everything a card shows. ``gates`` holds only stages a policy guards;
    ``sections_file`` is where the user's sections are kept (or should be), for the
    placeholders; ``notes`` are what could not be gathered (a dataset gone, say)."""

    details: ModelDetails
    training: tuple[TrainingData, ...] = ()
    evaluation: CardEvaluation | None = None
    gates: tuple[StageGates, ...] = ()
    lineage: tuple[str, ...] = ()
    sections: tuple[UserSection, ...] = ()
    sections_file: str = ""
    sections_found: bool = False
    notes: tuple[str, ...] = ()

    @property
    def uri(self) -> str:
        return self.details.uri

    @property
    def title(self) -> str:
        return f"Model card: {self.details.model} v{self.details.version}"

    def section(self, title: str) -> UserSection | None:
        """The user's section named ``title`` (standard names matched loosely), if written."""
        for section in self.sections:
            if title in (section.title, section.standard):
                return section
        return None

    @property
    def other_sections(self) -> tuple[UserSection, ...]:
        """The user's sections beyond intended use and limitations, in file order."""
        return tuple(s for s in self.sections if s.standard is None)

    def placeholder(self, title: str) -> str:
        """What to do to fill in the standard section ``title`` (one sentence)."""
        if not self.sections_found:
            return (
                f"Not written yet: create {self.sections_file} with a '## {title}' section; "
                "loopml card copies it here."
            )
        return f"Not written yet: add a '## {title}' section to {self.sections_file}."

    @property
    def missing(self) -> tuple[str, ...]:
        """What the card lacks and how to add it, then the notes of what was unreadable."""
        found: list[str] = []
        if not self.sections_found:
            found.append(
                f"no sections file: create {self.sections_file} with '## {INTENDED_USE}' "
                f"and '## {LIMITATIONS}' sections"
            )
        else:
            found += [
                f"no '## {title}' section in {self.sections_file}"
                for title in _STANDARD_SECTIONS
                if not self._written(title)
            ]
        if not self.training:
            found.append(
                "no training data recorded: log it in the training run (run.log_dataset) or "
                "register the model with inputs="
            )
        if self.evaluation is None:
            found.append(
                f"not evaluated yet: run 'loopml evaluate {self.uri} --data NAME@VERSION "
                "--label COLUMN'"
            )
        if not self.gates:
            found.append(
                f"no gate policy guards {self.details.model}: add one under [gates] in loopml.toml"
            )
        return (*found, *self.notes)

    def _written(self, title: str) -> bool:
        section = self.section(title)
        return section is not None and bool(section.text.strip())

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (a non-finite metric becomes ``"nan"``, ``"inf"``...)."""
        data: dict[str, Any] = {"uri": self.uri}
        data.update(_plain(self))
        data["missing"] = list(self.missing)
        return data

    def to_markdown(self) -> str:
        """The card as Markdown: details, the user's sections, data, evaluation, gates,
        lineage, the user's other sections and what is missing."""
        d = self.details
        lines = [
            f"# {self.title}",
            "",
            f"{_code(self.uri)} · stage **{d.stage}** · {_inline(d.flavor)} · "
            f"registered {when(d.created_ms)}",
            "",
            "## Model details",
            "",
            *self._details_lines(),
        ]
        for title in _STANDARD_SECTIONS:
            lines += ["", f"## {title}", "", *self._user_text(title)]
        lines += ["", "## Training data", "", *self._training_lines()]
        lines += ["", "## Evaluation", "", *self._evaluation_lines()]
        lines += ["", "## Gates", "", *self._gate_lines()]
        lines += ["", "## Lineage", "", *_fenced(self.lineage or ("(no lineage recorded)",))]
        for section in self.other_sections:
            lines += ["", f"## {_inline(section.title)}", "", section.text or "(empty)"]
        if self.missing:
            lines += ["", "## Missing from this card", ""]
            lines += [f"- {_inline(item)}" for item in self.missing]
        # The parts end with a blank line or not; the card has one between blocks.
        # (The user's text is one element, so blank lines inside it are kept.)
        kept = [line for i, line in enumerate(lines) if line or (i > 0 and lines[i - 1])]
        return "\n".join(kept).rstrip() + "\n"

    def _details_lines(self) -> list[str]:
        d = self.details
        items = [
            ("Model", _inline(d.model)),
            ("Version", str(d.version)),
            ("Stage", d.stage),
            ("Flavor", _inline(d.flavor)),
            ("Registered", when(d.created_ms)),
        ]
        if d.description:
            items.append(("Description", _inline(d.description)))
        if d.aliases:
            items.append(("Aliases", ", ".join(_inline(a) for a in d.aliases)))
        if d.run_id:
            items.append(("Run", _code(f"runs:/{d.run_id}")))
        if d.code:
            items.append(("Code", _inline(d.code)))
        size = "" if d.size_bytes is None else f", {format_bytes(d.size_bytes)}"
        items.append(("Artifact", f"{_code(d.artifact)}{size}"))
        if d.inputs:
            items.append(("Inputs", ", ".join(_inline(c) for c in d.inputs)))
        if d.outputs:
            items.append(("Outputs", ", ".join(_inline(c) for c in d.outputs)))
        return [f"- **{name}:** {value}" for name, value in items]

    def _user_text(self, title: str) -> list[str]:
        section = self.section(title)
        if section is not None and section.text.strip():
            return [section.text]
        return [f"_{_inline(self.placeholder(title))}_"]

    def _training_lines(self) -> list[str]:
        if not self.training:
            return ["No training data was recorded with this version."]
        lines: list[str] = []
        for data in self.training:
            lines += [f"### {_inline(data.ref)}", ""]
            facts = []
            if data.rows is not None:
                facts.append(f"{data.rows:,} rows, {data.column_count:,} columns")
            if data.created_ms is not None:
                facts.append(f"added {when(data.created_ms)}")
            if data.message:
                facts.append(f"message: {_inline(data.message)}")
            if facts:
                lines += ["; ".join(facts) + ".", ""]
            if data.note:
                lines += [f"_{_inline(data.note)}_", ""]
            if data.columns:
                lines += _columns_table(data.columns)
                hidden = data.column_count - len(data.columns)
                if hidden > 0:
                    lines += ["", f"And {hidden:,} more columns: `loopml data show {data.ref}`."]
                lines.append("")
        return lines

    def _evaluation_lines(self) -> list[str]:
        lines: list[str] = []
        e = self.evaluation
        if e is None:
            lines.append(
                f"Not evaluated yet: run `loopml evaluate {self.uri} --data NAME@VERSION "
                "--label COLUMN` to measure it on held-out data."
            )
        else:
            lines += _evaluation_summary(e)
            lines += ["", "### Overall", "", *_metric_table(e.metrics)]
            if e.slices:
                lines += ["", "### Per slice", "", *_wide_table("Slice", e.slices)]
            if e.fairness:
                lines += ["", "### Fairness", "", *_fairness_lines(e.fairness)]
            if e.notes:
                lines += ["", "### Notes", "", *(f"- {_inline(n)}" for n in e.notes)]
        if self.details.metrics:
            lines += ["", "### Recorded at registration", ""]
            lines += _metric_table(self.details.metrics)
        return lines

    def _gate_lines(self) -> list[str]:
        if not self.gates:
            return [
                f"No gate policy guards {_inline(self.details.model)}: promotions are not "
                "checked. Add one under `[gates]` in loopml.toml."
            ]
        lines: list[str] = []
        for gates in self.gates:
            lines += [f"### Into {gates.stage}: {gates.summary}", ""]
            if gates.champion_version is not None:
                lines.append(f"Compared with the champion, v{gates.champion_version}.")
            elif not gates.has_champion:
                lines.append("No champion yet: checks against the champion are skipped.")
            if gates.requires_approval:
                lines.append("A person must approve this promotion.")
            lines += ["", "| Check | Result | Value | Bound | Details |", "|---|---|--:|---|---|"]
            lines += [_row((c.name, c.outcome, c.value, c.bound, c.message)) for c in gates.checks]
            lines.append("")
        return lines


def when(ms: int) -> str:
    """A time in milliseconds as ``2024-05-01 14:03 UTC``."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def _spec(column: ColumnSpec) -> str:
    shape = "" if column.shape is None else f" {list(column.shape)}"
    return f"{column.name} ({column.type}{shape})"


def _evaluation_summary(e: CardEvaluation) -> list[str]:
    on = f"on {_code(e.dataset)}" if e.dataset else "on data given directly"
    label = f", label {_code(e.label)}" if e.label else ""
    lines = [
        f"Newest evaluation, {on} ({e.rows:,} rows{label}; {_inline(e.task)}), recorded "
        f"{when(e.created_ms)} by {_inline(e.actor)}."
    ]
    if e.data_validation:
        shown = ", ".join(
            f"{_inline(role)} {_validation_word(ok)}" for role, ok in e.data_validation.items()
        )
        lines += ["", f"Data validation: {shown}."]
    if e.latency_p99_ms is not None:
        lines += ["", f"Predict latency p99, one row at a time: {format_ms(e.latency_p99_ms)}."]
    return lines


def _validation_word(ok: bool | None) -> str:
    return "not run" if ok is None else ("passed" if ok else "failed")


def _columns_table(columns: Sequence[ColumnSummary]) -> list[str]:
    lines = ["| Column | Type | Missing | Distinct | Summary |", "|---|---|--:|--:|---|"]
    for c in columns:
        distinct = "" if c.distinct is None else f"{'' if c.distinct_exact else '~'}{c.distinct:,}"
        missing = "" if c.missing is None else f"{c.missing:,}"
        lines.append(_row((c.name, c.type, missing, distinct, c.summary)))
    return lines


def _metric_table(metrics: Mapping[str, float]) -> list[str]:
    if not metrics:
        return ["No metrics."]
    lines = ["| Metric | Value |", "|---|--:|"]
    lines += [f"| {_code(name)} | {format_number(value)} |" for name, value in metrics.items()]
    return lines


def _wide_table(first: str, results: Sequence[SliceResult], label: str = "name") -> list[str]:
    """One row per slice or group, one column per metric (their union, first seen first)."""
    columns: dict[str, None] = {}
    for result in results:
        columns.update(dict.fromkeys(result.metrics))
    lines = [
        "| " + " | ".join([first, "Rows", *(f"`{c}`" for c in columns)]) + " |",
        "|---|--:|" + "--:|" * len(columns),
    ]
    for r in results:
        name = r.value if label == "value" and r.value is not None else r.name
        values = [format_number(r.metrics[c]) if c in r.metrics else "—" for c in columns]
        lines.append(_row((name, f"{r.rows:,}", *values)))
    return lines


def _fairness_lines(results: Sequence[FairnessResult]) -> list[str]:
    lines = ["| Sensitive column | Gap | Value |", "|---|---|--:|"]
    for result in results:
        lines += [
            f"| {_cell(result.column)} | {_code(name)} | {format_number(value)} |"
            for name, value in result.metrics.items()
        ]
    for result in results:
        if result.groups:
            lines += ["", f"Groups of {_inline(result.column)}:", ""]
            lines += _wide_table("Group", result.groups, label="value")
    return lines


# Markdown text from data ------------------------------------------------------------------

# Characters that would start emphasis, code, links or HTML, or end a table cell. HTML's
# three are written as entities so that no renderer can read a tag; the rest are escaped.
_ESCAPES = str.maketrans(
    {
        "\\": "\\\\",
        "|": "\\|",
        "`": "\\`",
        "*": "\\*",
        "[": "\\[",
        "]": "\\]",
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
    }
)


def _inline(text: str) -> str:
    """``text`` from data as one line of Markdown that shows exactly that text."""
    return " ".join(str(text).translate(_ESCAPES).split())


def _cell(text: str) -> str:
    """A table cell: as :func:`_inline`, and never empty-looking."""
    return _inline(text) or " "


def _row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _code(text: str) -> str:
    """``text`` as an inline code span, whatever backticks it holds (on one line)."""
    flat = " ".join(str(text).split())
    longest = max((len(run) for run in re.findall(r"`+", flat)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{ticks}{pad}{flat}{pad}{ticks}"


def _fenced(lines: Sequence[str]) -> list[str]:
    """``lines`` as a fenced code block whose fence no line can close."""
    longest = max((len(run) for line in lines for run in re.findall(r"`+", line)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}text", *lines, fence]


def _plain(value: Any) -> Any:
    """A dataclass, mapping or sequence as plain JSON types."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return encode_number(value)
