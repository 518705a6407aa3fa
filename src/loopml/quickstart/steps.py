"""Numbered steps of the quickstart: a spinner in a terminal, plain lines when piped."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console


class Steps:
    """Numbered steps with a spinner in a terminal and plain lines when piped."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.n = 0
        self.title = ""

    def __call__(self, title: str) -> Steps:
        self.n += 1
        self.title = title
        return self

    def __enter__(self) -> None:
        self._status = self.console.status(f"{self.n}. {self.title}...")
        self._status.__enter__()

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self._status.__exit__(exc_type, *rest)  # type: ignore[arg-type]
        mark = "[green]✓[/]" if exc_type is None else "[red]✗[/]"
        self.console.print(f"{mark} {self.n}. {self.title}")
        for line in getattr(self, "_notes", []):
            self.console.print(f"     {line}", markup=False, highlight=False)
        self._notes: list[str] = []

    def note(self, text: str) -> None:
        if not hasattr(self, "_notes"):
            self._notes = []
        self._notes.append(text)
