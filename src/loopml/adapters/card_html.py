"""A model card as one self-contained HTML page: inline CSS, no script, no network.

The same sections as :meth:`ModelCard.to_markdown`, for people who open a file rather
than read a repository: details, intended use and limitations, training data with a
profile line per column, the newest evaluation (overall, per slice, fairness), the gates
of each guarded stage, the lineage tree, the user's other sections and what is missing.
Every string from the data is escaped; the user's sections are rendered through a small
safe Markdown subset (:mod:`loopml.adapters.safe_markdown`) that never passes HTML on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from loopml.adapters.safe_markdown import markdown_html
from loopml.domain.card_sections import INTENDED_USE, LIMITATIONS
from loopml.domain.evaluation_parts import FairnessResult, SliceResult
from loopml.domain.gate_report import format_bytes, format_ms, format_number
from loopml.domain.model_card import (
    CardEvaluation,
    ColumnSummary,
    ModelCard,
    StageGates,
    TrainingData,
    when,
)

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:70rem;padding:0 1rem;
color:#1d2430}
h1{font-size:1.5rem;margin:0 0 .3rem}h2{font-size:1.2rem;margin:2rem 0 .5rem;
border-bottom:1px solid #e3e6ea;padding-bottom:.2rem}h3{font-size:1rem;margin:1.2rem 0 .4rem}
h4{font-size:.95rem;margin:1rem 0 .3rem}
.meta{color:#5b6472;margin-bottom:1rem}
.badge{display:inline-block;padding:.1rem .55rem;border-radius:1rem;font-weight:600;
background:#e8edf3}
.passed{background:#dcf5e3;color:#125b2a}.failed{background:#fde2e1;color:#8a1c17}
.skipped{background:#f1f1f1;color:#5b6472}
.todo{color:#8a5a00;font-style:italic}
.scroll{overflow-x:auto}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}dt{font-weight:600}
dd{margin:0}
table{border-collapse:collapse;margin:.3rem 0}
th,td{text-align:left;vertical-align:top;padding:.35rem .6rem;border-bottom:1px solid #e3e6ea}
th{background:#f4f6f8}td.num{text-align:right;font-variant-numeric:tabular-nums}
code{background:#f4f6f8;padding:0 .25rem;border-radius:3px}
pre{background:#f4f6f8;padding:.6rem .8rem;border-radius:6px;overflow-x:auto}
pre code{background:none;padding:0}
blockquote{margin:.5rem 0;padding-left:.8rem;border-left:3px solid #e3e6ea;color:#5b6472}
"""


def card_html(card: ModelCard) -> str:
    """The card as a complete HTML page (one string, nothing to fetch)."""
    d = card.details
    sections = [
        _section("Model details", _details(card)),
        *(_section(title, _user(card, title)) for title in (INTENDED_USE, LIMITATIONS)),
        _section("Training data", _training(card.training)),
        _section("Evaluation", _evaluation(card)),
        _section("Gates", _gates(card)),
        _section("Lineage", _lineage(card.lineage)),
        *(
            _section(s.title, markdown_html(s.text) if s.text else "<p>(empty)</p>")
            for s in card.other_sections
        ),
    ]
    if card.missing:
        items = "".join(f"<li>{escape(item)}</li>" for item in card.missing)
        sections.append(_section("Missing from this card", f"<ul>{items}</ul>"))
    return (
        "<!doctype html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{escape(card.title)}</title>'
        f"<style>{_CSS}</style></head><body>"
        f"<h1>{escape(card.title)}</h1>"
        f'<div class="meta"><code>{escape(card.uri)}</code> · stage '
        f'<span class="badge">{escape(d.stage)}</span> · {escape(d.flavor)} · registered '
        f"{escape(when(d.created_ms))}</div>"
        f"{''.join(sections)}</body></html>\n"
    )


def _section(title: str, body: str) -> str:
    return f"<section><h2>{escape(title)}</h2>{body}</section>"


