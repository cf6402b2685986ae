"""Read a corpus folder into Documents with titled sections and character offsets into each file."""

from __future__ import annotations

import hashlib
import re
import statistics
from collections.abc import Iterator
from pathlib import Path

from markdown_it import MarkdownIt

from hkai_qa.errors import CorpusNotFound, EmptyCorpus, InvalidRequest
from hkai_qa.types import Document, Section

MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})
TEXT_SUFFIXES = frozenset({".txt"})
SUFFIXES = MARKDOWN_SUFFIXES | TEXT_SUFFIXES

INTRODUCTION = "Introduction"
CONCLUSION = "Conclusion"

# "1.", "1)", "(a)", "IV.", "A." before a plain-text heading; the numbering is not part of the title.
_NUMBERING = re.compile(r"^\s*(?:\(?(?:\d{1,3}|[ivxlcdm]{1,6}|[a-z])[.)]|\d{1,3}(?:\.\d{1,3})+\.?)\s+", re.I)
_SENTENCE_END = (".", "!", "?", ";", ",", "。", "！", "？")
_MAX_HEADING_WORDS = 15
_MAX_HEADING_CHARS = 120


def load_corpus(corpus_dir: Path) -> list[Document]:
    """Read every .md, .markdown and .txt file under `corpus_dir` (recursively), sorted by id."""
    if not corpus_dir.is_dir():
        raise CorpusNotFound(f"corpus folder not found: {corpus_dir}")
    documents = [read_document(path, corpus_dir) for path in _corpus_files(corpus_dir)]
    sources: dict[str, str] = {}
    for document in documents:
        if document.id in sources:
            raise InvalidRequest(
                f"{sources[document.id]} and {document.source} would both be document {document.id!r}: "
                "rename one of them"
            )
        sources[document.id] = document.source
    if not documents:
        kinds = ", ".join(sorted(SUFFIXES))
        raise EmptyCorpus(f"no documents ({kinds}) in corpus folder: {corpus_dir}")
    return sorted(documents, key=lambda d: d.id)


def read_document(path: Path, corpus_dir: Path) -> Document:
    """Read one file; its id is its path relative to the corpus without the extension."""
    relative = path.relative_to(corpus_dir)
    doc_id = relative.with_suffix("").as_posix()
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark (as Notepad writes) is not text
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"{relative.as_posix()} is not UTF-8 text (byte {exc.start})") from exc
    return parse_document(doc_id, text, relative.as_posix())


def parse_document(doc_id: str, text: str, source: str) -> Document:
    """Split text into sections: Markdown headings for .md/.markdown, heading lines for plain text."""
    markdown = Path(source).suffix.lower() in MARKDOWN_SUFFIXES
    title, spans = _markdown_sections(text) if markdown else _plain_sections(text)
    sections = _with_anchors(spans)
    return Document(
        id=doc_id,
        title=title or _title_from_id(doc_id),
        source=source,
        text=text,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        sections=tuple(sections),
    )


def _corpus_files(corpus_dir: Path) -> Iterator[Path]:
    for path in sorted(corpus_dir.rglob("*")):
        hidden = any(part.startswith(".") for part in path.relative_to(corpus_dir).parts)
        if path.is_file() and not hidden and path.suffix.lower() in SUFFIXES:
            yield path


def _line_offsets(text: str) -> list[int]:
    """Start offset of every line, plus len(text) as a sentinel."""
    starts = [0]
    for match in re.finditer(r"\n", text):
        starts.append(match.end())
    if starts[-1] != len(text):
        starts.append(len(text))
    return starts


_Span = tuple[str, tuple[str, ...], int, int]


def _markdown_sections(text: str) -> tuple[str, list[_Span]]:
    tokens = MarkdownIt("commonmark").parse(text)
    lines = _line_offsets(text)
    headings: list[tuple[int, str, int, int]] = []  # level, title, heading start, body start
    for i, token in enumerate(tokens):
        if token.type == "heading_open" and token.map:
            level = int(token.tag[1])
            title = tokens[i + 1].content.strip()
            first, last = token.map
            headings.append((level, title, lines[first], lines[min(last, len(lines) - 1)]))
    title = next((h[1] for h in headings if h[0] == 1), headings[0][1] if headings else "")
    spans: list[_Span] = []
    if headings and text[: headings[0][2]].strip():
        spans.append((INTRODUCTION, (INTRODUCTION,), 0, headings[0][2]))
    elif not headings and text.strip():
        spans.append((INTRODUCTION, (INTRODUCTION,), 0, len(text)))
    stack: list[tuple[int, str]] = []
    for i, (level, heading, _, body) in enumerate(headings):
        stack = [s for s in stack if s[0] < level] + [(level, heading)]
        end = headings[i + 1][2] if i + 1 < len(headings) else len(text)
        if text[body:end].strip():
            spans.append((heading, tuple(s[1] for s in stack), body, end))
    return title, [_trim(text, span) for span in spans]


