"""Paged listings: every ``list_*`` and search returns a :class:`Page` and a token.

Tokens are opaque to callers. They carry the offset and a fingerprint of the query they
belong to, so a token replayed against a different query is refused instead of silently
returning the wrong rows.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from loopml.domain.errors import InvalidInput

T = TypeVar("T")
MAX_PAGE_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: Sequence[T]
    next_page_token: str | None = None

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


def check_page_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_PAGE_SIZE:
        raise InvalidInput(f"page size must be an integer from 1 to {MAX_PAGE_SIZE}, got {size!r}")
    return size


def query_fingerprint(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def encode_token(offset: int, fingerprint: str) -> str:
    raw = json.dumps({"o": offset, "q": fingerprint}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str | None, fingerprint: str) -> int:
    """Return the offset a token points at, or 0 for no token."""
    if not token:
        return 0
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        offset, fp = int(data["o"]), str(data["q"])
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(
            f"page token {token!r} is not valid; pass the next_page_token of a previous page"
        ) from exc
    if fp != fingerprint or offset < 0:
        raise InvalidInput(
            f"page token {token!r} belongs to a different query; start again without a token"
        )
    return offset
