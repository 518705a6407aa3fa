"""The inference server over real HTTP: protocols, validation, routing, hot changes."""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from server_support import Live

ROW = {"temp": 0.5, "hour": 8}


def test_rows_and_columns_answer_with_the_version_and_request_id(live: Live) -> None:
    status, body, headers = live.predict("demand", [ROW], headers={"x-request-id": "req-1"})
    assert status == 200 and headers["x-request-id"] == "req-1" == body["request_id"]
    assert (body["model"], body["version"], body["route"]) == ("demand", 1, "production")
    assert body["predictions"] == pytest.approx([100 * 0.5 + 2 * 8])
    status, body, _ = live.request(
        "POST", "/deployments/demand/predict", {"columns": {"temp": [0.1, 0.2], "hour": [1, 2]}}
    )
    assert status == 200 and body["predictions"] == pytest.approx([12.0, 24.0])


def test_a_classifier_answers_with_its_confidence(live: Live) -> None:
    status, body, _ = live.predict("hot", [{"temp": 0.9, "hour": 3}, {"temp": 0.1, "hour": 3}])
    assert status == 200 and body["predictions"] == [1, 0]
    assert all(0.5 <= c <= 1.0 for c in body["confidence"])


def test_open_inference_protocol_v2(live: Live) -> None:
    request = {
        "id": "oip-7",
        "inputs": [
            {"name": "temp", "shape": [2], "datatype": "FP64", "data": [0.5, 0.25]},
            {"name": "hour", "shape": [2], "datatype": "INT64", "data": [8, 4]},
        ],
    }
    status, body, _ = live.request("POST", "/v2/models/demand/infer", request)
    assert status == 200 and body["id"] == "oip-7" and body["model_version"] == "1"
    [output] = body["outputs"]
    assert output["name"] == "predict" and output["shape"] == [2]
    assert output["data"] == pytest.approx([66.0, 33.0])
    status, meta, _ = live.request("GET", "/v2/models/demand")
    assert status == 200 and [i["name"] for i in meta["inputs"]] == ["temp", "hour"]
    assert live.request("GET", "/v2/models/demand/ready")[0] == 200
    assert live.request("GET", "/v2/health/ready")[1] == {"ready": True}
    assert live.request("GET", "/health/live")[0] == 200


@pytest.mark.parametrize(
    ("kwargs", "status", "message"),
    [
        ({"raw": b"{not json"}, 400, "not valid JSON"),
        ({"raw": b'{"rows": [{"temp": NaN, "hour": 1}]}'}, 400, "NaN is not valid JSON"),
        ({"raw": b'{"rows": [{"temp": Infinity, "hour": 1}]}'}, 400, "Infinity is not valid"),
        ({"raw": b'{"rows": []}'}, 422, "a non-empty list of row objects"),
        ({"raw": b"[1, 2]"}, 400, "must be a JSON object"),
        ({"raw": b'{"data": 1}'}, 400, "needs 'rows'"),
        ({"raw": b"x" * 70_000}, 413, "the limit is 65536"),
        ({"raw": b"{}", "headers": {"content-type": "text/plain"}}, 415, "application/json"),
    ],
)
def test_malformed_requests_get_a_precise_4xx(
    live: Live, kwargs: dict[str, Any], status: int, message: str
) -> None:
    got, body, _ = live.request("POST", "/deployments/demand/predict", **kwargs)
    assert got == status and message in body["error"], body
    assert body["request_id"]


@pytest.mark.parametrize(
    ("row", "field", "expected", "received"),
    [
        ({"temp": 0.5}, "hour", "a column of integer", "nothing"),
        (
            {"temp": 0.5, "hour": 8, "wind": 3},
            "wind",
            "one of the model's inputs",
            "an extra column",
        ),
        ({"temp": "warm", "hour": 8}, "temp", "double", "string 'warm'"),
        ({"temp": None, "hour": 8}, "temp", "double (not null)", "null"),
        ({"temp": 0.5, "hour": 8.5}, "hour", "integer", "number 8.5"),
        ({"temp": 0.5, "hour": True}, "hour", "integer", "boolean True"),
    ],
)
def test_input_that_breaks_the_signature_names_the_field(
    live: Live, row: dict[str, Any], field: str, expected: str, received: str
) -> None:
    status, body, _ = live.predict("demand", [row])
    assert status == 422
    problem = next(p for p in body["problems"] if p["field"] == field)
    assert expected in problem["expected"] and problem["received"] == received


