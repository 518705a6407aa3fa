from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loopml.adapters.sql.metric_chunks import Chunk, history, pack
from loopml.domain.errors import InvalidInput, StorageError
from loopml.domain.tracking import Metric

_INT64 = st.integers(-(2**63), 2**63 - 1)
_POINTS = st.lists(
    st.builds(
        Metric,
        st.sampled_from(["loss", "acc", "val/loss", "lr", "é"]),
        st.floats(allow_nan=True, allow_infinity=True),
        _INT64,
        _INT64,
    ),
    min_size=1,
    max_size=50,
)


def _same(a: list[Metric], b: list[Metric]) -> bool:
    # NaN != NaN, so compare NaN positions and the rest separately.
    return len(a) == len(b) and all(
        (x.key, x.step, x.timestamp_ms) == (y.key, y.step, y.timestamp_ms)
        and (x.value == y.value or (math.isnan(x.value) and math.isnan(y.value)))
        for x, y in zip(a, b, strict=True)
    )


@given(_POINTS)
def test_a_chunk_gives_back_every_point_in_logging_order(points: list[Metric]) -> None:
    assert _same(Chunk(pack(points)).points(), points)


@given(st.lists(_POINTS, min_size=1, max_size=4))
def test_history_is_one_series_ordered_by_step_then_time_then_logging(
    batches: list[list[Metric]],
) -> None:
    logged = [p for batch in batches for p in batch if p.key == "loss"]
    expected = sorted(logged, key=lambda p: (p.step, p.timestamp_ms))  # stable
    assert _same(history([pack(b) for b in batches], "loss"), expected)


def test_a_key_absent_from_every_chunk_has_an_empty_history() -> None:
    assert history([pack([Metric("acc", 1.0, 0, 0)])], "loss") == []


def test_a_step_beyond_64_bits_is_refused_with_the_value() -> None:
    with pytest.raises(InvalidInput, match=r"metric step 9223372036854775808 is outside"):
        pack([Metric("loss", 1.0, 2**63, 0)])


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b[:5], "has no header"),
        (lambda b: b[:-1], "should hold .* bytes, it holds"),
        (lambda b: b"\x07" + b[1:], "has format 7, this loopml reads format 1"),
    ],
)
def test_a_damaged_chunk_is_a_storage_error_not_wrong_numbers(
    damage: Callable[[bytes], bytes], message: str
) -> None:
    data = pack([Metric("loss", 1.0, 0, 0), Metric("acc", 2.0, 0, 0)])
    with pytest.raises(StorageError, match=message):
        Chunk(damage(data))
