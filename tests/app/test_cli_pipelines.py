"""`loopml run`, `repro`, `evaluate` and `check` on a real workspace and pipeline file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_support import cli

PIPELINE = """
import os

import loopml
from sklearn.linear_model import LogisticRegression

FEATURES = ["x1", "x2"]


@loopml.step(outputs=("train", "test"))
def split(rows, test_share: float = 0.25):
    cut = int(len(rows) * (1 - test_share))
    return rows.iloc[:cut], rows.iloc[cut:]


@loopml.step(outputs="model", libraries=["scikit-learn"])
def fit(train, c: float = 1.0):
    if os.environ.get("FAIL_FIT"):
        raise RuntimeError("out of memory (simulated)")
    return LogisticRegression(C=c).fit(train[FEATURES], train["label"])


@loopml.step(outputs="registered")
def register(model, test):
    mv = loopml.register_model(model, "clf", sample=test[FEATURES])
    return mv.uri


pipeline = loopml.Pipeline("clf", [split, fit, register], datasets={"rows": "rows"})
"""


def _rows(n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    label = (x1 - x2 + rng.normal(scale=0.3, size=n) > 0).astype(int)
    return pd.DataFrame({"x1": x1, "x2": x2, "label": label})


@pytest.fixture
def project(ws: Path) -> Path:
    _rows().to_parquet(ws / "rows.parquet")
    assert cli(ws, "data", "add", "rows", str(ws / "rows.parquet"))[0] == 0
    (ws / "pipeline.py").write_text(PIPELINE)
    return ws


def test_run_twice_then_change_a_param(project: Path) -> None:
    code, text = cli(project, "run")
    assert code == 0, text
    assert "pipeline clf (pipeline.py:pipeline): 3 steps" in text and "done: 3 ran" in text
    code, text = cli(project, "run")
    assert code == 0 and "all 3 steps were cache hits: nothing to do" in text
    code, text = cli(project, "run", "-p", "fit.c=0.5", "--json")
    steps = {s["step"]: s for s in json.loads(text)["steps"]}
    assert code == 0 and steps["split"]["status"] == "hit"
    assert steps["fit"]["reasons"] == ["param c 1.0 -> 0.5"]
    assert steps["register"]["reasons"] == ["input model (fit.model) has new content"]


def test_a_failing_step_exits_1_and_resume_finishes(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAIL_FIT", "1")
    code, text = cli(project, "run")
    assert code == 1
    assert "step fit raised RuntimeError: out of memory (simulated)" in text
    assert "loopml run --resume" in text and "skipped" in text
    assert cli(project, "models", "list", "--json")[1].strip() in ("[]", "")  # none registered
    monkeypatch.delenv("FAIL_FIT")
    code, text = cli(project, "run", "--resume")
    assert code == 0, text
    assert "resumed" in text and "done: 1 resumed, 2 ran" in text


def test_repro_reports_a_reproduced_lineage(project: Path) -> None:
    assert cli(project, "run")[0] == 0
    code, text = cli(project, "repro", "models:/clf/1", "--json")
    report = json.loads(text)
    assert code == 0 and report["reproduced"] is True
    assert [(s["step"], s["match"]) for s in report["steps"]] == [
        ("split", "identical"),
        ("fit", "identical"),  # sklearn models are saved byte-for-byte the same
    ]


def test_check_writes_a_summary_and_exits_by_the_gates(project: Path) -> None:
    assert cli(project, "run")[0] == 0
    with (project / "loopml.toml").open("a") as config:
        config.write(
            "\n[gates.default.production.thresholds]\naccuracy = 0.99\n"
            "\n[check]\nmodel = 'clf'\ndata = 'rows@1'\nlabel = 'label'\n"
        )
    code, text = cli(project, "check", "--summary", str(project / "pr.md"))
    summary = (project / "pr.md").read_text()
    assert code == 1 and summary.startswith("### ❌ loopml check: `models:/clf/1` failed")
    assert "| ❌ | min:accuracy |" in summary and "≥ 0.99" in summary
    code, text = cli(project, "check", "--stage", "staging", "--json")  # staging: no gates
    assert code == 0 and json.loads(text)["passed"] is True
    code, text = cli(project, "evaluate", "models:/clf/1", "--data", "rows@1", "--label", "label")
    assert code == 0 and "accuracy" in text


@pytest.mark.parametrize(
    ("source", "target", "code", "message"),
    [
        (None, None, 3, "pipeline file 'pipeline.py' does not exist"),
        ("x = 1\n", "pipeline.py:pipeline", 3, "pipeline.py has no 'pipeline'; it defines: x"),
        ("pipeline = 3\n", None, 2, "is a int, not a loopml.Pipeline"),
        ("raise ImportError('no gpu')\n", None, 2, "failed: ImportError: no gpu"),
        (
            "import loopml\n@loopml.step(outputs='a')\ndef f(b): return b\n"
            "@loopml.step(outputs='b')\ndef g(a): return a\n"
            "pipeline = loopml.Pipeline('p', [f, g])\n",
            None,
            2,
            "has a cycle: f -> g -> f",
        ),
        (
            "import loopml\n@loopml.step\ndef f(features): return 1\n"
            "pipeline = loopml.Pipeline('p', [f])\n",
            None,
            2,
            "step 'f' needs input 'features', which no step produces",
        ),
        (PIPELINE, "pipeline.py", 2, "expected FILE.py:NAME"),
    ],
)
def test_bad_pipelines_are_refused_clearly(
    project: Path, source: str | None, target: str | None, code: int, message: str
) -> None:
    path = project / "pipeline.py"
    path.unlink()
    if source is not None:
        path.write_text(source)
    got, text = cli(project, "run", *([target] if target else []))
    assert got == code and message in " ".join(text.split()), text
    assert cli(project, "models", "list", "--json")[1].strip() in ("[]", "")


def test_bad_params_are_refused(project: Path) -> None:
    code, text = cli(project, "run", "-p", "alpha=1")
    assert code == 2 and "must look like STEP.PARAM=VALUE" in text
    code, text = cli(project, "run", "-p", "fit.gamma=1")
    assert code == 2 and "step 'fit' has no parameter 'gamma'" in text


def test_a_pipeline_described_in_loopml_toml(project: Path) -> None:
    steps = PIPELINE.split("pipeline = loopml.Pipeline", maxsplit=1)[0]
    (project / "steps.py").write_text(steps)
    (project / "pipeline.py").unlink()
    with (project / "loopml.toml").open("a") as config:
        config.write(
            '\n[pipeline]\nname = "described"\n'
            'steps = ["steps.py:split", "steps.py:fit", "steps.py:register"]\n'
            'datasets = { rows = "rows@1" }\n'
            '[pipeline.params]\n"fit.c" = 0.5\n'
        )
    code, text = cli(project, "run", "--json")
    result = json.loads(text)
    assert code == 0 and result["pipeline"] == "described"
    assert [s["status"] for s in result["steps"]] == ["ran", "ran", "ran"]
    code, text = cli(project, "runs", "list", "--experiment", "described", "--json")
    fit = next(r for r in json.loads(text)["runs"] if r["name"] == "fit")
    assert fit["params"]["c"] == "0.5"
