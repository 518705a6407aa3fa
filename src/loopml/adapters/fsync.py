"""Making a rename durable: after ``os.replace`` into a folder, fsync the folder itself,
or a power cut can forget the new name. Shared by every adapter that writes files
atomically (the artifact store, the prediction log)."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_directory(directory: Path) -> None:
    """fsync ``directory`` so that renames into it survive a crash (a no-op on Windows,
    which cannot open a folder for fsync)."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
