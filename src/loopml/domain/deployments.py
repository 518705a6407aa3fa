"""Deployments: named endpoints and the model versions that answer on them.

A :class:`Deployment` has routes: the **production** version answers every request that
the canary does not take; an optional **canary** version takes a share of the traffic
(sticky per request key when the client sends one); an optional **shadow** version gets a
copy of the traffic off the request path, its answers logged and never returned.

Changes are pure functions returning the next state with its revision bumped, so a store
can apply them compare-and-set; every change has an audit record and a history entry
(which versions served from when): ``loopml deploy history`` answers "which version served
this endpoint at time T". Promotion of a canary goes through the registry's gates (the
service does that); a rollback only switches the route back to the previous production
version, at once and without gates, because it is what one does when production breaks.
Standard library only, no I/O.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from loopml.domain.audit import AuditRecord
from loopml.domain.errors import InvalidInput, InvalidState, NotFound
from loopml.domain.names import validate_identifier


@dataclass(frozen=True, slots=True, order=True)
class Target:
    """A model version a route sends traffic to."""

    model: str
    version: int

    @property
    def uri(self) -> str:
        return f"models:/{self.model}/{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "version": self.version}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Target | None:
        return None if data is None else cls(str(data["model"]), int(data["version"]))


class Action(StrEnum):
    CREATE = "create"
    CANARY = "canary"
    SHARE = "share"
    SHADOW = "shadow"
    PROMOTE = "promote"
    ROLLBACK = "rollback"
    RETIRE = "retire"


@dataclass(frozen=True, slots=True)
class Deployment:
    name: str
    production: Target
    created_ms: int
    updated_ms: int
    revision: int = 1
    canary: Target | None = None
    canary_share: float = 0.0  # percent of requests, 0 < share < 100 with a canary
    shadow: Target | None = None
    previous: Target | None = None  # what a rollback returns to
    retired: bool = False

    def __post_init__(self) -> None:
        validate_identifier("deployment name", self.name)
        if self.canary is None and self.canary_share:
            raise InvalidInput("a canary share needs a canary version")
        if self.canary is not None:
            check_share(self.canary_share)

    # routes ------------------------------------------------------------------------------
    def targets(self) -> list[tuple[str, Target]]:
        """Every route with its target: production, canary, shadow (those present)."""
        routes = [("production", self.production)]
        if self.canary is not None:
            routes.append(("canary", self.canary))
        if self.shadow is not None:
            routes.append(("shadow", self.shadow))
        return routes

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "production": self.production.to_dict(),
            "canary": None if self.canary is None else self.canary.to_dict(),
            "canary_share": self.canary_share,
            "shadow": None if self.shadow is None else self.shadow.to_dict(),
            "previous": None if self.previous is None else self.previous.to_dict(),
            "retired": self.retired,
            "revision": self.revision,
            "created_ms": self.created_ms,
            "updated_ms": self.updated_ms,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Deployment:
        production = Target.from_dict(data["production"])
        assert production is not None
        return cls(
            name=data["name"],
            production=production,
            created_ms=int(data["created_ms"]),
            updated_ms=int(data["updated_ms"]),
            revision=int(data["revision"]),
            canary=Target.from_dict(data.get("canary")),
            canary_share=float(data.get("canary_share", 0.0)),
            shadow=Target.from_dict(data.get("shadow")),
            previous=Target.from_dict(data.get("previous")),
            retired=bool(data.get("retired", False)),
        )

    # changes -----------------------------------------------------------------------------
    def with_canary(self, target: Target | None, share: float, now_ms: int) -> Deployment:
        self._check_live()
        if target is None:
            return self._next(now_ms, canary=None, canary_share=0.0)
        if target == self.production:
            raise InvalidInput(
                f"{target.uri} already serves production on {self.name!r}; a canary must be "
                "another version"
            )
        return self._next(now_ms, canary=target, canary_share=check_share(share))

    def with_share(self, share: float, now_ms: int) -> Deployment:
        self._check_live()
        if self.canary is None:
            raise InvalidState(
                f"deployment {self.name!r} has no canary; start one with "
                f"`loopml deploy canary {self.name} models:/NAME/VERSION --share 10`"
            )
        return self._next(now_ms, canary_share=check_share(share))

    def with_shadow(self, target: Target | None, now_ms: int) -> Deployment:
        self._check_live()
        if target is not None and target == self.production:
            raise InvalidInput(f"{target.uri} already serves production on {self.name!r}")
        return self._next(now_ms, shadow=target)

    def promoted(self, now_ms: int) -> Deployment:
        """The canary becomes production; the old production is kept for a rollback."""
        self._check_live()
        if self.canary is None:
            raise InvalidState(
                f"deployment {self.name!r} has no canary to promote; start one with "
                f"`loopml deploy canary {self.name} models:/NAME/VERSION --share 10`"
            )
        return self._next(
            now_ms,
            production=self.canary,
            previous=self.production,
            canary=None,
            canary_share=0.0,
            shadow=self._shadow_beside(self.canary),
        )

    def rolled_back(self, now_ms: int) -> Deployment:
        """Back to the previous production version; the canary is dropped."""
        self._check_live()
        if self.previous is None:
            raise InvalidState(
                f"deployment {self.name!r} has no previous production version to roll back "
                f"to (it has served {self.production.uri} since it was created)"
            )
        return self._next(
            now_ms,
            production=self.previous,
            previous=self.production,
            canary=None,
            canary_share=0.0,
            shadow=self._shadow_beside(self.previous),
        )

    def retired_at(self, now_ms: int) -> Deployment:
        self._check_live()
        return self._next(now_ms, retired=True, canary=None, canary_share=0.0, shadow=None)

    def _shadow_beside(self, production: Target) -> Target | None:
        # a version that now answers production must not also shadow itself (the state
        # `with_shadow` refuses): it would get every request twice
        return None if self.shadow == production else self.shadow

    def _check_live(self) -> None:
        if self.retired:
            raise InvalidState(
                f"deployment {self.name!r} is retired; create a new deployment to serve again"
            )

    def _next(self, now_ms: int, **changes: Any) -> Deployment:
        return replace(self, revision=self.revision + 1, updated_ms=now_ms, **changes)


@dataclass(frozen=True, slots=True)
class LiveRoutes:
    """What a deployment serves right now (``production`` None: nothing to serve)."""

    deployment: str
    revision: int
    production: Target | None
    canary: Target | None
    canary_share: float
    shadow: Target | None
    notes: tuple[str, ...] = ()


def live_routes(deployment: Deployment, archived: Callable[[Target], bool]) -> LiveRoutes:
    """The stored routes minus every version ``archived`` says is archived: a deployment
    whose production version is archived serves its previous production version, or
    nothing (and then no canary or shadow either)."""
    notes: list[str] = []

    def alive(target: Target | None, route: str) -> Target | None:
        if target is None:
            return None
        if archived(target):
            notes.append(f"{route} {target.uri} is archived and serves nothing")
            return None
        return target

    production = None
    if not deployment.retired:
        production = alive(deployment.production, "production")
        if production is None:
            production = alive(deployment.previous, "previous production")
    canary = alive(deployment.canary, "canary") if production is not None else None
    return LiveRoutes(
        deployment=deployment.name,
        revision=deployment.revision,
        production=production,
        canary=canary,
        canary_share=deployment.canary_share if canary is not None else 0.0,
        shadow=alive(deployment.shadow, "shadow") if production is not None else None,
        notes=tuple(notes),
    )


def check_share(share: object) -> float:
    if isinstance(share, bool) or not isinstance(share, int | float) or not math.isfinite(share):
        raise InvalidInput(f"canary share must be a number of percent, got {share!r}")
    if not 0 < share < 100:
        raise InvalidInput(
            f"canary share must be between 0 and 100 percent (exclusive), got {share}; "
            "use `loopml deploy promote` to send it all traffic"
        )
    return float(share)


def canary_takes(share: float, key: str | None, draw: float) -> bool:
    """Whether a request goes to the canary: by a hash of its key when the client sent one
    (the same key always lands on the same route while the share stays), else by
    ``draw`` (uniform in [0, 1))."""
    if key is not None:
        h = hashlib.blake2b(key.encode(), digest_size=8).digest()
        draw = int.from_bytes(h, "big") / 2**64
    return draw * 100 < share


@dataclass(frozen=True, slots=True)
class Revision:
    """One entry of a deployment's history: its state from ``time_ms`` on."""

    deployment: str
    revision: int
    time_ms: int
    actor: str
    action: Action
    state: Deployment
    reason: str | None = None


