"""Deployments: create, canary, shadow, promote (through the gates), roll back, retire.

Every change is stored compare-and-set with its history entry and audit record in one
transaction. What actually serves is :meth:`DeploymentService.live`: the stored routes
minus any version archived in the registry since (archiving a version takes it out of
every route at once, whatever path archived it); a deployment whose production version
is archived serves its previous production version, or nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from loopml.domain.deployments import (
    Action,
    Deployment,
    LiveRoutes,
    Revision,
    Target,
    deployment_changed,
    live_routes,
    serving_at,
)
from loopml.domain.errors import InvalidState
from loopml.domain.lifecycle import Stage
from loopml.domain.names import validate_identifier
from loopml.ports import Clock, DeploymentStore
from loopml.services.registry import RegistryService


class DeploymentService:
    def __init__(self, store: DeploymentStore, registry: RegistryService, clock: Clock) -> None:
        self.store = store
        self.registry = registry
        self.clock = clock

    # reads -------------------------------------------------------------------------------
    def get(self, name: str) -> Deployment:
        return self.store.get_deployment(name)

    def list_all(self) -> list[Deployment]:
        return self.store.list_deployments()

    def history(self, name: str) -> list[Revision]:
        return self.store.deployment_history(name)

    def serving_at(self, name: str, time_ms: int) -> Revision:
        """The revision of ``name`` in force at ``time_ms``: which versions served then."""
        return serving_at(self.store.deployment_history(name), time_ms)

    def live(self, deployment: Deployment) -> LiveRoutes:
        def archived(target: Target) -> bool:
            version = self.registry.store.get_version(target.model, target.version)
            return version.stage is Stage.ARCHIVED

        return live_routes(deployment, archived)

    # changes -----------------------------------------------------------------------------
    def create(self, name: str, uri: str, actor: str, reason: str | None = None) -> Deployment:
        validate_identifier("deployment name", name)
        now = self.clock.now_ms()
        state = Deployment(name, self._target(uri), created_ms=now, updated_ms=now)
        entry = Revision(name, state.revision, now, actor, Action.CREATE, state, reason)
        self.store.create_deployment(
            entry, deployment_changed(None, state, Action.CREATE, actor, reason)
        )
        return state

    def canary(
        self, name: str, uri: str | None, share: float, actor: str, reason: str | None = None
    ) -> Deployment:
        """Send ``share`` percent of the traffic to ``uri`` (None: stop the canary)."""
        target = None if uri is None else self._target(uri)
        return self._change(
            name, Action.CANARY, actor, reason, lambda d, now: d.with_canary(target, share, now)
        )

    def share(self, name: str, share: float, actor: str, reason: str | None = None) -> Deployment:
        return self._change(
            name, Action.SHARE, actor, reason, lambda d, now: d.with_share(share, now)
        )

    def shadow(
        self, name: str, uri: str | None, actor: str, reason: str | None = None
    ) -> Deployment:
        target = None if uri is None else self._target(uri)
        return self._change(
            name, Action.SHADOW, actor, reason, lambda d, now: d.with_shadow(target, now)
        )

    def promote(
        self, name: str, actor: str, reason: str | None = None, force_reason: str | None = None
    ) -> Deployment:
        """The canary becomes production: first in the registry, through the gates (a
        refusal leaves both registry and deployment unchanged), then on the route."""
        current = self.store.get_deployment(name)
        if current.canary is None:
            current.promoted(self.clock.now_ms())  # raises the clear "no canary" error
        assert current.canary is not None
        mv = self.registry.store.get_version(current.canary.model, current.canary.version)
        if mv.stage is not Stage.PRODUCTION:
            self.registry.transition(
                mv.model,
                mv.version,
                Stage.PRODUCTION,
                actor,
                reason=reason or f"promoted on deployment {name}",
                demote_existing=True,
                force_reason=force_reason,
            )
        # compare-and-set on the state read above, not a fresh read: if someone changed the
        # canary meanwhile, the route must not promote a version the gates never judged
        return self._change(
            name, Action.PROMOTE, actor, reason, lambda d, now: d.promoted(now), before=current
        )

    def rollback(self, name: str, actor: str, reason: str | None = None) -> Deployment:
        """Serve the previous production version again, at once and without gates."""
        return self._change(name, Action.ROLLBACK, actor, reason, lambda d, now: d.rolled_back(now))

    def retire(self, name: str, actor: str, reason: str | None = None) -> Deployment:
        return self._change(name, Action.RETIRE, actor, reason, lambda d, now: d.retired_at(now))

    def _change(
        self,
        name: str,
        action: Action,
        actor: str,
        reason: str | None,
        apply: Callable[[Deployment, int], Deployment],
        before: Deployment | None = None,
    ) -> Deployment:
        if before is None:
            before = self.store.get_deployment(name)
        now = self.clock.now_ms()
        after: Deployment = apply(before, now)
        entry = Revision(name, after.revision, now, actor, action, after, reason)
        self.store.update_deployment(
            entry, deployment_changed(before, after, action, actor, reason)
        )
        return after

    def _target(self, uri: str) -> Target:
        mv = self.registry.resolve(uri)
        if mv.stage is Stage.ARCHIVED:
            raise InvalidState(
                f"{mv.uri} is archived and cannot serve; restore it with "
                f"`loopml models promote {mv.model} {mv.version} staging`"
            )
        return Target(mv.model, mv.version)
