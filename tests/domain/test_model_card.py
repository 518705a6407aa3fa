"""Model cards in the domain: the user's sections parsed, the card rendered as Markdown."""

from __future__ import annotations

import json
import math
import re

from loopml.domain.card_sections import (
    INTENDED_USE,
    LIMITATIONS,
    TEMPLATE,
    UserSection,
    parse_sections,
)
from loopml.domain.evaluation_parts import FairnessResult, SliceResult
from loopml.domain.gate_report import CheckKind, CheckResult, GateReport, Outcome
from loopml.domain.lifecycle import Stage
from loopml.domain.model_card import (
    CardEvaluation,
    ColumnSummary,
    GateCheck,
    ModelCard,
    ModelDetails,
    StageGates,
    TrainingData,
)

EVIL = "a|b <script>alert(1)</script>"
T = 1_700_000_000_000


def details(**overrides: object) -> ModelDetails:
    values: dict[str, object] = {
        "model": "bike-demand",
        "version": 3,
        "stage": "staging",
        "flavor": "sklearn",
        "created_ms": T,
        "artifact": "blake3:" + "ab" * 32,
        "size_bytes": 2048,
    }
    values.update(overrides)
    return ModelDetails(**values)  # type: ignore[arg-type]


def evaluation() -> CardEvaluation:
    return CardEvaluation(
        task="classification",
        rows=1000,
        created_ms=T,
        actor="ana",
        metrics={"accuracy": 0.875, "roc_auc": math.nan},
        label="churned",
        dataset="customers@2",
        slices=(
            SliceResult("region=north", 400, {"accuracy": 0.9}, "region", "north"),
            SliceResult(f"region={EVIL}", 600, {"accuracy": 0.85}, "region", EVIL),
        ),
        fairness=(
            FairnessResult(
                "sex",
                {"demographic_parity_difference": 0.04},
                (SliceResult("sex=f", 500, {"positive_rate": 0.3}, "sex", "f"),),
            ),
        ),
        notes=("2 slices with fewer than 30 rows were left out",),
    )


def table_rows(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("|")]


def cells(row: str) -> int:
    """Cells of a Markdown table row, counting only unescaped pipes as separators."""
    return len(re.findall(r"(?<!\\)\|", row)) - 1


# sections ----------------------------------------------------------------------------------


def test_sections_are_the_level_two_headings_and_standard_titles_are_recognised() -> None:
    text = """# Bike demand
Preamble text is not a section.

## Intended Uses:
Forecast hourly demand.

### Out of scope
Pricing decisions.

## Known limitations
- winter is thin

```
## not a heading inside code
```

## Ethical considerations ##
None known.
"""
    sections = parse_sections(text)
    assert [s.title for s in sections] == [INTENDED_USE, LIMITATIONS, "Ethical considerations"]
    assert sections[0].text == "Forecast hourly demand.\n\n### Out of scope\nPricing decisions."
    assert "## not a heading inside code" in sections[1].text
    assert sections[2].text == "None known."
    assert "Preamble" not in "".join(s.text for s in sections)


def test_repeated_sections_are_joined_and_empty_headings_are_text() -> None:
    sections = parse_sections("## Limitations\none\n##\n## limitations\ntwo\n")
    assert sections == (UserSection(LIMITATIONS, "one\n##\n\ntwo"),)
    assert parse_sections("no headings at all") == ()
    assert [s.title for s in parse_sections(TEMPLATE)] == [INTENDED_USE, LIMITATIONS]


# the card ----------------------------------------------------------------------------------


def test_the_card_has_every_section_in_order_and_copies_the_users_text() -> None:
    sections = parse_sections(
        "## Limitations\nWeak on **holidays**.\n## Intended use\nStaff planning.\n"
        "## Contact\nteam-bikes@example.com\n"
    )
    card = ModelCard(
        details(description="demand per hour"),
        training=(TrainingData("bikes@4", rows=17379, column_count=2),),
        evaluation=evaluation(),
        gates=(StageGates("production", True, "passed: 1 passed"),),
        lineage=("models:/bike-demand/3", "└── run abc"),
        sections=sections,
        sections_file="cards/bike-demand.md",
        sections_found=True,
    )
    md = card.to_markdown()
    order = [
        "# Model card: bike-demand v3",
        "## Model details",
        "## Intended use\n\nStaff planning.",
        "## Limitations\n\nWeak on **holidays**.",
        "## Training data",
        "### bikes@4\n\n17,379 rows, 2 columns",
        "## Evaluation",
        "### Overall",
        "| `accuracy` | 0.875 |",
        "| `roc_auc` | nan |",
        "### Per slice",
        "### Fairness",
        "## Gates",
        "### Into production: passed: 1 passed",
        "## Lineage\n\n```text\nmodels:/bike-demand/3\n└── run abc\n```",
        "## Contact\n\nteam-bikes@example.com",
    ]
    positions = [md.find(part) for part in order]
    assert -1 not in positions, [p for p, at in zip(order, positions, strict=True) if at == -1]
    assert positions == sorted(positions)
    assert "\n\n\n" not in md
    assert card.missing == ()
    assert "## Missing from this card" not in md


