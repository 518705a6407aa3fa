"""Step cache keys: the digest, its round trips, and the explanation of a miss.

The digest names a cache entry, so it must be stable (the same key always gives the same
digest, whatever the order its mappings were built in) and it must move when any one
component moves. ``explain_change`` must say, in words a person can act on, *which*
component moved: whenever two keys have different digests, it names a real difference.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from loopml.domain.artifacts import Digest
from loopml.domain.step_cache import (
    InputPrint,
    StepKey,
    StepRecord,
    StoredOutput,
    explain_change,
    outputs_from_json,
)

HEX = "0123456789abcdef" * 4
FALLBACK = ["the cache entry's key format changed"]


def base_key() -> StepKey:
    return StepKey(
        code={"steps.py:train": "aa11", "features.py:build": "bb22"},
        params={"alpha": 0.1, "layers": [64, 32], "loss": "huber"},
        inputs={
            "bikes": InputPrint("bikes@3", "blake3:" + HEX),
            "feats": InputPrint("featurize.feats", "blake3:" + "1" * 64),
            "split": InputPrint("split", "blake3:" + "2" * 64),
        },
        libraries={"scikit-learn": "1.5.2", "numpy": "2.1.0"},
    )


def replaced(key: StepKey, **changes: dict[str, Any]) -> StepKey:
    """``key`` with some entries of its mappings changed (``None`` removes one)."""
    fields: dict[str, Any] = {}
    for name, updates in changes.items():
        merged = dict(getattr(key, name))
        for k, v in updates.items():
            if v is None:
                merged.pop(k)
            else:
                merged[k] = v
        fields[name] = merged
    return dataclasses.replace(key, **fields)


# --- the digest ---------------------------------------------------------------------


def test_the_digest_is_a_blake2b_name_that_does_not_depend_on_mapping_order() -> None:
    key = base_key()
    assert re.fullmatch(r"blake2b:[0-9a-f]{64}", key.digest())
    shuffled = StepKey(
        code=dict(reversed(list(key.code.items()))),
        params=dict(reversed(list(key.params.items()))),
        inputs=dict(reversed(list(key.inputs.items()))),
        libraries=dict(reversed(list(key.libraries.items()))),
    )
    assert shuffled.digest() == key.digest()


def test_the_digest_is_stable_across_releases() -> None:
    # Every workspace's cache is named by these digests: if this value changes, every
    # cached step of every user re-runs once. Change it only on purpose (and KEY_FORMAT).
    assert base_key().digest() == (
        "blake2b:a1afe63837fa20a57ecae5717eaf307d3f41bbef56faacc3caab1ce6344eda38"
    )


VARIANTS = {
    "code changed": {"code": {"features.py:build": "bb23"}},
    "code added": {"code": {"features.py:clean": "cc33"}},
    "code removed": {"code": {"features.py:build": None}},
    "param changed": {"params": {"alpha": 0.2}},
    "param int to float": {"params": {"alpha": 1, "loss": "huber"}},
    "param nested": {"params": {"layers": [64, 16]}},
    "param added": {"params": {"beta": 3}},
    "param removed": {"params": {"loss": None}},
    "input label": {"inputs": {"bikes": InputPrint("bikes@4", "blake3:" + HEX)}},
    "input content": {"inputs": {"bikes": InputPrint("bikes@3", "blake3:" + "f" * 64)}},
    "input removed": {"inputs": {"split": None}},
    "library upgraded": {"libraries": {"scikit-learn": "1.6.0"}},
    "library added": {"libraries": {"xgboost": "2.1.1"}},
}


@pytest.mark.parametrize("change", list(VARIANTS))
def test_each_component_moves_the_digest(change: str) -> None:
    assert replaced(base_key(), **VARIANTS[change]).digest() != base_key().digest()


def test_every_variant_has_a_digest_of_its_own() -> None:
    digests = {replaced(base_key(), **v).digest() for v in VARIANTS.values()}
    assert len(digests) == len(VARIANTS)
    assert base_key().digest() not in digests


def test_one_and_one_point_zero_are_different_params() -> None:
    # a float param that became an int may train another model: the key must see it
    one = replaced(base_key(), params={"alpha": 1})
    assert replaced(base_key(), params={"alpha": 1.0}).digest() != one.digest()


# --- explanations -------------------------------------------------------------------


def explain(**changes: dict[str, Any]) -> list[str]:
    return explain_change("train", base_key(), replaced(base_key(), **changes))


def test_a_first_run_says_so() -> None:
    assert explain_change("train", None, base_key()) == [
        "step train has never run with this pipeline"
    ]


def test_params_changed_added_and_removed() -> None:
    assert explain(params={"alpha": 0.2}) == ["param alpha 0.1 -> 0.2"]
    assert explain(params={"beta": 3}) == ["param beta added (= 3)"]
    assert explain(params={"loss": None}) == ['param loss removed (was "huber")']
    assert explain(params={"layers": [64, 16]}) == ["param layers [64, 32] -> [64, 16]"]
    assert explain(params={"alpha": 1.0}) == ["param alpha 0.1 -> 1.0"]


def test_a_param_of_another_json_type_is_a_change() -> None:
    before = replaced(base_key(), params={"alpha": 1})
    after = replaced(base_key(), params={"alpha": 1.0})
    assert explain_change("train", before, after) == ["param alpha 1 -> 1.0"]
    flag = replaced(base_key(), params={"alpha": True})
    assert explain_change("train", before, flag) == ["param alpha 1 -> true"]


def test_a_nested_param_of_another_json_type_is_a_change() -> None:
    # [64, 32] == [64.0, 32] in Python, but not in the key's JSON: the digest differs,
    # so the explanation must name the param, not blame the key format
    before = base_key()
    after = replaced(before, params={"layers": [64.0, 32]})
    assert after.digest() != before.digest()
    assert explain_change("train", before, after) == ["param layers [64, 32] -> [64.0, 32]"]


def test_inputs_by_label_and_by_content() -> None:
    assert explain(inputs={"bikes": InputPrint("bikes@4", "blake3:" + HEX)}) == [
        "input bikes: bikes@3 -> bikes@4"
    ]
    assert explain(inputs={"bikes": InputPrint("bikes@3", "blake3:" + "f" * 64)}) == [
        "input bikes (bikes@3) has new content"
    ]
    # an output named like its step reads without repeating the name
    assert explain(inputs={"split": InputPrint("split", "blake3:" + "9" * 64)}) == [
        "input split has new content"
    ]
    assert explain(inputs={"split": None}) == ["input split removed"]
    assert explain(inputs={"extra": InputPrint("extra", "blake3:" + "3" * 64)}) == [
        "input extra added"
    ]


def test_code_changes_name_the_changed_functions() -> None:
    assert explain(code={"features.py:build": "bb23"}) == ["code of step train changed (build)"]
    assert explain(code={"features.py:build": "x", "steps.py:train": "y"}) == [
        "code of step train changed (build, train)"
    ]
    assert explain(code={"features.py:Scaler.apply": "z"}) == [
        "code of step train changed (Scaler.apply)"
    ]
    assert explain(code={"features.py:build": None}) == ["code of step train changed (build)"]


def test_library_versions() -> None:
    assert explain(libraries={"scikit-learn": "1.6.0"}) == ["library scikit-learn 1.5.2 -> 1.6.0"]
    assert explain(libraries={"xgboost": "2.1.1"}) == ["library xgboost absent -> 2.1.1"]
    assert explain(libraries={"numpy": None}) == ["library numpy 2.1.0 -> absent"]


def test_several_changes_are_all_listed_code_params_inputs_libraries() -> None:
    reasons = explain(
        libraries={"scikit-learn": "1.6.0"},
        inputs={"bikes": InputPrint("bikes@4", "blake3:" + HEX)},
        params={"alpha": 0.2},
        code={"steps.py:train": "new"},
    )
    assert reasons == [
        "code of step train changed (train)",
        "param alpha 0.1 -> 0.2",
        "input bikes: bikes@3 -> bikes@4",
        "library scikit-learn 1.5.2 -> 1.6.0",
    ]


def test_equal_keys_blame_the_key_format() -> None:
    assert explain_change("train", base_key(), base_key()) == FALLBACK


# --- round trips and properties -----------------------------------------------------

names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=3),
    max_leaves=8,
)
digests = st.text("0123456789abcdef", min_size=64, max_size=64).map(lambda h: "blake3:" + h)
keys = st.builds(
    StepKey,
    code=st.dictionaries(
        names.map(lambda n: f"steps.py:{n}"), st.text("0123456789abcdef"), max_size=4
    ),
    params=st.dictionaries(names, json_values, max_size=4),
    inputs=st.dictionaries(names, st.builds(InputPrint, st.text(max_size=12), digests), max_size=3),
    libraries=st.dictionaries(names, st.from_regex(r"\d\.\d{1,2}\.\d", fullmatch=True), max_size=3),
)


@given(keys)
def test_a_key_survives_its_json_form(key: StepKey) -> None:
    back = StepKey.from_dict(json.loads(json.dumps(key.to_dict())))
    assert back == key
    assert back.digest() == key.digest()


@given(keys, keys)
@example(
    StepKey({}, {"p": [1]}, {}, {}),
    StepKey({}, {"p": [1.0]}, {}, {}),
)
@example(
    StepKey({}, {"p": {"q": 0}}, {}, {}),
    StepKey({}, {"p": {"q": False}}, {}, {}),
)
def test_an_explanation_names_a_real_change_exactly_when_the_digest_moves(
    before: StepKey, after: StepKey
) -> None:
    reasons = explain_change("s", before, after)
    assert reasons, "a miss always has a reason"
    assert (reasons != FALLBACK) == (before.digest() != after.digest()), reasons


@given(
    st.dictionaries(
        names,
        st.builds(
            StoredOutput,
            st.sampled_from(["json", "pandas", "numpy", "model:sklearn", "pickle"]),
            st.text("0123456789abcdef", min_size=64, max_size=64).map(
                lambda h: Digest("blake3", h)
            ),
            st.integers(0, 2**62),
        ),
        max_size=4,
    )
)
def test_outputs_survive_their_json_form(outputs: dict[str, StoredOutput]) -> None:
    record = StepRecord("p", "s", base_key(), outputs, "run1", 1, 2)
    assert outputs_from_json(record.outputs_json()) == outputs


def test_a_record_is_named_by_its_key_unless_told_otherwise() -> None:
    record = StepRecord("p", "train", base_key(), {}, "run1", 1_000, 5)
    assert record.key_digest == base_key().digest()
    kept = StepRecord("p", "train", base_key(), {}, "run1", 1_000, 5, key_digest="blake2b:old")
    assert kept.key_digest == "blake2b:old"
