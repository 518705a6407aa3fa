"""What the server serves: loaded model versions per deployment, swapped atomically.

:class:`RouteTable` holds an immutable mapping of deployment name to :class:`Endpoint`
(its live routes with the loaded models). :meth:`RouteTable.refresh` builds the next
mapping off to the side (loading and warming any new version first) and replaces the
reference in one assignment, so a request sees either the old table or the new one, never
a half-built one, and no request waits for a model to load. A watcher thread refreshes
when the workspace's audit head moves (every deployment and registry change writes an
audit event), so ``loopml deploy ...`` in another process reaches a running server within
one poll interval, without a restart.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from types import MappingProxyType
from typing import Any

from loopml.domain.deployments import Deployment, LiveRoutes, Target, live_routes
from loopml.domain.lifecycle import Stage
from loopml.domain.registry import ModelVersion, Signature

log = logging.getLogger("loopml.server")


@dataclass(frozen=True)
class Served:
    """One loaded model version."""

    target: Target
    version: ModelVersion
    model: Any
    columns: tuple[str, ...]  # input column order (the signature's), () if unknown
    # The model taking a float block of ``columns`` (ModelFlavor.block_model), or None.
    block: Any = None

    @property
    def signature(self) -> Signature | None:
        return self.version.signature

    @cached_property
    def all_double(self) -> bool:
        """Every input is a double: requests become one float block, not a column each."""
        signature = self.signature
        return bool(signature and signature.inputs) and all(
            c.type == "double" and not c.nullable
            for c in signature.inputs  # type: ignore[union-attr]
        )


@dataclass(frozen=True, slots=True)
class Endpoint:
    routes: LiveRoutes
    production: Served | None
    canary: Served | None
    shadow: Served | None


class RouteTable:
    """``deployments()`` lists the stored deployments and ``version(model, number)`` reads
    a model version: the stores' reads, or a lean reader's (:mod:`loopml.bootstrap_serve`);
    ``load`` loads a version's model, ``block`` gives its block model, ``warm`` warms it."""

    def __init__(
        self,
        deployments: Callable[[], list[Deployment]],
        version: Callable[[str, int], ModelVersion],
        load: Callable[[ModelVersion], Any],
        warm: Callable[[Served], None] | None = None,
        block: Callable[[ModelVersion, Any], Any] | None = None,
    ) -> None:
        self.deployments = deployments
        self.version = version
        self.load = load
        self.warm = warm
        self.block = block
        self.endpoints: Mapping[str, Endpoint] = MappingProxyType({})
        self.ready = False
        self.generation = 0
        self._loaded: dict[Target, Served] = {}
        self._lock = threading.Lock()  # one refresh at a time
        self._seen_head: object = object()

    def refresh(self) -> None:
        """Build the next table and swap it in; failures to load one version leave that
        route as it was (logged), never the whole table."""
        with self._lock:
            table: dict[str, Endpoint] = {}
            keep: dict[Target, Served] = {}
            versions: dict[Target, ModelVersion] = {}  # each read once per refresh

            def version_of(target: Target) -> ModelVersion:
                found = versions.get(target)
                if found is None:
                    found = versions[target] = self.version(target.model, target.version)
                return found

            for deployment in self.deployments():
                routes = live_routes(deployment, lambda t: version_of(t).stage is Stage.ARCHIVED)
                served: dict[str, Served | None] = {}
                for route in ("production", "canary", "shadow"):
                    target = getattr(routes, route)
                    if target is None:
                        served[route] = None
                        continue
                    found = self._loaded.get(target) or keep.get(target)
                    if found is None:
                        try:
                            mv = version_of(target)
                            model = self.load(mv)
                            block = None if self.block is None else self.block(mv, model)
                            found = Served(target, mv, model, _columns(mv), block)
                            if self.warm is not None:
                                self.warm(found)
                        except Exception:  # a bad version must not stop the rest
                            log.exception("could not load %s for %s", target.uri, deployment.name)
                            old = self.endpoints.get(deployment.name)
                            found = None if old is None else getattr(old, route)
                    if found is not None:
                        keep[target] = found
                    served[route] = found
                table[deployment.name] = Endpoint(routes, **served)
            self._loaded = keep  # versions no route uses are dropped (drained by GC)
            self.endpoints = MappingProxyType(table)
            self.generation += 1
            self.ready = True

    def refresh_if_changed(self, head: object) -> bool:
        if head == self._seen_head:
            return False
        self.refresh()
        self._seen_head = head
        return True

    def watch(self, head: Callable[[], object], interval_s: float) -> threading.Event:
        """Refresh whenever ``head()`` changes, checking every ``interval_s`` seconds, on
        a daemon thread; set the returned event to stop."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(interval_s):
                try:
                    self.refresh_if_changed(head())
                except Exception:  # keep serving the last good table
                    log.exception("refreshing the deployments failed; serving the last table")

        threading.Thread(target=loop, name="loopml-routes", daemon=True).start()
        return stop


def _columns(mv: ModelVersion) -> tuple[str, ...]:
    if mv.signature is None:
        return ()
    return tuple(c.name for c in mv.signature.inputs)
