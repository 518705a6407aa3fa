"""The monitoring report of a deployment as one self-contained HTML page.

Inline CSS and inline SVG, no script, no font, nothing fetched: the page opens offline from
an e-mail or a CI artifact. Sections: a summary (windows, rows, the newest verdict and its
drifted columns, open alerts, the newest loop's state); drift per feature over time (a
line chart of the six most worrying features against the 1.0 line, and a heat-map table
of severity per feature and window that stays readable with many features); the same for
the model's outputs (prediction drift); performance per metric and latency p99 over time;
the newest window's drift per segment; the alerts; the retrain loops with their steps; and
the windows with their notes. Every string from the data (column names, segment values,
alert messages, loop details) is escaped: a column named ``<script>`` is shown, never run.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from html import escape

from loopml.adapters.svg_charts import ACCENT, ACCENT_2, GRID, INK, MUTED, number
from loopml.domain.drift import FeatureDrift, dataset_score
from loopml.domain.model_card import when
from loopml.domain.monitor_report import ColumnTrend, MonitorReport
from loopml.domain.monitoring import WindowReport

TOP_LINES = 6  # lines in one drift chart; the heat map shows every column
HEAT_WINDOWS = 24  # newest windows in the heat map; the charts show all of them
MAX_ALERTS = 100
MAX_LOOPS = 20
MAX_WINDOWS = 50
MAX_SEGMENTS = 50
MARKERS_UP_TO = 60  # points drawn as hoverable dots when a line has this many or fewer
PALETTE = (ACCENT, ACCENT_2, "#3a8a4f", "#b07d12", "#6b4c9a", "#2f8f8f")

_WIDE, _NARROW, _H = 640, 460, 270  # with a legend, without
_LEFT, _TOP, _BOTTOM, _LEGEND = 52, 28, 44, 170

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:78rem;padding:0 1rem;
color:#1d2430}
h1{font-size:1.5rem;margin:0 0 .3rem}h2{font-size:1.2rem;margin:2rem 0 .5rem;
border-bottom:1px solid #e3e6ea;padding-bottom:.2rem}h3{font-size:1rem;margin:1.2rem 0 .4rem}
.meta,.muted{color:#5b6472}.meta{margin-bottom:1rem}
.badge{display:inline-block;padding:.1rem .55rem;border-radius:1rem;font-weight:600;
background:#e8edf3}
.drift,.critical,.failed,.rejected,.rolled-back,.open{background:#fde2e1;color:#8a1c17}
.no-drift,.promoted,.cleared{background:#dcf5e3;color:#125b2a}
.warning,.not-judged,.canary{background:#fdf0d5;color:#8a5a00}
.empty{font-size:1.05rem;padding:1rem;background:#f4f6f8;border-radius:6px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}dt{font-weight:600}
dd{margin:0}
.charts{display:flex;flex-wrap:wrap;gap:1rem}
.chart{border:1px solid #e3e6ea;border-radius:6px;background:#fff;max-width:100%;height:auto}
.scroll{overflow-x:auto}
table{border-collapse:collapse;margin:.3rem 0}
th,td{text-align:left;vertical-align:top;padding:.35rem .6rem;border-bottom:1px solid #e3e6ea}
th{background:#f4f6f8}td.num{text-align:right;font-variant-numeric:tabular-nums}
table.heat td.cell{text-align:center;padding:.25rem .2rem;min-width:2.4rem;font-size:12px;
font-variant-numeric:tabular-nums;border:1px solid #fff}
table.heat th.win{writing-mode:vertical-rl;transform:rotate(180deg);font-weight:400;
font-size:11px;padding:.3rem .1rem}
td.cell.hit{font-weight:700;outline:2px solid #8a1c17;outline-offset:-2px}
td.cell.none{color:#9aa1ab}
small{color:#5b6472}
code{background:#f4f6f8;padding:0 .25rem;border-radius:3px}
"""


