"""The standard-library reader a server routes by, against the SQL stores it shadows.

``loopml serve`` on a SQLite workspace reads its deployments, the model versions they
route to and the audit head with :class:`SqliteServingReader` instead of SQLAlchemy: it
must return exactly what the SQL stores return from the same database, raise NotFound
where they do, and step aside (``open`` gives None) for a database it was not written for.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from loopml.adapters.sql.sqlite_reader import SqliteServingReader
from loopml.bootstrap import Loopml, init_workspace, open_workspace
from loopml.client import Client
from loopml.domain.errors import NotFound
from loopml.domain.lifecycle import Stage


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Loopml]:
    app = open_workspace(init_workspace(tmp_path / "ws"))
    try:
        yield app
    finally:
        app.close()


def _reader(app: Loopml) -> SqliteServingReader:
    assert app.settings is not None
    url = app.settings.metadata_url
    reader = SqliteServingReader.open(Path(url[len("sqlite:///") :]), url, 5.0)
    assert reader is not None
    return reader


def _busy_workspace(app: Loopml) -> None:
    """Versions with aliases and stages, and deployments in every state a route can be."""
    client = Client(app=app)
    frame = pd.DataFrame({"x": np.arange(20.0), "k": np.arange(20) % 3})
    for seed in range(4):
        model = LinearRegression().fit(frame, frame["x"] * (seed + 1))
        client.register_model(model, "demand", sample=frame.head(3), metrics={"rmse": 0.1})
    client.register_model(LinearRegression().fit(frame, frame["k"]), "churn")  # no signature
    registry, deployments = app.registry, app.deployments
    registry.set_alias("demand", "champion", 2, "ana")
    registry.set_alias("demand", "old", 2, "ana")
    deployments.create("bikes", "models:/demand@champion", "ana")
    registry.transition("demand", 3, Stage.STAGING, "ana")
    deployments.canary("bikes", "models:/demand/3", 20.0, "ana")
    deployments.shadow("bikes", "models:/demand/4", "ana")
    deployments.promote("bikes", "ana")  # previous production: version 2
    deployments.create("gone", "models:/demand/1", "ana")
    deployments.retire("gone", "bo", reason="replaced")
    deployments.create("churn", "models:/churn/1", "ana")
    registry.transition("demand", 4, Stage.ARCHIVED, "ana")


def test_it_reads_what_the_stores_read(app: Loopml) -> None:
    _busy_workspace(app)
    reader = _reader(app)
    assert reader.list_deployments() == app.stores.deployments.list_deployments()
    assert [d.name for d in reader.list_deployments()] == ["bikes", "churn", "gone"]
    for model, count in (("demand", 4), ("churn", 1)):
        for number in range(1, count + 1):
            assert reader.get_version(model, number) == app.registry.store.get_version(
                model, number
            )
    assert reader.get_version("demand", 2).aliases == ("champion", "old")
    assert reader.head() == app.audit.head() is not None


def test_an_empty_workspace_has_no_deployments_and_no_head(app: Loopml) -> None:
    reader = _reader(app)
    assert reader.list_deployments() == []
    assert reader.head() is None is app.audit.head()


def test_it_raises_what_the_stores_raise(app: Loopml) -> None:
    _busy_workspace(app)
    reader = _reader(app)
    for model, number in (("nobody", 1), ("demand", 9)):
        with pytest.raises(NotFound) as store_error:
            app.registry.store.get_version(model, number)
        with pytest.raises(NotFound) as reader_error:
            reader.get_version(model, number)
        assert str(reader_error.value) == str(store_error.value)


def test_it_steps_aside_for_a_database_it_does_not_know(tmp_path: Path, app: Loopml) -> None:
    assert SqliteServingReader.open(tmp_path / "missing.db", "sqlite:///missing.db", 1.0) is None
    other = tmp_path / "other.db"
    sqlite3.connect(other).close()  # an empty SQLite file: no loopml schema
    assert SqliteServingReader.open(other, f"sqlite:///{other}", 1.0) is None
    reader = _reader(app)
    with sqlite3.connect(reader.path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    assert SqliteServingReader.open(reader.path, reader.url, 1.0) is None
