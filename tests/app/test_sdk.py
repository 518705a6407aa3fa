from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import loopml
from loopml.domain.errors import InvalidState
from loopml.domain.tracking import RunStatus


@pytest.fixture
def in_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LOOPML_WORKSPACE", raising=False)
    yield tmp_path
    client = loopml.fluent._default
    loopml.set_client(None)
    if client is not None:
        client.close()


def test_first_use_creates_a_workspace_here_and_says_so(
    in_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with loopml.start_run("exp") as run:
        loopml.log_metric("loss", 1.0)
    assert (in_folder / "loopml.toml").is_file()
    assert "created a workspace in" in capsys.readouterr().err
    assert loopml.get_client().get_run(run.id).metrics == {"loss": 1.0}


def test_a_subfolder_uses_the_workspace_above(
    in_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loopml.Client(in_folder).close()
    sub = in_folder / "src" / "deep"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    with loopml.start_run() as run:
        pass
    assert not (sub / "loopml.toml").exists()
    assert loopml.get_client().app.settings.root == in_folder.resolve()  # type: ignore[union-attr]
    assert loopml.get_client().get_run(run.id).status is RunStatus.FINISHED


def test_fluent_runs_nest_and_inherit_the_experiment(in_folder: Path) -> None:
    with loopml.start_run("outer-exp") as outer:
        with loopml.start_run(name="child") as child:
            loopml.log_param("depth", 2)
            assert loopml.active_run() is child
        assert loopml.active_run() is outer
        with loopml.start_run(nested=False) as top:
            pass
    client = loopml.get_client()
    assert client.get_run(child.id).parent_id == outer.id
    assert client.get_run(child.id).experiment == "outer-exp"
    assert client.get_run(top.id).parent_id is None
    assert loopml.active_run() is None


def test_logging_without_a_run_explains_what_to_do(in_folder: Path) -> None:
    with pytest.raises(InvalidState, match=r"wrap the call in `with loopml.start_run\(\):`"):
        loopml.log_metric("loss", 1.0)


def test_metrics_are_durable_after_the_run_ends_without_an_explicit_flush(
    in_folder: Path,
) -> None:
    with loopml.start_run("exp") as run:
        for i in range(100):
            loopml.log_metric("loss", float(i))
    fresh = loopml.Client(in_folder)  # a second client reads only what was committed
    try:
        assert len(fresh.get_metric_history(run.id, "loss")) == 100
    finally:
        fresh.close()
