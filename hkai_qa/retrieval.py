"""Question -> ranked Hits: dense FAISS search and BM25 over the same chunks, fused by rank."""

from __future__ import annotations

import logging
import math
from collections import Counter

import bm25s
import numpy as np

from hkai_qa.fusion import RRF_K, fuse_with_order, merge_rankings
from hkai_qa.index import Index, VectorSpace, embedding_text
from hkai_qa.language_offset import language_offset
from hkai_qa.languages import ENGLISH, MULTILINGUAL, mostly_other_script, needs_multilingual
from hkai_qa.lexical import lexical_tokens
from hkai_qa.types import Chunk, Hit
from hkai_qa.vector_index import Subset, subset
from hkai_qa.vector_index import search as vector_search

log = logging.getLogger("hkai_qa.retrieval")
MODES = ("hybrid", "dense", "bm25")
# How deep each side is ranked before an English text's hits are joined across scripts (`across_scripts`).
ACROSS_SCRIPTS_DEPTH = 20


class Retriever:
    """Hybrid search over one loaded index; BM25 statistics are built once per index."""

    def __init__(self, index: Index, multilingual: bool = True) -> None:
        """`multilingual`: whether questions in other scripts may use the index's multilingual space (the
        service turns it off with HKAI_QA_MULTILINGUAL=false, when it has no model to encode them)."""
        self.index = index
        self.multilingual = multilingual and index.multilingual is not None
        corpus = [
            lexical_tokens(embedding_text(index.documents[c.document_id], index.section_of(c), index.chunk_text(c)))
            for c in index.chunks
        ]
        self._bm25 = bm25s.BM25()
        self._bm25.index(corpus, show_progress=False)
        # Sentences written mostly in another script (Chinese), and the chunks whose every sentence is: the English
        # model cannot read those. A bilingual paragraph (English, then its Chinese translation, as Hong Kong press
        # releases are written) stays readable for its English sentences.
        other_sentences = np.array(
            [s.citable and mostly_other_script(index.sentence_text(s)) for s in index.sentences], dtype=bool
        )
        other_script = np.array([self._all_other_script(c, other_sentences) for c in index.chunks], dtype=bool)
        self.other_script = subset(other_script) if other_script.any() else None
        self._readable = subset(~other_script) if other_script.any() else None
        self._first_sentences = np.array([c.first_sentence for c in index.chunks], dtype=np.int64)
        self._sentence_counts = np.array([c.last_sentence - c.first_sentence + 1 for c in index.chunks], dtype=np.int64)
        # The multilingual model prefers passages in the question's own language: where chunks in other scripts
        # are indexed, their similarities are corrected by its language offset (hkai_qa/language_offset.py).
        corrected = self.multilingual and self.other_script is not None
        self._offset = language_offset() if corrected else None
        if corrected and self._offset is None:
            log.warning(
                "index version %s holds passages in other scripts, but hkai_qa/language_offset.json was measured "
                "with another version of the multilingual model: similarities are left uncorrected, so questions "
                "lean to passages in their own language (run `python -m hkai_qa.language_offset` from a clone)",
                index.version,
            )
        # 1 for a chunk or sentence the language offset corrects (sentences with no vector, not citable, stay 0).
        self._other_chunks = other_script.astype(np.float32)
        self._other_sentences = other_sentences.astype(np.float32)
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

    def _all_other_script(self, chunk: Chunk, other_sentences: np.ndarray) -> bool:
        """Whether every citable sentence of a chunk is in another script (by its text, when it has none)."""
        citable = [n for n in range(chunk.first_sentence, chunk.last_sentence + 1) if self.index.sentences[n].citable]
        if not citable:
            return mostly_other_script(self.index.chunk_text(chunk))
        return bool(other_sentences[citable].all())

    def space_for(self, question: str) -> str:
        """The vector space a question is matched in: multilingual for a question not in the Latin script
        when the index has that space, English otherwise."""
        return MULTILINGUAL if self.multilingual and needs_multilingual(question) else ENGLISH

    def can_read(self, question: str) -> bool:
        """False for a question in another script when there is no multilingual space to match it in: the
        English model cannot read it, and what it would find is noise, never an answer."""
        return self.multilingual or not needs_multilingual(question)

    def in_other_script(self, sentence: int) -> bool:
        """Whether a citable sentence is in another script than Latin (Chinese, say): only the multilingual
        space reads it."""
        return bool(self._other_sentences[sentence])

    def readable_chunks(self, text: str) -> Subset | None:
        """The chunks a question's own space may rank; None for all of them. A question in the English space
        skips the chunks in other scripts when the multilingual space can take them instead
        (`other_script_pass`): what the English model makes of Chinese text is noise."""
        return self._readable if self.other_script_pass(text) else None

    def other_script_pass(self, text: str) -> bool:
        """Whether an English question also goes, through the multilingual space, to the chunks in other
        scripts: when the index has that space and such chunks (Chinese documents among English ones)."""
        return self.multilingual and self.other_script is not None and not needs_multilingual(text)

    def rank(self, text: str, vector: np.ndarray, other: np.ndarray | None, k: int, mode: str = "hybrid") -> list[Hit]:
        """A text's best `k` chunks: searched in its own space (`vector`) among the chunks that space can read,
        by its words alone when no model here can read it (Chinese with the multilingual model off: an English
        vector of Chinese text finds noise, its words do not). With `other`, its multilingual vector, the chunks
        in other scripts are ranked in that space too and the two rankings joined (`across_scripts`)."""
        own = mode if self.can_read(text) else "bm25"
        # Joined across scripts, both sides are ranked to the same depth whatever `k`: the first place must
        # not depend on how many places were asked for.
        depth = k if other is None else max(k, ACROSS_SCRIPTS_DEPTH)
        hits = self.search(vector, lexical_tokens(text), depth, own, self.space_for(text), self.readable_chunks(text))
        if other is None:
            return hits
        return self.across_scripts(hits, self.rank_other_scripts(text, other, depth, mode), other, k, mode)

    def across_scripts(
        self, own: list[Hit], theirs: list[Hit], other: np.ndarray, k: int, mode: str = "hybrid"
    ) -> list[Hit]:
        """An English text's hits among the English chunks (`own`, by the English model) and among the chunks in
        other scripts (`theirs`, by the multilingual model) as one ranking of the best `k`.

        Their fused scores come from different models, and BM25 reads only the English chunks, so merged by
        score (`merge_rankings`) an English chunk whose words match comes first, whatever it says. That order is
        fused by reciprocal rank with the multilingual model's ranking of the same chunks (`other`: the text's
        vector there; chunks in other scripts corrected for the language offset), which weighs as much as the
        share of chunks in other scripts: little in an index mostly in English, most in one mostly in Chinese.
        Scores are the fused ones, 1 for first in both. The words-only mode keeps the merge by score."""
        merged = merge_rankings(own, theirs, len(own) + len(theirs))
        if not own or not theirs or mode == "bm25" or self.other_script is None or self.index.multilingual is None:
            return merged[:k]
        ids = np.array([hit.chunk.id for hit in merged], dtype=np.int64)
        similarities = self.index.multilingual.chunk_vectors.reconstruct_batch(ids) @ other
        shift = self.language_shift(other, MULTILINGUAL)
        if shift:
            similarities = similarities - shift * self._other_chunks[ids]
        similarities = similarities + self._sentence_evidence(other, ids, MULTILINGUAL)  # as `search` ranks
        return fuse_with_order(merged, similarities, self.other_script.count / len(self.index.chunks), k)

    def rank_other_scripts(self, text: str, other: np.ndarray, k: int, mode: str = "hybrid") -> list[Hit]:
        """The best `k` of the chunks in other scripts for a text, in the multilingual space (`other`: its vector
        there); none when the index has no such chunks."""
        if self.other_script is None:
            return []
        return self.search(other, lexical_tokens(text), k, mode, MULTILINGUAL, self.other_script)

    def vectors(self, space: str) -> VectorSpace:
        """The chunk and sentence vectors of one space; ValueError for a space the index does not have."""
        if space == ENGLISH:
            return VectorSpace(self.index.chunk_vectors, self.index.sentence_vectors)
        if space == MULTILINGUAL and self.index.multilingual is not None:
            return self.index.multilingual
        raise ValueError(f"vector space {space!r} is not in this index")

    def language_shift(self, vector: np.ndarray, space: str) -> float:
        """How much lower the similarities of a question's vector (of `space`) to passages in other scripts are
        taken to be: its coordinate on the multilingual model's language axis times the gap between the
        languages, so a Chinese passage competes with an English one on what it says; 0 in the English space and
        in an index without such passages."""
        if space != MULTILINGUAL or self._offset is None:
            return 0.0
        return self._offset.shift(vector)

    def sentence_similarities(self, vector: np.ndarray, numbers: np.ndarray | list[int], space: str) -> np.ndarray:
        """The similarity of a question's vector (of `space`) to each of the sentences `numbers`, from the
        sentence vectors stored at build time, corrected for the language offset."""
        similarities: np.ndarray = self.vectors(space).sentence_vectors[numbers] @ vector
        shift = self.language_shift(vector, space)
        return similarities - shift * self._other_sentences[numbers] if shift else similarities

    def seen(self, token: str) -> bool:
        """Whether any chunk contains the token."""
        return token in self._df

    def idf(self, token: str) -> float:
        """Inverse document frequency over chunks; unseen tokens weigh the most."""
        df = self._df.get(token, 0)
        return math.log(1.0 + (self._n - df + 0.5) / (df + 0.5))

    def search(
        self,
        vector: np.ndarray,
        tokens: list[str],
        k: int,
        mode: str = "hybrid",
        space: str = ENGLISH,
        among: Subset | None = None,
    ) -> list[Hit]:
        """The best `k` chunks for a question vector (of `space`) and its lexical tokens, only among the chunks
        of `among` when it is given.

        The dense side ranks a chunk by its own similarity plus that of its closest sentence, so one
        sentence that matches the question well is not drowned by the rest of its chunk; BM25 ranks
        chunks with their titles; the two rankings are fused by reciprocal rank. In the multilingual space over
        an index of both scripts, similarities are corrected for the language offset, each script's chunks are
        searched apart, and BM25 is weighed as `_lexical_parts` says.
        """
        if mode not in MODES:
            raise ValueError(f"unknown retrieval mode {mode!r}: expected one of {', '.join(MODES)}")
        vectors = self.vectors(space)
        depth = min(max(k * 4, 50), len(self.index.chunks) if among is None else among.count)
        shift = self.language_shift(vector, space)
        # With the language offset, each script's chunks are searched apart: uncorrected, either could fill
        # the whole pool.
        groups = [self._readable, self.other_script] if shift and among is None else [among]
        found: list[tuple[np.ndarray, np.ndarray]] = []
        for group in groups:
            wanted = depth if group is None else min(depth, group.count)
            if wanted:
                group_similarities, group_ids = vector_search(
                    vectors.chunk_vectors, vector.reshape(1, -1), wanted, group
                )
                kept = group_ids[0] >= 0
                found.append((group_ids[0][kept].astype(np.int64), group_similarities[0][kept]))
        if not found:
            return []
        pool = np.concatenate([ids for ids, _ in found])
        pool_similarity = np.concatenate([similarities for _, similarities in found])
        # BM25 rankings with the weight each has in the fusion (see `_lexical_parts`).
        lexical: list[tuple[np.ndarray, float]] = []
        parts = self._lexical_parts(tokens, space, among) if mode in ("hybrid", "bm25") else []
        for part, weight in parts:
            if not part:
                continue
            scores = self._bm25.get_scores(part)
            if among is not None:
                scores = np.where(among.mask, scores, 0.0)
            top = np.argsort(-scores, kind="stable")[:depth]
            lexical.append((top[scores[top] > 0].astype(np.int64), weight))
        in_pool = set(pool.tolist())
        missing = np.array(
            list(dict.fromkeys(i for ids, _ in lexical for i in ids.tolist() if i not in in_pool)), dtype=np.int64
        )
        if missing.size:  # found by BM25 alone: their similarity still counts on the dense side
            pool = np.concatenate([pool, missing])
            pool_similarity = np.concatenate(
                [pool_similarity, vectors.chunk_vectors.reconstruct_batch(missing) @ vector]
            )
        if shift:
            pool_similarity = pool_similarity - shift * self._other_chunks[pool]
        # Reciprocal rank fusion over positions in `pool`; ties keep the first ranking's order.
        fused = np.zeros(len(pool))
        first = np.zeros(len(pool))
        rankings = 0
        if mode in ("hybrid", "dense"):
            evidence = self._sentence_evidence(vector, pool, space)
            order = np.argsort(-(pool_similarity + evidence), kind="stable")
            fused[order] += 1.0 / (RRF_K + np.arange(len(order)) + 1)
            first[order] = np.arange(len(order))
            rankings += 1
        sorter = np.argsort(pool)
        for ids, weight in lexical:
            if not ids.size:
                continue
            positions = sorter[np.searchsorted(pool, ids, sorter=sorter)]
            fused[positions] += weight / (RRF_K + np.arange(len(positions)) + 1)
            if rankings == 0:
                first[:] = len(pool)
                first[positions] = np.arange(len(positions))
            rankings += 1
        ranked = [int(p) for p in np.lexsort((first, -fused))[:k] if fused[p] > 0]
        # Scaled by the rankings the mode fuses, not those that found something: a hit only one of them found
        # scores at most one half in hybrid, so scores of different searches compare (`merge_rankings`).
        fusion_weight = (1.0 if mode in ("hybrid", "dense") else 0.0) + sum(weight for _, weight in parts)
        top_score = fusion_weight / (RRF_K + 1)
        return [
            Hit(
                chunk=self.index.chunks[int(pool[p])],
                score=min(float(fused[p]) / top_score, 1.0),  # the weights' sum can round one ulp over
                rank=rank,
                similarity=float(pool_similarity[p]),
            )
            for rank, p in enumerate(ranked)
        ]

    def _lexical_parts(self, tokens: list[str], space: str, among: Subset | None) -> list[tuple[list[str], float]]:
        """The question's tokens as BM25 rankings, each with its weight in the fusion (together they weigh one):
        one ranking of them all, except for a question in the multilingual space over an index that holds both
        scripts. There Chinese character pairs can only match the Chinese chunks, so ranked with the rest they
        would put some Chinese chunk high for every Chinese question, whatever the English ones say: the ranking
        of all the tokens weighs as much as the share of chunks in other scripts, and the ranking of the words
        any chunk can hold (names and numbers: "ASTRI", "2.0") the rest. An index mostly in English ranks a
        Chinese question by its names, one mostly in Chinese by all its words."""
        if space != MULTILINGUAL or among is not None or self.other_script is None:
            return [(tokens, 1.0)]
        share = self.other_script.count / len(self.index.chunks)
        if share == 1.0:  # every chunk is in another script: one ranking, as in any one-script index
            return [(tokens, 1.0)]
        return [(tokens, share), ([t for t in tokens if not needs_multilingual(t)], 1.0 - share)]

    def _sentence_evidence(self, vector: np.ndarray, chunk_ids: np.ndarray, space: str) -> np.ndarray:
        """Each chunk's best sentence similarity (`sentence_similarities`: corrected for the language offset)."""
        if not len(chunk_ids):
            return np.empty(0, dtype=np.float32)
        counts = self._sentence_counts[chunk_ids]
        starts = np.cumsum(counts) - counts
        # Every sentence number of every chunk, in chunk order: first_sentence + 0, 1, ... per chunk.
        numbers = np.repeat(self._first_sentences[chunk_ids] - starts, counts) + np.arange(int(counts.sum()))
        return np.maximum.reduceat(self.sentence_similarities(vector, numbers, space), starts)
