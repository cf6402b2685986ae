"""The question-answering service: one loaded index and model, used by the API and the CLI."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from hkai_qa.answering import extract_answer
from hkai_qa.config import Settings
from hkai_qa.embedding import Embedder
from hkai_qa.errors import DocumentNotFound, InvalidRequest
from hkai_qa.index import Index, load_index
from hkai_qa.retrieval import Retriever, lexical_tokens
from hkai_qa.types import Answer, Document, Hit

MAX_TOP_K = 20


@dataclass(frozen=True, slots=True)
class Passage:
    """A search result: a chunk with its text and titles."""

    hit: Hit
    document_title: str
    section: str
    text: str


class QAService:
    """Loads the model and the current index once; answers questions and searches."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self.embedder = embedder or Embedder(settings.model)
        self.index: Index = load_index(settings.index_dir, settings.model)
        self.retriever = Retriever(self.index)
        self.embedder.warm_up()

    def ask(self, question: str, top_k: int = 3) -> tuple[Answer, float]:
        """Answer a question; returns the answer and the milliseconds it took."""
        started = time.perf_counter()
        question = self._check(question, top_k, "question")
        vector, hits = self.retrieve(question, top_k)
        answer = extract_answer(question, vector, hits, self.retriever, top_k, self.settings.min_confidence)
        return answer, (time.perf_counter() - started) * 1000

    def retrieve(self, question: str, top_k: int = 3) -> tuple[np.ndarray, list[Hit]]:
        """The question's vector and the chunks whose sentences compete for the answer."""
        vector = self.embedder.encode([question])[0]
        return vector, self.retriever.search(vector, lexical_tokens(question), max(self.settings.candidates, top_k))

    def search(self, query: str, top_k: int = 10) -> tuple[list[Passage], float]:
        """The best passages for a query, most relevant first, and the milliseconds it took."""
        started = time.perf_counter()
        query = self._check(query, top_k, "query")
        vector = self.embedder.encode([query])[0]
        hits = self.retriever.search(vector, lexical_tokens(query), top_k)
        passages = [
            Passage(
                hit=hit,
                document_title=self.index.documents[hit.chunk.document_id].title,
                section=self.index.section_of(hit.chunk).title,
                text=self.index.chunk_text(hit.chunk),
            )
            for hit in hits
        ]
        return passages, (time.perf_counter() - started) * 1000

    def document(self, document_id: str) -> Document:
        """One indexed document by id; DocumentNotFound otherwise."""
        try:
            return self.index.documents[document_id]
        except KeyError:
            shown = document_id if len(document_id) <= 200 else document_id[:200] + "…"
            raise DocumentNotFound(f"no document with id {shown!r}") from None

    def _check(self, text: str, top_k: int, field: str) -> str:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidRequest(f"the {field} is not valid Unicode text (it holds a lone surrogate)") from None
        text = text.strip()
        if not any(character.isalnum() for character in text):
            raise InvalidRequest(f"the {field} is empty (it has no letters or digits)")
        if len(text) > self.settings.max_question_chars:
            raise InvalidRequest(f"the {field} is longer than {self.settings.max_question_chars} characters")
        if not 1 <= top_k <= MAX_TOP_K:
            raise InvalidRequest(f"top_k must be between 1 and {MAX_TOP_K}")
        return text
