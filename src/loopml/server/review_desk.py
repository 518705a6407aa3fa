"""The review queue over HTTP: ``GET /review`` shows the oldest open item, ``POST /review``
answers one. The answer becomes a label of the prediction (see :mod:`loopml.services.review`).

``GET /review?deployment=NAME`` first queues the deployment's unsure rows logged since the
last look, so a person sees the newest ones without waiting for the agent. Both calls
touch the metadata database, so the server runs them off its event loop.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from loopml.domain.errors import InvalidInput
from loopml.domain.monitoring import MonitorSpec

if TYPE_CHECKING:
    from loopml.services.review import ReviewService

DEFAULT_REVIEWER = "http"
log = logging.getLogger("loopml.server")


class ReviewDesk:
    """``reviews`` makes the review service, once, when the desk is first used: a server
    that started without the full stores (:mod:`loopml.bootstrap_serve`) opens them then,
    off the event loop (``GET``/``POST /review`` run on a worker thread, and
    :meth:`open_in_background` serves the metrics)."""

    def __init__(
        self, reviews: Callable[[], ReviewService], specs: Mapping[str, MonitorSpec]
    ) -> None:
        self._make = reviews
        self._made: ReviewService | None = None
        self._lock = threading.Lock()
        self.specs = dict(specs)

    @property
    def reviews(self) -> ReviewService:
        with self._lock:
            if self._made is None:
                self._made = self._make()
            return self._made

    def open_in_background(self) -> None:
        """Make the review service on a daemon thread now, so that the metrics, which
        are answered on the event loop, never wait for it (they read NaN until then)."""

        def open_now() -> None:
            try:
                self.reviews  # noqa: B018 - made and kept on first access
            except Exception:  # the queue's own calls will raise it again, to the client
                log.exception("opening the review queue failed")

        threading.Thread(target=open_now, name="loopml-review-open", daemon=True).start()

    def next_item(self, deployment: str | None) -> dict[str, Any]:
        for spec in self.specs.values():
            if deployment is None or spec.deployment == deployment:
                self.reviews.sync(spec)
        item = self.reviews.next(deployment)
        size, age = self.reviews.stats(deployment)
        return {"item": None if item is None else item.to_dict(), "open": size, "oldest_age_s": age}

    def answer(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or "id" not in body or "label" not in body:
            raise InvalidInput(
                "a review answer is an object with 'id' (the item's id from GET /review) and "
                f"'label' (the true answer), and optionally 'reviewer'; got {body!r:.200}"
            )
        item_id, reviewer = body["id"], body.get("reviewer", DEFAULT_REVIEWER)
        if isinstance(item_id, bool) or not isinstance(item_id, int):
            raise InvalidInput(f"'id' must be the item's integer id, got {item_id!r}")
        if not isinstance(reviewer, str) or not reviewer.strip():
            raise InvalidInput(f"'reviewer' must be a name, got {reviewer!r}")
        return self.reviews.label(item_id, body["label"], reviewer).to_dict()

    def queue(self) -> tuple[float, float]:
        """(open items, age in seconds of the oldest) for the metrics; NaN while the
        review service is still being made."""
        if self._made is None:
            return math.nan, math.nan
        size, age = self._made.stats(None)
        return size, age or 0.0
