"""Garbage collection of the artifact store: objects nothing references any more.

Referenced are run artifacts, model version artifacts, and for each dataset version its
manifest, its profile and every chunk its manifest names. Everything else is garbage:
chunks of an add that failed before its version was written, or temporary files left
by a killed process.

Safe beside running work: an object is deleted only if it is unreferenced *and* was last
stored more than ``grace`` seconds ago. An add writes (or, for content already stored,
re-stamps) its chunks before it writes its version, so while it runs its chunks are
young; with a grace longer than any add, nothing in flight is ever collected. By default
``collect`` only reports; it deletes with ``dry_run=False``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from loopml.domain.artifacts import Digest
from loopml.domain.datasets import Manifest
from loopml.ports import (
    BlobStore,
    Clock,
    DatasetStore,
    EvaluationStore,
    RegistryStore,
    StepCache,
    TrackingStore,
)

DEFAULT_GRACE_S = 3600.0


@dataclass(frozen=True, slots=True)
class GcReport:
    objects: int  # objects in the store
    referenced: int
    garbage: int  # unreferenced and older than the grace period
    garbage_bytes: int
    young: int  # unreferenced but younger: kept, may belong to work in progress
    deleted: bool  # False for a dry run
    temporaries: int = 0  # half-written files removed (only when deleting)
    temporaries_bytes: int = 0


class GarbageCollector:
    def __init__(
        self,
        tracking: TrackingStore,
        registry: RegistryStore,
        datasets: DatasetStore,
        evaluations: EvaluationStore,
        steps: StepCache,
        blobs: BlobStore,
        clock: Clock,
    ) -> None:
        self.tracking = tracking
        self.registry = registry
        self.datasets = datasets
        self.evaluations = evaluations
        self.steps = steps
        self.blobs = blobs
        self.clock = clock

    def referenced(self) -> set[str]:
        """Every digest something points at (reads each dataset manifest once). A manifest
        that cannot be read stops the collection: what it names would be unknown."""
        found = self.tracking.referenced_digests() | self.registry.referenced_digests()
        found |= self.evaluations.evaluation_blobs() | self.steps.step_blobs()
        for manifest, profile in self.datasets.version_blobs():
            if profile is not None:
                found.add(profile)
            if manifest not in found:
                found.add(manifest)
                data = self.blobs.get_bytes(Digest.parse(manifest))
                chunks = Manifest.from_dict(json.loads(data)).chunks
                found |= {str(c.digest) for c in chunks}
        return found

    def collect(self, grace_s: float = DEFAULT_GRACE_S, dry_run: bool = True) -> GcReport:
        cutoff = self.clock.now_ms() / 1000 - grace_s
        referenced = self.referenced()  # before listing: an object stored after is young
        objects = list(self.blobs.list_objects())
        unreferenced = [o for o in objects if str(o.digest) not in referenced]
        garbage = [o for o in unreferenced if o.modified_s < cutoff]
        files = size = 0
        if not dry_run:
            for obj in garbage:
                self.blobs.delete(obj.digest)
            files, size = self.blobs.sweep_temporaries(cutoff)
        return GcReport(
            objects=len(objects),
            referenced=len(objects) - len(unreferenced),
            garbage=len(garbage),
            garbage_bytes=sum(o.size for o in garbage),
            young=len(unreferenced) - len(garbage),
            deleted=not dry_run,
            temporaries=files,
            temporaries_bytes=size,
        )
