"""Text -> its title and titled sections, with character offsets: Markdown headings, or in plain text the
lines that read as headings (standing alone, underlined, or numbered clauses); text before the first heading is
the introduction."""

from __future__ import annotations

import re
import statistics

from markdown_it import MarkdownIt

from hkai_qa.code_blocks import NUMBERING, indentation, introduced_by, line_offsets, line_start, looks_like_code
from hkai_qa.formats import Heading
from hkai_qa.types import Section

INTRODUCTION = "Introduction"
CONCLUSION = "Conclusion"

_SENTENCE_END = (".", "!", "?", ";", ",", "。", "！", "？")
_MAX_HEADING_WORDS = 15
_MAX_HEADING_CHARS = 120
# A line of one mark repeated under (and perhaps over) a title: Markdown's setext headings and reStructuredText's
# sections ("Definitions\n-----------"), as licences and exported documentation write them. Backquotes and
# tildes would be code fences, underscores a form's blanks, dots an ellipsis, quotes a docstring.
_UNDERLINE = re.compile(r"[ \t]*([=\-*^#+])\1{2,}[ \t]*")
_COLUMNS = re.compile(r"\S[ \t]{3,}\S")  # "Currency     Rate": a table's header row, not a title
# A list item ("* constants defined to be false", "- item") is not a heading.
_BULLET = re.compile(r"^\s*[*•·+\-–]\s")
# A numbered heading in Title Case that ends in a full stop, alone on its line ("1. Definitions.") or run in
# before its text ("2. Grant of Copyright License. Subject to ..."), as licences and contracts number their
# clauses. Every word of four letters or more is capitalised and there is one at least, so a numbered step
# ("1. Preheat the oven.", "1. Go to bed.") is not; nor is an abbreviation or an initial ("1. Mr. Chan ...",
# "2. No. 8 signal", "1. LeCun Y. Deep learning.").
_NUMBERED_TITLE = re.compile(
    r"^\s*(?:\d{1,3}(?:\.\d{1,3})+\.?|\d{1,3}\.|[IVXLC]{1,6}\.)\s+(?P<title>[A-Z][\w'’&/-]*(?:\s+[\w'’&/-]+){0,7})\.(?:\s|$)"
)
_ABBREVIATION = re.compile(
    r"(?:^|\s)(?:[A-Z]|Dr|Mr|Mrs|Ms|Prof|St|Sr|Jr|Mt|Rev|Hon|Gov|Sen|Rep|No|Nos|Cap|Fig|Art|Sec|Vol)$"
)
# A heading candidate indented more than the paragraph after it is code or a quotation, unless it is indented
# this far or more: then it is centred.
_CENTRED = 8


def markdown_sections(text: str) -> tuple[str, tuple[Section, ...]]:
    """The title (the first level-1 heading, else the first heading) and sections of Markdown text."""
    return heading_sections(text, _markdown_headings(text))


def heading_sections(text: str, headings: list[Heading]) -> tuple[str, tuple[Section, ...]]:
    """Sections between known headings (Markdown's, or those a page or PDF was read with), each with the path of
    headings above it."""
    title, spans = _heading_spans(text, headings)
    return title, _with_anchors(spans)


def plain_sections(text: str) -> tuple[str, tuple[Section, ...]]:
    """The title (a first line that reads as one) and sections of plain text."""
    title, spans = _plain_spans(text)
    return title, _with_anchors(spans)


_Span = tuple[str, tuple[str, ...], int, int]


def _markdown_headings(text: str) -> list[Heading]:
    tokens = MarkdownIt("commonmark").parse(text)
    lines = line_offsets(text)
    headings: list[Heading] = []
    for i, token in enumerate(tokens):
        if token.type == "heading_open" and token.map:
            first, last = token.map
            headings.append(
                (int(token.tag[1]), tokens[i + 1].content.strip(), lines[first], lines[min(last, len(lines) - 1)])
            )
    return headings


def _heading_spans(text: str, headings: list[Heading]) -> tuple[str, list[_Span]]:
    """Sections between headings, each with the path of headings above it; text before the first is the intro."""
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


_Block = tuple[int, int, int, int]  # start, end, number of lines, blank lines before


def _blocks(text: str) -> list[_Block]:
    """Runs of non-blank lines: (start, end, number of lines, blank lines before)."""
    blocks: list[_Block] = []
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
    """The title of a plain-text heading line, or None when the line reads as prose, a list item or a lead-in
    to what follows ("The simple form, ..., is equivalent to:")."""
    stripped = line.strip()
    if len(stripped) > _MAX_HEADING_CHARS or len(stripped.split()) > _MAX_HEADING_WORDS:
        return None
    numbered = _numbered_title(stripped)
    if numbered is not None and numbered[1] == len(stripped):
        return numbered[0]
    if stripped.endswith(_SENTENCE_END) or not re.search(r"\w", stripped) or _BULLET.match(stripped):
        return None
    title = NUMBERING.sub("", stripped).rstrip(":").strip()
    first_letter = re.search(r"[^\W\d_]", title)
    lowercase = first_letter is not None and first_letter.group().islower()
    if stripped.endswith(":") and ("," in title or lowercase):
        return None
    if lowercase and title != stripped:
        return None  # a numbered list item ("2. check if the module has that name"), not a numbered heading
    return title or None


