from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loopml.domain.errors import InvalidInput, UnsafeName
from loopml.domain.names import validate_artifact_name, validate_identifier, validate_key


@pytest.mark.parametrize(
    "name",
    [
        "model/model.skops",
        "a",
        "plots/residuals.png",
        "x_1/y-2/z+3=4@5,6",
        "data/part-0001.parquet",
    ],
)
def test_safe_artifact_names_pass(name: str) -> None:
    assert validate_artifact_name(name) == name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../x", "'..'"),
        ("a/../../b", "'..'"),
        ("/etc/passwd", "absolute"),
        ("a\\b", "backslash"),
        ("x\x00y", "NUL"),
        ("C:/x", "drive letter"),
        ("", "empty"),
        ("a//b", "empty"),
        ("./a", "'.'"),
        ("a/.", "'.'"),
        ("tab\there", "control"),
        (".hidden", "starts with"),
        ("a/b c", "characters"),
        ("é", "characters"),
    ],
)
def test_unsafe_artifact_names_are_refused_with_reason(name: str, reason: str) -> None:
    with pytest.raises(UnsafeName, match=r"refused|empty") as info:
        validate_artifact_name(name)
    assert reason in str(info.value)
    assert "relative name" in str(info.value)  # says what to do instead


def test_non_string_artifact_name_is_refused() -> None:
    with pytest.raises(UnsafeName, match="must be a string, got int"):
        validate_artifact_name(3)


@given(st.text(max_size=40))
def test_accepted_names_can_never_leave_their_folder(name: str) -> None:
    try:
        validate_artifact_name(name)
    except UnsafeName:
        return
    parts = name.split("/")
    assert ".." not in parts and "." not in parts and "" not in parts
    assert not name.startswith("/") and "\\" not in name and "\x00" not in name


def test_identifiers_and_keys() -> None:
    assert validate_identifier("model name", "bike-demand.v2") == "bike-demand.v2"
    with pytest.raises(InvalidInput, match=r"model name 'a/b' is not valid.*letters"):
        validate_identifier("model name", "a/b")
    assert validate_key("metric", "val/rmse") == "val/rmse"
    with pytest.raises(InvalidInput, match="metric key must be a non-empty string, got ''"):
        validate_key("metric", "")
    with pytest.raises(InvalidInput, match="expected 1 to 250 characters"):
        validate_key("param", "k" * 251)
