"""Question -> ranked Hits: dense FAISS search and BM25 over the same chunks, fused by rank."""

from __future__ import annotations

import math
import re
from collections import Counter
from functools import lru_cache

import bm25s
import numpy as np
import Stemmer
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from hkai_qa.index import Index, embedding_text
from hkai_qa.types import Hit

# Words that carry meaning in this domain ("first cohort", "six principles", "found") stay searchable.
_KEEP = {
    "first", "second", "third", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "fifteen", "twenty", "forty", "fifty", "sixty", "hundred", "found", "fire", "bill",
    "call", "empty", "fill", "full", "front", "move", "name", "show", "side", "top", "part", "system", "interest",
}  # fmt: skip
STOPWORDS = frozenset(ENGLISH_STOP_WORDS - _KEEP) | {"s", "does", "did", "tell"}
# Identifiers keep their inner punctuation: "HK$3", "2.0", "AI-powered", "R&D"; parts are indexed too.
_TOKEN = re.compile(r"[^\W_]+(?:[.$&/+-][^\W_]+)*")
_RRF_K = 60
MODES = ("hybrid", "dense", "bm25")
_stemmer = Stemmer.Stemmer("english")


@lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    return str(_stemmer.stemWord(word)) if word.isalpha() else word


def lexical_tokens(text: str) -> list[str]:
    """Lower-cased, stemmed content tokens; compound identifiers also yield their parts."""
    tokens: list[str] = []
    for match in _TOKEN.finditer(text.lower().replace("’", "'")):
        word = match.group()
        parts = re.split(r"[.$&/+-]", word) if not word.isalnum() else []
        for token in (word, *parts):
            if token and token not in STOPWORDS:
                tokens.append(_stem(token))
    return tokens


class Retriever:
    """Hybrid search over one loaded index; BM25 statistics are built once per index."""

    def __init__(self, index: Index) -> None:
        self.index = index
        corpus = [
            lexical_tokens(embedding_text(index.documents[c.document_id], index.section_of(c), index.chunk_text(c)))
            for c in index.chunks
        ]
        self._bm25 = bm25s.BM25()
        self._bm25.index(corpus, show_progress=False)
        frequency: Counter[str] = Counter()
        for tokens in corpus:
            frequency.update(set(tokens))
        self._df = frequency
        self._n = max(len(corpus), 1)
        # Each sentence's tokens together with its section titles, for answer extraction.
        section_tokens = {
            (c.document_id, c.section): set(lexical_tokens(" ".join(index.section_of(c).path))) for c in index.chunks
        }
        self.sentence_tokens = [
            frozenset(lexical_tokens(index.sentence_text(s)) + list(section_tokens.get((s.document_id, s.section), ())))
            for s in index.sentences
        ]

    def seen(self, token: str) -> bool:
        """Whether any chunk contains the token."""
        return token in self._df

    def idf(self, token: str) -> float:
        """Inverse document frequency over chunks; unseen tokens weigh the most."""
        df = self._df.get(token, 0)
        return math.log(1.0 + (self._n - df + 0.5) / (df + 0.5))

    def search(self, vector: np.ndarray, tokens: list[str], k: int, mode: str = "hybrid") -> list[Hit]:
        """The best `k` chunks for a question vector and its lexical tokens.

        The dense side ranks a chunk by its own similarity plus that of its closest sentence, so one
        sentence that matches the question well is not drowned by the rest of its chunk; BM25 ranks
        chunks with their titles; the two rankings are fused by reciprocal rank.
        """
        if mode not in MODES:
            raise ValueError(f"unknown retrieval mode {mode!r}: expected one of {', '.join(MODES)}")
        depth = min(max(k * 4, 50), len(self.index.chunks))
        if depth == 0:
            return []
        similarities, ids = self.index.chunk_vectors.search(vector.reshape(1, -1), depth)
        dense = {int(i): float(s) for i, s in zip(ids[0], similarities[0], strict=True) if i >= 0}
        lexical: list[int] = []
        if mode in ("hybrid", "bm25") and tokens:
            scores = self._bm25.get_scores(tokens)
            top = np.argsort(-scores, kind="stable")[:depth]
            lexical = [int(i) for i in top if scores[i] > 0]
        missing = [i for i in lexical if i not in dense]
        if missing:
            vectors = np.vstack([self.index.chunk_vectors.reconstruct(i) for i in missing])
            dense.update(zip(missing, (vectors @ vector).tolist(), strict=True))
        rankings: list[list[int]] = []
        if mode in ("hybrid", "dense"):
            evidence = self._sentence_evidence(vector, list(dense))
            rankings.append(sorted(dense, key=lambda i: -(dense[i] + evidence[i])))
        if lexical:
            rankings.append(lexical)
        fused: dict[int, float] = {}
        for ranking in rankings:
            for rank, chunk_id in enumerate(ranking):
                fused[chunk_id] = fused.get(chunk_id, 0.0) + 1.0 / (_RRF_K + rank + 1)
        best = sorted(fused.items(), key=lambda item: -item[1])[:k]
        top_score = len(rankings) / (_RRF_K + 1)
        return [
            Hit(chunk=self.index.chunks[i], score=score / top_score, rank=rank, similarity=dense[i])
            for rank, (i, score) in enumerate(best)
        ]

    def _sentence_evidence(self, vector: np.ndarray, chunk_ids: list[int]) -> dict[int, float]:
        """Each chunk's best sentence similarity, from the sentence vectors stored at build time."""
        if not chunk_ids:
            return {}
        chunks = [self.index.chunks[i] for i in chunk_ids]
        numbers = np.concatenate([np.arange(c.first_sentence, c.last_sentence + 1) for c in chunks])
        similarities = self.index.sentence_vectors[numbers] @ vector
        bounds = np.cumsum([0] + [c.last_sentence - c.first_sentence + 1 for c in chunks])
        best = np.maximum.reduceat(similarities, bounds[:-1])
        return dict(zip(chunk_ids, best.tolist(), strict=True))
