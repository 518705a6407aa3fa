"""An evaluation as one self-contained HTML page: inline CSS and SVG, no script, no network.

The page opens offline from a CI artifact or an e-mail: the overall metrics, the charts
(reliability diagram, ROC curve and confusion matrix for classification; the residual
histogram for regression; permutation importance when computed), the metrics of every
slice, the fairness gaps with their groups, and the notes on what was left out. Every
string from the data (labels, slice values, feature names, notes, the title) is escaped:
a slice value named ``<script>`` is shown, never run.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from html import escape

from loopml.adapters.svg_charts import heat_map, histogram, horizontal_bars, number, unit_curve
from loopml.domain.evaluation import Evaluation, FairnessResult, SliceResult

MAX_MATRIX_CLASSES = 30  # a bigger confusion matrix is a table's job, not a picture's
MAX_IMPORTANCE_BARS = 20

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem;color:#1d2430}
h1{font-size:1.4rem;margin:0 0 .3rem}h2{font-size:1.1rem;margin:1.6rem 0 .5rem}
h3{font-size:1rem;margin:1rem 0 .4rem}
.meta{color:#5b6472;margin-bottom:1rem}
.charts{display:flex;flex-wrap:wrap;gap:1rem}
.chart{border:1px solid #e3e6ea;border-radius:6px;background:#fff;max-width:100%;height:auto}
.scroll{overflow-x:auto}
table{border-collapse:collapse}
th,td{text-align:left;vertical-align:top;padding:.35rem .6rem;border-bottom:1px solid #e3e6ea}
th{background:#f4f6f8}td.num{text-align:right;font-variant-numeric:tabular-nums}
.nan{color:#8a5a00}
code{background:#f4f6f8;padding:0 .25rem;border-radius:3px}
"""


def evaluation_html(evaluation: Evaluation, title: str) -> str:
    """The evaluation as a complete HTML page (one string, nothing to fetch)."""
    e = evaluation
    sections = [
        "<h2>Overall</h2>",
        _metric_table(e.metrics),
        _charts(e),
        _slices(e.slices),
        _fairness(e.fairness),
        _importance(e),
        _notes(e.notes),
    ]
    return (
        "<!doctype html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{_CSS}</style></head><body>"
        f"<h1>{escape(title)}</h1>"
        f'<div class="meta">{_summary(e)}</div>'
        f"{''.join(sections)}</body></html>\n"
    )


def _summary(e: Evaluation) -> str:
    parts = [f"{escape(e.task)} of <code>{escape(e.label)}</code> on {e.rows:,} rows"]
    if e.labels:
        shown = ", ".join(escape(label) for label in e.labels[:12])
        more = f" and {len(e.labels) - 12:,} more" if len(e.labels) > 12 else ""
        parts.append(f"{len(e.labels):,} classes ({shown}{more})")
    if e.positive_label is not None:
        parts.append(f"positive class <code>{escape(e.positive_label)}</code>")
    return "; ".join(parts)


def _cell(value: float) -> str:
    css = "num nan" if math.isnan(value) else "num"
    return f'<td class="{css}">{escape(number(value))}</td>'