def _numbered_title(text: str) -> tuple[str, int] | None:
    """A numbered Title Case heading that ends in a full stop, and the offset in `text` just after that stop."""
    match = _NUMBERED_TITLE.match(text)
    if match is None or _ABBREVIATION.search(match.group("title")):
        return None
    long_words = [w for w in match.group("title").split() if len(w) >= 4]
    if not long_words or any(w[0].islower() for w in long_words):
        return None
    return match.group("title"), match.end("title") + 1


def _underlined_title(block: str) -> str | None:
    """The title of a block of a title line and an underline (and perhaps the same overline), or None."""
    lines = block.split("\n")
    if len(lines) not in (2, 3):
        return None
    title, under = lines[-2:]
    if _UNDERLINE.fullmatch(under) is None or (len(lines) == 3 and lines[0].strip() != under.strip()):
        return None
    if len(under.strip()) < max(3, len(title.strip()) // 2) or _COLUMNS.search(title) or _UNDERLINE.fullmatch(title):
        return None
    return _heading_title(title)


def _plain_spans(text: str) -> tuple[str, list[_Span]]:
    """Sections of plain text: headings are lines that read as titles, standing alone or underlined, and
    numbered clause titles."""
    blocks = _split_underlined(text, _blocks(text))
    titles = [
        _heading_title(text[b[0] : b[1]]) if b[2] == 1 else _underlined_title(text[b[0] : b[1]]) if b[2] <= 3 else None
        for b in blocks
    ]
    if blocks and blocks[0][2] > 1 and titles[0] is not None:
        # A text whose title is underlined underlines its headings too: there a short line standing alone is a
        # term, a note or a lead-in ("len(d)", "Note", "is roughly equivalent to"), unless it is numbered.
        for i, (start, end, lines, _) in enumerate(blocks):
            if lines == 1 and not NUMBERING.match(text[start:end]):
                titles[i] = None
    # A numbered clause whose title runs into its text starts a section that holds its own first line, in a text
    # shaped like a licence: one with a clause title alone on its line ("1. Definitions.") or an underlined
    # one. Elsewhere "1. Open Settings. Then tap the network name." is a step.
    run_in = [False] * len(blocks)
    clause_titles = any(
        t is not None and (b[2] > 1 or _numbered_title(text[b[0] : b[1]])) for b, t in zip(blocks, titles, strict=True)
    )
    for i, block in enumerate(blocks):
        clause = _numbered_title(text[block[0] : block[1]]) if titles[i] is None and clause_titles else None
        if clause is not None:
            titles[i], run_in[i] = clause[0], True
    doc_title = ""
    first = 0
    if blocks and titles[0] and not run_in[0] and len(blocks) > 1:
        doc_title, first = titles[0] or "", 1
    headings = [
        i >= first
        and titles[i] is not None
        and (
            run_in[i]
            or (
                i + 1 < len(blocks)
                and titles[i + 1] is None
                and not _indented_over(text, blocks[i], blocks[i + 1])
                and not _leads_into_code(text, blocks[i + 1])
            )
        )
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
            if is_heading and run_in[i]:
                current, body_end = (titles[i] or "", start), end
                continue
            if is_heading:
                current, body_end = (titles[i] or "", blocks[i + 1][0]), -1
                continue
            label = CONCLUSION if closing else INTRODUCTION
            current, body_end = (label, start), -1
        body_end = end
    if current is not None and body_end >= 0:
        spans.append((current[0], (current[0],), current[1], body_end))
    return doc_title, spans


def _indented_over(text: str, line: _Block, body: _Block) -> bool:
    """A line indented further than the paragraph after it, neither centred nor numbered ("  1. The Rise of AI:"
    is a heading), is code or a quotation."""
    indent = indentation(text, line[0])
    return indentation(text, body[0]) < indent < _CENTRED and not NUMBERING.match(text[line[0] : line[1]])


def _leads_into_code(text: str, body: _Block) -> bool:
    """Whether the line before `body` ends in ":" over code indented further ("The following code:")."""
    return introduced_by(text, body[0]) and looks_like_code(text[line_start(text, body[0]) : body[1]], introduced=True)


def _split_underlined(text: str, blocks: list[_Block]) -> list[_Block]:
    """A title and its underline stand apart from a paragraph that follows them at once ("Definitions\n-----\n
    A term means ..."), as Markdown and reStructuredText allow."""
    split: list[_Block] = []
    for start, end, lines, gap in blocks:
        first = text.find("\n", start)
        second = text.find("\n", first + 1)
        if lines > 2 and _underlined_title(text[start:second]) is not None:
            split.extend([(start, second, 2, gap), (second + 1, end, lines - 2, 0)])
        else:
            split.append((start, end, lines, gap))
    return split


def _trim(text: str, span: _Span) -> _Span:
    title, path, start, end = span
    body = text[start:end]
    return title, path, start + len(body) - len(body.lstrip()), start + len(body.rstrip())


def _with_anchors(spans: list[_Span]) -> tuple[Section, ...]:
    used: dict[str, int] = {}
    sections = []
    for title, path, start, end in spans:
        slug = re.sub(r"[^\w]+", "-", title.lower()).strip("-") or "section"
        used[slug] = used.get(slug, 0) + 1
        anchor = slug if used[slug] == 1 else f"{slug}-{used[slug]}"
        sections.append(Section(title=title, path=path, start=start, end=end, anchor=anchor))
    return tuple(sections)
