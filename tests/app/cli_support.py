"""The in-process CLI runner the CLI tests share (imported by name: pytest puts this
folder on the path)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from loopml.cli.main import app

runner = CliRunner()


def cli(ws: Path, *args: str) -> tuple[int, str]:
    """Run ``loopml --workspace WS ARGS...``; return the exit code and the output."""
    result = runner.invoke(app, ["--workspace", str(ws), *args])
    return result.exit_code, result.output
