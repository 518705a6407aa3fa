from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from loopml.client import Client
from loopml.domain.errors import (
    IllegalTransition,
    IntegrityError,
    InvalidState,
    NotFound,
    PermissionDenied,
)
from loopml.domain.lifecycle import Stage


@pytest.fixture
def data() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=50), "b": rng.integers(0, 5, size=50)})
    return x, 2 * x["a"].to_numpy() + x["b"].to_numpy()


def register(client: Client, data: tuple[pd.DataFrame, np.ndarray], name: str = "m") -> int:
    x, y = data
    return client.register_model(LinearRegression().fit(x, y), name, sample=x).version


def test_register_load_and_signature(client: Client, data: tuple[pd.DataFrame, np.ndarray]) -> None:
    x, y = data
    with client.start_run("exp") as run:
        run.log_metric("rmse", 0.1)
    model = LinearRegression().fit(x, y)
    mv = client.register_model(model, "m", sample=x, run_id=run.id)
    assert (mv.version, mv.stage, mv.flavor) == (1, Stage.CANDIDATE, "sklearn")
    assert mv.metrics == {"rmse": 0.1} and mv.run_id == run.id
    assert mv.signature is not None
    assert [(c.name, c.type) for c in mv.signature.inputs] == [("a", "double"), ("b", "integer")]
    assert [c.name for c in mv.signature.outputs] == ["prediction"]
    loaded = client.load_model("models:/m/1")
    np.testing.assert_allclose(loaded.predict(x), model.predict(x))


def test_lifecycle_and_one_production_version(
    client: Client, data: tuple[pd.DataFrame, np.ndarray]
) -> None:
    v1, v2 = register(client, data), register(client, data)
    with pytest.raises(IllegalTransition, match="Promote it to staging first"):
        client.promote("m", v1, "production")
    for v in (v1, v2):
        client.promote("m", v, "staging")
    client.promote("m", v1, "production")
    with pytest.raises(InvalidState, match=r"models:/m/1 is already in production.*--archive"):
        client.promote("m", v2, "production")
    client.promote("m", v2, "production", archive_existing=True, reason="better rmse")
    assert client.get_model_version("models:/m/production").version == v2
    assert client.get_model_version("models:/m/1").stage is Stage.ARCHIVED
    events = list(client.audit_events("models:/m"))
    assert events[0].reason == "better rmse" or events[1].reason == "better rmse"
    assert client.verify_audit().ok


def test_aliases(client: Client, data: tuple[pd.DataFrame, np.ndarray]) -> None:
    v1, v2 = register(client, data), register(client, data)
    client.set_alias("m", "champion", v1)
    client.set_alias("m", "champion", v2)
    assert client.get_model_version("models:/m@champion").version == v2
    assert client.get_model("m").aliases == {"champion": v2}
    client.delete_alias("m", "champion")
    with pytest.raises(NotFound, match="has no alias 'champion'; its aliases are: none"):
        client.get_model_version("models:/m@champion")
    with pytest.raises(NotFound, match="no version 9"):
        client.set_alias("m", "x", 9)
    actions = [e.action for e in client.audit_events("models:/m@champion")]
    assert actions == ["alias.delete", "alias.set", "alias.set"]


def test_untrusted_python_function_is_refused(client: Client) -> None:
    with pytest.raises(PermissionDenied, match="loading a pickle runs whatever code"):
        client.register_model(lambda x: x, "f", flavor="python_function")


def test_corrupt_artifact_names_the_model(
    client: Client, data: tuple[pd.DataFrame, np.ndarray]
) -> None:
    v = register(client, data)
    mv = client.get_model_version(f"models:/m/{v}")
    blobs = client.app.blobs.objects  # type: ignore[attr-defined]
    raw = bytearray(blobs[mv.artifact.digest])
    raw[len(raw) // 2] ^= 0xFF
    blobs[mv.artifact.digest] = bytes(raw)
    with pytest.raises(IntegrityError, match=r"'model/model.skops' of models:/m/1 is corrupt"):
        client.load_model("models:/m/1")


def test_unknown_lineage_run_is_refused_before_anything_is_stored(
    client: Client, data: tuple[pd.DataFrame, np.ndarray]
) -> None:
    x, y = data
    with pytest.raises(NotFound, match="does not exist"):
        client.register_model(LinearRegression().fit(x, y), "m", run_id="0" * 32)
    assert client.app.blobs.objects == {}  # type: ignore[attr-defined]
