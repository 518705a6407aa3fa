"""Adaptive batching: concurrent requests share one model call; one bad request fails alone."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from loopml.domain.deployments import Target
from loopml.server.batching import Batcher
from loopml.server.predict import Prediction
from loopml.server.routing import Served


class Doubler:
    """A model that doubles column x, refuses negative numbers and records its calls."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, served: Served, columns: dict[str, list[Any]]) -> Prediction:
        xs = columns["x"]
        self.calls.append(len(xs))
        if any(x < 0 for x in xs):
            raise ValueError("negative input")
        return Prediction([2 * x for x in xs], [0.9] * len(xs))


SERVED = Served(Target("m", 1), None, None, ("x",))  # type: ignore[arg-type]


def _run(batcher: Batcher, inputs: list[list[float]]) -> list[Any]:
    async def main() -> list[Any]:
        tasks = [batcher.predict(SERVED, {"x": xs}, len(xs)) for xs in inputs]
        return await asyncio.gather(*tasks, return_exceptions=True)

    return asyncio.run(main())


def test_concurrent_requests_share_one_call_and_get_their_own_slice() -> None:
    model = Doubler()
    results = _run(Batcher(model), [[1.0], [2.0, 3.0], [4.0]])
    assert model.calls == [4]
    assert [r[0].values for r in results] == [[2.0], [4.0, 6.0], [8.0]]
    assert [r[0].confidence for r in results] == [[0.9], [0.9, 0.9], [0.9]]


def test_a_bad_request_fails_alone() -> None:
    model = Doubler()
    results = _run(Batcher(model), [[1.0], [-1.0], [3.0]])
    assert isinstance(results[1], ValueError)
    assert results[0][0].values == [2.0] and results[2][0].values == [6.0]
    assert model.calls == [3, 1, 1, 1]  # the batch, then each alone


def test_a_full_batch_is_answered_at_once() -> None:
    model = Doubler()
    batcher = Batcher(model, max_batch_rows=2)
    results = _run(batcher, [[1.0], [2.0], [3.0]])
    assert [r[0].values for r in results] == [[2.0], [4.0], [6.0]]
    assert model.calls == [2, 1] and batcher.batch_sizes == {2: 1, 1: 1}


@pytest.mark.parametrize("wait", [0.0, 0.01])
def test_a_lone_request_is_answered(wait: float) -> None:
    model = Doubler()
    [result] = _run(Batcher(model, max_wait_s=wait), [[5.0]])
    assert result[0].values == [10.0] and model.calls == [1]
