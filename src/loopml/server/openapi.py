"""The OpenAPI document of the server, written out (the server is plain ASGI), and a small
offline page that lists it at ``/docs``."""

from __future__ import annotations

import json
from html import escape
from typing import Any

_PROBLEM = {
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "request_id": {"type": "string"},
        "problems": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "field": {"type": "string"},
                    "expected": {"type": "string"},
                    "received": {"type": "string"},
                    "row": {"type": ["integer", "null"]},
                },
            },
        },
    },
}
_ERRORS = {
    str(code): {
        "description": text,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    for code, text in (
        (400, "malformed JSON or request shape"),
        (404, "no such deployment"),
        (413, "body too large"),
        (415, "content type is not application/json"),
        (422, "input does not match the model's signature"),
        (503, "the deployment serves no version"),
    )
}
_FEEDBACK = {
    "type": "object",
    "required": ["request_id", "label"],
    "properties": {"request_id": {"type": "string"}, "label": {}},
}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): _ERRORS[str(c)] for c in codes}


_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "loopml inference server", "version": "1"},
    "paths": {
        "/deployments/{name}/predict": {
            "post": {
                "summary": "Predict with a deployment (rows or columns)",
                "parameters": [_NAME],
                "requestBody": _json_body(
                    {
                        "oneOf": [
                            {
                                "type": "object",
                                "required": ["rows"],
                                "properties": {
                                    "rows": {"type": "array", "items": {"type": "object"}},
                                    "key": {"type": "string"},
                                },
                            },
                            {
                                "type": "object",
                                "required": ["columns"],
                                "properties": {
                                    "columns": {
                                        "type": "object",
                                        "additionalProperties": {"type": "array"},
                                    },
                                    "key": {"type": "string"},
                                },
                            },
                        ]
                    }
                ),
                "responses": {
                    "200": {
                        "description": "predictions, with the version and route that answered",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "request_id": {"type": "string"},
                                        "deployment": {"type": "string"},
                                        "model": {"type": "string"},
                                        "version": {"type": "integer"},
                                        "route": {"type": "string"},
                                        "predictions": {"type": "array"},
                                        "confidence": {"type": "array"},
                                    },
                                }
                            }
                        },
                    },
                    **_ERRORS,
                },
            }
        },
        "/v2/models/{name}/infer": {
            "post": {
                "summary": "Open Inference Protocol v2 inference",
                "parameters": [_NAME],
                "requestBody": _json_body(
                    {
                        "type": "object",
                        "required": ["inputs"],
                        "properties": {
                            "id": {"type": "string"},
                            "inputs": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["name", "shape", "datatype", "data"],
                                    "properties": {
                                        "name": {"type": "string"},
                                        "shape": {"type": "array", "items": {"type": "integer"}},
                                        "datatype": {"type": "string"},
                                        "data": {"type": "array"},
                                    },
                                },
                            },
                        },
                    }
                ),
                "responses": {"200": {"description": "OIP v2 inference response"}, **_ERRORS},
            }
        },
        "/v2/models/{name}": {
            "get": {"parameters": [_NAME], "responses": {"200": {"description": "metadata"}}}
        },
        "/v2/models/{name}/ready": {
            "get": {"parameters": [_NAME], "responses": {"200": {"description": "ready"}}}
        },
        "/v2/health/live": {"get": {"responses": {"200": {"description": "live"}}}},
        "/v2/health/ready": {"get": {"responses": {"200": {"description": "ready"}}}},
        "/health/live": {"get": {"responses": {"200": {"description": "live"}}}},
        "/health/ready": {
            "get": {
                "responses": {"200": {"description": "ready"}, "503": {"description": "loading"}}
            }
        },
        "/deployments": {"get": {"responses": {"200": {"description": "what serves where"}}}},
        "/metrics": {"get": {"responses": {"200": {"description": "Prometheus text format"}}}},
        "/feedback": {
            "post": {
                "summary": "The true outcome of answered requests, joined by request id",
                "requestBody": _json_body(
                    {
                        "oneOf": [
                            _FEEDBACK,
                            {"type": "array", "items": _FEEDBACK},
                        ]
                    }
                ),
                "responses": {
                    "200": {"description": "how many items were stored"},
                    **_errors(400, 413, 415, 422),
                },
            }
        },
        "/review": {
            "get": {
                "summary": "The oldest open item of the human review queue",
                "parameters": [
                    {
                        "name": "deployment",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {"200": {"description": "the item (or null), queue size and age"}},
            },
            "post": {
                "summary": "Answer a review item: its label joins the prediction log",
                "requestBody": _json_body(
                    {
                        "type": "object",
                        "required": ["id", "label"],
                        "properties": {
                            "id": {"type": "integer"},
                            "label": {},
                            "reviewer": {"type": "string"},
                        },
                    }
                ),
                "responses": {
                    "200": {"description": "the answered item, with whether it agrees"},
                    "409": {"description": "the item was answered already"},
                    **_errors(400, 404, 413, 415, 422),
                },
            },
        },
    },
    "components": {"schemas": {"Problem": _PROBLEM}},
}


def docs_page() -> str:
    rows = "".join(
        f"<tr><td><code>{escape(method.upper())}</code></td><td><code>{escape(path)}</code></td>"
        f"<td>{escape(str(op.get('summary', '')))}</td></tr>"
        for path, ops in OPENAPI["paths"].items()
        for method, op in ops.items()
    )
    document = escape(json.dumps(OPENAPI, indent=1))
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>loopml server</title>"
        "<style>body{font:14px system-ui;margin:2rem}td{padding:.2rem .6rem}</style></head>"
        f"<body><h1>loopml inference server</h1><table>{rows}</table>"
        f"<h2>OpenAPI document</h2><pre>{document}</pre></body></html>"
    )
