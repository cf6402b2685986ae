"""Verbatim spans -> Citations a reader can open in one click."""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlencode

from hkai_qa.index import Index
from hkai_qa.types import Citation


def document_url(document_id: str, anchor: str, start: int | None = None, end: int | None = None) -> str:
    """The chat page's link that opens a document at a section, with the span marked."""
    span = f"&start={start}&end={end}" if start is not None and end is not None else ""
    return f"/?{_section_query(document_id, anchor)}{span}#{anchor}"


@lru_cache(maxsize=4096)
def _section_query(document_id: str, anchor: str) -> str:
    return urlencode({"doc": document_id, "section": anchor})


def cite(index: Index, document_id: str, section: int, start: int, end: int, score: float) -> Citation:
    """A citation of `text[start:end]` of a document; the quote is exactly that slice."""
    document = index.documents[document_id]
    heading = document.sections[section]
    return Citation(
        document_id=document_id,
        document_title=document.title,
        section=heading.title,
        quote=document.text[start:end],
        start=start,
        end=end,
        score=round(min(max(score, 0.0), 1.0), 4),
        url=document_url(document_id, heading.anchor, start, end),
    )
