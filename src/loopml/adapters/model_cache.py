"""A local, authenticated cache of loaded models: the next start loads them in one step.

Loading a scikit-learn model safely goes through skops, whose import alone enumerates
every scikit-learn estimator (about 0.3 to 0.6 s here; more than the rest of loopml's
server start-up). Once a model version has been loaded that way (with skops' default
trust, or with ``trusted=True``: see below), this cache keeps the loaded object as a
pickle in the workspace's local state (``.loopml/cache/models/``), so that the next
``loopml serve`` or ``loopml predict`` on this machine loads it without skops. The
registry fills it when a version is registered (it loads the file it just saved, once)
and on the first load of a version missing here.

A pickle runs code when loaded, so only a file this workspace wrote is ever loaded:

- each file starts with an HMAC-SHA256 of its contents under a key of 32 random bytes,
  ``.loopml/cache/key``, created on first use and readable by its owner only (0600). A
  file whose MAC does not verify (damaged, or written elsewhere) is removed and the model
  is loaded from its artifact again;
- a cache entry is never shared, copied or uploaded; the model artifact stays the skops
  file, and the registry still reads it and verifies its hash on every load (a corrupt
  artifact is refused as before), only the skops step is skipped;
- entries are keyed by the artifact's content digest *and* a fingerprint of the
  environment (the Python version and every installed distribution's name, version and
  install time), so an upgraded library never unpickles an object pickled by another
  version: its models are loaded from their artifacts again and cached anew;
- a model loaded with ``trusted=True`` is kept in an entry of its own
  (``trusted-<digest>-<environment>.pkl``), which only another trusted load of the same
  artifact reads: a load without trust never receives an object built from types its
  flavor would have refused. (A trusted load of a model that needs no trust may also
  take the ordinary entry: the same file, loaded the same way.)

Anyone who can write this folder can also edit ``loopml.toml``, which names Python code
that loopml runs: the cache adds no way in that the workspace did not already have.
``[serve] model_cache = false`` (``LOOPML_MODEL_CACHE=0``) turns it off. The cache is an
optimisation only: any failure to read or write it is logged, and the model is loaded
from its artifact.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import pickle
import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from loopml.adapters.distributions import distribution_folders

if TYPE_CHECKING:
    from loopml.domain.artifacts import Digest

log = logging.getLogger("loopml.model_cache")

_MAGIC = b"LOOPML-MODEL-CACHE 1\n"
_MAC_BYTES = 32
KEEP_ENVIRONMENTS = 2


def environment_fingerprint() -> str:
    """What a pickle's validity depends on: the interpreter and the installed packages.

    Read from the names of the ``*.dist-info`` folders on ``sys.path`` (name and version)
    and their modification times (a reinstall), without importing any package."""
    parts = [sys.version, sys.platform]
    parts.extend(_stamped(folder) for folder in distribution_folders())
    return hashlib.blake2b("\n".join(sorted(parts)).encode(), digest_size=12).hexdigest()


class PickleModelCache:
    """Loaded models under ``folder``, authenticated with the key in ``folder/key``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._fingerprint: str | None = None
        self._key: bytes | None = None

    def get(self, digest: Digest, *, trusted: bool = False) -> object | None:
        """The model cached for the artifact ``digest`` in this environment (the entry
        of a trusted load, if ``trusted``), or None."""
        path = self._path(digest, trusted)
        try:
            data = path.read_bytes()
        except OSError:
            return None
        body = data[len(_MAGIC) + _MAC_BYTES :]
        mac = data[len(_MAGIC) : len(_MAGIC) + _MAC_BYTES]
        key = self._read_key()
        if (
            key is None
            or not data.startswith(_MAGIC)
            or not hmac.compare_digest(mac, hmac.digest(key, body, "sha256"))
        ):
            log.warning("ignoring %s: it is not an intact entry of this workspace's cache", path)
            path.unlink(missing_ok=True)
            return None
        try:
            model: object = pickle.loads(body)  # authenticated above: this workspace wrote it
        except Exception:  # a class gone from the environment: load from the artifact
            log.warning("cannot unpickle %s; loading the model from its artifact", path)
            return None
        return model

    def put(self, digest: Digest, model: object, *, trusted: bool = False) -> None:
        """Keep ``model`` (loaded from the artifact ``digest``, with ``trusted=True`` if
        ``trusted``) for the next load."""
        path = self._path(digest, trusted)
        try:
            body = pickle.dumps(model, protocol=5)
            key = self._read_key() or self._new_key()
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_bytes(_MAGIC + hmac.digest(key, body, "sha256") + body)
            os.replace(tmp, path)
            # Keep the entries of the two newest environments (two venvs sharing one
            # workspace both stay warm); older ones are upgrades' leftovers.
            entries = sorted(
                self.folder.glob(f"{_stem(digest, trusted)}-*.pkl"),
                key=lambda p: p.stat().st_mtime_ns,
                reverse=True,
            )
            for stale in entries[KEEP_ENVIRONMENTS:]:
                stale.unlink(missing_ok=True)
        except Exception as exc:  # an optimisation only: the artifact still loads
            log.warning(
                "could not cache the model %s (%s); it loads from its artifact", digest, exc
            )

    def _path(self, digest: Digest, trusted: bool) -> Path:
        if self._fingerprint is None:
            self._fingerprint = environment_fingerprint()
        return self.folder / f"{_stem(digest, trusted)}-{self._fingerprint}.pkl"

    @property
    def _key_path(self) -> Path:
        return self.folder.parent / "key"

    def _read_key(self) -> bytes | None:
        if self._key is None:
            try:
                key = self._key_path.read_bytes()
            except OSError:
                return None
            self._key = key if len(key) == _MAC_BYTES else None
        return self._key

    def _new_key(self) -> bytes:
        self._key_path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(_MAC_BYTES)
        tmp = self._key_path.with_name(f".key.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
        try:  # another process may have made one first: theirs wins, ours is dropped
            os.link(tmp, self._key_path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
        self._key = None
        key_now = self._read_key()
        if key_now is None:
            raise OSError(f"cannot read the cache key {self._key_path}")
        return key_now


def _stamped(folder: os.DirEntry[str]) -> str:
    """A distribution folder's name and modification time (name alone if it vanished)."""
    try:
        return f"{folder.name}@{folder.stat().st_mtime_ns}"
    except OSError:
        return folder.name


def _stem(digest: Digest, trusted: bool) -> str:
    stem = f"{digest.algorithm}-{digest.hexdigest}"
    return f"trusted-{stem}" if trusted else stem