def render_monitor_html(report: MonitorReport) -> str:
    """The report as a complete HTML page (one string, nothing to fetch)."""
    title = f"Monitoring report: {report.deployment}"
    if not report.windows:
        body = (
            '<p class="empty">No windows yet: run <code>loopml monitor run '
            f"{escape(report.deployment)}</code> to judge the deployment's traffic, then "
            "build this report again.</p>"
        )
        sections = [body, _alerts(report), _loops(report)]
    else:
        sections = [
            _section("Summary", _summary(report, report.windows[-1])),
            _section("Drift per feature over time", _drift(report, report.features, "feature")),
            _section("Prediction drift", _drift(report, report.outputs, "output")),
            _section("Performance over time", _performance(report)),
            _section("Latency p99 over time", _latency(report)),
            _segments(report),
            _alerts(report),
            _loops(report),
            _section("Windows", _windows(report)),
        ]
    return (
        "<!doctype html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{_CSS}</style></head><body><h1>{escape(title)}</h1>"
        f'<div class="meta">generated {escape(when(report.generated_ms))}</div>'
        f"{''.join(sections)}</body></html>\n"
    )


# sections ----------------------------------------------------------------------------------


def _section(title: str, body: str) -> str:
    return f"<section><h2>{escape(title)}</h2>{body}</section>" if body else ""


def _badge(text: str) -> str:
    """A pill; its class (``no-drift``, ``rolled-back``, ``critical``...) picks the colour."""
    css = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return f'<span class="badge {escape(css)}">{escape(text)}</span>'


def _summary(report: MonitorReport, latest: WindowReport) -> str:
    first = report.windows[0]
    drifted = ", ".join(f"<code>{escape(c)}</code>" for c in report.drifted) or "none"
    judged = report.latest_judged
    if judged is None:
        drifted = "not judged in any window yet"
    elif judged is not latest:
        drifted += f" (in <code>{escape(judged.window_key)}</code>, the newest judged window)"
    items = [
        ("Deployment", f"<code>{escape(report.deployment)}</code>"),
        (
            "Windows",
            f"{len(report.windows):,}, from {escape(when(first.start_ms))} to "
            f"{escape(when(latest.end_ms))}",
        ),
        ("Rows", f"{report.rows:,} ({report.labelled_rows:,} with labels)"),
        (
            "Newest window",
            f"<code>{escape(latest.window_key)}</code>: {latest.rows:,} rows"
            + (f", {escape(latest.model)} v{latest.version}" if latest.version else "")
            + (f", reference <code>{escape(latest.reference)}</code>" if latest.reference else ""),
        ),
        (
            "Verdict",
            f"{_badge(report.verdict.value)} score {escape(number(latest.score))} "
            "(the largest severity; 1.0 is the drift line)",
        ),
        ("Drifted columns", drifted),
        ("Open alerts", f"{len(report.open_alerts):,} of {len(report.alerts):,}"),
        ("Newest loop", _badge(report.loop_state) if report.loop_state else "none yet"),
    ]
    if latest.log_dropped:
        items.append(("Log records lost", f"{latest.log_dropped:,} (by the server, so far)"))
    if latest.note:
        items.append(("Note", escape(latest.note)))
    return "<dl>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def _drift(report: MonitorReport, trends: Sequence[ColumnTrend], role: str) -> str:
    if not trends:
        if role == "output":
            return (
                "<p>No model output was compared: the production version has no stored "
                "profile of its outputs on the reference data.</p>"
            )
        return "<p>No window was judged yet (too few rows, or no reference): see Windows.</p>"
    times = [w.end_ms for w in report.windows]
    top = trends[:TOP_LINES]
    chart = _series_chart(
        f"Severity of the top {len(top)} {role}s"
        if len(trends) > len(top)
        else f"Severity of the {role}s",
        times,
        [(t.column, t.severities) for t in top],
        "level (score / threshold, under 1.0 unless drifted)",
        line_at=1.0,
    )
    return f'<div class="charts">{chart}</div>{_heat_table(report, trends, role)}'


