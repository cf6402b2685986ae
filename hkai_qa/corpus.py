"""Changes to the corpus folder over HTTP: add uploaded files, delete documents.

Every file is checked before anything is written (name, type, size, text), and all files of one upload are
written or none: each lands through a temporary file and an atomic rename, and a failure part-way puts back
what was there. Names never leave the corpus folder.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from filelock import FileLock, Timeout

from hkai_qa.documents import SUFFIXES, decode_document
from hkai_qa.errors import Conflict, DocumentNotFound, InvalidRequest, PayloadTooLarge, UnsupportedFormat
from hkai_qa.files import write_atomically

# Controls, C1 controls, bidi overrides and zero-width marks, and characters other systems refuse in names.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff\\:*?\"<>|]")
_MAX_PART_BYTES = 150  # well under the 255-byte limit of a file name, leaving room for temporary names
_MAX_DEPTH = 8
LOCK = ".corpus.lock"  # kept in the index folder: the corpus stays the user's own files
_LOCK_WAIT_S = 60.0


@contextmanager
def corpus_lock(index_dir: Path) -> Iterator[None]:
    """Hold the lock on the corpus an index is built from: uploads and deletes write under it and a build
    reads under it, so a build never sees half of an upload. Waits for the holder."""
    try:
        index_dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(index_dir / LOCK, timeout=_LOCK_WAIT_S)
        lock.acquire()
    except Timeout:
        raise Conflict(f"the corpus stayed busy for {_LOCK_WAIT_S:.0f} s (see {index_dir / LOCK}); try again") from None
    try:
        yield
    finally:
        lock.release()


@dataclass(frozen=True, slots=True)
class Upload:
    """One file as received: the name the client gave and its bytes."""

    filename: str
    content: bytes


@dataclass(frozen=True, slots=True)
class Stored:
    """A file written into the corpus."""

    document_id: str
    source: str
    bytes: int
    sections: int
    replaced: bool


def add_documents(
    corpus_dir: Path, index_dir: Path, uploads: list[Upload], folder: str = "", max_bytes: int = 10_000_000
) -> list[Stored]:
    """Check every upload, then write them all into `corpus_dir/folder`, or nothing if any is bad."""
    if not uploads:
        raise InvalidRequest("no files: send one or more files in the multipart field `files`")
    base = safe_folder(folder)
    planned: dict[str, tuple[Upload, int]] = {}
    ids: dict[str, str] = {}
    for upload in uploads:
        name = safe_name(upload.filename)
        relative = (base / name).as_posix()
        document_id = PurePosixPath(relative).with_suffix("").as_posix()
        if len(upload.content) > max_bytes:
            raise PayloadTooLarge(f"{name} is {len(upload.content):,} bytes; the limit is {max_bytes:,} bytes per file")
        suffix = PurePosixPath(name).suffix.lower()
        if suffix not in SUFFIXES:
            raise UnsupportedFormat(f"{name}: unsupported file type {suffix or '(none)'}; accepted: {_kinds()}")
        if relative in planned:
            raise InvalidRequest(f"{relative} appears twice in this upload")
        if document_id in ids:
            raise InvalidRequest(f"{ids[document_id]} and {relative} would both be document {document_id!r}")
        ids[document_id] = relative
        document = decode_document(upload.content, relative)  # UnreadableDocument (422) with the reason
        planned[relative] = (upload, len(document.sections))
    corpus_dir.mkdir(parents=True, exist_ok=True)
    root = corpus_dir.resolve()
    with corpus_lock(index_dir):
        for relative in planned:
            _check_inside(root, relative)
            clash = _file_of(root, PurePosixPath(relative).with_suffix("").as_posix())
            if clash is not None and clash.relative_to(root).as_posix() != relative:
                raise Conflict(
                    f"{relative} would be the same document as {clash.relative_to(root).as_posix()}: "
                    "delete that one first, or upload it under the same name to replace it"
                )
            if (root / relative).is_dir():
                raise Conflict(f"{relative} is a folder in the corpus")
        try:
            return _write_all(root, planned)
        except OSError as exc:
            raise InvalidRequest(f"the files could not be written ({exc.strerror or exc.__class__.__name__})") from None


def delete_document(corpus_dir: Path, index_dir: Path, document_id: str) -> str:
    """Remove the file behind `document_id` from the corpus; returns its path relative to the corpus."""
    shown = document_id if len(document_id) <= 200 else document_id[:200] + "…"
    parts = document_id.split("/")
    # Only what is structurally unsafe: files put in the folder by hand may have names an upload refuses.
    if len(document_id) > 4096 or any(
        not p or p in {".", ".."} or p.startswith(".") or "\x00" in p or "\\" in p for p in parts
    ):
        raise InvalidRequest(f"{shown!r} is not a document id")
    root = corpus_dir.resolve()
    with corpus_lock(index_dir):
        file = _file_of(root, document_id)
        if file is None:
            raise DocumentNotFound(f"no document {shown!r} in the corpus folder")
        try:
            file.unlink()
        except OSError as exc:
            raise InvalidRequest(f"{shown!r} could not be removed ({exc.strerror or exc.__class__.__name__})") from None
        _remove_empty_folders(file.parent, root)
        return file.relative_to(root).as_posix()


def _remove_empty_folders(folder: Path, root: Path) -> None:
    """Remove `folder` and then its parents while they are empty, never `root`: deleting the last document of
    an upload's folder leaves no empty folder behind. A folder that is not empty (or cannot go) stays."""
    while folder != root and folder.is_relative_to(root):
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def safe_name(filename: str) -> str:
    """The file's own name (any folder part dropped), or InvalidRequest when nothing safe is left."""
    name = unicodedata.normalize("NFC", PurePosixPath(filename.replace("\\", "/")).name).strip()
    shown = filename if len(filename) <= 100 else filename[:100] + "…"
    if not name or name in {".", ".."} or name.startswith(".") or name.endswith(".") or _UNSAFE.search(name):
        raise InvalidRequest(f"{shown!r} is not an acceptable file name")
    if len(name.encode("utf-8", "surrogatepass")) > _MAX_PART_BYTES:
        raise InvalidRequest(f"the file name is longer than {_MAX_PART_BYTES} bytes")
    return name


