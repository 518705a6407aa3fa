"""Running pipelines: cache hits and the reasons for misses, failures, resume and repro."""

from __future__ import annotations

import random
from typing import Any

import pandas as pd
import pytest

import loopml
from loopml.client import Client
from loopml.domain.errors import InvalidState, NotFound
from loopml.domain.pipelines import Pipeline, step
from loopml.domain.repro import Match
from loopml.domain.tracking import RunStatus
from loopml.fluent import run_pipeline
from loopml.services.pipelines import (
    TAG_CACHE,
    TAG_PIPELINE_RUN,
    TAG_STEP,
    PipelineResult,
    Status,
)
from loopml.services.repro import reproduce

CALLS: list[str] = []  # which step functions actually ran, in order
FLAKY = {"fail": False}


@step(outputs=("train", "test"))
def split(bikes: pd.DataFrame, test_rows: int = 2) -> tuple[pd.DataFrame, pd.DataFrame]:
    CALLS.append("split")
    return bikes.iloc[:-test_rows], bikes.iloc[-test_rows:]


@step(outputs="model")
def fit(train: pd.DataFrame, alpha: float = 0.1) -> dict[str, float]:
    CALLS.append("fit")
    loopml.log_metric("alpha_seen", alpha)
    return {"mean": round(float(train["cnt"].mean()) + alpha, 6)}


@step(outputs="score")
def score(model: dict[str, float], test: pd.DataFrame) -> dict[str, float]:
    CALLS.append("score")
    if FLAKY["fail"]:
        raise RuntimeError("the scoring service is down")
    value = abs(model["mean"] - float(test["cnt"].mean()))
    loopml.log_metric("error", value)
    return {"error": value}


@step(outputs="summary")
def describe(bikes: pd.DataFrame) -> dict[str, int]:
    CALLS.append("describe")
    return {"rows": len(bikes)}


def _pipeline() -> Pipeline:
    return Pipeline("bikes", [split, fit, score, describe], datasets={"bikes": "bikes"})


@pytest.fixture(autouse=True)
def _reset() -> None:
    CALLS.clear()
    FLAKY["fail"] = False


@pytest.fixture
def bikes(client: Client) -> Client:
    client.add_dataset("bikes", pd.DataFrame({"cnt": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]}))
    return client


def _statuses(result: PipelineResult) -> dict[str, str]:
    return {o.step: o.status.value for o in result.outcomes}


def test_second_run_is_all_cache_hits_and_runs_nothing(bikes: Client) -> None:
    first = run_pipeline(_pipeline(), client=bikes)
    assert first.ok and set(_statuses(first).values()) == {"ran"}
    assert CALLS == ["split", "fit", "score", "describe"]
    CALLS.clear()
    second = run_pipeline(_pipeline(), client=bikes)
    assert second.all_hits and CALLS == []
    for before, after in zip(first.outcomes, second.outcomes, strict=True):
        assert after.reasons == [f"same code, params, inputs and libraries as run {before.run_id}"]
        assert after.record is not None and before.record is not None
        assert after.record.outputs == before.record.outputs
    # every step, hit or not, is a run nested under its pipeline's run, tagged
    runs = bikes.search_runs(
        f"tags.`{TAG_PIPELINE_RUN}` = '{second.run_id}'", experiments=["bikes"]
    )
    assert {r.tags[TAG_STEP]: r.tags[TAG_CACHE] for r in runs} == dict.fromkeys(
        ["split", "fit", "score", "describe"], "hit"
    )
    assert all(r.parent_id == second.run_id for r in runs)
    assert bikes.get_run(second.run_id).status is RunStatus.FINISHED


def test_a_param_change_reruns_the_step_and_says_what_changed(bikes: Client) -> None:
    run_pipeline(_pipeline(), client=bikes)
    CALLS.clear()
    result = run_pipeline(_pipeline(), client=bikes, params={"fit.alpha": 0.2})
    assert _statuses(result) == {
        "split": "hit",
        "fit": "ran",
        "score": "ran",
        "describe": "hit",
    }
    assert result.outcome("fit").reasons == ["param alpha 0.1 -> 0.2"]
    assert result.outcome("score").reasons == ["input model (fit.model) has new content"]
    assert CALLS == ["fit", "score"]
    fit_run = bikes.get_run(result.outcome("fit").run_id or "")
    assert fit_run.metrics["alpha_seen"] == 0.2 and fit_run.params["alpha"] == "0.2"


def test_an_unchanged_output_keeps_downstream_steps_cached(bikes: Client) -> None:
    run_pipeline(_pipeline(), client=bikes)
    CALLS.clear()
    # fit rounds to 6 decimals: alpha + 1e-9 gives the same model, so score stays cached
    result = run_pipeline(_pipeline(), client=bikes, params={"fit.alpha": 0.1 + 1e-9})
    assert _statuses(result)["fit"] == "ran" and _statuses(result)["score"] == "hit"
    assert CALLS == ["fit"]


def test_a_new_dataset_version_is_named_in_the_reason(bikes: Client) -> None:
    run_pipeline(_pipeline(), client=bikes)
    bikes.add_dataset("bikes", pd.DataFrame({"cnt": [1.0, 2.0, 3.0, 4.0, 5.0, 9.0]}))
    result = run_pipeline(_pipeline(), client=bikes)
    assert result.outcome("split").reasons == ["input bikes: bikes@1 -> bikes@2"]
    assert result.outcome("describe").reasons == ["input bikes: bikes@1 -> bikes@2"]
    [ref] = bikes.get_run(result.outcome("score").run_id or "").inputs
    assert (ref.name, ref.version) == ("bikes", 2)  # lineage reaches through the steps