def _heat_table(report: MonitorReport, trends: Sequence[ColumnTrend], role: str) -> str:
    """Newest window first (leftmost), so what matters now is visible without scrolling."""
    count = min(len(report.windows), HEAT_WINDOWS)
    indices = range(len(report.windows) - 1, len(report.windows) - 1 - count, -1)
    shown = [report.windows[i] for i in indices]
    by_window = [
        {c.column: c for c in (w.features if role == "feature" else w.outputs)} for w in shown
    ]
    head = "".join(
        f'<th class="win" title="{escape(w.window_key)}">{escape(_short(w.end_ms))}</th>'
        for w in shown
    )
    rows = []
    for t in trends:
        detail = f"<br><small>{escape(t.latest.detail)}</small>" if t.latest.detail else ""
        cells = "".join(
            _heat_cell(t.severities[i], results.get(t.column))
            for i, results in zip(indices, by_window, strict=True)
        )
        rows.append(
            f"<tr><td><code>{escape(t.column)}</code> <small>{escape(t.kind)}</small>{detail}"
            f'</td><td class="num">{escape(number(t.latest_severity))}</td>'
            f'<td class="num">{escape(number(t.max_severity))}</td>'
            f'<td class="num">{t.drifted_windows:,}</td>{cells}</tr>'
        )
    older = len(report.windows) - count
    more = (
        f"<p class=muted>The {older:,} older windows are in the chart and in "
        "<code>--json</code>.</p>"
        if older
        else ""
    )
    return (
        f"<p class=muted>Severity per {role} (rows, most worrying first) and window "
        "(columns, newest first): 1.0 is the drift line; outlined cells drifted; "
        "<i>newest</i> is the column's newest measurement.</p>"
        '<div class="scroll"><table class="heat"><thead><tr><th>column</th><th>newest</th>'
        f"<th>max</th><th>drifted in</th>{head}</tr></thead><tbody>{''.join(rows)}"
        f"</tbody></table></div>{more}"
    )


def _heat_cell(severity: float, result: FeatureDrift | None) -> str:
    if result is None or math.isnan(severity):
        return '<td class="cell none">·</td>'
    if severity < 1.0:
        fill, ink = f"rgba(224,164,40,{0.06 + 0.5 * max(severity, 0.0):.3f})", INK
    else:
        strength = min(severity - 1.0, 1.0)
        fill = f"rgba(192,86,59,{0.5 + 0.5 * strength:.3f})"
        ink = "#fff" if strength > 0.4 else INK
    tip = f"{result.column}: {result.method.value} {number(result.score)}"
    tip += f" (threshold {number(result.threshold)}), {result.rows:,} rows"
    if result.detail:
        tip += f"; {result.detail}"
    hit = " hit" if result.drifted else ""
    return (
        f'<td class="cell{hit}" style="background:{fill};color:{ink}" title="{escape(tip)}">'
        f"{escape(_cell_text(severity))}</td>"
    )


def _performance(report: MonitorReport) -> str:
    if not report.performance:
        return (
            "<p>No labelled rows yet: performance appears once feedback with the monitor's "
            "<code>label</code> arrives (<code>loopml predictions feedback</code>).</p>"
        )
    times = [w.end_ms for w in report.windows]
    charts = "".join(
        _series_chart(name, times, [(name, values)], name)
        for name, values in report.performance.items()
    )
    return (
        f'<div class="charts">{charts}</div><p class=muted>Computed on the rows of each '
        f"window whose labels arrived ({report.labelled_rows:,} in all).</p>"
    )


def _latency(report: MonitorReport) -> str:
    if all(math.isnan(v) for v in report.latency_p99_ms):
        return "<p>No window had rows to time.</p>"
    times = [w.end_ms for w in report.windows]
    chart = _series_chart(
        "Latency p99 (ms)", times, [("p99", report.latency_p99_ms)], "milliseconds"
    )
    return f'<div class="charts">{chart}</div>'


