"""Writing files so that a reader sees the old content or the new, never half: temp file, fsync, rename."""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data`: write a temporary file beside it, fsync it, rename it over, fsync the folder.

    The temporary name is short, so a target whose own name is near the file-system limit still works.
    """
    temporary = path.with_name(f".{uuid.uuid4().hex[:12]}.tmp")
    try:
        with temporary.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries (a rename inside it) to disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
