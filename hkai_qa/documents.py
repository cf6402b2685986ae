"""Read a corpus folder into Documents with titled sections (sections.py) and offsets into each document's text.

Markdown and plain text are stored as they are, but with LF line endings whether the file used LF, CRLF or a
lone CR (classic Mac); HTML pages and PDFs are stored as the text formats.py takes out of them (Markdown for a
page, the text layer of each page for a PDF), so offsets always index Document.text.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path, PurePosixPath

from hkai_qa.chunking import only_source_lines
from hkai_qa.errors import (
    CorpusNotFound,
    EmptyCorpus,
    HkaiError,
    InvalidRequest,
    UnreadableDocument,
    UnsupportedFormat,
)
from hkai_qa.formats import Extracted, extract_html, extract_pdf, has_words, normalise_line_endings
from hkai_qa.sections import heading_sections, markdown_sections, plain_sections
from hkai_qa.types import Corpus, Document, Section

MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})
TEXT_SUFFIXES = frozenset({".txt"})
HTML_SUFFIXES = frozenset({".html", ".htm"})
PDF_SUFFIXES = frozenset({".pdf"})
SUFFIXES = MARKDOWN_SUFFIXES | TEXT_SUFFIXES | HTML_SUFFIXES | PDF_SUFFIXES

log = logging.getLogger("hkai_qa.documents")


def load_corpus(corpus_dir: Path, lock: AbstractContextManager[object] | None = None) -> Corpus:
    """Read every supported file under `corpus_dir` (recursively); unreadable files are skipped with a reason.

    `lock`, when given, is held while the folder is listed and the files are read, not while they are parsed,
    so writers wait for a consistent snapshot and no longer.
    """
    if not corpus_dir.is_dir():
        raise CorpusNotFound(f"corpus folder not found: {corpus_dir}")
    contents: list[tuple[str, bytes | str]] = []  # relative path, bytes or why they could not be read
    with lock or nullcontext():
        paths = _corpus_files(corpus_dir)
        sources: dict[str, str] = {}
        for path in paths:
            relative = path.relative_to(corpus_dir).as_posix()
            doc_id = _document_id(relative)
            if doc_id in sources:  # checked by name, so fixing an unreadable file never turns into a clash later
                raise InvalidRequest(
                    f"{sources[doc_id]} and {relative} would both be document {doc_id!r}: rename one of them"
                )
            sources[doc_id] = relative
        for path in paths:
            relative = path.relative_to(corpus_dir).as_posix()
            try:
                contents.append((relative, path.read_bytes()))
            except FileNotFoundError:
                continue  # deleted since the folder was listed, so no longer part of the corpus
            except OSError as exc:
                contents.append((relative, _read_error(exc)))
    documents: list[Document] = []
    skipped: list[tuple[str, str]] = []
    for relative, raw in contents:
        if isinstance(raw, str):
            skipped.append((relative, raw))
            continue
        try:
            documents.append(_decode(raw, relative))
        except UnreadableDocument as exc:
            skipped.append((relative, exc.message))
    if not documents:
        kinds = ", ".join(sorted(SUFFIXES))
        if skipped:
            first, reason = skipped[0]
            raise EmptyCorpus(
                f"no readable documents in corpus folder {corpus_dir}: {len(skipped)} file(s) skipped, "
                f"the first because {first}: {reason}"
            )
        raise EmptyCorpus(f"no documents ({kinds}) in corpus folder: {corpus_dir}")
    return Corpus(documents=tuple(sorted(documents, key=lambda d: d.id)), skipped=tuple(skipped))


def read_document(path: Path, corpus_dir: Path) -> Document:
    """Read one file; its id is its path relative to the corpus without the extension."""
    relative = path.relative_to(corpus_dir).as_posix()
    return decode_document(_read_bytes(path, relative), relative)


def decode_document(raw: bytes, relative: str) -> Document:
    """Turn a file's bytes into a Document; `relative` is its posix path in the corpus and gives its id."""
    try:
        return _decode(raw, relative)
    except UnreadableDocument as exc:
        raise UnreadableDocument(f"{relative}: {exc.message}") from exc


