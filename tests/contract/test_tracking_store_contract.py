"""The TrackingStore contract, run against every backend (see ``conftest.py``).

Experiments, runs and their records, then the search language: every operator on every
kind of key, precedence, ordering with missing keys, and paging. The SQL adapter is the
reference; the in-memory store must agree with it case by case.
"""

from __future__ import annotations

import functools
import math
import uuid
from typing import TYPE_CHECKING, TypeVar

import blake3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopml.domain.artifacts import ArtifactRef, Digest
from loopml.domain.errors import AlreadyExists, InvalidInput, NotFound, ParamConflict
from loopml.domain.tracking import (
    CodeVersion,
    DatasetRef,
    EnvironmentInfo,
    Metric,
    Run,
    RunStatus,
)
from loopml.ports import NewRun

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from loopml.domain.paging import Page
    from loopml.ports import TrackingStore

T = TypeVar("T")

DB_SETTINGS = settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def new_id() -> str:
    return uuid.uuid4().hex


def start(
    tracking: TrackingStore,
    experiment: str = "exp",
    start_ms: int = 1000,
    *,
    name: str = "run",
    run_id: str | None = None,
    parent_id: str | None = None,
    tags: dict[str, str] | None = None,
) -> str:
    run_id = run_id or new_id()
    tracking.create_run(NewRun(run_id, experiment, name, start_ms, parent_id, tags or {}))
    return run_id


def digest(data: bytes) -> Digest:
    return Digest("blake3", blake3.blake3(data).hexdigest())


def all_pages(fetch: Callable[[str | None], Page[T]]) -> list[list[T]]:
    """Follow next_page_token from the first page to the last."""
    pages: list[list[T]] = []
    token = None
    while True:
        page = fetch(token)
        pages.append(list(page.items))
        token = page.next_page_token
        if token is None:
            return pages
        assert len(pages) < 100, "paging does not terminate"


# experiments -------------------------------------------------------------------------------
def test_create_get_and_find_experiment(tracking: TrackingStore) -> None:
    created = tracking.create_experiment("churn", 1234)
    assert (created.name, created.created_ms) == ("churn", 1234)
    assert tracking.get_experiment("churn") == created
    assert tracking.find_experiment("churn") == created
    assert tracking.find_experiment("nope") is None
    with pytest.raises(NotFound, match="'nope'"):
        tracking.get_experiment("nope")


def test_experiment_ids_are_distinct(tracking: TrackingStore) -> None:
    ids = {tracking.create_experiment(f"e{i}", i).id for i in range(3)}
    assert len(ids) == 3


def test_create_experiment_twice_raises_already_exists(tracking: TrackingStore) -> None:
    first = tracking.create_experiment("churn", 1)
    with pytest.raises(AlreadyExists, match="'churn'"):
        tracking.create_experiment("churn", 2)
    assert tracking.get_experiment("churn") == first


def test_list_experiments_pages_in_name_order(tracking: TrackingStore) -> None:
    names = ["delta", "alpha", "echo", "Bravo", "charlie", "golf", "foxtrot"]
    for i, name in enumerate(names):
        tracking.create_experiment(name, i)

    pages = all_pages(lambda token: tracking.list_experiments(3, token))
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [e.name for p in pages for e in p] == sorted(names)


def test_list_experiments_exact_multiple_has_no_empty_last_page(tracking: TrackingStore) -> None:
    for name in ("a", "b", "c", "d"):
        tracking.create_experiment(name, 0)
    first = tracking.list_experiments(2, None)
    second = tracking.list_experiments(2, first.next_page_token)
    assert [e.name for e in second] == ["c", "d"]
    assert second.next_page_token is None
    assert tracking.list_experiments(10, None).next_page_token is None


def test_list_experiments_refuses_bad_and_foreign_tokens(tracking: TrackingStore) -> None:
    start(tracking, "a")
    start(tracking, "a")
    foreign = tracking.search_runs([], None, [], 1, None).next_page_token
    assert foreign is not None
    with pytest.raises(InvalidInput, match="different query"):
        tracking.list_experiments(1, foreign)
    with pytest.raises(InvalidInput, match="not valid"):
        tracking.list_experiments(1, "garbage!")


