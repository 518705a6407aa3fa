"""Small charts as inline SVG text: lines, bars, histograms and heat maps.

Reports embed these in their HTML so a page opens offline, with no script and no plotting
library. Every chart is a fixed-size ``<svg>`` with a ``viewBox`` (it scales with the
page), axes with a few ticks, and a ``<title>`` on each mark so hovering shows its value.
Every string that reaches the SVG (labels, names, titles) is escaped here; callers pass
plain text.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

WIDTH, HEIGHT = 360, 280
LEFT, RIGHT, TOP, BOTTOM = 52, 14, 28, 42
INK, MUTED, GRID, ACCENT, ACCENT_2 = "#1d2430", "#5b6472", "#e3e6ea", "#2d5b8a", "#c0563b"


def number(value: float) -> str:
    """A number for people: four significant digits; ``n/a`` for NaN."""
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.4g}"


class _Frame:
    """Maps data coordinates into the plot area of one chart."""

    def __init__(self, x: tuple[float, float], y: tuple[float, float], left: int = LEFT) -> None:
        self.x0, self.x1 = x if x[1] > x[0] else (x[0] - 0.5, x[0] + 0.5)
        self.y0, self.y1 = y if y[1] > y[0] else (y[0] - 0.5, y[0] + 0.5)
        self.left = left

    def px(self, x: float) -> float:
        return self.left + (x - self.x0) / (self.x1 - self.x0) * (WIDTH - self.left - RIGHT)

    def py(self, y: float) -> float:
        return HEIGHT - BOTTOM - (y - self.y0) / (self.y1 - self.y0) * (HEIGHT - TOP - BOTTOM)


def _svg(title: str, body: str, x_label: str, y_label: str) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'role="img" aria-label="{escape(title)}" font-family="system-ui,sans-serif" '
        f'font-size="11"><title>{escape(title)}</title>'
        f'<text x="{WIDTH / 2}" y="16" text-anchor="middle" font-size="13" font-weight="600" '
        f'fill="{INK}">{escape(title)}</text>{body}'
        f'<text x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT - 6}" text-anchor="middle" '
        f'fill="{MUTED}">{escape(x_label)}</text>'
        f'<text transform="translate(12 {(TOP + HEIGHT - BOTTOM) / 2}) rotate(-90)" '
        f'text-anchor="middle" fill="{MUTED}">{escape(y_label)}</text></svg>'
    )


def _axes(frame: _Frame, x_ticks: Sequence[float], y_ticks: Sequence[float]) -> str:
    parts = []
    for x in x_ticks:
        px = frame.px(x)
        parts.append(
            f'<line x1="{px:.1f}" y1="{TOP}" x2="{px:.1f}" y2="{HEIGHT - BOTTOM}" '
            f'stroke="{GRID}"/><text x="{px:.1f}" y="{HEIGHT - BOTTOM + 14}" '
            f'text-anchor="middle" fill="{MUTED}">{escape(number(x))}</text>'
        )
    for y in y_ticks:
        py = frame.py(y)
        parts.append(
            f'<line x1="{frame.left}" y1="{py:.1f}" x2="{WIDTH - RIGHT}" y2="{py:.1f}" '
            f'stroke="{GRID}"/><text x="{frame.left - 5}" y="{py + 4:.1f}" text-anchor="end" '
            f'fill="{MUTED}">{escape(number(y))}</text>'
        )
    parts.append(
        f'<rect x="{frame.left}" y="{TOP}" width="{WIDTH - frame.left - RIGHT}" '
        f'height="{HEIGHT - TOP - BOTTOM}" fill="none" stroke="{MUTED}"/>'
    )
    return "".join(parts)


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round values (1, 2 or 5 times a power of ten) from low to high."""
    if not high > low:
        return [low]
    raw = (high - low) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.ceil(low / step - 1e-9)
    ticks = [(first + i) * step for i in range(count + 2)]
    return [t for t in ticks if t <= high + step * 1e-9]


def unit_curve(
    title: str,
    x: Sequence[float],
    y: Sequence[float],
    x_label: str,
    y_label: str,
    *,
    diagonal: bool = True,
    points: bool = False,
    labels: Sequence[str] = (),
) -> str:
    """A curve on the unit square (ROC, reliability), with the diagonal for reference.

    ``labels`` (one per point) become hover titles when ``points`` are drawn.
    """
    frame = _Frame((0.0, 1.0), (0.0, 1.0))
    ticks = _ticks(0.0, 1.0)
    body = [_axes(frame, ticks, ticks)]
    if diagonal:
        body.append(
            f'<line x1="{frame.px(0)}" y1="{frame.py(0)}" x2="{frame.px(1)}" y2="{frame.py(1)}" '
            f'stroke="{MUTED}" stroke-dasharray="4 3"/>'
        )
    kept = [(a, b) for a, b in zip(x, y, strict=True) if math.isfinite(a) and math.isfinite(b)]
    path = " ".join(f"{frame.px(a):.1f},{frame.py(b):.1f}" for a, b in kept)
    body.append(f'<polyline points="{path}" fill="none" stroke="{ACCENT}" stroke-width="2"/>')
    if points:
        tips = list(labels) or ["" for _ in kept]
        for (a, b), tip in zip(kept, tips, strict=False):
            body.append(
                f'<circle cx="{frame.px(a):.1f}" cy="{frame.py(b):.1f}" r="3.5" '
                f'fill="{ACCENT}"><title>{escape(tip)}</title></circle>'
            )
    return _svg(title, "".join(body), x_label, y_label)