def test_unknown_deployments_paths_and_methods(live: Live) -> None:
    status, body, _ = live.predict("nope", [ROW])
    assert status == 404 and "no deployment 'nope'; deployments: demand, hot" in body["error"]
    assert live.request("GET", "/nowhere")[0] == 404
    assert live.request("DELETE", "/deployments/demand/predict")[0] == 405
    assert live.request("POST", "/health/live", {})[0] == 405


def test_the_review_queue_answers_whether_the_server_started_lean_or_full(live: Live) -> None:
    # A lean server opens the full stores on the queue's first use (bootstrap_serve).
    status, body, _ = live.request("GET", "/review?deployment=demand")
    assert status == 200, body
    assert body == {"item": None, "open": 0, "oldest_age_s": None}
    status, body, _ = live.request("POST", "/review", {"id": 1, "label": 3.0})
    assert status == 404 and "1" in body["error"]  # no such item, said as the full server says it


def test_metrics_count_answers_and_invalid_fields(live: Live) -> None:
    live.predict("demand", [ROW])
    live.predict("demand", [{"temp": "x", "hour": 1}])
    status, body, headers = live.request("GET", "/metrics")
    text = body["text"]
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert (
        'loopml_requests_total{deployment="demand",model="demand",version="1",route="production"} 1'
        in text
    )
    assert 'loopml_invalid_fields_total{deployment="demand",field="temp"} 1' in text
    assert 'loopml_request_errors_total{deployment="demand",status="422"} 1' in text


def test_the_canary_is_sticky_per_key_and_takes_about_its_share(live: Live) -> None:
    live.client.app.deployments.canary("demand", "models:/demand/2", 30, "tester")
    live.wait_for(lambda: live.running.server.routes.endpoints["demand"].canary is not None)
    keyed = {
        live.predict("demand", [ROW], headers={"x-loopml-key": "user-42"})[1]["version"]
        for _ in range(10)
    }
    assert len(keyed) == 1  # one key, one route, every time
    versions = [live.predict("demand", [ROW])[1]["version"] for _ in range(200)]
    share = versions.count(2) / len(versions)
    assert 0.18 < share < 0.42  # 30%, binomial n=200: +-4 standard deviations


def test_shadow_answers_are_never_returned(live: Live) -> None:
    live.client.app.deployments.shadow("demand", "models:/demand/3", "tester")
    live.wait_for(lambda: live.running.server.routes.endpoints["demand"].shadow is not None)
    answers = [live.predict("demand", [ROW])[1] for _ in range(20)]
    assert {a["version"] for a in answers} == {1} and {a["route"] for a in answers} == {
        "production"
    }
    compared = 'deployment="demand",answered_by="models:/demand/1",compared_with="models:/demand/3"'

    def counted(metric: str) -> float:
        for line in live.request("GET", "/metrics")[1]["text"].splitlines():
            if line.startswith(f"{metric}{{{compared}}}"):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    live.wait_for(lambda: counted("loopml_compared_rows_total") == 20)
    assert counted("loopml_differing_rows_total") == 20  # v3 predicts 1.2 x v1
    assert counted("loopml_abs_difference_total") == pytest.approx(20 * 0.2 * 66.0)


def test_archiving_a_version_takes_it_out_of_its_routes(live: Live) -> None:
    deployments = live.client.app.deployments
    deployments.canary("demand", "models:/demand/2", 50, "tester")
    deployments.promote("demand", "tester")  # v2 production, v1 previous (demoted to staging)

    def served() -> dict[str, Any]:
        return live.request("GET", "/deployments")[1]["deployments"][0]

    # Wait on the server's route table, not on one answer: with the 50% canary still
    # routed, version 2 (or 1) can answer before the promotion (or archive) is picked up.
    live.wait_for(lambda: served()["routes"] == {"production": "models:/demand/2"})
    live.client.archive("demand", 2)
    live.wait_for(lambda: served()["routes"] == {"production": "models:/demand/1"})
    assert live.predict("demand", [ROW])[1]["version"] == 1
    assert "production models:/demand/2 is archived and serves nothing" in served()["notes"]