# runs --------------------------------------------------------------------------------------
def test_create_run_creates_its_experiment_and_reads_back(tracking: TrackingStore) -> None:
    code = CodeVersion("abc123", "main", True, "d" * 64, "/repo")
    env = EnvironmentInfo("3.11.9", "linux-x86_64", (("numpy", "2.0.0"), ("pandas", "2.2.2")))
    run_id = new_id()
    tracking.create_run(
        NewRun(run_id, "bikes", "first", 5000, tags={"team": "ml"}, code=code, environment=env)
    )
    assert tracking.get_experiment("bikes").created_ms == 5000
    run = tracking.get_run(run_id)
    assert run == Run(
        id=run_id,
        experiment="bikes",
        name="first",
        status=RunStatus.RUNNING,
        start_ms=5000,
        tags={"team": "ml"},
        code=code,
        environment=env,
    )
    assert run.end_ms is None
    assert run.duration_ms is None
    assert tracking.find_run(run_id) == run


def test_create_run_keeps_an_existing_experiment(tracking: TrackingStore) -> None:
    existing = tracking.create_experiment("bikes", 10)
    start(tracking, "bikes", start_ms=99)
    assert tracking.get_experiment("bikes") == existing


def test_create_run_with_a_taken_id_raises_already_exists(tracking: TrackingStore) -> None:
    run_id = start(tracking, name="original")
    with pytest.raises(AlreadyExists, match=run_id):
        start(tracking, run_id=run_id, name="impostor")
    assert tracking.get_run(run_id).name == "original"


def test_nested_run_records_its_parent(tracking: TrackingStore) -> None:
    parent = start(tracking)
    child = start(tracking, parent_id=parent)
    assert tracking.get_run(child).parent_id == parent
    assert tracking.get_run(parent).parent_id is None


def test_nested_run_parent_must_exist_and_nothing_is_created(tracking: TrackingStore) -> None:
    run_id = new_id()
    with pytest.raises(NotFound, match="'missing'"):
        tracking.create_run(NewRun(run_id, "fresh", "child", 1, parent_id="missing"))
    assert tracking.find_run(run_id) is None
    assert tracking.find_experiment("fresh") is None


def test_finish_run_sets_status_and_end(tracking: TrackingStore) -> None:
    run_id = start(tracking, start_ms=1000)
    tracking.finish_run(run_id, RunStatus.FAILED, 1750)
    run = tracking.get_run(run_id)
    assert (run.status, run.end_ms, run.duration_ms) == (RunStatus.FAILED, 1750, 750)


def test_unknown_run_raises_not_found_everywhere(tracking: TrackingStore) -> None:
    ref = ArtifactRef("a.txt", digest(b"a"), 1)
    calls: list[Callable[[], object]] = [
        lambda: tracking.get_run("nope"),
        lambda: tracking.finish_run("nope", RunStatus.FINISHED, 1),
        lambda: tracking.log_params("nope", {"a": "1"}),
        lambda: tracking.log_metrics([("nope", [Metric("m", 1.0, 0, 0)])]),
        lambda: tracking.set_tags("nope", {"a": "1"}),
        lambda: tracking.add_artifacts("nope", [ref]),
        lambda: tracking.add_inputs("nope", [DatasetRef("d", 1)]),
        lambda: tracking.get_metric_history("nope", "m"),
    ]
    for call in calls:
        with pytest.raises(NotFound, match="'nope'"):
            call()
    assert tracking.find_run("nope") is None


# params ------------------------------------------------------------------------------------
def test_params_are_immutable(tracking: TrackingStore) -> None:
    run_id = start(tracking)
    tracking.log_params(run_id, {"lr": "0.1", "model": "gbr"})
    tracking.log_params(run_id, {"lr": "0.1", "depth": "3"})  # same value again is fine
    with pytest.raises(ParamConflict) as info:
        tracking.log_params(run_id, {"lr": "0.2", "seed": "7"})
    message = str(info.value)
    assert "'lr'" in message
    assert "'0.1'" in message
    assert "'0.2'" in message
    # the refused call stored nothing, not even its non-conflicting params
    assert tracking.get_run(run_id).params == {"lr": "0.1", "model": "gbr", "depth": "3"}


