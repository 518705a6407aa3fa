"""Stored bytes are verified on read, names cannot escape, and pickles are never run.

Everything goes through a real workspace (SQLite metadata, local content-addressed blob
store). Corruption is made the way it happens in life, by changing a file on disk behind
loopml's back. Unsafe names are the classic traversal shapes; the hostile model is a real
pickle whose ``__reduce__`` would create a marker file, so a test that lets it run fails on
the marker, not on a mock.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from loopml.bootstrap import init_workspace
from loopml.client import ActiveRun, Client
from loopml.domain.artifacts import Digest
from loopml.domain.errors import (
    IntegrityError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    UnsafeName,
)

UNSAFE_NAMES = [
    "../x",
    "/etc/passwd",
    "a/../../b",
    "a\\b",
    "x\x00y",
    "C:/x",
    "",
    "a//b",
    "./a",
    "..",
    "a/..",
    "a/./b",
    "a/",
    "\\\\server\\share",
    "a\nb",
]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Client]:
    root = tmp_path / "ws"
    init_workspace(root)
    with Client(root, capture_code=False) as c:
        yield c


@pytest.fixture
def run(client: Client) -> Iterator[ActiveRun]:
    with client.start_run("integrity") as r:
        yield r


def _blob_path(client: Client, digest: Digest) -> Path:
    root = client.app.settings.root if client.app.settings else Path()
    path = (
        root
        / ".loopml"
        / "artifacts"
        / digest.algorithm
        / digest.hexdigest[:2]
        / digest.hexdigest[2:]
    )
    assert path.is_file(), f"expected the object {digest} at {path}"
    return path


def _flip_byte(path: Path, offset: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    at = len(data) // 2 if offset is None else offset
    data[at] ^= 0x20
    path.write_bytes(bytes(data))


def _tree(root: Path) -> dict[str, int]:
    """Every path under ``root`` with its size (directories as -1)."""
    return {
        str(p.relative_to(root)): (-1 if p.is_dir() else p.stat().st_size) for p in root.rglob("*")
    }


def _model() -> LinearRegression:
    x = np.arange(12.0).reshape(-1, 2)
    return LinearRegression().fit(x, x @ np.array([1.5, -2.0]) + 0.25)


# corruption -----------------------------------------------------------------------------
def test_corrupt_model_blob_is_refused_naming_artifact_and_uri(client: Client) -> None:
    mv = client.register_model(_model(), "bike-demand")
    assert client.load_model(mv.uri).predict(np.ones((1, 2))).shape == (1,)

    _flip_byte(_blob_path(client, mv.artifact.digest))

    with pytest.raises(IntegrityError) as info:
        client.load_model(mv.uri)
    message = str(info.value)
    assert "'model/model.skops'" in message
    assert "models:/bike-demand/1" in message
    assert str(mv.artifact.digest) in message
    # Also through an alias: the message names the version it resolved to.
    client.set_alias("bike-demand", "champion", mv.version)
    with pytest.raises(IntegrityError, match="models:/bike-demand/1"):
        client.load_model("models:/bike-demand@champion")


@pytest.mark.parametrize("offset", [0, -1])
def test_corruption_at_either_end_of_the_blob_is_caught(client: Client, offset: int) -> None:
    mv = client.register_model(_model(), "bike-demand")
    _flip_byte(_blob_path(client, mv.artifact.digest), offset)
    with pytest.raises(IntegrityError, match=r"model/model\.skops"):
        client.load_model(mv.uri)


def test_truncated_model_blob_is_refused(client: Client) -> None:
    mv = client.register_model(_model(), "bike-demand")
    path = _blob_path(client, mv.artifact.digest)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(IntegrityError, match="models:/bike-demand/1"):
        client.load_model(mv.uri)


def test_corrupt_run_artifact_is_refused_naming_the_digest(
    client: Client, run: ActiveRun, tmp_path: Path
) -> None:
    ref = run.log_artifact(b'{"rmse": 41.2, "mae": 30.1}', name="reports/summary.json")
    assert client.app.blobs.get_bytes(ref.digest) == b'{"rmse": 41.2, "mae": 30.1}'

    _flip_byte(_blob_path(client, ref.digest))

    with pytest.raises(IntegrityError) as info:
        client.app.blobs.get_bytes(ref.digest)
    assert str(ref.digest) in str(info.value)
    # get_file verifies before the destination appears: no corrupt copy is left behind.
    dest = tmp_path / "out" / "summary.json"
    dest.parent.mkdir()
    with pytest.raises(IntegrityError, match=ref.digest.hexdigest):
        client.app.blobs.get_file(ref.digest, dest)
    assert list(dest.parent.iterdir()) == []


def test_missing_blob_is_not_found(client: Client) -> None:
    mv = client.register_model(_model(), "bike-demand")
    _blob_path(client, mv.artifact.digest).unlink()
    with pytest.raises(NotFound, match=mv.artifact.digest.hexdigest):
        client.load_model(mv.uri)


# unsafe names ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", UNSAFE_NAMES, ids=repr)
def test_unsafe_artifact_names_write_nothing(
    client: Client, run: ActiveRun, tmp_path: Path, name: str
) -> None:
    source = tmp_path / "payload.bin"
    source.write_bytes(b"x")
    passwd = Path("/etc/passwd")
    passwd_before = passwd.stat() if passwd.exists() else None
    before = _tree(tmp_path)

    with pytest.raises(UnsafeName):
        run.log_artifact(b"x", name=name)
    if name:  # an empty name with a file source means "use the file's own name"
        with pytest.raises(UnsafeName):
            run.log_artifact(source, name=name)

    assert _tree(tmp_path) == before
    assert list(run.info().artifacts) == []
    assert not (tmp_path / "x").exists()
    assert not (tmp_path / "b").exists()
    if passwd_before is not None:
        after = passwd.stat()
        assert (after.st_size, after.st_mtime_ns) == (
            passwd_before.st_size,
            passwd_before.st_mtime_ns,
        )


def test_safe_nested_names_are_accepted(run: ActiveRun) -> None:
    """The guard above is not just refusing everything."""
    for name in ("a", "plots/residuals.png", "model/v1.2/model.skops", "a_b-c=d@e,f+g"):
        run.log_artifact(b"x", name=name)
    assert sorted(a.name for a in run.info().artifacts) == sorted(
        ["a", "plots/residuals.png", "model/v1.2/model.skops", "a_b-c=d@e,f+g"]
    )


@pytest.mark.parametrize(
    "path", ["../../etc/passwd", "/etc/passwd", "a/../../b", "a\\..\\b", "./model.skops"]
)
def test_register_from_run_refuses_traversal(client: Client, run: ActiveRun, path: str) -> None:
    run.log_artifact(b"x", name="model/model.skops")
    with pytest.raises(InvalidInput) as info:
        client.app.registry.register_from_run(
            f"runs:/{run.id}/{path}", "bike-demand", "sklearn", "tester"
        )
    assert isinstance(info.value, UnsafeName), info.value
    with pytest.raises(NotFound):
        client.get_model("bike-demand")


def test_register_from_run_refuses_malformed_sources(client: Client, run: ActiveRun) -> None:
    for source in (
        f"runs:/{run.id}",
        f"runs:/{run.id[:-1]}/model",
        "file:///etc/passwd",
        f"runs:/../{run.id}/model",
    ):
        with pytest.raises(InvalidInput):
            client.app.registry.register_from_run(source, "bike-demand", "sklearn", "tester")


@pytest.mark.parametrize("name", ["../evil", "a/b", "..", "x\x00", "C:evil", " evil", "a\\b"])
def test_unsafe_model_experiment_and_alias_names_are_refused(client: Client, name: str) -> None:
    with pytest.raises(InvalidInput):
        client.register_model(_model(), name)
    with pytest.raises(InvalidInput):
        client.start_run(name)
    mv = client.register_model(_model(), "bike-demand")
    with pytest.raises(InvalidInput):
        client.set_alias("bike-demand", name, mv.version)
    with pytest.raises(InvalidInput):
        client.load_model(f"models:/{name}/1")
    assert [m.name for m in client.list_models().items] == ["bike-demand"]


# hostile pickles ------------------------------------------------------------------------
class _Detonator:
    """Unpickling this creates ``marker``: proof that the file's code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (Path.touch, (self.marker,))


