"""A real loopml server on 127.0.0.1 (uvicorn in a thread) over a real SQLite workspace."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from server_support import FEATURES, Live, training_frame
from sklearn.linear_model import LinearRegression, LogisticRegression

from loopml.adapters.sql.sqlite_reader import SqliteServingReader
from loopml.bootstrap import Loopml
from loopml.bootstrap_serve import ServingSources
from loopml.client import Client
from loopml.server.build import serving_in_thread, workspace_sources


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


@pytest.fixture(params=["full", "lean"])
def live(workspace: Client, request: pytest.FixtureRequest) -> Iterator[Live]:
    """The server over the opened application (``full``), and as ``loopml serve`` starts
    it on a SQLite workspace (``lean``: routes read without SQLAlchemy)."""
    served_from: Loopml | ServingSources = workspace.app
    if request.param == "lean":
        assert workspace.app.settings is not None
        served_from = workspace_sources(workspace.app.settings)
        assert isinstance(getattr(served_from.deployments, "__self__", None), SqliteServingReader)
    with serving_in_thread(served_from, poll_s=0.02, max_body_bytes=64 * 1024) as served:
        running, port = served
        yield Live(workspace, running, port)
    if isinstance(served_from, ServingSources):
        served_from.close()  # the full stores, if the review queue opened them
