from __future__ import annotations

import math

import pytest

from loopml.domain.artifacts import ArtifactRef, Digest
from loopml.domain.errors import InvalidInput
from loopml.domain.lifecycle import Stage
from loopml.domain.paging import check_page_size, decode_token, encode_token
from loopml.domain.registry import ModelUri, Signature
from loopml.domain.tracking import make_metric, param_text

HEX = "ab" * 32


def test_page_token_round_trip_and_refusals() -> None:
    token = encode_token(200, "fp1")
    assert decode_token(token, "fp1") == 200
    assert decode_token(None, "fp1") == 0
    with pytest.raises(InvalidInput, match="belongs to a different query"):
        decode_token(token, "fp2")
    with pytest.raises(InvalidInput, match="is not valid"):
        decode_token("%%%not-a-token", "fp1")
    with pytest.raises(InvalidInput, match="from 1 to 10000, got 0"):
        check_page_size(0)


def test_digest_parse_and_validation() -> None:
    digest = Digest.parse(f"blake3:{HEX}")
    assert str(digest) == f"blake3:{HEX}" and digest.short == f"blake3:{HEX[:12]}"
    with pytest.raises(InvalidInput, match="unsupported hash algorithm 'md5'"):
        Digest("md5", HEX)
    with pytest.raises(InvalidInput, match="64 lowercase hexadecimal"):
        Digest("blake3", "../../etc/passwd")
    with pytest.raises(InvalidInput, match="size must be >= 0"):
        ArtifactRef("a", digest, -1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("models:/bikes/3", ModelUri("bikes", version=3)),
        ("models:/bikes@champion", ModelUri("bikes", alias="champion")),
        ("models:/bikes/Production", ModelUri("bikes", stage=Stage.PRODUCTION)),
    ],
)
def test_model_uris(text: str, expected: ModelUri) -> None:
    assert ModelUri.parse(text) == expected
    assert ModelUri.parse(str(expected)) == expected


@pytest.mark.parametrize(
    "bad",
    [
        "bikes/3",
        "models:/bikes/0",
        "models:/bikes/latest",
        "models:/../x/1",
        "models:/a/1/2",
        "models:/bikes@",
    ],
)
def test_bad_model_uris_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInput):
        ModelUri.parse(bad)


def test_metric_and_param_values() -> None:
    assert make_metric("m", 3, 2, 10).value == 3.0
    assert math.isnan(make_metric("m", float("nan"), 0, 0).value)
    with pytest.raises(InvalidInput, match="metric 'm' must be a number, got str 'high'"):
        make_metric("m", "high", 0, 0)
    with pytest.raises(InvalidInput, match="must be a number, got bool"):
        make_metric("m", True, 0, 0)
    assert param_text("a", 1.0) == "1.0" and param_text("a", 1) == "1"
    with pytest.raises(InvalidInput, match="Log large values as an artifact"):
        param_text("a", "x" * 6001)


def test_signature_round_trip() -> None:
    data = {
        "inputs": [{"name": "hr", "type": "integer", "nullable": False}],
        "outputs": [{"name": "prediction", "type": "double", "nullable": False}],
    }
    assert Signature.from_dict(data).to_dict() == data
    with pytest.raises(InvalidInput, match="unknown type 'int64'"):
        Signature.from_dict({"inputs": [{"name": "hr", "type": "int64"}]})
