"""``loopml card`` in-process, on a real workspace: both files written, with what loopml knows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_support import cli
from sklearn.linear_model import LogisticRegression

from loopml.client import Client

SECTIONS = """# churn

## Intended use
Pick customers for **retention offers**.

## Limitations
- Trained on one region's export.

## Contact
crm-team
"""


@pytest.fixture
def evaluated(ws: Path) -> Path:
    """A workspace gating staging on accuracy, with models:/churn/1 trained on
    customers@1 and evaluated on it per region."""
    with (ws / "loopml.toml").open("a") as toml:
        toml.write("\n[gates.default.staging.thresholds]\naccuracy = 0.99\n")
    rng = np.random.default_rng(3)
    data = pd.DataFrame({"tenure": rng.normal(24, 8, 300), "region": rng.choice(["n", "s"], 300)})
    data["churned"] = (data["tenure"] + rng.normal(0, 4, 300) < 22).astype(int)
    with Client(ws) as client:
        with client.start_run("churn", "train") as run:
            run.log_dataset("customers", data)
        model = LogisticRegression().fit(data[["tenure"]], data["churned"])
        mv = client.register_model(model, "churn", run_id=run.id, sample=data[["tenure"]])
        client.evaluate_model(mv.uri, "customers@1", label="churned", slices=["region"])
    return ws


def test_card_writes_markdown_and_html_with_metrics_slices_sections_and_gates(
    evaluated: Path,
) -> None:
    ws = evaluated
    (ws / "cards").mkdir()
    (ws / "cards" / "churn.md").write_text(SECTIONS)
    code, output = cli(ws, "card", "models:/churn/1")
    assert code == 0, output
    markdown, html = ws / "cards" / "churn-v1.md", ws / "cards" / "churn-v1.html"
    assert output.split() == [str(markdown), str(html)]

    md = markdown.read_text()
    assert "## Intended use\n\nPick customers for **retention offers**." in md
    assert "## Contact\n\ncrm-team" in md
    assert "### customers@1\n\n300 rows, 3 columns" in md
    assert "on `customers@1` (300 rows, label `churned`; classification)" in md
    assert "| `accuracy` |" in md and "| region=n |" in md and "| region=s |" in md
    assert "### Into staging: failed: 1 failed" in md  # accuracy cannot reach 0.99 here
    assert "| min:accuracy | failed |" in md and "≥ 0.99" in md
    assert "dataset customers@1  300 rows" in md  # the lineage
    assert "Missing from this card" not in md

    page = html.read_text()
    assert page.startswith("<!doctype html>") and "<script" not in page
    assert "Pick customers for <strong>retention offers</strong>." in page
    assert "region=s" in page and "min:accuracy" in page


def test_card_without_sections_or_evaluation_says_what_to_add(ws: Path, tmp_path: Path) -> None:
    with Client(ws) as client:
        client.register_model(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), "m")
    code, output = cli(ws, "card", "models:/m/1", "--out", str(tmp_path / "out"), "--json")
    assert code == 0, output
    result = json.loads(output)
    assert result["markdown"] == str(tmp_path / "out" / "m-v1.md")
    assert result["card"]["evaluation"] is None
    md = Path(result["markdown"]).read_text()
    assert "create cards/m.md with a '## Intended use' section" in md
    assert "Not evaluated yet: run `loopml evaluate models:/m/1 --data NAME@VERSION" in md
    assert Path(result["html"]).is_file()


def test_an_explicit_sections_file_is_read_from_where_it_is_named(
    evaluated: Path, tmp_path: Path
) -> None:
    sections = tmp_path / "elsewhere.md"
    sections.write_text("## Limitations\nOnly weekdays.\n")
    code, output = cli(
        evaluated, "card", "models:/churn/1", "--sections", str(sections), "--out", str(tmp_path)
    )
    assert code == 0, output
    md = (tmp_path / "churn-v1.md").read_text()
    assert "## Limitations\n\nOnly weekdays." in md
    assert f"add a '## Intended use' section to {sections}" in md


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["card", "models:/churn/9"], 3, "churn"),
        (["card", "models:/nope/1"], 3, "nope"),
        (["card", "churn"], 2, "model URI 'churn' is not valid"),
        (["card", "models:/churn/1", "--sections", "missing.md"], 3, "missing.md does not exist"),
    ],
)
def test_bad_input_exits_with_its_code_and_one_clear_line(
    evaluated: Path, args: list[str], code: int, message: str
) -> None:
    got, output = cli(evaluated, *args)
    assert got == code, output
    assert output.startswith("error:") and message in output
    assert not (evaluated / "cards").exists()  # nothing half written
