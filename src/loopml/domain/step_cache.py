"""The cache key of a pipeline step, and why a key changed.

A :class:`StepKey` lists everything a step's outputs depend on: the digest of each
function of the project's code it runs (the step and the functions it calls), its params,
a fingerprint of each input (the dataset version, or the digest of an upstream output)
and the versions of the libraries it declares. Its :meth:`~StepKey.digest` names the
cache entry; :func:`explain_change` compares two keys in words a person can act on::

    param alpha 0.1 -> 0.2
    input bikes: bikes@3 -> bikes@4
    code of step train changed (train, make_features)
    library scikit-learn 1.5.2 -> 1.6.0

A :class:`StepRecord` is a finished step: its key, its outputs in the blob store and the
run that produced them. Standard library only, no I/O.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from loopml.domain.artifacts import Digest
from loopml.domain.pipelines import param_text

KEY_FORMAT = 1


@dataclass(frozen=True, slots=True)
class InputPrint:
    """What an input was: ``label`` for people (``bikes@3``, ``split.train``) and the
    ``digest`` of its content."""

    label: str
    digest: str


@dataclass(frozen=True, slots=True)
class StepKey:
    code: Mapping[str, str]  # qualified function name -> digest of its normalised source
    params: Mapping[str, Any]
    inputs: Mapping[str, InputPrint]
    libraries: Mapping[str, str]  # distribution -> version

    def digest(self) -> str:
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return "blake2b:" + hashlib.blake2b(canonical.encode(), digest_size=32).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": KEY_FORMAT,
            "code": dict(self.code),
            "params": dict(self.params),
            "inputs": {k: [v.label, v.digest] for k, v in self.inputs.items()},
            "libraries": dict(self.libraries),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepKey:
        return cls(
            code=dict(data["code"]),
            params=dict(data["params"]),
            inputs={k: InputPrint(v[0], v[1]) for k, v in data["inputs"].items()},
            libraries=dict(data["libraries"]),
        )


def explain_change(step: str, before: StepKey | None, after: StepKey) -> list[str]:
    """Why ``after`` misses the cache when ``before`` was the step's last key."""
    if before is None:
        return [f"step {step} has never run with this pipeline"]
    reasons: list[str] = []
    changed = sorted(
        name
        for name in set(before.code) | set(after.code)
        if before.code.get(name) != after.code.get(name)
    )
    if changed:
        reasons.append(f"code of step {step} changed ({', '.join(_short_names(changed))})")
    for key in sorted(set(before.params) | set(after.params)):
        old, new = before.params.get(key, _ABSENT), after.params.get(key, _ABSENT)
        if _as_json(old) == _as_json(new):  # as the digest sees them: 1 != 1.0, [1] != [1.0]
            continue
        if old is _ABSENT:
            reasons.append(f"param {key} added (= {param_text(new)})")
        elif new is _ABSENT:
            reasons.append(f"param {key} removed (was {param_text(old)})")
        else:
            reasons.append(f"param {key} {param_text(old)} -> {param_text(new)}")
    for key in sorted(set(before.inputs) | set(after.inputs)):
        was, now = before.inputs.get(key), after.inputs.get(key)
        if was == now:
            continue
        if was is None or now is None:
            reasons.append(f"input {key} {'added' if was is None else 'removed'}")
        elif was.label != now.label:
            reasons.append(f"input {key}: {was.label} -> {now.label}")
        elif now.label == key:
            reasons.append(f"input {key} has new content")
        else:
            reasons.append(f"input {key} ({now.label}) has new content")
    for lib in sorted(set(before.libraries) | set(after.libraries)):
        old_v, new_v = before.libraries.get(lib, "absent"), after.libraries.get(lib, "absent")
        if old_v != new_v:
            reasons.append(f"library {lib} {old_v} -> {new_v}")
    return reasons or ["the cache entry's key format changed"]


_ABSENT: Any = object()


def _as_json(value: Any) -> str | None:
    return None if value is _ABSENT else json.dumps(value, sort_keys=True)


def _short_names(qualified: list[str]) -> list[str]:
    return [q.rsplit(":", 1)[-1] for q in qualified]


@dataclass(frozen=True, slots=True)
class StoredOutput:
    """One output of a step in the blob store, and the codec that reads it back."""

    codec: str
    digest: Digest
    size: int


@dataclass(frozen=True, slots=True)
class StepRecord:
    pipeline: str
    step: str
    key: StepKey
    outputs: Mapping[str, StoredOutput]
    run_id: str
    created_ms: int
    duration_ms: int
    key_digest: str = field(default="")

    def __post_init__(self) -> None:
        if not self.key_digest:
            object.__setattr__(self, "key_digest", self.key.digest())

    def outputs_json(self) -> str:
        return json.dumps(
            {k: [o.codec, str(o.digest), o.size] for k, o in self.outputs.items()},
            sort_keys=True,
        )


def outputs_from_json(text: str) -> dict[str, StoredOutput]:
    return {
        k: StoredOutput(codec, Digest.parse(digest), size)
        for k, (codec, digest, size) in json.loads(text).items()
    }