def test_params_of_runs_are_independent(tracking: TrackingStore) -> None:
    a, b = start(tracking), start(tracking)
    tracking.log_params(a, {"lr": "0.1"})
    tracking.log_params(b, {"lr": "0.2"})
    assert tracking.get_run(a).params == {"lr": "0.1"}
    assert tracking.get_run(b).params == {"lr": "0.2"}


def test_empty_record_batches_are_no_ops(tracking: TrackingStore) -> None:
    run_id = start(tracking)
    tracking.log_params(run_id, {})
    tracking.set_tags(run_id, {})
    tracking.add_artifacts(run_id, [])
    tracking.add_inputs(run_id, [])
    run = tracking.get_run(run_id)
    assert (run.params, run.tags, run.artifacts, run.inputs) == ({}, {}, (), ())


# metrics -----------------------------------------------------------------------------------
def test_metric_history_is_ordered_by_step_then_time(tracking: TrackingStore) -> None:
    run_id = start(tracking)
    points = [
        Metric("loss", 0.5, 2, 20),
        Metric("loss", 0.9, 0, 5),
        Metric("loss", 0.7, 1, 30),
        Metric("loss", 0.6, 1, 10),
        Metric("acc", 0.1, 0, 1),
    ]
    tracking.log_metrics([(run_id, points[:2])])
    tracking.log_metrics([(run_id, points[2:])])
    assert tracking.get_metric_history(run_id, "loss") == [
        Metric("loss", 0.9, 0, 5),
        Metric("loss", 0.6, 1, 10),
        Metric("loss", 0.7, 1, 30),
        Metric("loss", 0.5, 2, 20),
    ]
    assert tracking.get_metric_history(run_id, "other") == []


def test_latest_metric_is_highest_step_even_when_logged_earlier(tracking: TrackingStore) -> None:
    run_id = start(tracking)
    tracking.log_metrics([(run_id, [Metric("loss", 0.2, 10, 100)])])
    tracking.log_metrics([(run_id, [Metric("loss", 0.9, 3, 500)])])  # late, lower step
    assert tracking.get_run(run_id).metrics == {"loss": 0.2}


def test_latest_metric_same_step_later_timestamp_wins(tracking: TrackingStore) -> None:
    run_id = start(tracking)
    tracking.log_metrics([(run_id, [Metric("loss", 0.4, 5, 200), Metric("loss", 0.3, 5, 100)])])
    assert tracking.get_run(run_id).metrics == {"loss": 0.4}
    tracking.log_metrics([(run_id, [Metric("loss", 0.1, 5, 150)])])
    assert tracking.get_run(run_id).metrics == {"loss": 0.4}


def test_latest_metric_exact_tie_later_logged_wins(tracking: TrackingStore) -> None:
    run_id = start(tracking)
    tracking.log_metrics([(run_id, [Metric("m", 1.0, 1, 1), Metric("m", 2.0, 1, 1)])])
    assert tracking.get_run(run_id).metrics == {"m": 2.0}  # within one batch
    tracking.log_metrics([(run_id, [Metric("m", 3.0, 1, 1)])])
    assert tracking.get_run(run_id).metrics == {"m": 3.0}  # across batches


def test_nan_and_infinite_metrics_round_trip(tracking: TrackingStore) -> None:
    run_id = start(tracking)
    tracking.log_metrics(
        [
            (
                run_id,
                [
                    Metric("loss", 0.5, 0, 1),
                    Metric("loss", math.nan, 1, 2),
                    Metric("big", math.inf, 0, 1),
                    Metric("small", -math.inf, 0, 1),
                ],
            )
        ]
    )
    history = tracking.get_metric_history(run_id, "loss")
    assert history[0] == Metric("loss", 0.5, 0, 1)
    assert math.isnan(history[1].value)
    assert (history[1].step, history[1].timestamp_ms) == (1, 2)
    metrics = tracking.get_run(run_id).metrics
    assert math.isnan(metrics["loss"])  # the NaN is the latest point and stays NaN
    assert metrics["big"] == math.inf
    assert metrics["small"] == -math.inf


