from __future__ import annotations

from pathlib import Path

import pytest
from cli_support import runner

from loopml.cli.main import app


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    """A new workspace made by `loopml init`."""
    result = runner.invoke(app, ["init", str(tmp_path / "ws")])
    assert result.exit_code == 0, result.output
    return tmp_path / "ws"
