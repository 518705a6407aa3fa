"""The evaluation report: one offline HTML file, charts as inline SVG, data escaped."""

from __future__ import annotations

from html.parser import HTMLParser

import numpy as np
import pytest

from loopml.adapters.evaluation_html import evaluation_html
from loopml.domain.evaluation import Evaluation, FeatureImportance, PermutationImportance
from loopml.stats.evaluation import evaluate_classification, evaluate_regression

EVIL = '<script>alert("x")</script>'


class Tags(HTMLParser):
    """Every start tag and attribute, so the test can look for anything fetched or run."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += attrs


def parse(page: str) -> Tags:
    tags = Tags()
    tags.feed(page)
    tags.close()
    return tags


def classification() -> Evaluation:
    rng = np.random.default_rng(0)
    n = 3_000
    region = rng.choice(["north", EVIL, "a & b"], n)
    y = rng.integers(0, 2, n)
    score = np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0, 1)
    evaluation = evaluate_classification(
        y,
        (score > 0.5).astype(int),
        score,
        data={"region": region},
        slices=["region"],
        sensitive="region",
        masks={"high <score>": score > 0.8},
        label_name="churned",
    )
    return evaluation.with_importance(
        PermutationImportance(
            "accuracy",
            0.8,
            5,
            1_000,
            0,
            (FeatureImportance(EVIL, 0.2, 0.01), FeatureImportance("tenure", -0.01, 0.02)),
        )
    )


def assert_offline_and_inert(page: str) -> Tags:
    assert page.startswith("<!doctype html>")
    lowered = page.lower()
    assert "<script" not in lowered
    assert "http" not in lowered  # no link, no namespace URL, nothing to fetch
    tags = parse(page)
    assert not {"script", "link", "img", "iframe", "object", "embed"} & set(tags.tags)
    for name, _ in tags.attributes:
        assert name not in ("src", "href") and not name.startswith("on")
    return tags


def test_classification_report_is_one_offline_page_with_its_charts() -> None:
    page = evaluation_html(classification(), "Churn model v3")
    tags = assert_offline_and_inert(page)
    assert tags.tags.count("svg") == 4  # reliability, ROC, confusion matrix, importance
    for title in ("Reliability (ECE", "ROC curve (AUC", "Confusion matrix", "Permutation"):
        assert title in page
    assert "<style>" in page and "polyline" in page
    assert "slice:&lt;slice&gt;/&lt;metric&gt;" in page
    assert "demographic_parity_difference" in page


def test_every_string_from_the_data_is_escaped() -> None:
    page = evaluation_html(classification(), 'Model <b>"x"</b>')
    escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"
    assert escaped in page  # the slice value, the fairness group and the feature name
    assert page.count(escaped) >= 4
    assert "region=" + escaped in page
    assert "high &lt;score&gt;" in page
    assert "a &amp; b" in page
    assert "<title>Model &lt;b&gt;&quot;x&quot;&lt;/b&gt;</title>" in page
    assert "<b>" not in page


def test_regression_report_draws_the_residual_histogram() -> None:
    rng = np.random.default_rng(1)
    y = rng.normal(size=2_000)
    evaluation = evaluate_regression(
        y, y + rng.normal(scale=0.3, size=y.size), data={"g": rng.choice(["a", EVIL], y.size)},
        slices="g",
    )  # fmt: skip
    page = evaluation_html(evaluation, "Demand")
    tags = assert_offline_and_inert(page)
    assert tags.tags.count("svg") == 1
    assert "Residuals (y_true - y_pred)" in page
    assert tags.tags.count("rect") >= 30  # one bar per bin
    assert "rmse" in page


def test_undefined_metrics_show_as_not_available() -> None:
    evaluation = evaluate_classification([1, 1, 1], [1, 0, 1], [0.9, 0.4, 0.8])
    page = evaluation_html(evaluation, "One class")
    assert_offline_and_inert(page)
    assert 'class="num nan">n/a</td>' in page  # roc_auc with one class
    assert "the ROC curve needs both classes" in page  # the note


@pytest.mark.parametrize("classes", [3, 40])
def test_multiclass_matrix_is_drawn_when_small(classes: int) -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, classes, 500)
    page = evaluation_html(evaluate_classification(y, y), "Many classes")
    tags = assert_offline_and_inert(page)
    if classes <= 30:
        assert tags.tags.count("svg") == 1
    else:
        assert "svg" not in tags.tags
        assert "confusion matrix of 40 classes is not drawn" in page