def test_log_metrics_spans_runs_and_is_all_or_nothing(tracking: TrackingStore) -> None:
    a, b = start(tracking), start(tracking)
    tracking.log_metrics(
        [
            (a, [Metric("m", 1.0, 0, 0)]),
            (b, [Metric("m", 2.0, 0, 0)]),
            (a, [Metric("m", 3.0, 1, 0)]),
        ]
    )
    assert tracking.get_run(a).metrics == {"m": 3.0}
    assert tracking.get_run(b).metrics == {"m": 2.0}
    with pytest.raises(NotFound):
        tracking.log_metrics([(a, [Metric("m", 9.0, 9, 9)]), ("nope", [Metric("m", 1.0, 0, 0)])])
    assert tracking.get_run(a).metrics == {"m": 3.0}
    assert len(tracking.get_metric_history(a, "m")) == 2


def test_empty_metric_batches_are_no_ops(tracking: TrackingStore) -> None:
    run_id = start(tracking)
    tracking.log_metrics([])
    tracking.log_metrics([(run_id, [])])
    assert tracking.get_run(run_id).metrics == {}


points_strategy = st.lists(
    st.tuples(
        st.floats(allow_nan=False, allow_infinity=False, width=32),
        st.integers(0, 5),
        st.integers(0, 5),
    ),
    min_size=1,
    max_size=12,
)


@DB_SETTINGS
@given(batches=st.lists(points_strategy, min_size=1, max_size=4))
def test_latest_is_the_max_by_step_and_time_last_logged_on_ties(
    tracking: TrackingStore, batches: list[list[tuple[float, int, int]]]
) -> None:
    run_id = start(tracking)
    logged: list[Metric] = []
    for batch in batches:
        points = [Metric("m", v, step, ts) for v, step, ts in batch]
        tracking.log_metrics([(run_id, points)])
        logged += points
    # max() keeps the first of equal keys; scanning reversed makes that the last logged
    expected = max(reversed(logged), key=lambda m: (m.step, m.timestamp_ms))
    assert tracking.get_run(run_id).metrics == {"m": expected.value}
    history = tracking.get_metric_history(run_id, "m")
    assert history == sorted(logged, key=lambda m: (m.step, m.timestamp_ms))


# tags, artifacts, inputs -------------------------------------------------------------------
def test_tags_are_upserted(tracking: TrackingStore) -> None:
    run_id = start(tracking, tags={"team": "ml", "stage": "dev"})
    tracking.set_tags(run_id, {"stage": "prod", "owner": "ana"})
    assert tracking.get_run(run_id).tags == {"team": "ml", "stage": "prod", "owner": "ana"}


def test_artifacts_are_listed_by_name_and_replaced_by_name(tracking: TrackingStore) -> None:
    run_id = start(tracking)
    plot, model = (
        ArtifactRef("plots/a.png", digest(b"p"), 1),
        ArtifactRef("model/m", digest(b"m"), 2),
    )
    tracking.add_artifacts(run_id, [plot, model])
    newer = ArtifactRef("plots/a.png", digest(b"p2"), 3)
    tracking.add_artifacts(run_id, [newer])
    assert tracking.get_run(run_id).artifacts == (model, newer)


def test_inputs_are_listed_by_name_and_version(tracking: TrackingStore) -> None:
    run_id = start(tracking)
    tracking.add_inputs(
        run_id, [DatasetRef("rides", 2, "blake3:x"), DatasetRef("bikes", 1), DatasetRef("rides", 1)]
    )
    tracking.add_inputs(run_id, [DatasetRef("rides", 2, "blake3:y")])
    assert tracking.get_run(run_id).inputs == (
        DatasetRef("bikes", 1),
        DatasetRef("rides", 1),
        DatasetRef("rides", 2, "blake3:y"),
    )