def parse_document(doc_id: str, text: str, source: str) -> Document:
    """Split text into sections: Markdown headings for .md/.markdown (and HTML's Markdown), heading lines else.

    Line endings become LF first, so the offsets index the Document's text as well as the parser's lines."""
    text = normalise_line_endings(text)
    if Path(source).suffix.lower() in MARKDOWN_SUFFIXES | HTML_SUFFIXES:
        title, sections = markdown_sections(text)
    else:
        title, sections = plain_sections(text)
    return _document(doc_id, title, source, text, sections)


def _decode(raw: bytes, relative: str) -> Document:
    """decode_document without the file name in its errors, which load_corpus lists beside the name."""
    suffix = PurePosixPath(relative).suffix.lower()
    if suffix not in SUFFIXES:
        kinds = ", ".join(sorted(SUFFIXES))
        found = f"{suffix!r} files" if suffix else "files without an extension"
        raise UnsupportedFormat(f"{relative}: {found} are not supported (supported: {kinds})")
    if not raw:
        raise UnreadableDocument("empty file")
    try:
        return _decode_format(raw, relative, suffix)
    except HkaiError:
        raise
    except Exception as exc:  # a decoder's bug costs this one file: never a whole build, never a 500 for an upload
        log.exception("unexpected error reading %s", relative)
        raise UnreadableDocument(f"could not be read ({type(exc).__name__})") from exc


def _decode_format(raw: bytes, relative: str, suffix: str) -> Document:
    doc_id = _document_id(relative)
    if suffix in HTML_SUFFIXES:
        document = _extracted_document(doc_id, relative, extract_html(raw))
        missing = "no main text (navigation, scripts, headers, footers and sidebars are not read)"
    elif suffix in PDF_SUFFIXES:
        document = _extracted_document(doc_id, relative, extract_pdf(raw))
        missing = "no text layer (a scanned PDF?)"
    else:
        try:
            text = raw.decode("utf-8-sig")  # a byte-order mark (as Notepad writes) is not text
        except UnicodeDecodeError as exc:
            raise UnreadableDocument(f"not UTF-8 text (byte {exc.start})") from exc
        document = parse_document(doc_id, text, relative)
        missing = "no text outside headings" if has_words(text) else "no text"
    if not any(has_words(document.text[s.start : s.end]) for s in document.sections):
        raise UnreadableDocument(missing)
    if only_source_lines(document):
        # Indexed, it would add nothing an answer could quote, only links to the related sections.
        raise UnreadableDocument("only source lines (such as 'Source: ...'), no text to answer from")
    return document


def _extracted_document(doc_id: str, source: str, extracted: Extracted) -> Document:
    _, sections = heading_sections(extracted.text, list(extracted.headings))
    return _document(doc_id, extracted.title, source, extracted.text, sections)


def _document(doc_id: str, title: str, source: str, text: str, sections: tuple[Section, ...]) -> Document:
    return Document(
        id=doc_id,
        title=title or _title_from_id(doc_id),
        source=source,
        text=text,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        sections=sections,
    )


def _document_id(relative: str) -> str:
    return PurePosixPath(relative).with_suffix("").as_posix()


def _read_bytes(path: Path, relative: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UnreadableDocument(f"{relative}: {_read_error(exc)}") from exc


def _read_error(exc: OSError) -> str:
    return f"cannot be read ({exc.strerror or exc})"


def _corpus_files(corpus_dir: Path) -> list[Path]:
    """Supported, non-hidden files under `corpus_dir`, sorted by path."""
    found: list[Path] = []
    # os.walk skips a folder it cannot list, or one deleted while we walk; Path.rglob raises for the latter.
    for folder, subfolders, names in os.walk(corpus_dir):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        for name in names:
            path = Path(folder, name)
            if not name.startswith(".") and path.suffix.lower() in SUFFIXES and _is_file(path):
                found.append(path)
    return sorted(found)


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()  # False for a FIFO, a socket, a dangling link, or a file already gone
    except OSError:
        return True  # it exists but cannot be examined; reading it will say why


def _title_from_id(doc_id: str) -> str:
    stem = doc_id.rsplit("/", 1)[-1]
    return re.sub(r"[-_]+", " ", stem).strip().capitalize() or doc_id