def test_a_failing_step_stops_its_dependants_only_and_resume_continues(bikes: Client) -> None:
    FLAKY["fail"] = True
    failed = run_pipeline(_pipeline(), client=bikes)
    assert _statuses(failed) == {
        "split": "ran",
        "fit": "ran",
        "score": "failed",
        "describe": "ran",  # independent of score: it still runs
    }
    error = failed.outcome("score").error or ""
    assert "step score raised RuntimeError: the scoring service is down" in error
    assert "test_pipeline_runs.py:" in error  # where, in the user's code
    assert bikes.get_run(failed.run_id).status is RunStatus.FAILED
    assert bikes.get_run(failed.outcome("score").run_id or "").status is RunStatus.FAILED
    done = {o.step: o.record for o in failed.outcomes if o.record is not None}
    assert set(done) == {"split", "fit", "describe"}  # what finished is kept in the cache


def test_resume_reuses_what_finished_and_runs_the_rest(bikes: Client) -> None:
    FLAKY["fail"] = True
    failed = run_pipeline(_pipeline(), client=bikes)
    FLAKY["fail"] = False
    CALLS.clear()
    resumed = run_pipeline(_pipeline(), client=bikes, resume=True)
    assert resumed.ok and CALLS == ["score"]
    assert _statuses(resumed) == {
        "split": "resumed",
        "fit": "resumed",
        "score": "ran",
        "describe": "resumed",
    }
    assert resumed.outcome("fit").reasons[0].startswith("finished in the resumed run")
    assert bikes.get_run(resumed.run_id).tags["loopml.resumed_from"] == failed.run_id
    with pytest.raises(InvalidState, match="not failed: nothing to resume"):
        run_pipeline(_pipeline(), client=bikes, resume=True)


def test_resume_of_a_pipeline_that_never_ran_is_refused(bikes: Client) -> None:
    with pytest.raises(NotFound, match="has never run"):
        run_pipeline(_pipeline(), client=bikes, resume=True)


def test_outputs_collected_from_the_store_are_a_miss_that_says_so(bikes: Client) -> None:
    first = run_pipeline(_pipeline(), client=bikes)
    record = first.outcome("describe").record
    assert record is not None
    bikes.app.blobs.delete(record.outputs["summary"].digest)
    again = run_pipeline(_pipeline(), client=bikes)
    assert again.outcome("describe").reasons == [
        "its cached outputs are gone from the artifact store (gc?)"
    ]


@step(cache=False)
def stamp(bikes: pd.DataFrame) -> int:
    CALLS.append("stamp")
    return len(bikes)


@step(outputs=("a", "b"))
def pair(bikes: pd.DataFrame) -> Any:
    return (1, 2, 3)


@step
def opaque(bikes: pd.DataFrame) -> object:
    return object()


def test_uncached_steps_run_every_time(bikes: Client) -> None:
    pipeline = Pipeline("stamps", [stamp], datasets={"bikes": "bikes"})
    run_pipeline(pipeline, client=bikes)
    result = run_pipeline(pipeline, client=bikes)
    assert CALLS == ["stamp", "stamp"]
    assert result.outcome("stamp").reasons == [
        "step stamp is marked cache=False: it runs every time"
    ]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (pair, "declares outputs ['a', 'b'] but returned a tuple of 3"),
        (opaque, "output 'opaque' of step 'opaque': a builtins.object cannot be stored safely"),
    ],
)
def test_outputs_that_cannot_be_stored_fail_the_step_clearly(
    bikes: Client, bad: Any, message: str
) -> None:
    result = run_pipeline(Pipeline("bad", [bad], datasets={"bikes": "bikes"}), client=bikes)
    outcome = result.outcomes[0]
    assert outcome.status is Status.FAILED and message in (outcome.error or "")
    assert bikes.app.stores.steps.latest_step("bad", bad.name) is None  # nothing cached


@step(outputs="registered")
def register_model(train: pd.DataFrame) -> str:
    from sklearn.linear_model import LinearRegression

    model = LinearRegression().fit(train[["cnt"]], train["cnt"])
    return loopml.register_model(model, "demand").uri


@step(outputs="noise")
def noisy(train: pd.DataFrame) -> float:
    return random.random()


def test_repro_rebuilds_the_lineage_and_reports_a_match(bikes: Client) -> None:
    pipeline = Pipeline("reg", [split, fit, register_model], datasets={"bikes": "bikes"})
    built = run_pipeline(pipeline, client=bikes)
    assert built.ok
    mv = bikes.get_model_version("models:/demand/1")
    assert mv.run_id == built.outcome("register_model").run_id
    report = reproduce(bikes.app.pipelines, pipeline, bikes.get_run(mv.run_id or ""), mv.uri)
    assert [s.step for s in report.steps] == ["split"]  # upstream of the registering step
    assert report.reproduced and report.steps[0].match is Match.IDENTICAL
    assert bikes.get_model("demand").latest_version == 1  # nothing registered again


@step(outputs="kept")
def keep(noise: float) -> float:
    return noise


def test_repro_flags_a_step_that_is_not_deterministic(bikes: Client) -> None:
    pipeline = Pipeline("rnd", [split, noisy, keep], datasets={"bikes": "bikes"})
    built = run_pipeline(pipeline, client=bikes)
    last = bikes.get_run(built.outcome("keep").run_id or "")
    report = reproduce(bikes.app.pipelines, pipeline, last, "models:/x/1")
    verdicts = {s.step: s for s in report.steps}
    assert verdicts["split"].match is Match.IDENTICAL
    assert verdicts["noisy"].match is Match.DIFFERS and verdicts["noisy"].nondeterministic
    assert not report.reproduced
    assert any("not deterministic" in note for note in verdicts["noisy"].notes)