def test_repeated_names_in_one_call_last_one_wins(tracking: TrackingStore) -> None:
    run_id = start(tracking)
    first, last = ArtifactRef("a", digest(b"1"), 1), ArtifactRef("a", digest(b"2"), 2)
    tracking.add_artifacts(run_id, [first, last])
    assert tracking.get_run(run_id).artifacts == (last,)


# search: a fixed corpus ---------------------------------------------------------------------
IDS = {name: name * 32 for name in "abcde"}  # run ids are 32 hex characters


# The runs of the search corpus, created in this order. Every filter and order below
# was worked out by hand from this table; NaN metrics are stored but match nothing.
# fmt: off
CORPUS = [
    # key exp      name          start  end                          parent
    #     params                          metrics                      tags
    ("a", "alpha", "gbr-small",  1000, (RunStatus.FINISHED, 1500), None,
     {"model": "gbr", "lr": "0.1"},  {"rmse": 0.25, "r2": 0.9},      {"team": "vision"}),
    ("b", "alpha", "gbr-large",  2000, (RunStatus.FAILED, 2600),   None,
     {"model": "gbr", "lr": "0.01"}, {"rmse": 0.35, "r2": math.nan}, {"team": "Vision"}),
    ("c", "alpha", "rf-default", 3000, None,                       None,
     {"model": "rf"},                {"rmse": 0.30},                 {"team": "nlp",
                                                                      "note": "50%_off"}),
    ("d", "alpha", "child-of-a", 3000, (RunStatus.FINISHED, 3100), IDS["a"],
     {"model": "Rf"},                {"rmse": math.nan, "acc": 0.7}, {}),
    ("e", "beta",  "linear",     500,  (RunStatus.KILLED, 900),    None,
     {},                             {"rmse": 0.25},                 {"team": "vision"}),
]
# fmt: on


@pytest.fixture
def corpus(tracking: TrackingStore) -> TrackingStore:
    for key, experiment, name, start_ms, end, parent, params, metrics, tags in CORPUS:
        run_id = IDS[key]
        tracking.create_run(NewRun(run_id, experiment, name, start_ms, parent, tags))
        if params:
            tracking.log_params(run_id, params)
        tracking.log_metrics([(run_id, [Metric(k, v, 0, start_ms) for k, v in metrics.items()])])
        if end is not None:
            tracking.finish_run(run_id, *end)
    return tracking


def names_of(runs: Sequence[Run]) -> list[str]:
    by_id = {v: k for k, v in IDS.items()}
    return [by_id[r.id] for r in runs]