def test_hot_swaps_under_load_fail_no_request(live: Live) -> None:
    """Canary changes, promotions and rollbacks while a client sends requests: every
    request is answered 200 by a version of the model (bounded: 50 changes, 2 threads)."""
    deployments = live.client.app.deployments
    failures: list[Any] = []
    versions: set[int] = set()
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            status, body, _ = live.predict("demand", [ROW])
            if status != 200:
                failures.append(body)
            else:
                versions.add(body["version"])

    threads = [threading.Thread(target=load) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for i in range(50):
            step = i % 4
            if step == 0:
                changed = deployments.canary("demand", "models:/demand/2", 10 + i, "tester")
            elif step == 1:
                changed = deployments.share("demand", 50, "tester")
            elif step == 2:
                changed = deployments.promote("demand", "tester")
            else:
                changed = deployments.rollback("demand", "tester", "drill")
            live.wait_for(
                lambda r=changed.revision: (
                    live.running.server.routes.endpoints["demand"].routes.revision == r
                )
            )
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
    assert failures == [] and versions <= {1, 2} and versions


def test_the_openapi_document_lists_the_endpoints(live: Live) -> None:
    status, body, _ = live.request("GET", "/openapi.json")
    assert status == 200 and "/deployments/{name}/predict" in body["paths"]
    assert "/v2/models/{name}/infer" in body["paths"]
    status, page, _ = live.request("GET", "/docs")
    assert status == 200 and "loopml inference server" in page["text"]
    json.dumps(body)  # a plain JSON document


def test_every_answer_is_logged_and_feedback_joins_it(live: Live) -> None:
    sent = [live.predict("demand", [ROW], headers={"x-request-id": f"r{i}"}) for i in range(5)]
    assert all(status == 200 for status, _, _ in sent)
    app = live.client.app
    assert live.running.server.sink.flush()  # the server's own log, lean or full
    records = app.predictions.tail("demand", 10)
    assert [r.request_id for r in records] == [f"r{i}" for i in range(5)]
    assert records[0].version == 1 and records[0].inputs["temp"] == [0.5]
    assert records[0].outputs["prediction"] == pytest.approx([66.0])
    status, body, _ = live.request(
        "POST", "/feedback", [{"request_id": "r1", "label": 70.0}, {"request_id": "r3", "label": 1}]
    )
    assert status == 200 and body == {"accepted": 2}
    joined = app.predictions.joined("demand").to_pylist()
    labels = {row["request_id"]: row.get("label") for row in joined}
    assert labels["r1"] == 70.0 and labels["r0"] is None
    status, body, _ = live.request("POST", "/feedback", {"label": 1})
    assert status == 422 and "request_id and label" in body["error"]
    text = live.request("GET", "/metrics")[1]["text"]
    assert "loopml_prediction_log_dropped_total 0.0" in text


def test_a_model_that_refuses_a_value_is_a_422_not_a_500(live: Live) -> None:
    import pandas as pd
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame = pd.DataFrame({"city": ["lisbon", "porto", "lisbon"], "y": [1.0, 2.0, 1.5]})
    model = make_pipeline(OneHotEncoder(handle_unknown="error"), LinearRegression())
    model.fit(frame[["city"]], frame["y"])
    live.client.register_model(model, "cities", sample=frame[["city"]])
    live.client.app.deployments.create("cities", "models:/cities/1", "tester")
    live.wait_for(lambda: "cities" in live.running.server.routes.endpoints)
    assert live.predict("cities", [{"city": "porto"}])[0] == 200
    status, body, _ = live.predict("cities", [{"city": "faro"}])
    assert status == 422 and "models:/cities/1 failed on this request" in body["error"]
    assert "faro" in body["error"]


def test_metrics_parse_with_the_official_prometheus_parser(live: Live) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    live.predict("hot", [{"temp": 0.9, "hour": 3}])
    live.predict("demand", [{"temp": "x", "hour": 1}])
    text = live.request("GET", "/metrics")[1]["text"]
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["loopml_requests"].type == "counter"
    latency = families["loopml_predict_seconds"]
    assert latency.type == "histogram"
    counts = [s.value for s in latency.samples if s.name.endswith("_count")]
    assert counts == [1.0]
    confidence = families["loopml_prediction_confidence"]
    assert any(s.labels.get("le") == "+Inf" and s.value == 1 for s in confidence.samples)
    [invalid] = families["loopml_invalid_fields"].samples
    assert invalid.labels == {"deployment": "demand", "field": "temp"}
    [hot] = families["loopml_predicted_class"].samples
    assert hot.labels == {"deployment": "hot", "model": "hot", "version": "1", "class": "1"}
    live.predict("demand", [ROW, {"temp": -2.0, "hour": 0}])  # answers 66.0 and -200.0
    text = live.request("GET", "/metrics")[1]["text"]
    values = next(
        f for f in text_string_to_metric_families(text) if f.name == "loopml_prediction_value"
    )
    buckets = {s.labels["le"]: s.value for s in values.samples if s.name.endswith("_bucket")}
    assert buckets["-1000.0"] == 0 and buckets["-100.0"] == 1 and buckets["100.0"] == 2


def test_the_grafana_dashboard_queries_metrics_the_server_exports(live: Live) -> None:
    import re
    from pathlib import Path

    live.predict("hot", [{"temp": 0.9, "hour": 3}])
    exported = live.request("GET", "/metrics")[1]["text"]
    dashboard = json.loads(
        (Path(__file__).parents[2] / "docs" / "grafana-loopml-serving.json").read_text()
    )
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\bloopml_[a-z_]+", target["expr"])
    }
    assert queried
    for name in queried:
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        assert f"# TYPE {family} " in exported, f"the dashboard queries {name}, not exported"


