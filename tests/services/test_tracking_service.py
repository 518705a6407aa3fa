from __future__ import annotations

import pytest

from loopml.bootstrap import Loopml
from loopml.client import Client
from loopml.domain.errors import InvalidInput, InvalidState, NotFound, ParamConflict, UnsafeName
from loopml.domain.tracking import RunStatus


def test_run_lifecycle_records_everything(client: Client) -> None:
    with client.start_run("exp", "first", tags={"team": "x"}) as run:
        run.log_params({"alpha": 0.1, "model": "ridge"})
        for value in (3.0, 2.0, 1.5):
            run.log_metric("loss", value)  # steps 0, 1, 2
        run.log_metrics({"rmse": 4.2, "r2": 0.8})
        ref = run.log_artifact(b'{"ok": true}', name="report.json")
    info = client.get_run(run.id)
    assert info.status is RunStatus.FINISHED and info.end_ms is not None
    assert info.params == {"alpha": "0.1", "model": "ridge"}
    assert info.metrics == {"loss": 1.5, "rmse": 4.2, "r2": 0.8}
    assert info.tags == {"team": "x"}
    assert [m.step for m in client.get_metric_history(run.id, "loss")] == [0, 1, 2]
    assert info.artifacts == (ref,)
    assert client.app.blobs.get_bytes(ref.digest) == b'{"ok": true}'


def test_failed_block_marks_the_run_failed(client: Client) -> None:
    with pytest.raises(RuntimeError), client.start_run("exp") as run:
        raise RuntimeError("boom")
    assert client.get_run(run.id).status is RunStatus.FAILED


def test_param_change_names_both_values(client: Client) -> None:
    with client.start_run() as run:
        run.log_param("alpha", 0.1)
        run.log_param("alpha", 0.1)  # same value again is fine
        with pytest.raises(ParamConflict, match=r"'alpha' is '0\.1', new value '0\.2'"):
            run.log_param("alpha", 0.2)


def test_nested_runs_need_a_running_parent(client: Client) -> None:
    with client.start_run("exp") as parent:
        child = client.start_run(parent=parent)
        child.end()
    assert client.get_run(child.id).parent_id == parent.id
    with pytest.raises(InvalidState, match="has already ended"):
        client.start_run(parent=parent.id)
    with pytest.raises(NotFound):
        client.start_run(parent="0" * 32)


def test_bad_input_is_refused_before_anything_is_stored(client: Client, app: Loopml) -> None:
    with client.start_run("exp") as run:
        with pytest.raises(UnsafeName):
            run.log_artifact(b"x", name="../escape")
        with pytest.raises(InvalidInput, match="must be a number"):
            run.log_metric("loss", "high")  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match="experiment name 'a b'"):
            client.start_run("a b")
    assert client.get_run(run.id).artifacts == ()


def test_search_through_the_service(client: Client) -> None:
    for i in range(5):
        with client.start_run("exp") as run:
            run.log_params({"model": "gbr" if i % 2 else "ridge"})
            run.log_metric("rmse", float(i))
    found = client.search_runs(
        "params.model = 'gbr' and metrics.rmse >= 1", order_by="metrics.rmse desc"
    )
    assert [r.metrics["rmse"] for r in found] == [3.0, 1.0]
    ties_then_newest = client.search_runs(order_by="params.model asc, metrics.rmse desc")
    assert [r.metrics["rmse"] for r in ties_then_newest] == [3.0, 1.0, 4.0, 2.0, 0.0]
    frame = client.search_runs("metrics.rmse < 2", output="frame")
    assert sorted(frame["metrics.rmse"]) == [0.0, 1.0]
    with pytest.raises(InvalidInput, match="unknown key prefix"):
        client.search_runs("foo.bar = 1")


def test_auto_steps_continue_per_key_and_are_forgotten_when_the_run_ends(
    client: Client,
) -> None:
    with client.start_run("exp") as run:
        run.log_metric("loss", 1.0)  # step 0
        run.log_metric("loss", 0.9, step=5)
        run.log_metrics({"loss": 0.8, "acc": 0.5})  # loss 6, acc 0
    assert [m.step for m in client.get_metric_history(run.id, "loss")] == [0, 5, 6]
    assert [m.step for m in client.get_metric_history(run.id, "acc")] == [0]
    assert run.id not in client._steps  # a long sweep must not accumulate finished runs