def histogram(
    title: str, edges: Sequence[float], counts: Sequence[int], x_label: str, y_label: str
) -> str:
    """Bars between consecutive ``edges`` with heights ``counts``."""
    top = max(counts, default=0) or 1
    frame = _Frame((edges[0], edges[-1]), (0.0, float(top)))
    body = [_axes(frame, _ticks(edges[0], edges[-1]), _ticks(0.0, float(top), 3))]
    for low, high, n in zip(edges[:-1], edges[1:], counts, strict=True):
        x, y = frame.px(low), frame.py(n)
        body.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(frame.px(high) - x - 1, 1):.1f}" '
            f'height="{frame.py(0) - y:.1f}" fill="{ACCENT}"><title>'
            f"{escape(number(low))} to {escape(number(high))}: {n:,}</title></rect>"
        )
    return _svg(title, "".join(body), x_label, y_label)


def horizontal_bars(
    title: str,
    names: Sequence[str],
    values: Sequence[float],
    errors: Sequence[float],
    x_label: str,
) -> str:
    """One bar per name (top to bottom) from 0 to its value, with a +-error whisker."""
    ends = [0.0]
    for value, error in zip(values, errors, strict=True):
        if math.isfinite(value):
            whisker = error if math.isfinite(error) else 0.0
            ends += [value - whisker, value + whisker]
    low, high = min(ends), max(ends)
    left = 120
    frame = _Frame((low, high if high > low else low + 1.0), (0.0, float(len(names) or 1)), left)
    body = [_axes(frame, _ticks(frame.x0, frame.x1, 4), [])]
    body.append(
        f'<line x1="{frame.px(0.0):.1f}" y1="{TOP}" x2="{frame.px(0.0):.1f}" '
        f'y2="{HEIGHT - BOTTOM}" stroke="{INK}"/>'
    )
    step = (HEIGHT - TOP - BOTTOM) / max(len(names), 1)
    for i, (name, value, error) in enumerate(zip(names, values, errors, strict=True)):
        y = TOP + i * step
        shown = name if len(name) <= 18 else name[:17] + "…"
        body.append(
            f'<text x="{left - 5}" y="{y + step / 2 + 4:.1f}" text-anchor="end" fill="{INK}">'
            f"{escape(shown)}<title>{escape(name)}</title></text>"
        )
        if not math.isfinite(value):
            continue
        x0, x1 = sorted((frame.px(0.0), frame.px(value)))
        body.append(
            f'<rect x="{x0:.1f}" y="{y + step * 0.2:.1f}" width="{max(x1 - x0, 1):.1f}" '
            f'height="{step * 0.6:.1f}" fill="{ACCENT if value >= 0 else ACCENT_2}"><title>'
            f"{escape(name)}: {escape(number(value))} ± {escape(number(error))}</title></rect>"
        )
        if math.isfinite(error) and error > 0:
            body.append(
                f'<line x1="{frame.px(value - error):.1f}" y1="{y + step / 2:.1f}" '
                f'x2="{frame.px(value + error):.1f}" y2="{y + step / 2:.1f}" stroke="{INK}"/>'
            )
    return _svg(title, "".join(body), x_label, "")


def heat_map(title: str, labels: Sequence[str], counts: Sequence[Sequence[int]]) -> str:
    """A square matrix of counts (rows: truth, columns: prediction), shaded by each count's
    share of its row, with the count written in the cell when there is room."""
    k = max(len(labels), 1)
    left, size = 84, min(HEIGHT - TOP - BOTTOM, WIDTH - 84 - RIGHT)
    cell = size / k
    body = []
    for i, row in enumerate(counts):
        total = sum(row) or 1
        for j, n in enumerate(row):
            share = n / total
            x, y = left + j * cell, TOP + i * cell
            shade = f"rgba(45,91,138,{0.08 + 0.92 * share:.3f})"
            tip = f"true {labels[i]}, predicted {labels[j]}: {n:,} ({share:.1%} of the row)"
            body.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{cell:.1f}" height="{cell:.1f}" '
                f'fill="{shade}" stroke="#fff"><title>{escape(tip)}</title></rect>'
            )
            if cell >= 22:
                ink = "#fff" if share > 0.55 else INK
                body.append(
                    f'<text x="{x + cell / 2:.1f}" y="{y + cell / 2 + 4:.1f}" '
                    f'text-anchor="middle" fill="{ink}">{n:,}</text>'
                )
    if cell >= 10:
        for i, name in enumerate(labels):
            shown = escape(name if len(name) <= 10 else name[:9] + "…")
            mid = i * cell + cell / 2
            body.append(
                f'<text x="{left - 5}" y="{TOP + mid + 4:.1f}" text-anchor="end" '
                f'fill="{INK}">{shown}</text><text x="{left + mid:.1f}" '
                f'y="{TOP + size + 14:.1f}" text-anchor="middle" fill="{INK}">{shown}</text>'
            )
    return _svg(title, "".join(body), "predicted", "true")
