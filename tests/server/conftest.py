"""A real loopml server on 127.0.0.1 (uvicorn in a thread) over a real SQLite workspace."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from server_support import FEATURES, Live, training_frame
from sklearn.linear_model import LinearRegression, LogisticRegression

from loopml.client import Client
from loopml.server.build import serving_in_thread


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Client]:
    client = Client(tmp_path / "ws")
    frame = training_frame()
    for scale in (1.0, 1.1, 1.2):
        model = LinearRegression().fit(frame[FEATURES], frame["demand"] * scale)
        client.register_model(model, "demand", sample=frame[FEATURES])
        version = client.get_model("demand").latest_version
        client.promote("demand", version, "staging")
    labels = (frame["temp"] > 0.5).astype(int)
    client.register_model(
        LogisticRegression().fit(frame[FEATURES], labels), "hot", sample=frame[FEATURES]
    )
    client.app.deployments.create("demand", "models:/demand/1", "tester")
    client.app.deployments.create("hot", "models:/hot/1", "tester")
    yield client
    client.close()


@pytest.fixture
def live(workspace: Client) -> Iterator[Live]:
    with serving_in_thread(workspace.app, poll_s=0.02, max_body_bytes=64 * 1024) as served:
        running, port = served
        yield Live(workspace, running, port)
