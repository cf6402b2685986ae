"""Changes to the corpus folder over HTTP: add uploaded files, delete documents.

Every file is checked before anything is written (name, type, size, text), and all files of one upload are
written or none: each lands through a temporary file and an atomic rename, and a failure part-way puts back
what was there. Names never leave the corpus folder.
"""

from __future__ import annotations

import os
import re
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from hkai_qa.documents import SUFFIXES, decode_document
from hkai_qa.errors import Conflict, DocumentNotFound, InvalidRequest, PayloadTooLarge, UnsupportedFormat

_UNSAFE = re.compile(r"[\x00-\x1f\x7f\\:*?\"<>|]")
_MAX_NAME_CHARS = 200
_writes = threading.Lock()  # one corpus change at a time in this process


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
    corpus_dir: Path, uploads: list[Upload], folder: str = "", max_bytes: int = 10_000_000
) -> list[Stored]:
    """Check every upload, then write them all into `corpus_dir/folder`, or nothing if any is bad."""
    if not uploads:
        raise InvalidRequest("no files: send one or more files in the multipart field `files`")
    base = safe_folder(folder)
    planned: dict[str, tuple[Upload, int]] = {}
    for upload in uploads:
        name = safe_name(upload.filename)
        relative = (base / name).as_posix()
        if len(upload.content) > max_bytes:
            raise PayloadTooLarge(f"{name} is {len(upload.content):,} bytes; the limit is {max_bytes:,} bytes per file")
        suffix = PurePosixPath(name).suffix.lower()
        if suffix not in SUFFIXES:
            raise UnsupportedFormat(f"{name}: unsupported file type {suffix or '(none)'}; accepted: {_kinds()}")
        if relative in planned:
            raise InvalidRequest(f"{relative} appears twice in this upload")
        document = decode_document(upload.content, relative)  # UnreadableDocument (422) with the reason
        planned[relative] = (upload, len(document.sections))
    with _writes:
        corpus_dir.mkdir(parents=True, exist_ok=True)
        root = corpus_dir.resolve()
        for relative in planned:
            _check_inside(root, relative)
            clash = _file_of(root, PurePosixPath(relative).with_suffix("").as_posix())
            if clash is not None and clash.relative_to(root).as_posix() != relative:
                raise Conflict(
                    f"{relative} would be the same document as {clash.relative_to(root).as_posix()}: "
                    "delete that one first, or upload it under the same name to replace it"
                )
        return _write_all(root, planned)


def delete_document(corpus_dir: Path, document_id: str) -> str:
    """Remove the file behind `document_id` from the corpus; returns its path relative to the corpus."""
    parts = PurePosixPath(document_id).parts
    if not parts or any(p in {".", ".."} or p.startswith(".") for p in parts) or document_id.startswith("/"):
        raise InvalidRequest(f"{document_id!r} is not a document id")
    with _writes:
        root = corpus_dir.resolve()
        file = _file_of(root, document_id)
        if file is None:
            raise DocumentNotFound(f"no document {document_id!r} in the corpus folder")
        file.unlink()
        return file.relative_to(root).as_posix()


def safe_name(filename: str) -> str:
    """The file's own name (any folder part dropped), or InvalidRequest when nothing safe is left."""
    name = unicodedata.normalize("NFC", PurePosixPath(filename.replace("\\", "/")).name).strip()
    if not name or name in {".", ".."} or name.startswith(".") or _UNSAFE.search(name):
        raise InvalidRequest(f"{filename!r} is not an acceptable file name")
    if len(name) > _MAX_NAME_CHARS:
        raise InvalidRequest(f"the file name is longer than {_MAX_NAME_CHARS} characters")
    return name


def safe_folder(folder: str) -> PurePosixPath:
    """A relative folder inside the corpus; InvalidRequest for absolute paths, `..`, hidden or odd parts."""
    cleaned = unicodedata.normalize("NFC", folder.strip().strip("/"))
    if not cleaned:
        return PurePosixPath()
    if folder.strip().startswith("/") or "\\" in cleaned:
        raise InvalidRequest(f"folder {folder!r} must be a relative path such as `reports/2026`")
    parts = cleaned.split("/")
    for part in parts:
        if not part or part in {".", ".."} or part.startswith(".") or _UNSAFE.search(part):
            raise InvalidRequest(f"folder {folder!r} must stay inside the corpus (no `..`, hidden or empty parts)")
    return PurePosixPath(*parts)


def _check_inside(root: Path, relative: str) -> None:
    """Refuse a target that resolves outside the corpus (for example through a symlinked folder)."""
    target = (root / relative).resolve()
    if not target.is_relative_to(root):
        raise InvalidRequest(f"{relative} would be written outside the corpus folder")


def _file_of(root: Path, document_id: str) -> Path | None:
    """The corpus file whose id is `document_id`, whatever its extension."""
    stem = root / document_id
    if not stem.parent.is_dir():
        return None
    for candidate in stem.parent.iterdir():
        if candidate.is_file() and candidate.stem == stem.name and candidate.suffix.lower() in SUFFIXES:
            return candidate
    return None


def _write_all(root: Path, planned: dict[str, tuple[Upload, int]]) -> list[Stored]:
    written: list[tuple[Path, bytes | None]] = []  # target, previous content (None: it was new)
    stored = []
    try:
        for relative, (upload, sections) in planned.items():
            target = root / relative
            previous = target.read_bytes() if target.is_file() else None
            target.parent.mkdir(parents=True, exist_ok=True)
            _replace(target, upload.content)
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
                _replace(target, previous)
        raise
    return stored


def _replace(target: Path, content: bytes) -> None:
    temporary = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.upload")
    try:
        with temporary.open("wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def _kinds() -> str:
    return ", ".join(sorted(SUFFIXES))