def _segments(report: MonitorReport) -> str:
    latest = report.latest
    if latest is None or not latest.segments:
        return ""
    ranked = sorted(latest.segments.items(), key=lambda kv: (-_orderable(_score(kv[1])), kv[0]))
    rows = []
    for value, columns in ranked[:MAX_SEGMENTS]:
        worst = max(columns, key=lambda c: _orderable(c.level), default=None)
        drifted = ", ".join(escape(c.column) for c in columns if c.drifted) or "none"
        top = "" if worst is None else f"<code>{escape(worst.column)}</code> "
        top += "" if worst is None else f"<small>{escape(worst.detail)}</small>"
        rows.append(
            f"<tr><td>{escape(value)}</td>"
            f'<td class="num">{max((c.rows for c in columns), default=0):,}</td>'
            f'<td class="num">{escape(number(_score(columns)))}</td><td>{drifted}</td>'
            f"<td>{top}</td></tr>"
        )
    more = len(ranked) - MAX_SEGMENTS
    by = escape(latest.segment_by or "segment")
    return _section(
        f"Drift per segment ({latest.segment_by or 'segment'}), newest window",
        '<div class="scroll"><table><thead><tr>'
        f"<th>{by}</th><th>rows</th><th>score</th><th>drifted</th><th>worst column</th>"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        + (
            f"<p class=muted>And {more:,} more segments in <code>--json</code>.</p>"
            if more > 0
            else ""
        ),
    )


def _alerts(report: MonitorReport) -> str:
    if not report.alerts:
        return _section("Alerts", "<p>No alert has fired.</p>")
    open_ids = {id(a) for a in report.open_alerts}
    rows = []
    for alert in list(reversed(report.alerts))[:MAX_ALERTS]:
        status = "open" if id(alert) in open_ids else "cleared"
        rows.append(
            f"<tr><td>{escape(_time(alert.get('time_ms')))}</td>"
            f"<td>{_badge(_text(alert.get('severity')))}</td>"
            f"<td>{escape(_text(alert.get('rule')))}</td>"
            f"<td><code>{escape(_text(alert.get('metric')))}</code></td>"
            f'<td class="num">{escape(_text(alert.get("value")))}</td>'
            f'<td class="num">{escape(_text(alert.get("comparison"), ""))} '
            f"{escape(_text(alert.get('threshold')))}</td>"
            f"<td>{_badge(status)}</td><td>{escape(_text(alert.get('message'), ''))}</td></tr>"
        )
    more = len(report.alerts) - MAX_ALERTS
    return _section(
        "Alerts",
        "<p class=muted>Newest first. Open: the newest alert of its rule and metric whose "
        "figure, in the newest window that measured it, is still on the bad side.</p>"
        '<div class="scroll"><table><thead><tr><th>fired</th><th>severity</th><th>rule</th>'
        "<th>metric</th><th>value</th><th>threshold</th><th>status</th><th>message</th></tr>"
        f"</thead><tbody>{''.join(rows)}</tbody></table></div>"
        + (
            f"<p class=muted>And {more:,} older alerts in <code>--json</code>.</p>"
            if more > 0
            else ""
        ),
    )


def _loops(report: MonitorReport) -> str:
    if not report.loops:
        return _section("Retrain loops", "<p>No retrain loop has run.</p>")
    parts = []
    for run in list(reversed(report.loops))[:MAX_LOOPS]:
        versions = f"champion v{run.champion if run.champion is not None else '?'}"
        if run.candidate is not None:
            versions += f", candidate v{run.candidate}"
        steps = "".join(
            f"<tr><td>{escape(when(s.time_ms))}</td><td>{_badge(s.state.value)}</td>"
            f"<td>{escape(s.detail)}</td></tr>"
            for s in run.steps
        )
        parts.append(
            f"<h3>Loop <code>{escape(run.id)}</code> {_badge(run.state.value)}</h3>"
            f"<p class=muted>Triggered by {escape(run.trigger)} on {escape(when(run.created_ms))}"
            f"; {escape(run.model or 'model ?')} {escape(versions)}.</p>"
            "<table><thead><tr><th>time</th><th>state</th><th>detail</th></tr></thead>"
            f"<tbody>{steps}</tbody></table>"
        )
    return _section("Retrain loops", "".join(parts))


