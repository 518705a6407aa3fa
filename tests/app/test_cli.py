from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from cli_support import cli, runner

from loopml.cli.main import COMMANDS, SOURCES, app, build, command_name
from loopml.client import Client


def seed(ws: Path) -> list[str]:
    ids = []
    with Client(ws) as client:
        for i, model in enumerate(["ridge", "gbr", "gbr"]):
            with client.start_run("bikes", f"run{i}") as run:
                run.log_params({"model": model, "alpha": 0.1 * (i + 1)})
                run.log_metric("rmse", 10.0 - i)
            ids.append(run.id)
    return ids


def test_init_creates_the_workspace_and_is_idempotent(ws: Path) -> None:
    assert (ws / "loopml.toml").is_file() and (ws / ".loopml" / "loopml.db").is_file()
    code, output = cli(ws, "db", "status")
    assert code == 0 and "up to date" in output
    assert runner.invoke(app, ["init", str(ws)]).exit_code == 0


def test_config_show_names_sources(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPML_ACTOR", "ci-bot")
    code, output = cli(ws, "config", "show", "--json")
    data = json.loads(output)
    assert code == 0
    assert data["actor"] == {"value": "ci-bot", "source": "env LOOPML_ACTOR"}
    assert data["busy_timeout_seconds"]["source"] == "default"


def test_runs_list_filter_show_compare(ws: Path) -> None:
    ids = seed(ws)
    code, output = cli(ws, "runs", "list", "--filter", "params.model = 'gbr'", "--json")
    assert code == 0
    assert {r["run_id"] for r in json.loads(output)["runs"]} == set(ids[1:])
    code, output = cli(ws, "runs", "list", "-o", "metrics.rmse asc")
    assert code == 0 and output.index("run2") < output.index("run0")
    code, output = cli(ws, "runs", "show", ids[0][:12])
    assert code == 0 and "alpha" in output and "rmse" in output
    code, output = cli(ws, "runs", "compare", ids[0], ids[1], "--json")
    rows = {r["key"]: r for r in json.loads(output)["rows"]}
    assert rows["params.model"]["differs"] and rows["params.model"]["values"] == ["ridge", "gbr"]


def test_models_promote_alias_audit(ws: Path) -> None:
    from sklearn.linear_model import LinearRegression

    with Client(ws) as client:
        client.register_model(LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0]), "m")
    assert cli(ws, "models", "promote", "m", "1", "staging")[0] == 0
    code, output = cli(ws, "models", "promote", "m", "1", "production", "--reason", "go")
    assert code == 0 and "production" in output
    assert cli(ws, "models", "alias", "m", "champion", "1")[0] == 0
    code, output = cli(ws, "models", "show", "m", "--json")
    assert json.loads(output)[0]["aliases"] == ["champion"]
    code, output = cli(ws, "audit", "log", "--object", "models:/m", "--json")
    actions = [e["action"] for e in json.loads(output)]
    assert actions[0] == "alias.set" and "model_version.stage" in actions
    code, output = cli(ws, "audit", "verify")
    assert code == 0 and "intact" in output


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["runs", "show", "f" * 32], 3, "does not exist"),
        (["runs", "list", "--filter", "metrics.rmse < 'x'"], 2, "compares with a number"),
        (["models", "promote", "nope", "1", "staging"], 3, "model 'nope' does not exist"),
        (["models", "promote", "m", "1", "prod"], 2, "unknown stage 'prod'"),
    ],
)
def test_errors_map_to_exit_codes_with_a_clear_line(
    ws: Path, args: list[str], code: int, fragment: str
) -> None:
    result = runner.invoke(app, ["--workspace", str(ws), *args])
    assert result.exit_code == code, result.output
    assert fragment in result.output and "Traceback" not in result.output


def test_outside_a_workspace_the_error_says_to_init(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LOOPML_WORKSPACE", raising=False)
    result = runner.invoke(app, ["runs", "list"])
    assert result.exit_code == 8 and "loopml init" in result.output


def test_the_command_table_names_every_command_where_it_comes_from() -> None:
    """``loopml`` builds only the command a command line names, from SOURCES: a command
    added to a module but missing from the table would be unreachable, so compare."""
    assert command_names(build()) == sorted(COMMANDS)
    for _, _, names in SOURCES:
        assert command_names(build(["-w", "ws", names[0], "--help"])) == sorted(names)


def command_names(app: typer.Typer) -> list[str]:
    group = typer.main.get_command(app)  # a group of typer's own vendored click
    return sorted(group.commands)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["data", "status", "x"], "data"),
        (["-w", "ws", "data"], "data"),
        (["--workspace", "serve", "serve"], "serve"),  # a folder named like a command
        (["--workspace=ws", "deploy", "list"], "deploy"),
        (["--help"], None),
        ([], None),
        (["-w"], None),
    ],
)
def test_the_command_name_is_the_first_word_after_the_root_options(
    args: list[str], named: str | None
) -> None:
    assert command_name(args) == named


def test_a_command_line_imports_only_the_module_of_its_command() -> None:
    code = (
        "import sys; from loopml.cli.main import build; build(['-w', 'ws', 'data', 'status']); "
        "print(sorted(m for m in sys.modules if m.startswith('loopml.cli.') and "
        "m not in ('loopml.cli.main', 'loopml.cli.context')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "['loopml.cli.data']"


def test_an_unknown_command_still_gets_suggestions(ws: Path) -> None:
    code, output = cli(ws, "dat")
    assert code == 2 and "No such command 'dat'" in output and "data" in output
