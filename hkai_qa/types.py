"""Frozen dataclasses that travel between the stages of the pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Section:
    """A titled stretch of a document; offsets are into the document's text."""

    title: str
    path: tuple[str, ...]
    start: int
    end: int
    anchor: str


@dataclass(frozen=True, slots=True)
class Document:
    """One source file: its id (relative path without extension), text and sections."""

    id: str
    title: str
    source: str
    text: str
    sha256: str
    sections: tuple[Section, ...]


@dataclass(frozen=True, slots=True)
class Sentence:
    """A sentence of a section. `citable` is False for lines such as "Source: ..." that are not answers."""

    document_id: str
    section: int
    start: int
    end: int
    citable: bool = True


@dataclass(frozen=True, slots=True)
class Chunk:
    """A sentence-aligned window inside one section, with offsets into its document."""

    id: int
    document_id: str
    section: int
    start: int
    end: int
    first_sentence: int
    last_sentence: int


@dataclass(frozen=True, slots=True)
class Hit:
    """A retrieved chunk: fused score in (0, 1], rank (0 is best), cosine similarity to the question (in the
    multilingual space, less the language offset for a chunk in another script: hkai_qa/language_offset.py)."""

    chunk: Chunk
    score: float
    rank: int
    similarity: float


@dataclass(frozen=True, slots=True)
class Citation:
    """A verbatim span of a document that supports an answer."""

    document_id: str
    document_title: str
    section: str
    quote: str
    start: int
    end: int
    score: float
    url: str


@dataclass(frozen=True, slots=True)
class Answer:
    """The result of a question: `text` is None when the documents do not support an answer."""

    question: str
    text: str | None
    confidence: float
    citations: tuple[Citation, ...]
    related: tuple[Citation, ...] = field(default=())
    highlight: tuple[int, int] | None = None  # the answering phrase, as offsets inside `text`


@dataclass(frozen=True, slots=True)
class Corpus:
    """The readable documents of a corpus folder, sorted by id, and the files skipped as (source, reason)."""

    documents: tuple[Document, ...]
    skipped: tuple[tuple[str, str], ...]