def _metric_table(metrics: Mapping[str, float]) -> str:
    if not metrics:
        return "<p>No metrics.</p>"
    rows = "".join(
        f"<tr><td><code>{escape(name)}</code></td>{_cell(value)}</tr>"
        for name, value in metrics.items()
    )
    return (
        f"<table><thead><tr><th>metric</th><th>value</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _wide_table(first: str, results: Sequence[SliceResult]) -> str:
    """One row per slice or group, one column per metric (the union, in first-seen order)."""
    columns: dict[str, None] = {}
    for result in results:
        columns.update(dict.fromkeys(result.metrics))
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join(
        f'<tr><td>{escape(r.name)}</td><td class="num">{r.rows:,}</td>'
        + "".join(_cell(r.metrics.get(c, float("nan"))) for c in columns)
        + "</tr>"
        for r in results
    )
    return (
        f'<div class="scroll"><table><thead><tr><th>{escape(first)}</th><th>rows</th>{head}'
        f"</tr></thead><tbody>{body}</tbody></table></div>"
    )


def _slices(slices: Sequence[SliceResult]) -> str:
    if not slices:
        return ""
    return (
        "<h2>Slices</h2><p>Gates name these metrics <code>slice:&lt;slice&gt;/&lt;metric&gt;"
        f"</code>.</p>{_wide_table('slice', slices)}"
    )


def _fairness(results: Sequence[FairnessResult]) -> str:
    if not results:
        return ""
    parts = ["<h2>Fairness</h2>"]
    for result in results:
        parts.append(
            f"<h3>Across <code>{escape(result.column)}</code></h3>"
            f"{_metric_table(result.metrics)}{_wide_table('group', result.groups)}"
        )
    return "".join(parts)


def _notes(notes: Iterable[str]) -> str:
    items = "".join(f"<li>{escape(note)}</li>" for note in notes)
    return f"<h2>Notes</h2><ul>{items}</ul>" if items else ""


def _charts(e: Evaluation) -> str:
    charts = []
    if e.calibration is not None:
        shown = [b for b in e.calibration.bins if b.count]
        charts.append(
            unit_curve(
                f"Reliability (ECE {number(e.calibration.ece)})",
                [b.mean_predicted for b in shown],
                [b.observed for b in shown],
                "mean predicted probability",
                "observed share of positives",
                points=True,
                labels=[
                    f"{number(b.lower)} to {number(b.upper)}: {b.count:,} rows, predicted "
                    f"{number(b.mean_predicted)}, observed {number(b.observed)}"
                    for b in shown
                ],
            )
        )
    if e.roc is not None:
        charts.append(
            unit_curve(
                f"ROC curve (AUC {number(e.roc.area)})",
                e.roc.x,
                e.roc.y,
                "false positive rate",
                "true positive rate",
            )
        )
    skipped = ""
    if e.confusion is not None and len(e.confusion.labels) <= MAX_MATRIX_CLASSES:
        charts.append(heat_map("Confusion matrix", e.confusion.labels, e.confusion.counts))
    elif e.confusion is not None:
        skipped = (
            f"<p>The confusion matrix of {len(e.confusion.labels):,} classes is not drawn "
            f"(at most {MAX_MATRIX_CLASSES}); it is in the evaluation's JSON.</p>"
        )
    if e.residuals is not None and e.residuals.bin_counts:
        charts.append(
            histogram(
                "Residuals (y_true - y_pred)",
                e.residuals.bin_edges,
                e.residuals.bin_counts,
                "residual (outer bins hold the tails)",
                "rows",
            )
        )
    if e.importance is not None and e.importance.features:
        top = e.importance.features[:MAX_IMPORTANCE_BARS]
        charts.append(
            horizontal_bars(
                f"Permutation importance ({e.importance.metric})",
                [f.feature for f in top],
                [f.mean for f in top],
                [f.std for f in top],
                f"loss of {e.importance.metric} when shuffled",
            )
        )
    if not charts:
        return skipped
    return f'<h2>Charts</h2><div class="charts">{"".join(charts)}</div>{skipped}'


def _importance(e: Evaluation) -> str:
    if e.importance is None:
        return ""
    pi = e.importance
    rows = "".join(
        f"<tr><td>{escape(f.feature)}</td>{_cell(f.mean)}{_cell(f.std)}</tr>" for f in pi.features
    )
    return (
        f"<h2>Permutation importance</h2><p>Loss of <code>{escape(pi.metric)}</code> (baseline "
        f"{escape(number(pi.baseline))}) when one feature is shuffled: {pi.n_repeats} repeats on "
        f"{pi.rows:,} rows, seed {pi.seed}.</p><table><thead><tr><th>feature</th><th>mean</th>"
        f"<th>std</th></tr></thead><tbody>{rows}</tbody></table>"
    )
