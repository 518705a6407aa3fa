"""The model card page: offline, data escaped, the user's Markdown as a safe subset."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from loopml.adapters.card_html import card_html
from loopml.adapters.safe_markdown import inline_html, markdown_html
from loopml.domain.card_sections import parse_sections
from loopml.domain.evaluation_parts import FairnessResult, SliceResult
from loopml.domain.model_card import (
    CardEvaluation,
    ColumnSummary,
    GateCheck,
    ModelCard,
    ModelDetails,
    StageGates,
    TrainingData,
)

EVIL = '<script>alert("x")</script>'
ALLOWED_TAGS = {
    "html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "h4", "div", "span",
    "section", "p", "code", "pre", "dl", "dt", "dd", "table", "thead", "tbody", "tr", "th", "td",
    "ul", "ol", "li", "strong", "em", "blockquote",
}  # fmt: skip


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += attrs

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> Tags:
    tags = Tags()
    tags.feed(page)
    tags.close()
    return tags


def evil_card() -> ModelCard:
    sections = parse_sections(
        f"## Intended use\nPlanning **only**, see `docs/use.md`.\n\n- staff\n- bikes {EVIL}\n"
        '## Limitations\n<img src=x onerror="alert(1)">\n[click](javascript:alert(1))\n'
        f"## {EVIL}\n```\n{EVIL}\n```\n"
    )
    return ModelCard(
        ModelDetails("m", 1, "candidate", "sklearn", 1_700_000_000_000, description=EVIL),
        training=(
            TrainingData(
                "bikes@1",
                rows=3,
                column_count=1,
                message=EVIL,
                columns=(ColumnSummary(EVIL, "string", 0, 1, summary=f"top: {EVIL} 100.0%"),),
            ),
        ),
        evaluation=CardEvaluation(
            task="classification",
            rows=3,
            created_ms=1_700_000_000_000,
            actor=EVIL,
            metrics={"accuracy": 0.5},
            label=EVIL,
            slices=(SliceResult(f"c={EVIL}", 3, {"accuracy": 0.5}, "c", EVIL),),
            fairness=(
                FairnessResult(EVIL, {"accuracy_difference": 0.1}, (SliceResult(EVIL, 3, {}),)),
            ),
            notes=(EVIL,),
        ),
        gates=(
            StageGates(
                "production", False, "failed: 1", (GateCheck(EVIL, "failed", "1", "2", EVIL),)
            ),
        ),
        lineage=(EVIL,),
        sections=sections,
        sections_file="cards/m.md",
        sections_found=True,
        notes=(EVIL,),
    )


def test_the_page_is_offline_and_every_value_is_escaped() -> None:
    page = card_html(evil_card())
    tags = parse(page)
    assert set(tags.tags) <= ALLOWED_TAGS, set(tags.tags) - ALLOWED_TAGS
    assert {name for name, _ in tags.attributes} <= {"lang", "charset", "class"}
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;" in page
    assert "http" not in page  # nothing to fetch
    text = "".join(tags.text)
    assert EVIL in text and '<img src=x onerror="alert(1)">' in text  # shown as text


def test_the_users_markdown_is_rendered_as_a_small_subset() -> None:
    page = card_html(evil_card())
    assert "<p>Planning <strong>only</strong>, see <code>docs/use.md</code>.</p>" in page
    assert "<ul><li>staff</li><li>bikes &lt;script&gt;" in page
    assert "<h2>&lt;script&gt;" in page  # a section titled with markup keeps it as text
    assert "<pre><code>&lt;script&gt;" in page


def test_missing_parts_show_what_to_do() -> None:
    card = ModelCard(
        ModelDetails("m", 1, "candidate", "sklearn", 1_700_000_000_000),
        sections_file="cards/m.md",
    )
    page = card_html(card)
    assert "create cards/m.md with a &#x27;## Intended use&#x27; section" in page
    assert "Not evaluated yet: run <code>loopml evaluate models:/m/1" in page
    assert "<h2>Missing from this card</h2>" in page


@pytest.mark.parametrize(
    ("text", "html"),
    [
        ("a **b** *c* `d`", "a <strong>b</strong> <em>c</em> <code>d</code>"),
        ("2 * 3 * 4", "2 * 3 * 4"),  # spaced stars are arithmetic, not emphasis
        (r"\*not em\*", "*not em*"),
        ("`<b>` & <i>", "<code>&lt;b&gt;</code> &amp; &lt;i&gt;"),
        ("**`x` <y>**", "<strong><code>x</code> &lt;y&gt;</strong>"),
    ],
)
def test_inline_markdown(text: str, html: str) -> None:
    assert inline_html(text) == html


def test_block_markdown() -> None:
    html = markdown_html(
        "# Title\nfirst line\nsecond line\n\n1. one\n2. two\n   more\n- bullet\n"
        "> quoted\n\n~~~\n## code\n~~~\n<!-- a hidden note -->\n#### small"
    )
    assert html == (
        "<h3>Title</h3><p>first line second line</p><ol><li>one</li><li>two more</li></ol>"
        "<ul><li>bullet</li></ul><blockquote><p>quoted</p></blockquote>"
        "<pre><code>## code</code></pre><h4>small</h4>"
    )
    assert not re.search(r"<(?!/?(h3|h4|p|ol|ul|li|blockquote|pre|code)>)", html)