def test_values_from_data_cannot_break_a_table_or_inject_html() -> None:
    card = ModelCard(
        details(description=EVIL),
        training=(
            TrainingData(
                "bikes@4",
                rows=10,
                column_count=1,
                message="line one\nline | two <b>",
                columns=(ColumnSummary(EVIL, "string", 0, 2, summary=f"top: {EVIL} 50.0%"),),
            ),
        ),
        evaluation=evaluation(),
    )
    md = card.to_markdown()
    assert "<script>" not in md and "<b>" not in md
    assert "a\\|b &lt;script&gt;alert(1)&lt;/script&gt;" in md
    assert "message: line one line \\| two &lt;b&gt;" in md
    for header, separator, *rows in _tables(md):
        assert cells(separator) == cells(header)
        assert all(cells(row) == cells(header) for row in rows), rows


def _tables(markdown: str) -> list[list[str]]:
    tables: list[list[str]] = []
    previous = False
    for line in markdown.splitlines():
        is_row = line.startswith("|")
        if is_row and not previous:
            tables.append([])
        if is_row:
            tables[-1].append(line)
        previous = is_row
    return tables


def test_what_is_missing_is_said_with_the_command_or_file_that_adds_it() -> None:
    card = ModelCard(details(), sections_file="cards/bike-demand.md")
    md = card.to_markdown()
    assert "Not evaluated yet: run `loopml evaluate models:/bike-demand/3" in md
    assert "create cards/bike-demand.md with a '## Intended use' section" in md
    assert "No training data was recorded" in md and "No gate policy guards" in md
    missing = "\n".join(card.missing)
    assert "not evaluated yet: run 'loopml evaluate models:/bike-demand/3 --data" in missing
    assert "no sections file: create cards/bike-demand.md" in missing
    assert "no training data recorded" in missing and "no gate policy" in missing
    assert md.rstrip().splitlines()[-1].startswith("- no gate policy guards bike-demand")

    written = ModelCard(
        details(),
        sections=(UserSection(INTENDED_USE, "Planning."),),
        sections_file="cards/bike-demand.md",
        sections_found=True,
        notes=("dataset gone",),
    )
    assert "no '## Limitations' section in cards/bike-demand.md" in written.missing
    assert not any("Intended use" in m for m in written.missing)
    assert written.missing[-1] == "dataset gone"
    assert "add a '## Limitations' section to cards/bike-demand.md" in written.to_markdown()


def test_lineage_is_fenced_so_that_no_label_can_close_the_fence() -> None:
    md = ModelCard(details(), lineage=("run 'a ``` b'",)).to_markdown()
    assert "````text\nrun 'a ``` b'\n````" in md


def test_gate_results_show_the_outcome_value_and_bound() -> None:
    report = GateReport(
        model="bike-demand",
        stage=Stage.PRODUCTION,
        candidate_version=3,
        champion_version=2,
        has_champion=True,
        requires_approval=True,
        checks=(
            CheckResult(
                "max:rmse", CheckKind.THRESHOLD, "rmse", Outcome.FAILED,
                "rmse 41.2 is above the maximum 40.0", 41.2, 40.0, "<=",
            ),
            CheckResult(
                "latency_p99", CheckKind.LATENCY, "latency", Outcome.PASSED, "fast", 3.5, 50.0,
                "<=", unit="ms",
            ),
            CheckResult(
                "data_validation:training", CheckKind.DATA_VALIDATION, "training",
                Outcome.SKIPPED, "not run",
            ),
        ),
    )  # fmt: skip
    gates = StageGates.of(report)
    assert (gates.stage, gates.passed) == ("production", False)
    assert gates.checks[0] == GateCheck(
        "max:rmse", "failed", "41.2", "≤ 40.0", "rmse 41.2 is above the maximum 40.0"
    )
    assert (gates.checks[1].value, gates.checks[1].bound) == ("3.5 ms", "≤ 50.0 ms")
    assert (gates.checks[2].value, gates.checks[2].bound) == ("not run", "passed")
    md = ModelCard(details(), gates=(gates,)).to_markdown()
    assert "### Into production: failed: 1 failed, 1 passed, 1 skipped" in md
    assert "Compared with the champion, v2." in md and "must approve" in md
    assert "| max:rmse | failed | 41.2 | ≤ 40.0 | rmse 41.2 is above the maximum 40.0 |" in md


def test_to_dict_is_strict_json_with_what_is_missing() -> None:
    card = ModelCard(details(), evaluation=evaluation(), sections_file="cards/x.md")
    data = json.loads(json.dumps(card.to_dict(), allow_nan=False))
    assert data["uri"] == "models:/bike-demand/3"
    assert data["evaluation"]["metrics"] == {"accuracy": 0.875, "roc_auc": "nan"}
    assert data["evaluation"]["slices"][1]["value"] == EVIL
    assert any("no sections file" in m for m in data["missing"])