def _details(card: ModelCard) -> str:
    d = card.details
    items = [
        ("Model", escape(d.model)),
        ("Version", str(d.version)),
        ("Stage", escape(d.stage)),
        ("Flavor", escape(d.flavor)),
        ("Registered", escape(when(d.created_ms))),
    ]
    if d.description:
        items.append(("Description", escape(d.description)))
    if d.aliases:
        items.append(("Aliases", escape(", ".join(d.aliases))))
    if d.run_id:
        items.append(("Run", f"<code>runs:/{escape(d.run_id)}</code>"))
    if d.code:
        items.append(("Code", escape(d.code)))
    size = "" if d.size_bytes is None else f", {escape(format_bytes(d.size_bytes))}"
    items.append(("Artifact", f"<code>{escape(d.artifact)}</code>{size}"))
    if d.inputs:
        items.append(("Inputs", escape(", ".join(d.inputs))))
    if d.outputs:
        items.append(("Outputs", escape(", ".join(d.outputs))))
    rows = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in items)
    return f"<dl>{rows}</dl>"


def _user(card: ModelCard, title: str) -> str:
    section = card.section(title)
    if section is not None and section.text.strip():
        return markdown_html(section.text)
    return f'<p class="todo">{escape(card.placeholder(title))}</p>'


def _training(training: Sequence[TrainingData]) -> str:
    if not training:
        return "<p>No training data was recorded with this version.</p>"
    parts = []
    for data in training:
        facts = []
        if data.rows is not None:
            facts.append(f"{data.rows:,} rows, {data.column_count:,} columns")
        if data.created_ms is not None:
            facts.append(f"added {when(data.created_ms)}")
        if data.message:
            facts.append(f"message: {data.message}")
        parts.append(f"<h3>{escape(data.ref)}</h3>")
        if facts:
            parts.append(f"<p>{escape('; '.join(facts))}.</p>")
        if data.note:
            parts.append(f'<p class="todo">{escape(data.note)}</p>')
        if data.columns:
            parts.append(_columns(data.columns))
            hidden = data.column_count - len(data.columns)
            if hidden > 0:
                parts.append(
                    f"<p>And {hidden:,} more columns: "
                    f"<code>loopml data show {escape(data.ref)}</code>.</p>"
                )
    return "".join(parts)


def _columns(columns: Sequence[ColumnSummary]) -> str:
    rows = []
    for c in columns:
        distinct = "" if c.distinct is None else f"{'' if c.distinct_exact else '~'}{c.distinct:,}"
        missing = "" if c.missing is None else f"{c.missing:,}"
        rows.append(
            f"<tr><td>{escape(c.name)}</td><td><code>{escape(c.type)}</code></td>"
            f'<td class="num">{missing}</td><td class="num">{distinct}</td>'
            f"<td>{escape(c.summary)}</td></tr>"
        )
    return (
        '<div class="scroll"><table><thead><tr><th>column</th><th>type</th><th>missing</th>'
        f"<th>distinct</th><th>summary</th></tr></thead><tbody>{''.join(rows)}</tbody>"
        "</table></div>"
    )


def _evaluation(card: ModelCard) -> str:
    e = card.evaluation
    parts = []
    if e is None:
        parts.append(
            f'<p class="todo">Not evaluated yet: run <code>loopml evaluate {escape(card.uri)} '
            "--data NAME@VERSION --label COLUMN</code> to measure it on held-out data.</p>"
        )
    else:
        parts += [_evaluation_summary(e), "<h3>Overall</h3>", _metric_table(e.metrics)]
        if e.slices:
            parts += ["<h3>Per slice</h3>", _wide_table("slice", e.slices)]
        if e.fairness:
            parts += ["<h3>Fairness</h3>", _fairness(e.fairness)]
        if e.notes:
            notes = "".join(f"<li>{escape(n)}</li>" for n in e.notes)
            parts.append(f"<h3>Notes</h3><ul>{notes}</ul>")
    if card.details.metrics:
        parts += ["<h3>Recorded at registration</h3>", _metric_table(card.details.metrics)]
    return "".join(parts)


