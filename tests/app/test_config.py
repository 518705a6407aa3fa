from __future__ import annotations

from pathlib import Path

import pytest

from loopml.config import CONFIG_FILE, find_workspace, load_settings
from loopml.domain.errors import ConfigError


def make_ws(root: Path, text: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / CONFIG_FILE).write_text(text)
    return root


def test_precedence_default_file_env_flag(tmp_path: Path) -> None:
    ws = make_ws(
        tmp_path / "ws",
        "[tracking]\nmetric_flush_seconds = 2.5\n"
        "metric_flush_points = 50\n[user]\nactor = 'file'\n",
    )
    env = {"LOOPML_METRIC_FLUSH_POINTS": "70", "LOOPML_ACTOR": "env"}
    s = load_settings(ws, env=env, flags={"actor": "flag"})
    assert s.busy_timeout_seconds == 30.0 and s.sources["busy_timeout_seconds"] == "default"
    assert s.metric_flush_seconds == 2.5 and s.sources["metric_flush_seconds"] == CONFIG_FILE
    assert s.metric_flush_points == 70
    assert s.sources["metric_flush_points"] == "env LOOPML_METRIC_FLUSH_POINTS"
    assert s.actor == "flag" and s.sources["actor"] == "flag"
    assert s.metadata_url == f"sqlite:///{ws.resolve()}/.loopml/loopml.db"


def test_workspace_is_found_by_walking_up(tmp_path: Path) -> None:
    ws = make_ws(tmp_path / "ws")
    deep = ws / "src" / "pkg"
    deep.mkdir(parents=True)
    assert find_workspace(deep) == ws.resolve()
    assert load_settings(cwd=deep, env={}).root == ws.resolve()


def test_relative_paths_in_the_file_are_relative_to_the_workspace(tmp_path: Path) -> None:
    ws = make_ws(
        tmp_path / "ws",
        '[store]\nartifact_url = "blobs"\nmetadata_url = "sqlite:///meta/db.sqlite"\n',
    )
    s = load_settings(ws, env={}, cwd=tmp_path)
    assert s.artifact_url == str(ws.resolve() / "blobs")
    assert s.metadata_url == f"sqlite:///{ws.resolve() / 'meta/db.sqlite'}"


def test_no_workspace_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="run `loopml init` here"):
        load_settings(cwd=tmp_path, env={})


@pytest.mark.parametrize(
    ("text", "env", "fragment"),
    [
        ("[tracking]\nmetric_flush_points = 'many'\n", {}, "must be a int, got 'many'"),
        ("", {"LOOPML_CAPTURE_CODE": "perhaps"}, "capture_code from LOOPML_CAPTURE_CODE"),
        ("", {"LOOPML_METRIC_FLUSH_SECONDS": "-1"}, "must be > 0"),
        ("[trakcing]\n", {}, "unknown section(s) 'trakcing'"),
        ("[store]\nmetadata = 'x'\n", {}, "unknown setting(s) 'metadata' in [store]"),
        ("[store\n", {}, "cannot read"),
        ("[serve]\nprot = 9000\n", {}, "unknown setting(s) 'prot' in [serve]"),
        ("[serve]\nport = 'high'\n", {}, "port"),
        ("[monitr]\n", {}, "unknown section(s) 'monitr'"),
        ("monitor = 3\n", {}, "[monitor] must be a table, got 3"),
    ],
)
def test_bad_settings_are_named(
    tmp_path: Path, text: str, env: dict[str, str], fragment: str
) -> None:
    ws = make_ws(tmp_path / "ws", text)
    with pytest.raises(ConfigError) as info:
        load_settings(ws, env=env)
    assert fragment in str(info.value)


def test_serve_settings_come_from_the_file_and_the_environment(tmp_path: Path) -> None:
    ws = make_ws(tmp_path / "ws", "[serve]\nport = 9001\nworkers = 2\n")
    settings = load_settings(ws, env={"LOOPML_POLL_SECONDS": "0.1"})
    assert (settings.host, settings.port, settings.workers) == ("127.0.0.1", 9001, 2)
    assert settings.poll_seconds == 0.1 and settings.max_body_mb == 10.0
    assert settings.sources["port"] == "loopml.toml"
