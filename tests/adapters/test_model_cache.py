"""The local model cache: a second load skips skops, and only this workspace's intact,
same-environment entries are ever unpickled."""

from __future__ import annotations

import logging
import stat
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from custom_estimators import ShiftedMean
from loopml.adapters.flavors.sklearn import SklearnFlavor
from loopml.adapters.model_cache import PickleModelCache, environment_fingerprint
from loopml.bootstrap import Loopml, init_workspace, open_workspace
from loopml.client import Client
from loopml.config import load_settings
from loopml.domain.artifacts import Digest
from loopml.domain.errors import PermissionDenied

DIGEST = Digest("blake3", "ab" * 32)


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"a": rng.normal(size=40), "b": rng.normal(size=40)})


@pytest.fixture
def model(frame: pd.DataFrame) -> LinearRegression:
    return LinearRegression().fit(frame, frame["a"] * 3 - frame["b"])


def workspace(root: Path, **env: str) -> Loopml:
    init_workspace(root)
    return open_workspace(load_settings(root, env=env))


def reopen(app: Loopml) -> Loopml:
    """The same workspace as a new process opens it."""
    assert app.settings is not None
    return open_workspace(app.settings)


def skops_loads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Record every load that goes through the sklearn flavor (skops)."""
    calls: list[Path] = []
    original = SklearnFlavor.load

    def counting(self: SklearnFlavor, path: Path, *, trusted: bool) -> object:
        calls.append(path)
        return original(self, path, trusted=trusted)

    monkeypatch.setattr(SklearnFlavor, "load", counting)
    return calls


def test_registration_fills_the_cache_so_the_first_load_skips_skops(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    model: LinearRegression,
    frame: pd.DataFrame,
) -> None:
    app = workspace(tmp_path)
    loads = skops_loads(monkeypatch)
    mv = Client(app=app).register_model(model, "m", sample=frame)
    assert len(loads) == 1  # registration loaded the saved file once, as a server would
    entries = list((tmp_path / ".loopml" / "cache" / "models").glob("*.pkl"))
    assert [e.name.split("-")[1] for e in entries] == [mv.artifact.digest.hexdigest]

    first = reopen(app).registry.load("models:/m/1")  # a new process's view
    second = reopen(app).registry.load("models:/m/1")
    assert len(loads) == 1  # neither went through skops
    assert second is not first
    np.testing.assert_array_equal(second.predict(frame), model.predict(frame))  # type: ignore[attr-defined]
    key = tmp_path / ".loopml" / "cache" / "key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(key.read_bytes()) == 32


def test_a_load_through_skops_fills_an_empty_cache(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    model: LinearRegression,
    frame: pd.DataFrame,
) -> None:
    app = workspace(tmp_path)
    Client(app=app).register_model(model, "m", sample=frame)
    folder = tmp_path / ".loopml" / "cache" / "models"
    for entry in folder.glob("*.pkl"):  # as after an upgrade of the environment
        entry.unlink()
    loads = skops_loads(monkeypatch)

    app.registry.load("models:/m/1")
    reopen(app).registry.load("models:/m/1")
    assert len(loads) == 1 and len(list(folder.glob("*.pkl"))) == 1


def test_a_model_that_needs_trust_is_not_cached_at_registration(
    tmp_path: Path, frame: pd.DataFrame
) -> None:
    app = workspace(tmp_path)
    custom = ShiftedMean(shift=1.0).fit(frame.to_numpy(), frame["a"].to_numpy())
    Client(app=app).register_model(custom, "m")
    assert not list((tmp_path / ".loopml" / "cache").glob("models/*.pkl"))


def test_a_tampered_entry_is_removed_and_the_artifact_loads(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    model: LinearRegression,
    frame: pd.DataFrame,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = workspace(tmp_path)
    Client(app=app).register_model(model, "m", sample=frame)
    app.registry.load("models:/m/1")
    (entry,) = (tmp_path / ".loopml" / "cache" / "models").glob("*.pkl")
    data = bytearray(entry.read_bytes())
    data[-5] ^= 0xFF
    entry.write_bytes(bytes(data))
    loads = skops_loads(monkeypatch)

    with caplog.at_level(logging.WARNING, logger="loopml.model_cache"):
        loaded = reopen(app).registry.load("models:/m/1")
    assert len(loads) == 1  # the artifact, through skops
    assert "not an intact entry" in caplog.text
    np.testing.assert_array_equal(loaded.predict(frame), model.predict(frame))  # type: ignore[attr-defined]
    assert entry.read_bytes() != bytes(data)  # replaced by a good entry


def test_an_entry_from_another_workspace_is_not_trusted(
    tmp_path: Path, model: LinearRegression
) -> None:
    ours, theirs = (
        PickleModelCache(tmp_path / "a" / "models"),
        PickleModelCache(tmp_path / "b" / "models"),
    )
    theirs.put(DIGEST, model)
    (theirs_entry,) = (tmp_path / "b" / "models").glob("*.pkl")
    (tmp_path / "a" / "models").mkdir(parents=True)
    ours.put(Digest("blake3", "cd" * 32), model)  # gives `ours` its own key
    (tmp_path / "a" / "models" / theirs_entry.name).write_bytes(theirs_entry.read_bytes())

    assert ours.get(DIGEST) is None  # signed with the other key
    assert not (tmp_path / "a" / "models" / theirs_entry.name).exists()
    assert theirs.get(DIGEST) is not None


def test_another_environment_misses_and_two_environments_stay_cached(
    tmp_path: Path, model: LinearRegression
) -> None:
    folder = tmp_path / "models"
    first, second, third = (PickleModelCache(folder) for _ in range(3))
    first._fingerprint, second._fingerprint, third._fingerprint = "env1", "env2", "env3"
    first.put(DIGEST, model)
    assert second.get(DIGEST) is None  # pickled under other library versions: never loaded
    second.put(DIGEST, model)
    assert first.get(DIGEST) is not None and second.get(DIGEST) is not None
    third.put(DIGEST, model)
    assert sorted(p.name.rsplit("-", 1)[1] for p in folder.glob("*.pkl")) == [
        "env2.pkl",
        "env3.pkl",
    ]


def test_a_trusted_load_is_cached_for_trusted_loads_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, frame: pd.DataFrame
) -> None:
    app = workspace(tmp_path)
    custom = ShiftedMean(shift=1.0).fit(frame.to_numpy(), frame["a"].to_numpy())
    Client(app=app).register_model(custom, "m")
    loads = skops_loads(monkeypatch)

    app.registry.load("models:/m/1", trusted=True)
    (entry,) = (tmp_path / ".loopml" / "cache").glob("models/*.pkl")
    assert entry.name.startswith("trusted-blake3-") and len(loads) == 1

    with pytest.raises(PermissionDenied, match="trusted=True"):
        reopen(app).registry.load("models:/m/1")  # the trusted entry is not read
    assert len(loads) == 2  # refused by skops' audit, as without a cache
    again = reopen(app).registry.load("models:/m/1", trusted=True)
    assert len(loads) == 2  # from the trusted entry
    x = frame.to_numpy()
    np.testing.assert_array_equal(again.predict(x), custom.predict(x))  # type: ignore[attr-defined]


def test_a_trusted_load_takes_the_entry_of_a_default_load(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    model: LinearRegression,
    frame: pd.DataFrame,
) -> None:
    app = workspace(tmp_path)
    Client(app=app).register_model(model, "m", sample=frame)  # fills the default entry
    loads = skops_loads(monkeypatch)
    reopen(app).registry.load("models:/m/1", trusted=True)
    assert not loads
    assert [e.name[:6] for e in (tmp_path / ".loopml" / "cache").glob("models/*.pkl")] == ["blake3"]


def test_a_disabled_cache_writes_nothing(
    tmp_path: Path, model: LinearRegression, frame: pd.DataFrame
) -> None:
    off = workspace(tmp_path / "off", LOOPML_MODEL_CACHE="false")
    Client(app=off).register_model(model, "m", sample=frame)
    off.registry.load("models:/m/1")
    off.registry.load("models:/m/1", trusted=True)
    assert not (tmp_path / "off" / ".loopml" / "cache").exists()


def test_a_model_that_cannot_be_pickled_still_loads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = PickleModelCache(tmp_path / "models")
    with caplog.at_level(logging.WARNING, logger="loopml.model_cache"):
        cache.put(DIGEST, lambda x: x)  # a lambda does not pickle
    assert "could not cache" in caplog.text
    assert cache.get(DIGEST) is None and not list((tmp_path / "models").glob("*.pkl"))


def test_the_fingerprint_follows_the_installed_packages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pkg-1.0.dist-info").mkdir()
    monkeypatch.setattr(sys, "path", [str(tmp_path)])
    before = environment_fingerprint()
    assert environment_fingerprint() == before
    (tmp_path / "pkg-1.0.dist-info").rename(tmp_path / "pkg-1.1.dist-info")
    assert environment_fingerprint() != before