FILTERS = [
    # metrics: numbers; NaN and missing keys satisfy nothing, not even !=
    ("metrics.rmse = 0.25", "ae"),
    ("metrics.rmse != 0.25", "bc"),
    ("metrics.rmse < 0.3", "ae"),
    ("metrics.rmse <= 0.3", "ace"),
    ("metrics.rmse > 0.3", "b"),
    ("metrics.rmse >= 0.3", "bc"),
    ("metrics.r2 >= 0", "a"),
    ("metrics.acc != 1", "d"),
    ("metrics.`rmse` == 0.25", "ae"),
    ("metric.rmse > -1e9", "abce"),
    # params: text; != and not in need the key
    ("params.model = 'gbr'", "ab"),
    ("params.model != 'gbr'", "cd"),
    ("params.model like 'r%'", "c"),
    ("params.model ilike 'r%'", "cd"),
    ("params.model like '_br'", "ab"),
    ("params.model like 'GBR'", ""),
    ("params.model ilike 'GBR'", "ab"),
    ("params.model in ('rf', 'Rf')", "cd"),
    ("params.model not in ('gbr')", "cd"),
    ("params.lr = '0.1'", "a"),
    ("params.lr = '0.10'", ""),
    # tags
    ("tags.team = 'vision'", "ae"),
    ("tags.team != 'vision'", "bc"),
    ("tags.team like 'vis%'", "ae"),
    ("tags.team ilike 'VIS%'", "abe"),
    ("tags.team in ('nlp', 'Vision')", "bc"),
    ("tags.team not in ('vision', 'nlp')", "b"),
    ("tags.team like '%'", "abce"),
    ("tags.note like '50%'", "c"),
    ("tags.note like '50__off'", "c"),
    ("tags.note like '50_off'", ""),
    ("tags.missing != 'x'", ""),
    # attributes
    ("status = 'finished'", "ad"),
    ("status = 'FINISHED'", "ad"),
    ("status != 'finished'", "bce"),
    ("status in ('FAILED', 'killed')", "be"),
    ("status not in ('running')", "abde"),
    ("status like 'fin%'", "ad"),
    ("status ilike 'FIN%'", "ad"),
    ("attributes.status = 'running'", "c"),
    ("name = 'linear'", "e"),
    ("name != 'linear'", "abcd"),
    ("name like 'gbr-%'", "ab"),
    ("name ilike 'GBR%'", "ab"),
    ("name like '%-%'", "abcd"),
    (f"run_id = '{IDS['c']}'", "c"),
    (f"run_id in ('{IDS['a']}', '{IDS['e']}')", "ae"),
    (f"parent_id = '{IDS['a']}'", "d"),
    (f"parent_id != '{IDS['a']}'", ""),
    ("parent_id like '%'", "d"),
    ("parent_id not in ('x')", "d"),
    ("start_time > 1000", "bcd"),
    ("start_time = 3000", "cd"),
    ("start_time <= 1000", "ae"),
    ("end_time < 1600", "ae"),
    ("end_time != 1500", "bde"),
    ("end_time >= 0", "abde"),
    # and binds tighter than or; parentheses override
    ("params.model = 'gbr' and metrics.rmse < 0.3", "a"),
    ("params.model = 'gbr' or tags.team = 'nlp'", "abc"),
    ("tags.team = 'nlp' or params.model = 'gbr' and metrics.rmse > 0.3", "bc"),
    ("(tags.team = 'nlp' or params.model = 'gbr') and metrics.rmse > 0.3", "b"),
    ("metrics.rmse < 0.3 and (status = 'killed' or name like 'gbr%')", "ae"),
    ("((status = 'running'))", "c"),
    ("metrics.nothing = 1 or name = 'linear'", "e"),
    ("status = 'finished' and params.model = 'Rf' or status = 'killed'", "de"),
    ("status = 'finished' and (params.model = 'Rf' or status = 'killed')", "d"),
    ("STATUS = 'running' AND Params.model = 'rf'", "c"),
    ("", "abcde"),
    ("   ", "abcde"),
]


def test_search_filters(corpus: TrackingStore) -> None:
    # One corpus for the whole table: building it per case would dominate the run time
    # on the SQL backends. Every wrong case is reported, not only the first.
    wrong = []
    for filter_text, expected in FILTERS:
        found = corpus.search_runs([], filter_text, [], 100, None)
        got = "".join(sorted(names_of(found.items)))
        if got != expected or found.next_page_token is not None:
            wrong.append(f"{filter_text!r}: expected {expected!r}, got {got!r}")
    assert wrong == []


def test_search_like_backslash_escapes_a_wildcard(corpus: TrackingStore) -> None:
    corpus.set_tags(IDS["a"], {"pct": "50%"})
    corpus.set_tags(IDS["b"], {"pct": "50x"})
    # the filter string '50\\%' reaches LIKE as 50\% after the parser's own unescaping
    found = corpus.search_runs([], r"tags.pct like '50\\%'", [], 100, None)
    assert names_of(found.items) == ["a"]


def test_search_ilike_folds_non_ascii_case(corpus: TrackingStore) -> None:
    corpus.set_tags(IDS["a"], {"city": "ÅLESUND"})
    found = corpus.search_runs([], "tags.city ilike 'ålesund'", [], 100, None)
    assert names_of(found.items) == ["a"]