def test_a_clean_shutdown_writes_what_the_log_still_holds(workspace: Any) -> None:
    from server_support import Live as Session

    from loopml.adapters.prediction_log import ParquetPredictionSink
    from loopml.server.build import serving_in_thread

    # a log that would hold records for a minute: only the shutdown can write them
    app = workspace.app
    app.__dict__["prediction_sink"] = ParquetPredictionSink(
        app.predictions_dir, segment_seconds=60.0
    )
    with serving_in_thread(workspace.app, poll_s=0.02) as (running, port):
        session = Session(workspace, running, port)
        for i in range(3):
            assert session.predict("demand", [ROW], headers={"x-request-id": f"s{i}"})[0] == 200
        assert workspace.app.predictions.tail("demand", 10) == []  # still queued
    logged = [r.request_id for r in workspace.app.predictions.tail("demand", 10)]
    assert logged == ["s0", "s1", "s2"]


def test_canary_answers_are_compared_with_production_off_the_request_path(live: Live) -> None:
    live.client.app.deployments.canary("demand", "models:/demand/2", 50, "tester")
    live.wait_for(lambda: live.running.server.routes.endpoints["demand"].canary is not None)
    answers = [live.predict("demand", [ROW], headers={"x-loopml-key": f"k{i}"}) for i in range(40)]
    canary = sum(1 for _, body, _ in answers if body["route"] == "canary")
    assert 0 < canary < 40 and {b["version"] for _, b, _ in answers} == {1, 2}
    labels = 'deployment="demand",answered_by="models:/demand/2",compared_with="models:/demand/1"'

    def counted(metric: str) -> float:
        for line in live.request("GET", "/metrics")[1]["text"].splitlines():
            if line.startswith(f"{metric}{{{labels}}}"):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    live.wait_for(lambda: counted("loopml_compared_rows_total") == canary)
    assert counted("loopml_differing_rows_total") == canary  # v2 predicts 1.1 x v1
    assert counted("loopml_abs_difference_total") == pytest.approx(canary * 0.1 * 66.0)
    assert live.running.server.sink.flush()
    routes = {r.route.value for r in live.client.app.predictions.tail("demand", 100)}
    assert routes == {"production", "canary"}  # the comparison calls are not logged


def test_plain_estimators_answer_from_a_float_block_pipelines_from_a_frame(live: Live) -> None:
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"temp": rng.random(100), "wind": rng.random(100)})
    labels = (frame["temp"] > frame["wind"]).astype(int)
    plain = LogisticRegression().fit(frame, labels)
    piped = make_pipeline(StandardScaler(), LogisticRegression()).fit(frame, labels)
    for name, model in (("plain", plain), ("piped", piped)):
        live.client.register_model(model, name, sample=frame)
        live.client.app.deployments.create(name, f"models:/{name}/1", "tester")
    live.wait_for(lambda: {"plain", "piped"} <= set(live.running.server.routes.endpoints))
    endpoints = live.running.server.routes.endpoints
    assert endpoints["plain"].production is not None and endpoints["piped"].production is not None
    assert endpoints["plain"].production.block is not None  # no DataFrame per request
    assert endpoints["piped"].production.block is None  # steps see the frame, as fitted
    rows = frame.iloc[:7]
    for name, model in (("plain", plain), ("piped", piped)):
        status, body, _ = live.request(
            "POST", f"/deployments/{name}/predict", {"columns": rows.to_dict("list")}
        )
        proba = model.predict_proba(rows)
        assert status == 200 and body["predictions"] == proba.argmax(axis=1).tolist()
        assert body["confidence"] == pytest.approx(proba.max(axis=1).tolist(), rel=1e-12)
