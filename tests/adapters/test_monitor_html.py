"""The monitoring report page: one offline HTML file, charts as inline SVG, data escaped."""

from __future__ import annotations

import math
from html.parser import HTMLParser
from typing import Any

from loopml.adapters.monitor_html import HEAT_WINDOWS, TOP_LINES, render_monitor_html
from loopml.domain.drift import DriftMethod, FeatureDrift
from loopml.domain.loop import LoopRun, LoopState
from loopml.domain.monitor_report import MonitorReport, build_report
from loopml.domain.monitoring import WindowReport

EVIL = '<script>alert("x")</script>'
ESCAPED = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"
T = 1_714_572_000_000
STEP = 300_000


class Page(HTMLParser):
    """Every start tag with its attributes, and the text of each table row."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += attrs
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self.rows:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def parse(page: str) -> Page:
    parsed = Page()
    parsed.feed(page)
    parsed.close()
    return parsed


def assert_offline_and_inert(page: str) -> Page:
    assert page.startswith("<!doctype html>")
    lowered = page.lower()
    assert "<script" not in lowered
    assert "http" not in lowered  # no link, no namespace URL, nothing to fetch
    assert "url(" not in lowered and "@import" not in lowered  # nothing fetched by the CSS
    parsed = parse(page)
    assert not {"script", "link", "img", "iframe", "object", "embed", "image"} & set(parsed.tags)
    for name, _ in parsed.attributes:
        assert name not in ("src", "href", "xlink:href") and not name.startswith("on")
    return parsed


def drift(
    column: str, score: float, *, drifted: bool | None = None, detail: str = ""
) -> FeatureDrift:
    return FeatureDrift(
        column=column,
        kind="numeric",
        rows=500,
        method=DriftMethod.WASSERSTEIN,
        score=score,
        threshold=0.1,
        drifted=score >= 0.1 if drifted is None else drifted,
        detail=detail,
    )


def window(i: int, features: list[FeatureDrift], **changes: Any) -> WindowReport:
    values: dict[str, Any] = {
        "deployment": "bikes",
        "window_key": f"time:{T + i * STEP}-{T + (i + 1) * STEP}",
        "start_ms": T + i * STEP,
        "end_ms": T + (i + 1) * STEP - 1,
        "rows": 500,
        "model": "bike-demand",
        "version": 3,
        "reference": "bikes-train@2",
        "features": tuple(features),
        "outputs": (drift("prediction", 0.02 + 0.001 * i),),
        "performance": {"rmse": 10.0 + 0.1 * i},
        "labelled_rows": 200,
        "latency_p99_ms": 12.0 + i % 3,
    }
    values.update(changes)
    return WindowReport(**values)


def scenario(windows: int = 30, columns: int = 28) -> MonitorReport:
    """``columns`` quiet features, a hostile-named one, and ``temperature`` drifting more
    every window; the newest window also drifts per segment, with a hostile segment value."""
    reports = []
    for i in range(windows):
        features = [drift(f"feature_{k:02d}", 0.01 * ((k + i) % 8)) for k in range(columns)]
        features.append(drift(EVIL, 0.02, detail=f"mean {EVIL}"))
        features.append(drift("temperature", 0.02 + 0.005 * i, detail=f"mean 14.1 -> {14 + i}"))
        segments = {}
        if i == windows - 1:
            segments = {"north": (drift("temperature", 0.4),), EVIL: (drift("feature_01", 0.01),)}
        reports.append(window(i, features, segments=segments, segment_by="region"))
    alerts = [
        {
            "rule": "drifting",
            "deployment": "bikes",
            "metric": "drift_score",
            "value": 1.2,
            "threshold": 1.0,
            "comparison": "above",
            "severity": "warning",
            "time_ms": T + 20 * STEP,
            "observed_ms": T + 20 * STEP - 1,
            "message": f"drift of {EVIL}",
        },
        {"rule": f"rule {EVIL}", "metric": "latency_p99_ms", "value": "inf", "threshold": 100},
    ]
    loop = LoopRun("loop-1", "bikes", "drifting", T + 21 * STEP, champion=3, model="bike-demand")
    loop = loop.advance(LoopState.TRAINED, T + 22 * STEP, f"registered v4 {EVIL}", candidate=4)
    loop = loop.advance(LoopState.EVALUATED, T + 23 * STEP, "rmse 9.1 vs champion 13.0")
    loop = loop.advance(LoopState.REJECTED, T + 23 * STEP + 1, "gate max_rmse failed")
    return build_report("bikes", reports, alerts, [loop], T + windows * STEP)


def rows_starting(page: Page, first: str) -> list[list[str]]:
    return [row for row in page.rows if row and row[0].startswith(first)]


def test_the_report_is_one_offline_page_with_every_section() -> None:
    page = render_monitor_html(scenario())
    parsed = assert_offline_and_inert(page)
    for heading in (
        "Summary",
        "Drift per feature over time",
        "Prediction drift",
        "Performance over time",
        "Latency p99 over time",
        "Drift per segment (region), newest window",
        "Alerts",
        "Retrain loops",
        "Windows",
    ):
        assert f"<h2>{heading}</h2>" in page
    # feature drift, prediction drift, rmse, latency
    assert parsed.tags.count("svg") == 4
    assert "<style>" in page and "<polyline" in page


def test_every_string_from_the_data_is_escaped() -> None:
    page = render_monitor_html(scenario())
    assert_offline_and_inert(page)
    # the column name (heat map, title of its cells), its detail, the segment value, the
    # alert message and rule, the loop step's detail
    assert page.count(ESCAPED) >= 6
    assert f"drift of {ESCAPED}" in page
    assert f"rule {ESCAPED}" in page
    assert f"registered v4 {ESCAPED}" in page
    assert f"mean {ESCAPED}" in page
    assert '<script>alert("x")' not in page


def test_the_drifted_feature_is_named_with_its_figures_and_ranked_first() -> None:
    report = scenario()
    page = render_monitor_html(report)
    parsed = parse(page)
    assert "Drifted columns</dt><dd><code>temperature</code></dd>" in page
    assert '<span class="badge drift">drift</span> score 1.65' in page
    heat = rows_starting(parsed, "temperature")
    assert len(heat) == 1
    row = heat[0]
    # newest severity (0.02 + 0.005 * 29) / 0.1 = 1.65, max the same; drifted from window 16 on
    assert row[0] == "temperature numericmean 14.1 -> 43"
    assert row[1:4] == ["1.65", "1.65", "14"]
    assert row[4] == "1.65"  # the newest window is the first column of the heat map
    # ranked first among the features: the first body row after the heat map's header
    header = next(i for i, r in enumerate(parsed.rows) if r[:2] == ["column", "newest"])
    assert parsed.rows[header + 1][0].startswith("temperature")
    assert page.count('class="cell hit"') == 14  # drifted cells are outlined


def test_many_features_stay_readable() -> None:
    report = scenario(windows=40, columns=40)
    page = render_monitor_html(report)
    parsed = assert_offline_and_inert(page)
    feature_rows = rows_starting(parsed, "feature_")
    assert len(feature_rows) == 40  # every feature is in the heat map
    assert {len(r) - 4 for r in feature_rows} == {
        HEAT_WINDOWS
    }  # the newest windows only, the rest in the chart
    assert "The 16 older windows are in the chart" in page
    features_chart = page.split("<h2>Drift per feature over time</h2>")[1].split("</svg>")[0]
    assert f"Severity of the top {TOP_LINES} features" in features_chart
    assert features_chart.count("<polyline") == TOP_LINES
    assert ">temperature<title>" in features_chart  # in the legend


def test_alerts_and_loops_are_listed_with_their_status_and_steps() -> None:
    page = render_monitor_html(scenario())
    parsed = parse(page)
    alerts = [r for r in parsed.rows if len(r) == 8 and r[6] in ("open", "cleared")]
    # newest first; the one without a time shows a dash and sorts as the oldest
    assert [r[0] for r in alerts] == ["2024-05-01 15:40 UTC", "—"]
    by_rule = {r[2]: r for r in alerts}
    assert by_rule["drifting"][6] == "open"  # temperature is still drifting
    assert by_rule[f"rule {EVIL}"][4] == "inf"
    assert by_rule[f"rule {EVIL}"][6] == "cleared"  # latency is 12-14 ms, under 100
    assert "Open alerts</dt><dd>1 of 2</dd>" in page
    steps = [r for r in parsed.rows if len(r) == 3 and r[1] in {s.value for s in LoopState}]
    assert [r[1] for r in steps] == ["started", "trained", "evaluated", "rejected"]
    assert steps[-1][2] == "gate max_rmse failed"
    assert '<span class="badge rejected">rejected</span>' in page
    assert "champion v3, candidate v4" in page


def test_no_windows_yet_renders_a_page_that_says_what_to_run() -> None:
    page = render_monitor_html(build_report("bikes", [], [], [], T))
    parsed = assert_offline_and_inert(page)
    assert "No windows yet: run <code>loopml monitor run bikes</code>" in page
    assert "svg" not in parsed.tags
    assert "<h2>Summary</h2>" not in page
    assert "No alert has fired." in page and "No retrain loop has run." in page


def test_a_window_too_small_to_judge_is_explained() -> None:
    windows = [
        window(0, [drift("temperature", 0.3)]),
        window(1, [], rows=4, outputs=(), performance={}, note="4 rows, fewer than min_rows=30"),
    ]
    page = render_monitor_html(build_report("bikes", windows, [], [], T))
    assert_offline_and_inert(page)
    assert '<span class="badge not-judged">not judged</span>' in page
    assert "4 rows, fewer than min_rows=30" in page
    assert "the newest judged window" in page and "<code>temperature</code>" in page


def test_non_finite_figures_render_without_breaking_a_chart() -> None:
    windows = [
        window(0, [drift("flat", 0.01), drift("b", 0.01)], performance={"roc_auc": 0.8}),
        window(
            1,
            [
                drift("flat", math.inf, detail="reference has no spread"),
                drift("b", math.nan, drifted=False),
            ],
            performance={"roc_auc": math.nan},
            latency_p99_ms=math.nan,
            outputs=(drift("prediction", math.inf),),
        ),
    ]
    alerts = [{"rule": "r", "metric": "drift_score", "value": math.nan, "threshold": math.inf}]
    page = render_monitor_html(build_report("bikes", windows, alerts, [], T))
    parsed = assert_offline_and_inert(page)
    flat = rows_starting(parsed, "flat")[0]
    assert flat[1:5] == ["inf", "inf", "1", "inf"]
    b = rows_starting(parsed, "b numeric")[0]
    assert b[1] == "n/a" and b[4] == "·"  # not measured: no colour, no number
    # every coordinate of every mark is a finite number
    for name, value in parsed.attributes:
        if name in ("x", "y", "x1", "x2", "y1", "y2", "cx", "cy", "width", "height"):
            assert value is not None and math.isfinite(float(value)), (name, value)
        if name == "points":
            assert value is not None
            for pair in value.split():
                assert all(math.isfinite(float(v)) for v in pair.split(","))
    assert "score inf" in page