def test_search_by_experiment(corpus: TrackingStore) -> None:
    assert names_of(corpus.search_runs(["beta"], None, [], 100, None).items) == ["e"]
    found = corpus.search_runs(["alpha"], "metrics.rmse = 0.25", [], 100, None)
    assert names_of(found.items) == ["a"]
    assert len(corpus.search_runs(["alpha", "beta"], None, [], 100, None)) == 5


def test_search_unknown_experiment_raises_not_found(corpus: TrackingStore) -> None:
    with pytest.raises(NotFound, match="ghost"):
        corpus.search_runs(["alpha", "ghost"], None, [], 100, None)


def test_search_malformed_filter_raises_invalid_input(tracking: TrackingStore) -> None:
    start(tracking)
    for bad in [
        "metrics.rmse < 'x'",
        "params.a > 'x'",
        "nonsense",
        "status = 'a' and",
        "(status = 'a'",
        "foo.bar = 1",
    ]:
        with pytest.raises(InvalidInput):
            tracking.search_runs([], bad, [], 100, None)


ORDERS = [
    ([], "dcbae"),  # start_time desc, then creation order desc (d after c)
    (["metrics.rmse"], "aecbd"),  # NaN (d) sorts as missing: last
    (["metrics.rmse asc"], "aecbd"),
    (["metrics.rmse desc"], "bcaed"),
    (["metrics.acc desc"], "dcbae"),
    (["params.model asc"], "dbace"),  # byte order: 'Rf' < 'gbr' < 'rf'; e has none
    (["params.model desc"], "cbade"),
    (["tags.team asc", "metrics.rmse desc"], "bcaed"),
    (["end_time desc"], "dbaec"),
    (["start_time asc"], "eabdc"),
    (["name"], "dbaec"),
    (["status desc"], "cedab"),
    (["parent_id asc"], "dcbae"),
    (["parent_id desc"], "dcbae"),
    (["attributes.run_id desc"], "edcba"),
    (["metrics.r2 desc", "params.lr asc"], "abdce"),  # b has lr; d, c, e have neither
]


def test_search_orders(corpus: TrackingStore) -> None:
    wrong = []
    for order_by, expected in ORDERS:
        got = "".join(names_of(corpus.search_runs([], None, order_by, 100, None).items))
        if got != expected:
            wrong.append(f"{order_by}: expected {expected!r}, got {got!r}")
    assert wrong == []


def test_search_malformed_order_raises_invalid_input(tracking: TrackingStore) -> None:
    start(tracking)
    for bad in (["metrics.rmse sideways"], ["nope.x"], ["a b c"], [""]):
        with pytest.raises(InvalidInput):
            tracking.search_runs([], None, bad, 100, None)


# search: paging ----------------------------------------------------------------------------
def test_search_pages_through_everything_once(tracking: TrackingStore) -> None:
    for i in range(23):
        run_id = start(tracking, "paging", start_ms=1000 + i % 3)
        if i % 5:
            tracking.log_metrics([(run_id, [Metric("m", float(i % 4), 0, 0)])])
    where, order = "metrics.m >= 0 or status = 'running'", ["metrics.m desc"]
    pages = all_pages(lambda token: tracking.search_runs(["paging"], where, order, 5, token))
    assert [len(p) for p in pages] == [5, 5, 5, 5, 3]
    paged = [r.id for p in pages for r in p]
    whole = [r.id for r in tracking.search_runs(["paging"], where, order, 1000, None)]
    assert paged == whole
    assert len(set(paged)) == 23


@pytest.mark.parametrize(
    ("experiments", "where", "order"),
    [
        (["x"], "status != 'x'", ["name"]),  # another filter
        (["x"], "status = 'running'", ["name desc"]),  # another order
        ([], "status = 'running'", ["name"]),  # other experiments
    ],
)
def test_search_refuses_a_token_from_another_query(
    tracking: TrackingStore, experiments: list[str], where: str, order: list[str]
) -> None:
    for _ in range(3):
        start(tracking, "x")
    token = tracking.search_runs(["x"], "status = 'running'", ["name"], 1, None).next_page_token
    assert token is not None
    with pytest.raises(InvalidInput, match="different query"):
        tracking.search_runs(experiments, where, order, 1, token)