def _windows(report: MonitorReport) -> str:
    rows = []
    for w in list(reversed(report.windows))[:MAX_WINDOWS]:
        drifted = ", ".join(escape(c) for c in w.drifted) or "—"
        rows.append(
            f'<tr title="{escape(w.window_key)}"><td>{escape(when(w.start_ms))}</td>'
            f"<td>{escape(when(w.end_ms))}</td>"
            f'<td class="num">{w.rows:,}</td><td class="num">{w.labelled_rows:,}</td>'
            f'<td class="num">{w.version}</td><td class="num">{escape(number(w.score))}</td>'
            f"<td>{drifted}</td><td>{escape(w.note)}</td></tr>"
        )
    return (
        '<p class=muted>Newest first.</p><div class="scroll"><table><thead><tr><th>from</th>'
        "<th>to</th><th>rows</th><th>labelled</th><th>version</th><th>score</th>"
        f"<th>drifted</th><th>note</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


# the time-series chart ---------------------------------------------------------------------


def _series_chart(
    title: str,
    times: Sequence[int],
    lines: Sequence[tuple[str, Sequence[float]]],
    y_label: str,
    *,
    line_at: float | None = None,
) -> str:
    """Lines over time (one per name, NaN breaks a line), with an optional dashed
    reference line; infinite values sit on the top edge, marked ``inf`` when hovered."""
    legend = len(lines) > 1
    width = _WIDE if legend else _NARROW
    right = width - (_LEGEND if legend else 16)
    finite = [v for _, values in lines for v in values if math.isfinite(v)]
    low = min([*finite, *([] if line_at is None else [line_at])], default=0.0)
    high = max([*finite, *([] if line_at is None else [line_at * 1.2])], default=1.0)
    if line_at is not None:
        low = min(low, 0.0)
    if high <= low:
        low, high = low - 0.5, high + 0.5
    else:
        pad = (high - low) * 0.05
        low, high = (low if line_at is not None else low - pad), high + pad
    t0, t1 = (min(times), max(times)) if times else (0, 1)
    t0, t1 = (t0 - 1, t1 + 1) if t1 <= t0 else (t0, t1)

    def px(t: float) -> float:
        return _LEFT + (t - t0) / (t1 - t0) * (right - _LEFT)

    def py(v: float) -> float:
        v = min(max(v, low), high)
        return _H - _BOTTOM - (v - low) / (high - low) * (_H - _TOP - _BOTTOM)

    body = []
    for y in _ticks(low, high):
        body.append(
            f'<line x1="{_LEFT}" y1="{py(y):.1f}" x2="{right}" y2="{py(y):.1f}" stroke="{GRID}"/>'
            f'<text x="{_LEFT - 5}" y="{py(y) + 4:.1f}" text-anchor="end" fill="{MUTED}">'
            f"{escape(number(y))}</text>"
        )
    spread = len(set(times)) > 1
    for t in [t0 + (t1 - t0) * i / 4 for i in range(5)] if spread else times[:1]:
        body.append(
            f'<text x="{px(t):.1f}" y="{_H - _BOTTOM + 14}" text-anchor="middle" '
            f'fill="{MUTED}">{escape(_short(int(t), span_ms=t1 - t0))}</text>'
        )
    body.append(
        f'<rect x="{_LEFT}" y="{_TOP}" width="{right - _LEFT}" height="{_H - _TOP - _BOTTOM}" '
        f'fill="none" stroke="{MUTED}"/>'
    )
    if line_at is not None:
        body.append(
            f'<line x1="{_LEFT}" y1="{py(line_at):.1f}" x2="{right}" y2="{py(line_at):.1f}" '
            f'stroke="{ACCENT_2}" stroke-dasharray="5 3"><title>drift line '
            f"{escape(number(line_at))}</title></line>"
        )
    for k, (name, values) in enumerate(lines):
        color = PALETTE[k % len(PALETTE)]
        body.append(_polyline(name, times, values, color, px, py))
        if legend:
            y = _TOP + 8 + k * 18
            shown = name if len(name) <= 20 else name[:19] + "…"
            body.append(
                f'<line x1="{right + 10}" y1="{y}" x2="{right + 28}" y2="{y}" stroke="{color}" '
                f'stroke-width="3"/><text x="{right + 33}" y="{y + 4}" fill="{INK}">'
                f"{escape(shown)}<title>{escape(name)}</title></text>"
            )
    return (
        f'<svg class="chart" viewBox="0 0 {width} {_H}" width="{width}" height="{_H}" role="img" '
        f'aria-label="{escape(title)}" font-family="system-ui,sans-serif" font-size="11">'
        f"<title>{escape(title)}</title>"
        f'<text x="{(_LEFT + right) / 2:.0f}" y="16" text-anchor="middle" font-size="13" '
        f'font-weight="600" fill="{INK}">{escape(title)}</text>{"".join(body)}'
        f'<text x="{(_LEFT + right) / 2:.0f}" y="{_H - 8}" text-anchor="middle" '
        f'fill="{MUTED}">window end (UTC)</text>'
        f'<text transform="translate(12 {(_TOP + _H - _BOTTOM) / 2}) rotate(-90)" '
        f'text-anchor="middle" fill="{MUTED}">{escape(y_label)}</text></svg>'
    )


def _polyline(
    name: str,
    times: Sequence[int],
    values: Sequence[float],
    color: str,
    px: Callable[[float], float],
    py: Callable[[float], float],
) -> str:
    parts: list[list[tuple[int, float]]] = []
    run: list[tuple[int, float]] = []
    for t, v in zip(times, values, strict=True):
        if math.isnan(v):
            parts.append(run)
            run = []
        else:
            run.append((t, v))
    parts.append(run)
    out = []
    for segment in parts:
        if len(segment) > 1:
            points = " ".join(f"{px(t):.1f},{py(v):.1f}" for t, v in segment)
            out.append(
                f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="2"/>'
            )
    measured = [p for segment in parts for p in segment]
    if len(measured) <= MARKERS_UP_TO or any(len(s) == 1 for s in parts):
        for t, v in measured:
            tip = f"{name}: {number(v)} at {when(t)}"
            out.append(
                f'<circle cx="{px(t):.1f}" cy="{py(v):.1f}" r="{4 if math.isinf(v) else 3}" '
                f'fill="{color}"><title>{escape(tip)}</title></circle>'
            )
    return "".join(out)


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round values (1, 2, 2.5 or 5 times a power of ten) in [low, high]."""
    raw = (high - low) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.ceil(low / step - 1e-9)
    return [(first + i) * step for i in range(count + 2) if (first + i) * step <= high + 1e-12]


# small formatting --------------------------------------------------------------------------


def _short(ms: int, span_ms: float = 0.0) -> str:
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%H:%M" if 0 < span_ms < 86_400_000 else "%m-%d %H:%M")


def _cell_text(severity: float) -> str:
    if math.isinf(severity):
        return "inf"
    return f"{severity:.2f}" if severity < 10 else f"{severity:.0f}"


def _time(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return when(value)
    return "—"


def _text(value: object, missing: str = "—") -> str:
    if value is None:
        return missing
    if isinstance(value, float | int) and not isinstance(value, bool):
        return number(float(value))
    return str(value)


def _score(columns: Sequence[FeatureDrift]) -> float:
    return dataset_score(list(columns))


def _orderable(value: float) -> float:
    return -math.inf if math.isnan(value) else value
