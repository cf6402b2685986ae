"""The index folder's versions: the CURRENT pointer, the HISTORY of what was served, the writer lock,
leftovers of killed builds, and pruning. index.py writes, loads and validates the versions themselves."""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from hkai_qa.errors import BuildRunning, IndexNotFound
from hkai_qa.files import write_atomically

POINTER = "CURRENT"
HISTORY = "HISTORY"
VERSIONS = "versions"
LOCK = ".build.lock"
STAGING_PREFIX = ".staging-"
KEEP_VERSIONS = 3
_VERSION_NAME = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,199}")
_HISTORY_LINES = 100
log = logging.getLogger("hkai_qa.versions")


@contextmanager
def build_lock(index_dir: Path) -> Iterator[None]:
    """Hold the index folder's writer lock; BuildRunning at once if another build has it.

    An OS file lock (flock) dies with its process, so a build killed with -9 never blocks the next one. The lock
    is not tied to a thread: a rebuild job takes it when it is asked for, and its worker thread lets it go.
    """
    index_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(index_dir / LOCK, timeout=0, thread_local=False)
    try:
        lock.acquire()
    except Timeout:
        raise BuildRunning(
            f"another build is running on {index_dir} (it holds {index_dir / LOCK}); wait for it to finish"
        ) from None
    try:
        yield
    finally:
        lock.release()


def clear_staging(index_dir: Path) -> None:
    """Remove folders left by builds that died before publishing (call with the build lock held)."""
    versions = index_dir / VERSIONS
    if versions.is_dir():
        for folder in versions.iterdir():
            if folder.name.startswith(STAGING_PREFIX):
                shutil.rmtree(folder, ignore_errors=True)


def current_version(index_dir: Path) -> str:
    """The version the pointer names; IndexNotFound when nothing has been built."""
    pointer = index_dir / POINTER
    if not pointer.is_file():
        raise IndexNotFound(f"no index in {index_dir}: run `hkai-qa build` first")
    return pointer.read_text(encoding="utf-8").strip()


def publish(index_dir: Path, version: str, forget: str | None = None) -> None:
    """Point CURRENT at `version` (write a temporary file, fsync, rename over the old one) and note it in
    HISTORY, the order versions were served in, which pruning and rollback follow; `forget` drops a version
    from it (the one a rollback leaves, so the next rollback steps further back instead of returning)."""
    write_atomically(index_dir / POINTER, f"{version}\n".encode())
    served = [v for v in history(index_dir) if v not in (version, forget)] + [version]
    try:  # CURRENT is the truth; HISTORY only orders pruning and rollback
        write_atomically(index_dir / HISTORY, "".join(f"{v}\n" for v in served[-_HISTORY_LINES:]).encode())
    except OSError as exc:
        log.warning("could not update %s (%s); pruning falls back to version names", index_dir / HISTORY, exc)


def history(index_dir: Path) -> list[str]:
    """Versions in the order they were last made current, oldest first; lines that are no version name
    (a damaged file) are ignored."""
    try:
        lines = (index_dir / HISTORY).read_bytes().decode("utf-8", "replace").split()
    except OSError:
        return []
    return [line for line in lines if _VERSION_NAME.fullmatch(line)]


def prune(index_dir: Path, keep: int) -> None:
    """Keep the `keep` versions served most recently (the current one among them); remove the rest."""
    versions = index_dir / VERSIONS
    current = current_version(index_dir)
    on_disk = {p.name for p in versions.iterdir() if p.is_dir() and not p.name.startswith(".")}
    recent = [v for v in reversed(history(index_dir)) if v in on_disk]
    # versions from before HISTORY existed rank after every served one, newest name first
    ranked = recent + sorted(on_disk - set(recent), reverse=True)
    kept = {current, *ranked[:keep]}
    for name in on_disk - kept:
        shutil.rmtree(versions / name, ignore_errors=True)
