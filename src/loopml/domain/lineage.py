"""Lineage: where a model version came from, as a tree of nodes.

``models:/NAME/VERSION`` -> its run (and parent runs) -> the dataset versions the run
read (and their parents) and the code commit. Every node names the object as the CLI
and the audit trail do, so each can be looked up on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class LineageNode:
    kind: str  # "model_version", "run", "dataset_version", "code"
    id: str  # models:/n/3, runs:/ID, datasets:/n/2, git:COMMIT
    label: str  # one line for a terminal
    attrs: dict[str, object] = field(default_factory=dict)
    children: tuple[LineageNode, ...] = ()
    missing: bool = False  # referenced, but no longer (or never) in this workspace

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "id": self.id,
            "label": self.label,
            "attrs": self.attrs,
            "missing": self.missing,
            "children": [c.to_dict() for c in self.children],
        }

    def lines(self) -> list[str]:
        """The tree as text, one node per line, with box-drawing branches."""
        out = [self.label]
        for i, child in enumerate(self.children):
            last = i == len(self.children) - 1
            first, rest = ("└── ", "    ") if last else ("├── ", "│   ")
            sub = child.lines()
            out.append(first + sub[0])
            out += [rest + line for line in sub[1:]]
        return out