def _payload(marker: Path) -> bytes:
    return pickle.dumps(_Detonator(marker))


def test_the_payload_is_live(tmp_path: Path) -> None:
    """Control: the payload really runs code when unpickled, so the tests below can fail."""
    marker = tmp_path / "control-marker"
    pickle.loads(_payload(marker))  # running the payload is the point of this control
    assert marker.exists()


def test_pickle_disguised_as_skops_is_refused_unexecuted(
    client: Client, run: ActiveRun, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    run.log_artifact(_payload(marker), name="model/model.skops")
    mv = client.app.registry.register_from_run(
        f"runs:/{run.id}/model/model.skops", "evil", "sklearn", "tester"
    )
    assert mv.flavor == "sklearn"

    with pytest.raises(InvalidInput, match="not a skops archive"):
        client.load_model(mv.uri)
    # The sklearn flavor never falls back to pickle, not even when told to trust the file.
    with pytest.raises(InvalidInput, match="never falls back to pickle"):
        client.load_model(mv.uri, trusted=True)
    assert not marker.exists()


def test_pickle_as_python_function_needs_trust_to_register(
    client: Client, run: ActiveRun, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    run.log_artifact(_payload(marker), name="model/model.cloudpickle")
    source = f"runs:/{run.id}/model/model.cloudpickle"

    with pytest.raises(PermissionDenied, match="trusted=True"):
        client.app.registry.register_from_run(source, "evil", "python_function", "tester")
    with pytest.raises(NotFound):
        client.get_model("evil")
    assert not marker.exists()

    # Registered with trust, it still does not load without trust, and nothing runs.
    mv = client.app.registry.register_from_run(
        source, "evil", "python_function", "tester", trusted=True
    )
    with pytest.raises(PermissionDenied):
        client.load_model(mv.uri)
    assert not marker.exists()


def test_register_model_refuses_python_function_without_trust(
    client: Client, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    with pytest.raises(PermissionDenied):
        client.register_model(_Detonator(marker), "evil", flavor="python_function")
    assert not marker.exists()
    stored = [
        p
        for p in (tmp_path / "ws" / ".loopml").rglob("*")
        if "artifacts" in p.parts and p.is_file()
    ]
    assert stored == []
