"""HTTP request and response bodies; every field is described for the OpenAPI docs at /docs."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.config import JsonDict
from pydantic_core import PydanticCustomError

from hkai_qa.languages import REFUSED_CHARACTERS, refused_character
from hkai_qa.service import MAX_TOP_K
from hkai_qa.types import Answer, Citation

PLAIN_TEXT = f"^[^{REFUSED_CHARACTERS}]*$"  # in the OpenAPI schema, so clients and fuzzers know it too


def _plain_text(text: str) -> str:
    refused = refused_character(text)
    if refused is None:
        return text
    kind, message = refused
    raise PydanticCustomError(kind, message)


PlainText = Annotated[str, AfterValidator(_plain_text)]
_PLAIN_TEXT_SCHEMA: JsonDict = {"pattern": PLAIN_TEXT}


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: PlainText = Field(
        ...,
        description="The question, 1 to 1,000 characters; no control characters other than tab and line breaks, "
        "no bidirectional overrides or isolates.",
        examples=["What are smart lampposts equipped with?"],
        json_schema_extra=_PLAIN_TEXT_SCHEMA,
    )
    top_k: int = Field(3, ge=1, le=MAX_TOP_K, strict=True, description="How many citations to return at most (1-20).")


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: PlainText = Field(
        ...,
        strict=True,
        description="Words or a question to search for, 1 to 1,000 characters; the same characters as a question.",
        examples=["ASTRI"],
        json_schema_extra=_PLAIN_TEXT_SCHEMA,
    )
    top_k: int = Field(10, ge=1, le=MAX_TOP_K, strict=True, description="How many passages to return (1-20).")


class CitationOut(BaseModel):
    document_id: str = Field(description="Id of the document: its path in the corpus without the extension.")
    document_title: str = Field(description="Title of the document.")
    section: str = Field(description="Title of the section the quote comes from.")
    quote: str = Field(description="The cited text, exactly `text[start:end]` of the document.")
    start: int = Field(description="Start offset of the quote in the document text (Unicode code points).")
    end: int = Field(description="End offset (exclusive) of the quote in the document text.")
    score: float = Field(description="Similarity of the quote to the question, 0 to 1.")
    url: str = Field(description="Link that opens the document in the chat page at this section, span marked.")

    @classmethod
    def from_citation(cls, citation: Citation) -> CitationOut:
        return cls(**{name: getattr(citation, name) for name in cls.model_fields})


class AskResponse(BaseModel):
    question: str = Field(description="The question as answered (surrounding whitespace removed).")
    answer: str | None = Field(description="A verbatim span of the corpus, or null when the documents do not say.")
    confidence: float = Field(ge=0, le=1, description="How likely the answer is supported by the documents, 0 to 1.")
    highlight: list[int] | None = Field(
        description="[start, end] of the phrase that answers, as offsets inside `answer` (Unicode code points); "
        "null when no phrase stands out or there is no answer."
    )
    citations: list[CitationOut] = Field(description="Supporting spans; the first is the one the answer came from.")
    related: list[CitationOut] = Field(
        description="When there is no answer: the closest sections, for a reader to check."
    )
    index_version: str = Field(description="Version of the index that answered.")
    took_ms: float = Field(description="Time spent answering, in milliseconds.")

    @classmethod
    def from_answer(cls, answer: Answer, index_version: str, took_ms: float) -> AskResponse:
        """The one shape of an answer, for the API and `hkai-qa ask --json` alike."""
        return cls(
            question=answer.question,
            answer=answer.text,
            confidence=answer.confidence,
            highlight=list(answer.highlight) if answer.highlight else None,
            citations=[CitationOut.from_citation(c) for c in answer.citations],
            related=[CitationOut.from_citation(c) for c in answer.related],
            index_version=index_version,
            took_ms=round(took_ms, 2),
        )


class SearchHit(BaseModel):
    document_id: str = Field(description="Id of the document.")
    document_title: str = Field(description="Title of the document.")
    section: str = Field(description="Title of the section holding the passage.")
    text: str = Field(description="The passage, exactly `text[start:end]` of the document.")
    start: int = Field(description="Start offset of the passage in the document text.")
    end: int = Field(description="End offset (exclusive) of the passage in the document text.")
    score: float = Field(
        description="Rank fusion of the dense and keyword rankings, 0 to 1: 1 is first in both; a passage only one of "
        "them found scores at most 0.5. It compares passages of one search, not searches. Over documents in both "
        "languages a Chinese query's keyword side is split by script, and an English query's order is fused with the "
        "multilingual model's own order of the same passages: 1 is then first in both orders."
    )


class SearchResponse(BaseModel):
    query: str = Field(description="The query as searched.")
    hits: list[SearchHit] = Field(description="Passages, most relevant first.")
    index_version: str = Field(description="Version of the index searched.")
    took_ms: float = Field(description="Time spent searching, in milliseconds.")


class SectionOut(BaseModel):
    title: str = Field(description="Section title (Introduction / Conclusion for untitled text).")
    start: int = Field(description="Start offset of the section body in the document text.")
    end: int = Field(description="End offset (exclusive) of the section body.")
    anchor: str = Field(description="Anchor of the section in the chat page's document view.")


class DocumentSummary(BaseModel):
    id: str = Field(description="Document id.")
    title: str = Field(description="Document title.")
    sections: list[SectionOut] = Field(description="Sections in order.")


class DocumentList(BaseModel):
    documents: list[DocumentSummary] = Field(description="Every indexed document.")
    index_version: str = Field(description="Version of the index.")
    built_at: str = Field(description="When the index was built (ISO 8601, UTC).")


class DocumentOut(DocumentSummary):
    text: str = Field(description="The full text that offsets refer to.")
    index_version: str = Field(
        description="The index version this text is from: offsets of answers from another may not fit it."
    )


class Health(BaseModel):
    status: str = Field(description="`ok` once the model and index are loaded.")
    index_version: str = Field(description="Version of the loaded index.")
    built_at: str = Field(description="When the index was built.")
    model: str = Field(description="Embedding model name.")
    documents: int = Field(description="Number of documents.")
    sections: int = Field(description="Number of sections.")
    chunks: int = Field(description="Number of chunks.")
    sentences: int = Field(description="Number of sentences.")


class Liveness(BaseModel):
    status: str = Field(description="`ok` while the process answers HTTP.")


class Readiness(BaseModel):
    status: str = Field(description="`ready` once the model and an index are loaded.")
    index_version: str = Field(description="Version of the index being served.")


class ErrorBody(BaseModel):
    type: str = Field(description="Machine-readable error kind.")
    message: str = Field(description="What went wrong, for a person.")
    request_id: str = Field(description="The request's id, also in the X-Request-ID header: quote it in reports.")


class ErrorResponse(BaseModel):
    error: ErrorBody = Field(description="What went wrong.")


class StoredDocument(BaseModel):
    id: str = Field(description="Document id the file will have once indexed (its path without the extension).")
    source: str = Field(description="Where the file was written, relative to the corpus folder.")
    bytes: int = Field(description="Size of the file written.")
    sections: int = Field(description="Sections found in it.")
    replaced: bool = Field(description="True when a file of the same name was replaced.")


class UploadResponse(BaseModel):
    documents: list[StoredDocument]
    message: str = Field(description="What to do next: a rebuild makes the files answerable.")


class DeleteResponse(BaseModel):
    deleted: str = Field(description="Id of the document removed from the corpus folder.")
    source: str = Field(description="The file that was removed, relative to the corpus folder.")
    message: str


class RebuildRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    force: bool = Field(False, strict=True, description="Write a new version even when nothing changed.")


class JobProgress(BaseModel):
    stage: str = Field(description="queued, reading, chunking, embedding, writing, done or failed.")
    done: int = Field(description="Units done in this stage (texts, for embedding).")
    total: int = Field(description="Units in this stage; 0 when unknown.")


class JobOut(BaseModel):
    id: str
    state: str = Field(description="queued, running, succeeded or failed.")
    force: bool
    progress: JobProgress
    created_at: str
    started_at: str | None
    finished_at: str | None
    summary: dict[str, Any] | None = Field(
        description="When succeeded: version, published, counts, added/changed/removed/unchanged, embedded, "
        "reused, skipped files with reasons, seconds."
    )
    error: dict[str, str] | None = Field(description="When failed: type and message; the served index is unchanged.")
    index_version: str | None = Field(
        description="The version being served when the job finished: the new one after a success, the one that "
        "kept serving after a failure; null while the job is queued or running."
    )


class JobList(BaseModel):
    jobs: list[JobOut]
