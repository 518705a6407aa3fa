"""``loopml sweep FILE.py:FUNCTION`` in-process, on a real workspace and a real objective file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_support import cli

from loopml.client import Client
from loopml.domain.tracking import RunStatus

OBJECTIVE = """
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

import loopml
from helpers import split  # a neighbour of this file

X_TRAIN, X_VALID, Y_TRAIN, Y_VALID = split(*make_classification(n_samples=100, random_state=0))


def objective(trial):
    c = trial.suggest_float("C", 1e-3, 10.0, log=True)
    if trial.number == 1:
        raise RuntimeError("out of memory")
    loopml.log_metric("train_rows", len(X_TRAIN))  # the trial is the active run
    model = LogisticRegression(C=c).fit(X_TRAIN, Y_TRAIN)
    return model.score(X_VALID, Y_VALID), model


def always_fails(trial):
    raise ValueError("no data")


NOT_A_FUNCTION = 3
"""

HELPERS = """
def split(x, y):
    return x[:70], x[70:], y[:70], y[70:]
"""


@pytest.fixture
def objective_file(ws: Path) -> Path:
    (ws / "helpers.py").write_text(HELPERS)
    path = ws / "tune.py"
    path.write_text(OBJECTIVE)
    return path


def test_sweep_a_file_objective_and_register_the_best(ws: Path, objective_file: Path) -> None:
    code, output = cli(
        ws, "sweep", "tune.py:objective", "--trials", "4", "--metric", "accuracy",
        "--register", "churn", "--json",
    )  # fmt: skip
    assert code == 0, output
    result = json.loads(output)
    assert (result["n_complete"], result["n_pruned"], result["n_failed"]) == (3, 0, 1)
    assert result["trials"][1]["error"] == "RuntimeError: out of memory"
    assert result["model_version"] == {
        "name": "churn",
        "version": 1,
        "uri": "models:/churn/1",
        "stage": "candidate",
    }
    best = result["best"]
    assert best["value"] == max(t["value"] for t in result["trials"] if t["value"] is not None)
    with Client(ws) as client:
        assert client.get_model_version("models:/churn/1").run_id == best["run_id"]
        trial_run = client.get_run(best["run_id"])
        assert trial_run.parent_id == result["run_id"]
        assert trial_run.metrics["train_rows"] == 70
        assert client.get_run(result["run_id"]).status is RunStatus.FINISHED


def test_sweep_prints_one_line_per_trial_then_the_best(ws: Path, objective_file: Path) -> None:
    code, output = cli(
        ws, "sweep", str(objective_file) + ":objective", "-n", "3", "-m", "accuracy",
        "--name", "tune-logreg",
    )  # fmt: skip
    assert code == 0, output
    lines = output.strip().splitlines()
    assert lines[0].startswith("trial 0   complete") and "accuracy=" in lines[0]
    assert "C=" in lines[0]
    assert lines[1].startswith("trial 1   failed") and "RuntimeError: out of memory" in lines[1]
    assert lines[3].startswith("sweep tune-logreg (run ")
    assert lines[3].endswith("3 trials, 2 complete, 0 pruned, 1 failed")
    assert lines[4].startswith("best: trial ")
    assert "registered" not in output


@pytest.mark.parametrize(
    ("target", "code", "message"),
    [
        ("tune.py", 2, "expected FILE.py:FUNCTION, e.g. train.py:objective"),
        ("missing.py:objective", 3, "objective file 'missing.py' does not exist"),
        ("tune.py:nope", 3, "tune.py has no function 'nope'; it defines: always_fails, objective"),
        ("tune.py:NOT_A_FUNCTION", 2, "tune.py:NOT_A_FUNCTION is int 3, not a function"),
        ("helpers.txt:split", 2, "is not a Python file (.py)"),
        ("broken.py:objective", 2, "failed: ModuleNotFoundError: No module named 'nowhere'"),
        ("tune.py:always_fails", 5, "the first, trial 0 (run "),
    ],
)
def test_bad_objectives_exit_with_their_code_and_one_clear_line(
    ws: Path, objective_file: Path, target: str, code: int, message: str
) -> None:
    (ws / "helpers.txt").write_text("")
    (ws / "broken.py").write_text("import nowhere\n")
    got, output = cli(ws, "sweep", target, "--trials", "2", "--metric", "accuracy")
    assert got == code, output
    assert message in output


def test_bad_options_exit_2(ws: Path, objective_file: Path) -> None:
    got, output = cli(ws, "sweep", "tune.py:objective", "-n", "0", "-m", "accuracy")
    assert (got, output.strip()) == (
        2,
        "error: n_trials must be a whole number of at least 1, got 0; e.g. n_trials=20 "
        "(--trials 20)",
    )
    got, output = cli(ws, "sweep", "tune.py:objective", "-n", "2", "-m", "score")
    assert got == 2 and "pass direction='maximize' or 'minimize' (--direction)" in output
