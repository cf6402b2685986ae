"""Paragraphs -> which are code: kept in chunks as context for retrieval, never cited as an answer.

Plain-text documentation starts a console session with a prompt (">>> "), writes grammar rules ("try_stmt ::=
..."), tracebacks and fenced blocks (```), and indents an example under the line that introduces it ("... is
equivalent to:"); a paragraph made mostly of expressions is code wherever it stands; Markdown's code blocks are
where markdown-it says. Over a corpus of Python documentation the multilingual model ranked such short texts
first for Chinese questions ("class Foo(object): pass" for "when is an object true?").
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence

from markdown_it import MarkdownIt

from hkai_qa.languages import CJK

# Used with match/search on one paragraph, never scanned along a long run of spaces.
_CODE_MARK = re.compile(r"^[ \t]*(?:[\w-]+[ \t]*::=|Traceback \(most recent call last\)|```|~~~)", re.M)
_PROMPT = re.compile(r"[ \t]*>>>(?:[ \t]|$)")
_CODE_CHARACTER = re.compile(r"[=(){}\[\]<>|\\`^~]")
_INLINE_CODE = re.compile(r"`[^`\n]+`")  # Markdown's `make test` names a thing in a sentence
# "sections 3(a) and 4(b)", "the Park[1]": a clause or a footnote named in prose is no expression.
_REFERENCE = re.compile(r"\(\w{1,4}\)$|\[\d{1,3}\]$")
_OPERATOR = re.compile(r"[=<>!]=|[-=]>|<-|:=|\+=|-=|=")
_PROSE_END = (".", "!", "?", ":", ";", "。", "！", "？", "：")
_WORD_EDGES = "\"'“”‘’()[]*,.;:!?"
_PROSE_SHARE = 0.5  # of a paragraph's words: below it, the paragraph is code
_INTRODUCED_PROSE_SHARE = 0.8  # the same for a paragraph opening with a prompt, or indented under a lead-in
# A link: from its scheme (or "www."), never from inside a longer run of letters (which made a search along an
# 80,000-letter token take 45 s), to a space or Chinese text.
LINK = re.compile(
    r"(?<![\w+.-])(?:[a-z][a-z0-9+.-]*://|www\.)[^\s\u3000-\u303f\u3400-\u9fff\uf900-\ufaff\uff00-\uffef]+", re.I
)
# "1.", "1)", "(a)", "IV.", "A." before a title or a list item: a numbered line ending in ":" heads a clause.
NUMBERING = re.compile(r"^\s*(?:\(?(?:\d{1,3}|[ivxlcdm]{1,6}|[a-z])[.)]|\d{1,3}(?:\.\d{1,3})+\.?)\s+", re.I)
# Markdown files only: a page is stored as Markdown too, but its <pre> text as a plain paragraph (formats.py).
_MARKDOWN_SOURCES = (".md", ".markdown")


def markdown_code(text: str, source: str) -> list[tuple[int, int]]:
    """The spans of the fenced and indented code blocks of `text`, in order, as markdown-it reads them (a blank
    line inside a fence does not end it); none unless `source` is a Markdown file."""
    if not source.lower().endswith(_MARKDOWN_SOURCES):
        return []
    lines = line_offsets(text)
    return [
        (lines[token.map[0]], lines[min(token.map[1], len(lines) - 1)])
        for token in MarkdownIt("commonmark").parse(text)
        if token.type in ("fence", "code_block") and token.map
    ]


def code_paragraphs(text: str, paragraphs: Sequence[tuple[int, int]], fenced: Sequence[tuple[int, int]]) -> list[bool]:
    """Which of the paragraphs (start, end) of `text` are code, given its Markdown code blocks `fenced`."""
    starts = [a for a, _ in fenced]
    flags = []
    for start, end in paragraphs:
        # The code spans are sorted and apart: only the last that starts before `end` can overlap.
        last = bisect.bisect_left(starts, end) - 1
        inside = last >= 0 and fenced[last][1] > start
        flags.append(inside or looks_like_code(text[line_start(text, start) : end], introduced_by(text, start)))
    return flags


def looks_like_code(paragraph: str, introduced: bool = False) -> bool:
    """Whether a paragraph, with the indentation of its first line, is code. `introduced`: it stands indented
    under a line that ends in ":"."""
    share = _prose_share(paragraph)
    if _CODE_MARK.search(paragraph) or share < _PROSE_SHARE:
        return True
    prompted = _PROMPT.match(paragraph) is not None
    if prompted and not paragraph.rstrip().endswith(_PROSE_END):
        return True  # a console session ends with what it printed, a quoted e-mail with a full stop
    return (introduced or prompted) and share < _INTRODUCED_PROSE_SHARE


def introduced_by(text: str, start: int) -> bool:
    """Whether the paragraph at `start` is indented under the line before it, and that line ends in ":" without
    being a numbered heading ("1. Redistribution:" heads its clause; "... is equivalent to:" leads into code)."""
    end = text.rfind("\n", 0, start)  # the end of the line before, then of the one before that, ...
    while end >= 0:
        previous_start = text.rfind("\n", 0, end) + 1
        previous = text[previous_start:end]
        if previous.strip():
            lead_in = previous.rstrip().endswith(":") and not NUMBERING.match(previous)
            return lead_in and indentation(text, start) > indentation(text, previous_start)
        end = previous_start - 1
    return False


def indentation(text: str, offset: int) -> int:
    """The indentation, in columns (a tab to the next multiple of 8), of the line of `text` holding `offset`."""
    start = line_start(text, offset)
    end = text.find("\n", start)
    line = text[start : len(text) if end < 0 else end]
    return len(line[: len(line) - len(line.lstrip(" \t"))].expandtabs())


def line_offsets(text: str) -> list[int]:
    """The start offset of every line, and len(text) after the last, as markdown-it's line numbers index them."""
    starts = [0, *(match.end() for match in re.finditer("\n", text))]
    return starts if starts[-1] == len(text) else [*starts, len(text)]


def line_start(text: str, offset: int) -> int:
    """The offset where the line holding `offset` starts."""
    return text.rfind("\n", 0, offset) + 1


def _prose_share(text: str) -> float:
    """The share of the words of `text` that read as prose: not a link, and no expression ("d[key]",
    "__exit__()", "x=1"). Inline Markdown code (`make test`) is a word, an operator ("==", "<=") a word of
    code, other marks alone ("-", "|", "*") no word, and Chinese (or Japanese, Korean) text, written without
    spaces, reads as prose."""
    words = prose = 0
    for word in _INLINE_CODE.sub("code", text).split():
        core = word.strip(_WORD_EDGES)
        if _OPERATOR.fullmatch(core):
            words += 1
            continue
        if not re.search(r"\w", core):
            continue
        words += 1
        core = _REFERENCE.sub("", core)
        if CJK.search(core) or not (LINK.match(core) or _CODE_CHARACTER.search(core)):
            prose += 1
    return prose / words if words else 0.0