def safe_folder(folder: str) -> PurePosixPath:
    """A relative folder inside the corpus; InvalidRequest for absolute paths, `..`, hidden or odd parts."""
    cleaned = unicodedata.normalize("NFC", folder.strip().strip("/"))
    if not cleaned:
        return PurePosixPath()
    if folder.strip().startswith("/") or "\\" in cleaned:
        raise InvalidRequest(f"folder {folder[:100]!r} must be a relative path such as `reports/2026`")
    parts = cleaned.split("/")
    shown = folder if len(folder) <= 100 else folder[:100] + "…"
    for part in parts:
        if not part or part in {".", ".."} or part.startswith(".") or _UNSAFE.search(part):
            raise InvalidRequest(f"folder {shown!r} must stay inside the corpus (no `..`, hidden or empty parts)")
        # As for file names: Windows drops a trailing dot or space, so `notes.` and `notes` would be one folder
        if part.endswith(".") or part != part.strip():
            raise InvalidRequest(f"folder {shown!r}: a folder name may not end in a dot, nor begin or end with a space")
        if len(part.encode("utf-8", "surrogatepass")) > _MAX_PART_BYTES:
            raise InvalidRequest(f"a folder name is longer than {_MAX_PART_BYTES} bytes")
    if len(parts) > _MAX_DEPTH:
        raise InvalidRequest(f"folder {shown!r} is more than {_MAX_DEPTH} levels deep")
    return PurePosixPath(*parts)


def _check_inside(root: Path, relative: str) -> None:
    """Refuse a target that resolves outside the corpus (for example through a symlinked folder)."""
    target = (root / relative).resolve()
    if not target.is_relative_to(root):
        raise InvalidRequest(f"{relative} would be written outside the corpus folder")


def _file_of(root: Path, document_id: str) -> Path | None:
    """The corpus file whose id is `document_id`, whatever its extension, never through a symlinked folder
    (the build does not follow those either, so nothing outside the corpus is a document)."""
    stem = root / document_id
    folder = stem.parent
    if not folder.is_dir() or folder.resolve() != folder or not folder.is_relative_to(root):
        return None
    for candidate in sorted(folder.iterdir()):
        if candidate.is_file() and candidate.stem == stem.name and candidate.suffix.lower() in SUFFIXES:
            return candidate
    return None


def _write_all(root: Path, planned: dict[str, tuple[Upload, int]]) -> list[Stored]:
    written: list[tuple[Path, bytes | None]] = []  # target, previous content (None: it was new)
    created: list[Path] = []  # folders made for this upload, removed again if it fails
    stored = []
    try:
        for relative, (upload, sections) in planned.items():
            target = root / relative
            previous = target.read_bytes() if target.is_file() else None
            missing = [p for p in reversed(target.relative_to(root).parents) if p.parts and not (root / p).exists()]
            target.parent.mkdir(parents=True, exist_ok=True)
            created.extend(root / p for p in missing)
            write_atomically(target, upload.content)
            written.append((target, previous))
            stored.append(
                Stored(
                    document_id=PurePosixPath(relative).with_suffix("").as_posix(),
                    source=relative,
                    bytes=len(upload.content),
                    sections=sections,
                    replaced=previous is not None,
                )
            )
    except OSError:
        for target, previous in reversed(written):
            if previous is None:
                target.unlink(missing_ok=True)
            else:
                write_atomically(target, previous)
        for folder in reversed(created):
            with suppress(OSError):
                folder.rmdir()
        raise
    return stored


def _kinds() -> str:
    return ", ".join(sorted(SUFFIXES))