def _evaluation_summary(e: CardEvaluation) -> str:
    on = f"on <code>{escape(e.dataset)}</code>" if e.dataset else "on data given directly"
    label = f", label <code>{escape(e.label)}</code>" if e.label else ""
    lines = [
        f"<p>Newest evaluation, {on} ({e.rows:,} rows{label}; {escape(e.task)}), recorded "
        f"{escape(when(e.created_ms))} by {escape(e.actor)}.</p>"
    ]
    if e.data_validation:
        shown = ", ".join(
            f"{escape(role)} {'not run' if ok is None else ('passed' if ok else 'failed')}"
            for role, ok in e.data_validation.items()
        )
        lines.append(f"<p>Data validation: {shown}.</p>")
    if e.latency_p99_ms is not None:
        lines.append(
            f"<p>Predict latency p99, one row at a time: {escape(format_ms(e.latency_p99_ms))}.</p>"
        )
    return "".join(lines)


def _number_cell(value: float | None) -> str:
    text = "—" if value is None else format_number(value)
    return f'<td class="num">{escape(text)}</td>'


def _metric_table(metrics: Mapping[str, float]) -> str:
    if not metrics:
        return "<p>No metrics.</p>"
    rows = "".join(
        f"<tr><td><code>{escape(name)}</code></td>{_number_cell(value)}</tr>"
        for name, value in metrics.items()
    )
    return (
        f"<table><thead><tr><th>metric</th><th>value</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _wide_table(first: str, results: Sequence[SliceResult], by_value: bool = False) -> str:
    """One row per slice or group, one column per metric (their union, first seen first)."""
    columns: dict[str, None] = {}
    for result in results:
        columns.update(dict.fromkeys(result.metrics))
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    rows = []
    for r in results:
        name = r.value if by_value and r.value is not None else r.name
        cells = "".join(_number_cell(r.metrics.get(c)) for c in columns)
        rows.append(f'<tr><td>{escape(name)}</td><td class="num">{r.rows:,}</td>{cells}</tr>')
    return (
        f'<div class="scroll"><table><thead><tr><th>{escape(first)}</th><th>rows</th>{head}'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def _fairness(results: Sequence[FairnessResult]) -> str:
    parts = []
    for result in results:
        parts.append(f"<h4>Across <code>{escape(result.column)}</code></h4>")
        parts.append(_metric_table(result.metrics))
        if result.groups:
            parts.append(_wide_table("group", result.groups, by_value=True))
    return "".join(parts)


def _gates(card: ModelCard) -> str:
    if not card.gates:
        return (
            f'<p class="todo">No gate policy guards {escape(card.details.model)}: promotions '
            "are not checked. Add one under <code>[gates]</code> in loopml.toml.</p>"
        )
    return "".join(_stage(gates) for gates in card.gates)


def _stage(gates: StageGates) -> str:
    verdict = "passed" if gates.passed else "failed"
    notes = []
    if gates.champion_version is not None:
        notes.append(f"Compared with the champion, v{gates.champion_version}.")
    elif not gates.has_champion:
        notes.append("No champion yet: checks against the champion are skipped.")
    if gates.requires_approval:
        notes.append("A person must approve this promotion.")
    rows = "".join(
        f'<tr><td><code>{escape(c.name)}</code></td><td><span class="badge {escape(c.outcome)}">'
        f'{escape(c.outcome)}</span></td><td class="num">{escape(c.value)}</td>'
        f"<td>{escape(c.bound)}</td><td>{escape(c.message)}</td></tr>"
        for c in gates.checks
    )
    return (
        f'<h3>Into {escape(gates.stage)} <span class="badge {verdict}">'
        f"{escape(gates.summary)}</span></h3>"
        + "".join(f"<p>{escape(n)}</p>" for n in notes)
        + '<div class="scroll"><table><thead><tr><th>check</th><th>result</th><th>value</th>'
        f"<th>bound</th><th>details</th></tr></thead><tbody>{rows}</tbody></table></div>"
    )


def _lineage(lines: Sequence[str]) -> str:
    if not lines:
        return "<p>No lineage recorded.</p>"
    return f"<pre><code>{escape(chr(10).join(lines))}</code></pre>"
