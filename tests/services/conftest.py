from __future__ import annotations

from collections.abc import Iterator

import pytest

from loopml.bootstrap import Loopml, build_memory
from loopml.client import Client


class FakeClock:
    def __init__(self) -> None:
        self.ms = 1_700_000_000_000

    def now_ms(self) -> int:
        self.ms += 1
        return self.ms


@pytest.fixture
def app() -> Loopml:
    return build_memory(FakeClock())


@pytest.fixture
def client(app: Loopml) -> Iterator[Client]:
    c = Client(app=app)
    yield c
    c.close()
