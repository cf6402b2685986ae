"""Verbatim spans -> Citations a reader can open in one click."""

from __future__ import annotations

from urllib.parse import urlencode

from hkai_qa.index import Index
from hkai_qa.types import Citation


def document_url(document_id: str, anchor: str, start: int | None = None, end: int | None = None) -> str:
    """The chat page's link that opens a document at a section, with the span marked."""
    query: dict[str, str | int] = {"doc": document_id, "section": anchor}
    if start is not None and end is not None:
        query.update(start=start, end=end)
    return "/?" + urlencode(query) + f"#{anchor}"


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
