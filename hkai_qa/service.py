"""The question-answering service: one loaded index and model, used by the API and the CLI."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import unicodedata
from dataclasses import dataclass, replace

import numpy as np
from cachetools import LRUCache

from hkai_qa.answering import RELATED_SECTIONS, extract_answer, related_sections
from hkai_qa.batching import QuestionBatcher
from hkai_qa.config import Settings
from hkai_qa.embedding import Embedder, embedder_for
from hkai_qa.errors import DocumentNotFound, IndexInvalid, InvalidRequest, ModelNotFound, Overloaded
from hkai_qa.index import Index, load_index, load_version
from hkai_qa.languages import MULTILINGUAL, fold_width, refused_character
from hkai_qa.multilingual_embedding import DIMENSION, multilingual_embedder_for
from hkai_qa.retrieval import Retriever
from hkai_qa.types import Answer, Document, Hit
from hkai_qa.versions import current_version

MAX_TOP_K = 20
log = logging.getLogger("hkai_qa.service")


@dataclass(frozen=True, slots=True)
class Passage:
    """A search result: a chunk with its text and titles."""

    hit: Hit
    document_title: str
    section: str
    text: str


class QAService:
    """Loads the model and the current index; answers questions and searches; swaps in new versions.

    The served index is one `Retriever` (which holds its `Index`), replaced by a single assignment when a
    new version loads. A request takes it once and uses it to the end, so requests in flight finish on the
    version they started with, and a version that fails validation is refused while the old one serves on.

    Over HTTP (`ask_async`, `search_async`) questions are encoded by the micro-batcher on its own thread,
    never on the event loop, and answers to repeated questions come from a small cache keyed by the
    question with its whitespace normalised (not its case: the multilingual model and the confidence model
    read case, so "CEO" and "ceo" can get different confidences), `top_k` and the index version. The CLI
    and the eval (`ask`) encode directly and never use the cache, so what they measure is the real work.
    """

    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self.embedder = embedder or embedder_for(settings)
        # Questions in other scripts, and the sentence vectors builds give them (None: HKAI_QA_MULTILINGUAL off).
        self.multilingual = multilingual_embedder_for(settings)
        self._retriever = self._retriever_for(
            load_index(settings.index_dir, settings.model, multilingual=self.multilingual is not None)
        )
        self._reload_lock = threading.Lock()
        self.refused: dict[str, str] = {}  # version -> why it was refused
        self._encode_questions = self.embedder.question_encoder()
        self._encode_questions(["The first call allocates; it belongs to loading."])
        if self._retriever.multilingual and self.multilingual is not None:
            self.multilingual.encode_questions(["載入時先行一次。"])
        # Questions waiting for or inside the multilingual model: bounded like the English batcher's queue.
        self._multilingual_pending = threading.BoundedSemaphore(settings.max_pending)
        self.batcher = QuestionBatcher(
            self._encode_questions, settings.max_batch, settings.batch_window_ms / 1000, settings.max_pending
        )
        self._answers: LRUCache[tuple[str, int, str, str], Answer] | None = (
            LRUCache(maxsize=settings.answer_cache) if settings.answer_cache else None
        )
        self._answers_lock = threading.Lock()
        self.cache_hits = 0

    def close(self) -> None:
        """Stop the batcher's worker thread."""
        self.batcher.close()

    @property
    def index(self) -> Index:
        """The index being served now."""
        return self._retriever.index

    @property
    def retriever(self) -> Retriever:
        """The retriever over the index being served now."""
        return self._retriever

    def snapshot(self) -> Retriever:
        """The served version, for one request to use from start to end."""
        return self._retriever

    def reload(self) -> bool:
        """Load the version CURRENT names if it is not the one served; True when it swapped.

        IndexInvalid (or IndexNotFound) when the new version cannot be used; the old one keeps serving.
        """
        with self._reload_lock:
            version = current_version(self.settings.index_dir)
            if version == self.index.version:
                return False
            try:
                fresh = self._retriever_for(
                    load_version(
                        self.settings.index_dir,
                        version,
                        self.settings.model,
                        multilingual=self.multilingual is not None,
                    )
                )
            except IndexInvalid as exc:
                if version not in self.refused:
                    log.error("refused index version %s, still serving %s: %s", version, self.index.version, exc)
                self.refused[version] = exc.message
                raise
            self._retriever = fresh
            log.info("now serving index version %s", version)
            return True

    def ask(self, question: str, top_k: int = 3, snapshot: Retriever | None = None) -> tuple[Answer, float]:
        """Answer a question; returns the answer and the milliseconds it took."""
        started = time.perf_counter()
        retriever = snapshot or self._retriever
        asked, question = question.strip(), self._check(question, top_k, "question")
        vector, hits = self.retrieve(question, top_k, retriever)
        answer = extract_answer(question, vector, hits, retriever, top_k, self.settings.min_confidence)
        if answer.text is None and retriever.other_script_pass(question):
            other = self._encode(question, retriever, MULTILINGUAL)
            answer = self._with_other_scripts_related(question, hits, other, retriever, answer)
        return replace(answer, question=asked), (time.perf_counter() - started) * 1000

    async def ask_async(
        self, question: str, top_k: int = 3, snapshot: Retriever | None = None
    ) -> tuple[Answer, float, bool]:
        """`ask` for the event loop: batched encoding, the answer cache; also says whether it was cached.

        The steps after encoding (BM25, FAISS, extraction) take well under a millisecond on the default
        corpus and need the GIL anyway, so they run here rather than pay for a hop to a thread.
        """
        started = time.perf_counter()
        retriever = snapshot or self._retriever
        asked, question = question.strip(), self._check(question, top_k, "question")
        space = retriever.space_for(question)
        key = (" ".join(question.split()), top_k, retriever.index.version, space)
        cached = self._cached(key)
        if cached is not None:
            return replace(cached, question=asked), (time.perf_counter() - started) * 1000, True
        vector = await self._encode_async(question, retriever)
        hits = retriever.rank(question, vector, None, max(self.settings.candidates, top_k))
        answer = extract_answer(question, vector, hits, retriever, top_k, self.settings.min_confidence)
        complete = True
        if answer.text is None:
            other, complete = await self._other_scripts_vector(question, retriever)
            if other is not None:
                answer = self._with_other_scripts_related(question, hits, other, retriever, answer)
        if self._answers is not None and complete:
            with self._answers_lock:
                self._answers[key] = answer
        return replace(answer, question=asked), (time.perf_counter() - started) * 1000, False

    def _cached(self, key: tuple[str, int, str, str]) -> Answer | None:
        if self._answers is None:
            return None
        with self._answers_lock:
            answer = self._answers.get(key)
            if answer is not None:
                self.cache_hits += 1
        return answer

    def retrieve(
        self, question: str, top_k: int = 3, snapshot: Retriever | None = None
    ) -> tuple[np.ndarray, list[Hit]]:
        """The question's vector and the chunks whose sentences compete for the answer."""
        retriever = snapshot or self._retriever
        vector = self._encode(question, retriever)
        return vector, retriever.rank(question, vector, None, max(self.settings.candidates, top_k))

    def _with_other_scripts_related(
        self, question: str, hits: list[Hit], other: np.ndarray, retriever: Retriever, abstention: Answer
    ) -> Answer:
        """An English question the English documents do not answer, in an index that also holds Chinese ones:
        the closest sections come from both rankings merged, the Chinese chunks ranked by the multilingual
        model (`other`) merged with the English ranking the answer was sought in (`hits`). They are offered to
        read, never taken as the answer: across languages that model's confidence does not tell a right answer
        from an off-topic one well enough (see the README).

        The two rankings are joined as `/search` joins them (`Retriever.across_scripts`); when that still leaves
        no Chinese section among the related ones, the closest Chinese section takes the last place, so a reader
        always sees the nearest section in each language."""
        chinese = retriever.rank_other_scripts(question, other, self.settings.candidates)
        merged = retriever.across_scripts(hits, chinese, other, len(hits) + len(chinese))
        index = retriever.index
        related = related_sections(merged, index)
        shown = list(dict.fromkeys((hit.chunk.document_id, hit.chunk.section) for hit in merged))[: len(related)]
        if chinese and not set(shown) & {(hit.chunk.document_id, hit.chunk.section) for hit in chinese}:
            related = (*related[: RELATED_SECTIONS - 1], *related_sections(chinese, index, limit=1))
        return replace(abstention, related=related)

    async def _other_scripts_vector(self, text: str, retriever: Retriever) -> tuple[np.ndarray | None, bool]:
        """The multilingual vector of an English text when the index holds chunks in other scripts (None when it
        does not), and whether the result is complete: this pass is optional, so when the multilingual model's
        queue is full the English result stands alone (and is not cached) rather than fail with a 503."""
        if not retriever.other_script_pass(text):
            return None, True
        try:
            return await self._encode_async(text, retriever, MULTILINGUAL), True
        except Overloaded:
            return None, False

    def search(self, query: str, top_k: int = 10, snapshot: Retriever | None = None) -> tuple[list[Passage], float]:
        """The best passages for a query, most relevant first, and the milliseconds it took."""
        started = time.perf_counter()
        retriever = snapshot or self._retriever
        query = self._check(query, top_k, "query")
        hits = self.ranking(query, top_k, snapshot=retriever)
        return self._passages(hits, retriever), (time.perf_counter() - started) * 1000

    def ranking(
        self,
        text: str,
        k: int,
        mode: str = "hybrid",
        snapshot: Retriever | None = None,
        vector: np.ndarray | None = None,
    ) -> list[Hit]:
        """The chunks `/search` lists for a text: its own space's ranking, merged with the Chinese chunks'
        ranking for an English text when the index has them. `vector`: the text's vector in its own space,
        when the caller has it already."""
        retriever = snapshot or self._retriever
        vector = self._encode(text, retriever) if vector is None else vector
        other = self._encode(text, retriever, MULTILINGUAL) if retriever.other_script_pass(text) else None
        return retriever.rank(text, vector, other, k, mode)

    async def search_async(
        self, query: str, top_k: int = 10, snapshot: Retriever | None = None
    ) -> tuple[list[Passage], float]:
        """`search` for the event loop, with the query encoded by the micro-batcher."""
        started = time.perf_counter()
        retriever = snapshot or self._retriever
        query = self._check(query, top_k, "query")
        vector = await self._encode_async(query, retriever)
        other, _ = await self._other_scripts_vector(query, retriever)
        hits = retriever.rank(query, vector, other, top_k)
        return self._passages(hits, retriever), (time.perf_counter() - started) * 1000

    def _retriever_for(self, index: Index) -> Retriever:
        """A retriever that uses the index's multilingual space only when this process has the very model that
        built it (same fingerprint and width); otherwise questions in other scripts get no answer, never one
        matched by the wrong model, and a rebuild (`hkai-qa build`) brings the space back."""
        entry = index.manifest.get("multilingual")
        if self.multilingual is None or entry is None:
            return Retriever(index, multilingual=False)
        try:
            fingerprint = self.multilingual.fingerprint
        except ModelNotFound as exc:
            log.warning("index version %s: %s; questions in other scripts get no answer", index.version, exc)
            return Retriever(index, multilingual=False)
        if entry.get("fingerprint") != fingerprint or entry.get("dimension") != DIMENSION:
            log.warning(
                "index version %s was built with another multilingual model (%s, not %s): questions in other "
                "scripts get no answer until `hkai-qa build` rebuilds it",
                index.version,
                entry.get("fingerprint"),
                fingerprint,
            )
            return Retriever(index, multilingual=False)
        return Retriever(index)

    def _encode(self, text: str, retriever: Retriever, space: str | None = None) -> np.ndarray:
        """The question's vector in `space`, by default the one the retriever matches it in."""
        if (space or retriever.space_for(text)) == MULTILINGUAL and self.multilingual is not None:
            vectors = self.multilingual.encode_questions([text])
        else:
            vectors = self._encode_questions([text])
        vector: np.ndarray = vectors[0]
        return vector

    async def _encode_async(self, text: str, retriever: Retriever, space: str | None = None) -> np.ndarray:
        """`_encode` off the event loop: English through the micro-batcher, the multilingual model on a worker
        thread; Overloaded (503) at once when `max_pending` of those are already waiting, as for English."""
        if (space or retriever.space_for(text)) == MULTILINGUAL and self.multilingual is not None:
            if not self._multilingual_pending.acquire(blocking=False):
                raise Overloaded("the server is busy answering other questions; try again in a moment")
            try:
                vector: np.ndarray = await asyncio.to_thread(self._encode, text, retriever, MULTILINGUAL)
            finally:
                self._multilingual_pending.release()
        else:
            vector = await asyncio.wrap_future(self.batcher.submit(text))
        return vector

    @staticmethod
    def _passages(hits: list[Hit], retriever: Retriever) -> list[Passage]:
        index = retriever.index
        passages = [
            Passage(
                hit=hit,
                document_title=index.documents[hit.chunk.document_id].title,
                section=index.section_of(hit.chunk).title,
                text=index.chunk_text(hit.chunk),
            )
            for hit in hits
        ]
        return passages

    def document(self, document_id: str, snapshot: Retriever | None = None) -> Document:
        """One indexed document by id; DocumentNotFound otherwise."""
        try:
            return (snapshot or self._retriever).index.documents[document_id]
        except KeyError:
            shown = document_id if len(document_id) <= 200 else document_id[:200] + "…"
            raise DocumentNotFound(f"no document with id {shown!r}") from None

    def _check(self, text: str, top_k: int, field: str) -> str:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidRequest(f"the {field} is not valid Unicode text (it holds a lone surrogate)") from None
        refused = refused_character(text)
        if refused is not None:
            raise InvalidRequest(f"{field}: {refused[1]}")
        text = text.strip()
        if not any(character.isalnum() for character in text):
            raise InvalidRequest(f"the {field} is empty (it has no letters or digits)")
        if len(text) > self.settings.max_question_chars:
            raise InvalidRequest(f"the {field} is longer than {self.settings.max_question_chars} characters")
        if not 1 <= top_k <= MAX_TOP_K:
            raise InvalidRequest(f"top_k must be between 1 and {MAX_TOP_K}")
        # Full-width "ＡＳＴＲＩ" (as a Chinese input method types it) is ASTRI to both models and to BM25, and a
        # decomposed "Zu\u0308rich" (as macOS types it) is "Zürich"; the answer still shows the question as asked.
        return unicodedata.normalize("NFC", fold_width(text))
