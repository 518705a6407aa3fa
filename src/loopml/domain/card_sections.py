"""The sections of a model card that people write: intended use, limitations, and more.

They live in a Markdown file beside the code (``cards/NAME.md`` by default), reviewed with
it like any other file. Each ``## Heading`` starts a section that runs to the next
``## Heading``; deeper headings (``###``) stay inside their section, a ``##`` line inside
a fenced code block is text, and whatever comes before the first ``##`` (a ``# Title``,
comments) is left out. Two sections with the same title are joined. Standard library
only, no I/O: :func:`parse_sections` works on the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

INTENDED_USE = "Intended use"
LIMITATIONS = "Limitations"

# Titles read as the two standard sections (compared case-insensitively, without a colon).
_STANDARD = {
    "intended use": INTENDED_USE,
    "intended uses": INTENDED_USE,
    "limitations": LIMITATIONS,
    "known limitations": LIMITATIONS,
}
_HEADING = re.compile(r"^ {0,3}##[ \t]+(?P<title>.*?)(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})")

TEMPLATE = f"""\
# Model card sections

Sections of this file (each `## Heading`) are copied into the model card that
`loopml card` writes. Edit them with the code and review them like code.

## {INTENDED_USE}

What the model is for, who uses its predictions, and what it must not be used for.

## {LIMITATIONS}

Where the model is known to be weak: data it has not seen, groups it serves worse,
assumptions that may stop holding.
"""


@dataclass(frozen=True, slots=True)
class UserSection:
    """A section as written: its ``title`` and its Markdown ``text`` (may be empty)."""

    title: str
    text: str

    @property
    def standard(self) -> str | None:
        """``"Intended use"`` or ``"Limitations"`` when the title names one, else None."""
        return standard_title(self.title)


def standard_title(title: str) -> str | None:
    key = " ".join(title.casefold().rstrip(":").split())
    return _STANDARD.get(key)


def parse_sections(text: str) -> tuple[UserSection, ...]:
    """The ``## Heading`` sections of Markdown ``text``, in order (see the module docs)."""
    titles: list[str] = []
    bodies: dict[str, list[str]] = {}
    current: list[str] | None = None
    fence: str | None = None
    for line in text.splitlines():
        opened = _FENCE.match(line)
        if fence is not None:
            if opened and opened["fence"][0] == fence[0] and len(opened["fence"]) >= len(fence):
                fence = None
        elif opened:
            fence = opened["fence"]
        elif (heading := _HEADING.match(line)) is not None and heading["title"].strip():
            title = " ".join(heading["title"].split())
            key = standard_title(title) or title
            if key not in bodies:
                titles.append(key)
                bodies[key] = []
            elif bodies[key]:
                bodies[key].append("")
            current = bodies[key]
            continue
        if current is not None:
            current.append(line)
    return tuple(UserSection(title, _trimmed(bodies[title])) for title in titles)


def _trimmed(lines: list[str]) -> str:
    """The lines as text without blank lines at either end (inner ones are kept)."""
    start, end = 0, len(lines)
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return "\n".join(lines[start:end])
