"""The inference server: one ASGI application for every deployment of a workspace.

A plain ASGI callable rather than a web framework: the request path of a prediction is a
handful of dictionary lookups, one JSON parse, the signature check, the model call and one
JSON dump, so that the server costs less CPU per request than a bare framework endpoint.

Endpoints::

    POST /deployments/{name}/predict     {"rows": [{...}]} or {"columns": {"x": [...]}}
    POST /v2/models/{name}/infer         Open Inference Protocol v2
    GET  /v2/models/{name}               model metadata (v2)
    GET  /v2/models/{name}/ready         200 when it can answer (v2)
    GET  /v2/health/live | /v2/health/ready
    GET  /health/live | /health/ready
    GET  /deployments                    what serves where
    GET  /openapi.json | /docs

Every answer carries ``x-request-id`` (the client's, if it sent one) and, for predictions,
the deployment, model, version and route that answered. Client mistakes are 4xx with the
field, what was expected and what was received; a 500 means a bug in loopml or the model.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import parse_qs

from loopml.domain.deployments import canary_takes
from loopml.domain.errors import InvalidInput, InvalidState, NotFound
from loopml.domain.predictions import Feedback, PredictionRecord, Route
from loopml.domain.signature_check import FieldProblem, check_columns, columns_from_rows
from loopml.ports.predictions import PredictionSink
from loopml.server.batching import Batcher
from loopml.server.metrics import ServerMetrics
from loopml.server.openapi import OPENAPI, docs_page
from loopml.server.predict import Prediction, predict
from loopml.server.review_desk import ReviewDesk
from loopml.server.routing import Endpoint, RouteTable, Served

log = logging.getLogger("loopml.server")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

DEFAULT_MAX_BODY = 10 * 1024 * 1024
_JSON = [(b"content-type", b"application/json")]
_OIP_TYPES = {
    "BOOL": "boolean",
    "INT8": "integer",
    "INT16": "integer",
    "INT32": "integer",
    "INT64": "integer",
    "UINT8": "integer",
    "UINT16": "integer",
    "UINT32": "integer",
    "UINT64": "integer",
    "FP16": "double",
    "FP32": "double",
    "FP64": "double",
    "BYTES": "string",
}
_SIGNATURE_TO_OIP = {
    "boolean": "BOOL",
    "integer": "INT64",
    "double": "FP64",
    "string": "BYTES",
    "datetime": "BYTES",
}


class HttpError(Exception):
    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": message, **extra}


async def _off_loop(call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run a call that touches the metadata database in a thread; its clear errors become
    4xx answers (unknown item 404, answered already 409, bad body 422)."""
    try:
        return await asyncio.to_thread(call)
    except NotFound as exc:
        raise HttpError(404, str(exc)) from exc
    except InvalidState as exc:
        raise HttpError(409, str(exc)) from exc
    except InvalidInput as exc:
        raise HttpError(422, str(exc)) from exc


def _query(scope: Scope) -> dict[str, str]:
    raw = scope.get("query_string", b"").decode("latin-1")
    return {k: v[-1] for k, v in parse_qs(raw).items()}


class NoLog:
    """A sink that keeps nothing: for a server built without a prediction log."""

    dropped = queue_depth = write_errors = 0

    def submit(self, record: PredictionRecord) -> bool:
        return True


