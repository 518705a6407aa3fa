"""Model card files: the sections people write, read from disk; the card, written out.

The sections file is optional: by default ``cards/NAME.md`` under the workspace root is
read when it exists, and the card says how to create it when it does not. A file named
on purpose (``--sections``) must exist. The card is written as ``NAME-vVERSION.md`` and
``NAME-vVERSION.html``, each through a temporary file renamed into place, so a reader
never sees half a card.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from loopml.adapters.card_html import card_html
from loopml.domain.errors import InvalidInput, NotFound, StorageError
from loopml.domain.model_card import ModelCard

SECTIONS_DIR = "cards"


def default_sections(root: Path, model: str) -> Path:
    """Where the sections of ``model`` are kept unless another file is named."""
    return root / SECTIONS_DIR / f"{model}.md"


def read_sections(path: Path, *, required: bool) -> str | None:
    """The text of the sections file at ``path``; None when it is absent and not
    ``required``.

    Raises:
        NotFound: ``required`` and there is no such file.
        InvalidInput: ``path`` is a folder, or not UTF-8 text.
    """
    if not path.exists():
        if not required:
            return None
        raise NotFound(
            f"sections file {path} does not exist; create it with '## Intended use' and "
            "'## Limitations' sections, or leave --sections out to use cards/NAME.md"
        )
    if path.is_dir():
        raise InvalidInput(f"sections file {path} is a folder; expected a Markdown file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"sections file {path} is not UTF-8 text ({exc})") from exc
    except OSError as exc:
        raise StorageError(f"cannot read sections file {path}: {exc}") from exc


def shown_path(path: Path, root: Path) -> str:
    """``path`` relative to the workspace ``root`` when inside it, for the card's text."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def write_card(card: ModelCard, directory: Path) -> tuple[Path, Path]:
    """Write ``card`` as Markdown and HTML into ``directory`` (created if needed) and
    return both paths.

    Raises:
        StorageError: the folder or a file cannot be written.
    """
    stem = f"{card.details.model}-v{card.details.version}"
    markdown, html = directory / f"{stem}.md", directory / f"{stem}.html"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        _write(markdown, card.to_markdown())
        _write(html, card_html(card))
    except OSError as exc:
        raise StorageError(f"cannot write the model card into {directory}: {exc}") from exc
    return markdown, html


def _write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)  # a document to share, not mkstemp's private 0600
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