# search: ordering as a property --------------------------------------------------------------
run_rows = st.lists(
    st.tuples(
        st.integers(0, 3),  # start_ms
        st.one_of(st.none(), st.just(math.nan), st.sampled_from([0.5, 1.0, 2.0])),  # metric
        st.one_of(st.none(), st.sampled_from(["a", "B", "b"])),  # param
    ),
    min_size=1,
    max_size=8,
)
order_keys = st.lists(
    st.sampled_from(["metrics.m", "params.p", "start_time", "name"]).flatmap(
        lambda k: st.sampled_from([f"{k} asc", f"{k} desc"])
    ),
    max_size=2,
)


def _reference_order(
    rows: list[tuple[int, float | None, str | None]], order: list[str]
) -> list[int]:
    """Indexes of ``rows`` in the documented order, by pairwise comparison."""

    def value(i: int, key: str) -> object:
        start_ms, metric, param = rows[i]
        if key == "metrics.m":
            return None if metric is None or math.isnan(metric) else metric
        return {"params.p": param, "start_time": start_ms, "name": f"r{i:02d}"}[key]

    def compare(i: int, j: int) -> int:
        for item in order:
            key, direction = item.split()
            vi, vj = value(i, key), value(j, key)
            if (vi is None) != (vj is None):
                return 1 if vi is None else -1
            if vi is not None and vi != vj:
                less = vi < vj  # type: ignore[operator]
                return (-1 if less else 1) * (-1 if direction == "desc" else 1)
        if rows[i][0] != rows[j][0]:
            return -1 if rows[i][0] > rows[j][0] else 1
        return -1 if i > j else 1

    return sorted(range(len(rows)), key=functools.cmp_to_key(compare))


@DB_SETTINGS
@given(rows=run_rows, order=order_keys)
def test_search_order_matches_the_reference(
    tracking: TrackingStore, rows: list[tuple[int, float | None, str | None]], order: list[str]
) -> None:
    experiment = f"prop-{new_id()[:8]}"
    ids = []
    for i, (start_ms, metric, param) in enumerate(rows):
        run_id = start(tracking, experiment, start_ms=start_ms, name=f"r{i:02d}")
        if metric is not None:
            tracking.log_metrics([(run_id, [Metric("m", metric, 0, 0)])])
        if param is not None:
            tracking.log_params(run_id, {"p": param})
        ids.append(run_id)
    found = tracking.search_runs([experiment], None, order, 100, None)
    assert [r.id for r in found] == [ids[i] for i in _reference_order(rows, order)]


EXACT_VALUES = [
    1260782415249408.0,
    0.1 + 0.2,
    5e-324,
    1.7976931348623157e308,
    -1.1585956218253113e167,
    math.inf,
    -math.inf,
]


def test_metric_values_survive_search_bit_for_bit(tracking: TrackingStore) -> None:
    run_id = uuid.uuid4().hex
    tracking.create_run(NewRun(id=run_id, experiment="exact", name="r", start_ms=1))
    points = [Metric(f"m{i}", v, 0, 1) for i, v in enumerate(EXACT_VALUES)]
    tracking.log_metrics([(run_id, [*points, Metric("nan", math.nan, 0, 1)])])
    (found,) = tracking.search_runs(["exact"], None, [], 10, None).items
    for run in (found, tracking.get_run(run_id)):
        assert [run.metrics[f"m{i}"] for i in range(len(EXACT_VALUES))] == EXACT_VALUES
        assert math.isnan(run.metrics["nan"])


def test_referenced_digests_name_every_run_artifact_once(tracking: TrackingStore) -> None:
    first, second = start(tracking), start(tracking)
    tracking.add_artifacts(first, [ArtifactRef("a.txt", digest(b"a"), 1)])
    tracking.add_artifacts(second, [ArtifactRef("b.txt", digest(b"a"), 1)])
    tracking.add_artifacts(second, [ArtifactRef("c.txt", digest(b"c"), 1)])
    assert tracking.referenced_digests() == {str(digest(b"a")), str(digest(b"c"))}