def serving_at(history: Sequence[Revision], time_ms: int) -> Revision:
    """The revision in force at ``time_ms`` (history in revision order)."""
    found = None
    for entry in history:
        if entry.time_ms <= time_ms:
            found = entry
        else:
            break
    if found is None:
        name = history[0].deployment if history else "?"
        raise NotFound(f"deployment {name!r} did not exist at {time_ms} (ms since the epoch)")
    return found


def deployment_changed(
    before: Deployment | None, after: Deployment, action: Action, actor: str, reason: str | None
) -> AuditRecord:
    return AuditRecord(
        f"deployment.{action.value}",
        "deployment",
        f"deployments:/{after.name}",
        actor,
        None if before is None else _routes(before),
        _routes(after),
        reason,
    )


def _routes(d: Deployment) -> dict[str, Any]:
    return {
        "production": d.production.uri,
        "canary": None if d.canary is None else d.canary.uri,
        "canary_share": d.canary_share,
        "shadow": None if d.shadow is None else d.shadow.uri,
        "retired": d.retired,
        "revision": d.revision,
    }


def no_deployment(name: str) -> NotFound:
    return NotFound(
        f"deployment {name!r} does not exist; list them with `loopml deploy list` or create "
        f"it with `loopml deploy create {name} models:/NAME@champion`"
    )