def _blocks(text: str) -> list[tuple[int, int, int, int]]:
    """Runs of non-blank lines: (start, end, number of lines, blank lines before)."""
    blocks: list[tuple[int, int, int, int]] = []
    blank = 0
    start = end = -1
    count = 0
    for line in re.finditer(r"[^\n]*(?:\n|$)", text):
        if line.start() == len(text) and not line.group():
            break
        if line.group().strip():
            if start < 0:
                start, count, gap = line.start(), 0, blank
            end = line.start() + len(line.group().rstrip())
            count += 1
        else:
            if start >= 0:
                blocks.append((start, end, count, gap))
                start, blank = -1, 0
            blank += 1
    if start >= 0:
        blocks.append((start, end, count, gap))
    return blocks


def _heading_title(line: str) -> str | None:
    """The title of a plain-text heading line, or None when the line reads as prose."""
    stripped = line.strip()
    if len(stripped) > _MAX_HEADING_CHARS or len(stripped.split()) > _MAX_HEADING_WORDS:
        return None
    if stripped.endswith(_SENTENCE_END) or not re.search(r"\w", stripped):
        return None
    title = _NUMBERING.sub("", stripped).rstrip(":").strip()
    return title or None


def _plain_sections(text: str) -> tuple[str, list[_Span]]:
    blocks = _blocks(text)
    titles = [_heading_title(text[b[0] : b[1]]) if b[2] == 1 else None for b in blocks]
    doc_title = ""
    first = 0
    if blocks and titles[0] and len(blocks) > 1:
        doc_title, first = titles[0] or "", 1
    headings = [
        i >= first and titles[i] is not None and i + 1 < len(blocks) and titles[i + 1] is None
        for i in range(len(blocks))
    ]
    last_heading = max((i for i, h in enumerate(headings) if h), default=len(blocks))
    usual_gap = statistics.median_low([b[3] for b in blocks[1:]] or [1])
    spans: list[_Span] = []
    current: tuple[str, int] | None = None  # (title, body start)
    body_end = -1
    for i in range(first, len(blocks)):
        start, end, _, gap = blocks[i]
        is_heading = headings[i]
        # Only an untitled paragraph after the last section, set apart by extra blank lines, closes the text.
        closing = (
            i > last_heading
            and gap > max(usual_gap, 1)
            and body_end >= 0
            and current is not None
            and current[0] != CONCLUSION
        )
        if is_heading or closing or current is None:
            if current is not None and body_end >= 0:
                spans.append((current[0], (current[0],), current[1], body_end))
            if is_heading:
                current, body_end = (titles[i] or "", blocks[i + 1][0]), -1
                continue
            label = CONCLUSION if closing else INTRODUCTION
            current, body_end = (label, start), -1
        body_end = end
    if current is not None and body_end >= 0:
        spans.append((current[0], (current[0],), current[1], body_end))
    return doc_title, spans


def _trim(text: str, span: _Span) -> _Span:
    title, path, start, end = span
    body = text[start:end]
    return title, path, start + len(body) - len(body.lstrip()), start + len(body.rstrip())


def _with_anchors(spans: list[_Span]) -> list[Section]:
    used: dict[str, int] = {}
    sections = []
    for title, path, start, end in spans:
        slug = re.sub(r"[^\w]+", "-", title.lower()).strip("-") or "section"
        used[slug] = used.get(slug, 0) + 1
        anchor = slug if used[slug] == 1 else f"{slug}-{used[slug]}"
        sections.append(Section(title=title, path=path, start=start, end=end, anchor=anchor))
    return sections


def _title_from_id(doc_id: str) -> str:
    stem = doc_id.rsplit("/", 1)[-1]
    return re.sub(r"[-_]+", " ", stem).strip().capitalize() or doc_id