class InferenceServer:
    def __init__(
        self,
        routes: RouteTable,
        sink: PredictionSink | NoLog | None = None,
        *,
        feedback: Callable[[list[Feedback]], int] | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY,
        shadow: Callable[[Callable[[], None]], bool] | None = None,
        max_batch_rows: int = 256,
        max_wait_s: float = 0.0,
        review: ReviewDesk | None = None,
    ) -> None:
        self.routes = routes
        self.review = review
        self.sink = sink if sink is not None else NoLog()
        self.feedback = feedback
        self.max_body_bytes = max_body_bytes
        self.shadow = shadow  # runs a shadow call off the request path; False if refused
        self.metrics = ServerMetrics()
        self.batcher = Batcher(predict, max_batch_rows=max_batch_rows, max_wait_s=max_wait_s)
        self.metrics.batch_sizes = self.batcher.batch_sizes

    # ASGI --------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind != "http":
            return
        request_id = _header(scope, b"x-request-id") or uuid.uuid4().hex
        try:
            status, body, headers = await self._dispatch(scope, receive, request_id)
        except HttpError as exc:
            status, body, headers = exc.status, exc.body, _JSON
            self.metrics.failed(_deployment_of(scope["path"]), status)
            fields = [p["field"] for p in body.get("problems", ()) if p.get("field")]
            if fields:
                self.metrics.invalid(_deployment_of(scope["path"]), fields)
        except Exception:  # a bug in loopml or the model: 500, logged with the request id
            log.exception("request %s failed", request_id)
            self.metrics.failed(_deployment_of(scope["path"]), 500)
            status, body, headers = (
                500,
                {"error": "internal error", "request_id": request_id},
                _JSON,
            )
        if isinstance(body, dict) and status >= 400:
            body.setdefault("request_id", request_id)
        payload = body if isinstance(body, bytes) else _dumps(body)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*headers, (b"x-request-id", request_id.encode())],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                # Answered requests still queued for the log are written before the
                # process goes (a SIGKILL skips this; see the durability contract).
                flush = getattr(self.sink, "flush", None)
                if flush is not None:
                    await asyncio.to_thread(flush)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _dispatch(
        self, scope: Scope, receive: Receive, request_id: str
    ) -> tuple[int, Any, list[tuple[bytes, bytes]]]:
        method, path = scope["method"], scope["path"]
        parts = path.strip("/").split("/")
        if method == "POST":
            if len(parts) == 3 and parts[0] == "deployments" and parts[2] == "predict":
                body = await self._json_body(scope, receive)
                return 200, await self._predict_plain(parts[1], body, request_id, scope), _JSON
            if parts == ["feedback"]:
                body = await self._json_body(scope, receive)
                return 200, self._add_feedback(body), _JSON
            if parts == ["review"]:
                body = await self._json_body(scope, receive)
                desk = self._desk()
                return 200, await _off_loop(lambda: desk.answer(body)), _JSON
            if len(parts) == 4 and parts[:2] == ["v2", "models"] and parts[3] == "infer":
                body = await self._json_body(scope, receive)
                return 200, await self._predict_v2(parts[2], body, request_id, scope), _JSON
            raise HttpError(404 if not self._is_get_path(parts) else 405, f"no POST {path}")
        if method in ("GET", "HEAD"):
            if parts == ["review"]:
                desk, deployment = self._desk(), _query(scope).get("deployment")
                return 200, await _off_loop(lambda: desk.next_item(deployment)), _JSON
            return self._get(parts, path)
        raise HttpError(405, f"method {method} is not allowed on {path}")

    @staticmethod
    def _is_get_path(parts: list[str]) -> bool:
        return parts[0] in ("health", "openapi.json", "docs", "metrics", "review") or parts[:1] == [
            "v2"
        ]

    def _desk(self) -> ReviewDesk:
        if self.review is None:
            raise HttpError(404, "this server keeps no review queue (it logs no predictions)")
        return self.review

    def _get(self, parts: list[str], path: str) -> tuple[int, Any, list[tuple[bytes, bytes]]]:
        ready = self.routes.ready
        if parts in (["health", "live"], ["v2", "health", "live"]):
            return 200, {"status": "live"} if parts[0] == "health" else {"live": True}, _JSON
        if parts in (["health", "ready"], ["v2", "health", "ready"]):
            status = 200 if ready else 503
            body = {"status": "ready" if ready else "loading"}
            return status, body if parts[0] == "health" else {"ready": ready}, _JSON
        if parts == ["deployments"]:
            return (
                200,
                {"deployments": [_describe(n, e) for n, e in self.routes.endpoints.items()]},
                _JSON,
            )
        if parts == ["openapi.json"]:
            return 200, OPENAPI, _JSON
        if parts == ["docs"]:
            return 200, docs_page().encode(), [(b"content-type", b"text/html; charset=utf-8")]
        if parts == ["metrics"]:
            text = self.metrics.text().encode()
            return 200, text, [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")]
        if len(parts) in (3, 4) and parts[:2] == ["v2", "models"]:
            endpoint = self._endpoint(parts[2])
            if len(parts) == 4 and parts[3] == "ready":
                ok = endpoint.production is not None
                return (200 if ok else 503), {"name": parts[2], "ready": ok}, _JSON
            if len(parts) == 3:
                return 200, _v2_metadata(parts[2], endpoint), _JSON
        raise HttpError(404, f"no such endpoint: GET {path}")

    # predictions -------------------------------------------------------------------------
    def _endpoint(self, name: str) -> Endpoint:
        endpoint = self.routes.endpoints.get(name)
        if endpoint is None:
            known = ", ".join(sorted(self.routes.endpoints)) or "none"
            raise HttpError(404, f"no deployment {name!r}; deployments: {known}")
        return endpoint

    def _choose(self, endpoint: Endpoint, key: str | None) -> tuple[Served, Route]:
        if endpoint.canary is not None and canary_takes(
            endpoint.routes.canary_share, key, random.random()
        ):
            return endpoint.canary, Route.CANARY
        if endpoint.production is None:
            notes = "; ".join(endpoint.routes.notes) or "it is retired"
            raise HttpError(
                503, f"deployment {endpoint.routes.deployment!r} serves no version: {notes}"
            )
        return endpoint.production, Route.PRODUCTION

    async def _answer(
        self, name: str, columns: dict[str, list[Any]], key: str | None, request_id: str
    ) -> tuple[Served, Route, Prediction, float]:
        endpoint = self._endpoint(name)
        served, route = self._choose(endpoint, key)
        problems = check_columns(columns, served.signature)
        if problems:
            raise _invalid(problems)
        rows = len(next(iter(columns.values())))
        try:
            result, latency_ms = await self.batcher.predict(served, columns, rows)
        except InvalidInput as exc:  # the model refused this input (see Scorer.predict)
            raise HttpError(422, str(exc)) from exc
        self._record(name, served, route, columns, result, latency_ms, request_id)
        if endpoint.shadow is not None and self.shadow is not None:
            shadow = endpoint.shadow
            accepted = self.shadow(
                lambda: self._shadow_call(name, shadow, columns, request_id, served, result)
            )
            if not accepted:
                self.metrics.shadow_dropped += 1
        production = endpoint.production
        if route is Route.CANARY and production is not None and self.shadow is not None:
            # How the canary differs from what production would have answered: one
            # production call off the request path, compared and never logged or returned.
            accepted = self.shadow(
                lambda: self.metrics.compared(
                    name,
                    served.target,
                    production.target,
                    result.values,
                    predict(production, columns).values,
                )
            )
            if not accepted:
                self.metrics.shadow_dropped += 1
        return served, route, result, latency_ms

    def _shadow_call(
        self,
        name: str,
        served: Served,
        columns: dict[str, list[Any]],
        request_id: str,
        answered_by: Served,
        answer: Prediction,
    ) -> None:
        started = time.perf_counter()
        result = predict(served, columns)
        latency = (time.perf_counter() - started) * 1000
        self._record(name, served, Route.SHADOW, columns, result, latency, request_id)
        self.metrics.compared(name, answered_by.target, served.target, answer.values, result.values)

    def _record(
        self,
        name: str,
        served: Served,
        route: Route,
        columns: dict[str, list[Any]],
        result: Prediction,
        latency_ms: float,
        request_id: str,
    ) -> None:
        target = served.target
        labels = (
            ("deployment", name),
            ("model", target.model),
            ("version", str(target.version)),
            ("route", route.value),
        )
        self.metrics.answered(labels, latency_ms / 1000, result.values, result.confidence)
        record = PredictionRecord(
            request_id=request_id,
            time_ms=int(time.time() * 1000),
            deployment=name,
            model=target.model,
            version=target.version,
            route=route,
            inputs=columns,
            outputs=result.columns(),
            latency_ms=latency_ms,
        )
        self.sink.submit(record)  # a refused record is counted by the sink itself

    def _add_feedback(self, body: Any) -> dict[str, Any]:
        """``{"request_id": ..., "label": ...}`` or a list of them: the true outcomes."""
        if self.feedback is None:
            raise HttpError(404, "this server keeps no prediction log, so it takes no feedback")
        items = body if isinstance(body, list) else [body]
        now = int(time.time() * 1000)
        feedback = []
        for i, item in enumerate(items):
            if not isinstance(item, dict) or "request_id" not in item or "label" not in item:
                raise HttpError(
                    422,
                    f"feedback item {i} must be an object with request_id and label",
                    received=item if not isinstance(item, dict) else sorted(item),
                )
            if not isinstance(item["request_id"], str) or not item["request_id"]:
                raise HttpError(422, f"feedback item {i}: request_id must be the id text")
            feedback.append(Feedback(item["request_id"], now, item["label"]))
        return {"accepted": self.feedback(feedback)}

    async def _predict_plain(
        self, name: str, body: Any, request_id: str, scope: Scope
    ) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise HttpError(400, "the body must be a JSON object with 'rows' or 'columns'")
        if "columns" in body:
            columns = body["columns"]
            if not isinstance(columns, dict):
                raise _invalid(
                    [FieldProblem("columns", "an object of column lists", type(columns).__name__)]
                )
        elif "rows" in body:
            columns, problems = columns_from_rows(body["rows"])
            if problems:
                raise _invalid(problems)
        else:
            raise HttpError(
                400,
                "the body needs 'rows' (a list of objects) or 'columns' (an object of lists)",
                received=sorted(body)[:10],
            )
        key = body.get("key") or _header(scope, b"x-loopml-key")
        served, route, result, _ = await self._answer(name, columns, _text(key), request_id)
        out = {
            "request_id": request_id,
            "deployment": name,
            "model": served.target.model,
            "version": served.target.version,
            "route": route.value,
            "predictions": result.values,
        }
        if result.confidence is not None:
            out["confidence"] = result.confidence
        return out

    async def _predict_v2(
        self, name: str, body: Any, request_id: str, scope: Scope
    ) -> dict[str, Any]:
        columns = _v2_columns(body)
        key = _header(scope, b"x-loopml-key")
        served, route, result, _ = await self._answer(name, columns, key, request_id)
        outputs = [
            {
                "name": "predict",
                "shape": [len(result.values)],
                "datatype": _v2_type(result.values),
                "data": result.values,
            }
        ]
        if result.confidence is not None:
            outputs.append(
                {
                    "name": "confidence",
                    "shape": [len(result.confidence)],
                    "datatype": "FP64",
                    "data": result.confidence,
                }
            )
        return {
            "model_name": name,
            "model_version": str(served.target.version),
            "id": (body.get("id") if isinstance(body.get("id"), str) else None) or request_id,
            "parameters": {"model": served.target.model, "route": route.value},
            "outputs": outputs,
        }

    async def _json_body(self, scope: Scope, receive: Receive) -> Any:
        content_type = (_header(scope, b"content-type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise HttpError(
                415,
                f"content type must be application/json, got {content_type or 'none'!r}",
            )
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise HttpError(
                413, f"the body is {declared} bytes; the limit is {self.max_body_bytes}"
            )
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise HttpError(413, f"the body exceeds the limit of {self.max_body_bytes} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        try:
            return json.loads(b"".join(chunks), parse_constant=_refuse_constant)
        except (ValueError, UnicodeDecodeError) as exc:
            raise HttpError(400, f"the body is not valid JSON: {exc}") from exc


def _deployment_of(path: str) -> str:
    """The deployment a request path names ("" for other paths), for error metrics."""
    parts = path.strip("/").split("/")
    if len(parts) >= 2 and parts[0] == "deployments":
        return parts[1]
    if len(parts) >= 3 and parts[:2] == ["v2", "models"]:
        return parts[2]
    return ""


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON; send null for a missing value")


def _invalid(problems: list[FieldProblem]) -> HttpError:
    first = problems[0].message
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return HttpError(422, f"invalid input: {first}{more}", problems=[p.to_dict() for p in problems])


def _v2_columns(body: Any) -> dict[str, list[Any]]:
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list) or not body["inputs"]:
        raise HttpError(400, "an inference request needs 'inputs': a non-empty list of tensors")
    columns: dict[str, list[Any]] = {}
    for i, tensor in enumerate(body["inputs"]):
        if not isinstance(tensor, dict):
            raise HttpError(400, f"inputs[{i}] must be an object with name, shape, datatype, data")
        name, shape, kind, data = (tensor.get(k) for k in ("name", "shape", "datatype", "data"))
        if not isinstance(name, str) or not name:
            raise HttpError(400, f"inputs[{i}].name must be the column name")
        if not isinstance(kind, str) or kind not in _OIP_TYPES:
            raise HttpError(
                400,
                f"inputs[{i}] ({name}): datatype {kind!r} is not one of {', '.join(_OIP_TYPES)}",
            )
        if not isinstance(data, list):
            raise HttpError(400, f"inputs[{i}] ({name}): data must be a list")
        if isinstance(shape, list) and shape and shape[0] != len(data):
            raise HttpError(
                400, f"inputs[{i}] ({name}): shape {shape} does not match {len(data)} values"
            )
        columns[name] = data
    return columns


def _v2_type(values: list[Any]) -> str:
    first = values[0] if values else 0.0
    if isinstance(first, bool):
        return "BOOL"
    if isinstance(first, int):
        return "INT64"
    if isinstance(first, float):
        return "FP64"
    return "BYTES"


def _v2_metadata(name: str, endpoint: Endpoint) -> dict[str, Any]:
    served = endpoint.production
    inputs = []
    if served is not None and served.signature is not None:
        inputs = [
            {"name": c.name, "datatype": _SIGNATURE_TO_OIP.get(c.type, "BYTES"), "shape": [-1]}
            for c in served.signature.inputs
        ]
    return {
        "name": name,
        "versions": [str(t.version) for _, t in _targets(endpoint)],
        "platform": "loopml" if served is None else f"loopml/{served.version.flavor}",
        "inputs": inputs,
        "outputs": [{"name": "predict", "datatype": "FP64", "shape": [-1]}],
    }


def _targets(endpoint: Endpoint) -> list[tuple[str, Any]]:
    return [
        (route, served.target)
        for route, served in (
            ("production", endpoint.production),
            ("canary", endpoint.canary),
            ("shadow", endpoint.shadow),
        )
        if served is not None
    ]


def _describe(name: str, endpoint: Endpoint) -> dict[str, Any]:
    routes = endpoint.routes
    return {
        "name": name,
        "revision": routes.revision,
        "routes": {route: target.uri for route, target in _targets(endpoint)},
        "canary_share": routes.canary_share,
        "notes": list(routes.notes),
    }


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), allow_nan=False, default=str).encode()


def serving_summary(endpoints: Mapping[str, Endpoint]) -> list[dict[str, Any]]:
    return [_describe(n, e) for n, e in endpoints.items()]
