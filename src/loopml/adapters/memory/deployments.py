"""In-memory deployments, sharing :class:`MemoryDatabase` with the other stores."""

from __future__ import annotations

from typing import TYPE_CHECKING

from loopml.adapters.memory.stores import MemoryDatabase
from loopml.domain.deployments import Deployment, Revision, no_deployment
from loopml.domain.errors import AlreadyExists, ConcurrentModification

if TYPE_CHECKING:
    from loopml.domain.audit import AuditRecord


class MemoryDeploymentStore:
    def __init__(self, db: MemoryDatabase) -> None:
        self.db = db

    def create_deployment(self, entry: Revision, audit: AuditRecord) -> None:
        with self.db.lock:
            if entry.deployment in self.db.deployments:
                raise AlreadyExists(
                    f"deployment {entry.deployment!r} already exists; change it with "
                    "`loopml deploy canary/promote/rollback`, or pick another name (a retired "
                    "deployment keeps its name and history)"
                )
            self.db.deployments[entry.deployment] = [entry]
            self.db.append_event(audit, entry.time_ms)

    def update_deployment(self, entry: Revision, audit: AuditRecord) -> None:
        with self.db.lock:
            history = self._history(entry.deployment)
            if history[-1].revision != entry.revision - 1:
                raise ConcurrentModification(
                    f"deployment {entry.deployment!r} was changed by someone else meanwhile; "
                    f"look at `loopml deploy show {entry.deployment}` and try again"
                )
            history.append(entry)
            self.db.append_event(audit, entry.time_ms)

    def get_deployment(self, name: str) -> Deployment:
        with self.db.lock:
            return self._history(name)[-1].state

    def list_deployments(self) -> list[Deployment]:
        with self.db.lock:
            return [self.db.deployments[n][-1].state for n in sorted(self.db.deployments)]

    def deployment_history(self, name: str) -> list[Revision]:
        with self.db.lock:
            return list(self._history(name))

    def _history(self, name: str) -> list[Revision]:
        found = self.db.deployments.get(name)
        if found is None:
            raise no_deployment(name)
        return found
