"""Retrieval over the real corpus: lexical tokens, reciprocal rank fusion, sentence evidence, title evidence."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from hkai_qa.index import Index, embedding_text
from hkai_qa.lexical import STOPWORDS, lexical_tokens
from hkai_qa.retrieval import Retriever
from hkai_qa.service import QAService
from hkai_qa.types import Chunk, Hit

RRF_K = 60  # the constant of reciprocal rank fusion: a chunk at rank r (from 0) earns 1 / (60 + r + 1)
QUESTIONS = [
    "What are smart lampposts equipped with?",
    "When was ASTRI founded?",
    "What is Cap. 486?",
    "How much computing power does the AI Supercomputing Centre have?",
]
# BM25 and the dense side order this one differently (the answer is third by BM25, first by similarity).
DISAGREEING = "How many people work at the tech park?"
# Questions that share no word with the section that answers them (checked below): only the dense side finds it.
PARAPHRASES = [
    ("How much electricity do the illuminated poles save?", "notes/smart-city", "Smart lampposts"),
    ("Why were some roadside pole features paused?", "notes/smart-city", "Smart lampposts"),
]


def _vector(service: QAService, question: str) -> np.ndarray:
    return service.retrieve(question)[0]


def _everything(retriever: Retriever) -> int:
    """A `k` whose candidate pool (max(4k, 50), capped at the corpus) is every chunk, so rankings are complete."""
    return len(retriever.index.chunks)


def _chunk_vectors(index: Index) -> np.ndarray:
    return np.vstack([index.chunk_vectors.reconstruct(i) for i in range(len(index.chunks))])


def _section_key(chunk: Chunk) -> tuple[str, int]:
    return chunk.document_id, chunk.section


def _section_id(index: Index, document_id: str, title: str) -> tuple[str, int]:
    sections = index.documents[document_id].sections
    return document_id, next(i for i, s in enumerate(sections) if s.title == title)


def _indexed_tokens(index: Index, chunk: Chunk) -> set[str]:
    """What BM25 sees for a chunk: its text under its document and section titles."""
    text = embedding_text(index.documents[chunk.document_id], index.section_of(chunk), index.chunk_text(chunk))
    return set(lexical_tokens(text))


def _body_tokens(index: Index, chunk: Chunk) -> set[str]:
    return set(lexical_tokens(index.chunk_text(chunk)))


# lexical_tokens


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ASTRI", ["astri"]),
        ("InnoHK", ["innohk"]),
        ("What is Cap. 486?", ["cap", "486"]),
        ("HK$3 billion", ["hk$3", "hk", "3", "billion"]),
        ("version 2.0", ["version", "2.0", "2", "0"]),
        ("AI-powered", ["ai-powered", "ai", "power"]),
        ("JS5282", ["js5282"]),
    ],
)
def test_identifiers_stay_findable(text: str, expected: list[str]):
    assert lexical_tokens(text) == expected


def test_identifier_tokens_match_between_question_and_corpus_spelling():
    assert set(lexical_tokens("ASTRI")) <= set(lexical_tokens("Research Institute (ASTRI) and"))
    assert set(lexical_tokens("Cap. 486")) <= set(lexical_tokens("Cap. 486 is the Personal Data (Privacy) Ordinance"))
    assert "hk$3" in lexical_tokens("a HK$3 billion fund") and "2.0" in lexical_tokens("Blueprint for Hong Kong 2.0,")


def test_stopwords_are_dropped_but_domain_words_stay():
    assert lexical_tokens("What is the of it and does he tell") == []
    assert not set(lexical_tokens("Who are they in the first cohort of the six principles?")) & STOPWORDS
    assert lexical_tokens("the first cohort") == ["first", "cohort"]
    assert "six" in lexical_tokens("the six principles") and "found" in lexical_tokens("was found")


def test_plurals_and_inflections_share_a_stem():
    assert lexical_tokens("lampposts") == lexical_tokens("lamppost") == ["lamppost"]
    assert lexical_tokens("sensors") == lexical_tokens("sensor")
    assert lexical_tokens("powered") == lexical_tokens("power")


def test_curly_and_straight_apostrophes_give_the_same_tokens():
    curly = lexical_tokens("Hong Kong’s government’s plan")
    assert curly == lexical_tokens("Hong Kong's government's plan")
    assert curly == ["hong", "kong", "govern", "plan"]
    assert not any("’" in token or "'" in token for token in curly)


# Reciprocal rank fusion


@pytest.mark.parametrize("question", [*QUESTIONS, DISAGREEING])
def test_hybrid_is_reciprocal_rank_fusion_of_the_dense_and_bm25_rankings(service: QAService, question: str):
    retriever = service.retriever
    vector, tokens, k = _vector(service, question), lexical_tokens(question), _everything(retriever)
    dense = [h.chunk.id for h in retriever.search(vector, tokens, k, mode="dense")]
    lexical = [h.chunk.id for h in retriever.search(vector, tokens, k, mode="bm25")]
    hybrid = retriever.search(vector, tokens, k, mode="hybrid")
    assert len(dense) == len(retriever.index.chunks) and lexical  # both sides have something to fuse

    fused: dict[int, float] = {}
    for ranking in (dense, lexical):
        for rank, chunk_id in enumerate(ranking):
            fused[chunk_id] = fused.get(chunk_id, 0.0) + 1.0 / (RRF_K + rank + 1)
    top_possible = 2 / (RRF_K + 1)  # first in both rankings
    assert {h.chunk.id for h in hybrid} == set(fused)
    for hit in hybrid:
        assert hit.score == pytest.approx(fused[hit.chunk.id] / top_possible, rel=1e-12)
    scores = [h.score for h in hybrid]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] == pytest.approx(max(fused.values()) / top_possible, rel=1e-12)


@pytest.mark.parametrize("mode", ["dense", "bm25"])
def test_a_single_ranking_scores_by_its_own_reciprocal_rank(service: QAService, mode: str):
    retriever = service.retriever
    question = QUESTIONS[0]
    hits = retriever.search(_vector(service, question), lexical_tokens(question), 10, mode=mode)
    assert len(hits) == 10
    for hit in hits:
        assert hit.score == pytest.approx((RRF_K + 1) / (RRF_K + hit.rank + 1), rel=1e-12)


def test_hybrid_without_a_lexical_match_is_the_dense_ranking(service: QAService):
    retriever = service.retriever
    vector, tokens = _vector(service, QUESTIONS[1]), lexical_tokens("zqxjv")
    assert not retriever.seen(tokens[0])
    assert retriever.search(vector, tokens, 10, mode="bm25") == []
    hybrid = retriever.search(vector, tokens, 10, mode="hybrid")
    dense = retriever.search(vector, tokens, 10, mode="dense")
    assert [(h.chunk, h.rank, h.similarity) for h in hybrid] == [(h.chunk, h.rank, h.similarity) for h in dense]
    # Only one of hybrid's two rankings found them, so they score half as much: comparable across searches.
    assert [h.score for h in hybrid] == pytest.approx([h.score / 2 for h in dense], rel=1e-12)


@pytest.mark.parametrize("identifier", ["24EC55", "JS4468", "LCQ20"])
def test_an_identifier_alone_puts_its_chunk_first(service: QAService, identifier: str):
    retriever = service.retriever
    index = retriever.index
    containing = {c.id for c in index.chunks if identifier.lower() in index.chunk_text(c).lower()}
    assert containing, f"{identifier} is not in the corpus any more"
    vector, tokens = _vector(service, identifier), lexical_tokens(identifier)
    lexical = retriever.search(vector, tokens, _everything(retriever), mode="bm25")
    assert {h.chunk.id for h in lexical} == containing  # no other chunk scores above zero
    assert lexical[0].chunk.id in containing
    hybrid = retriever.search(vector, tokens, 5, mode="hybrid")
    assert hybrid[0].chunk.id in containing


@pytest.mark.parametrize(("question", "document_id", "title"), PARAPHRASES)
def test_a_paraphrase_finds_its_section_through_the_dense_side(
    service: QAService, question: str, document_id: str, title: str
):
    retriever = service.retriever
    index = retriever.index
    section = _section_id(index, document_id, title)
    section_tokens = set().union(*(_indexed_tokens(index, c) for c in index.chunks if _section_key(c) == section))
    assert not set(lexical_tokens(question)) & section_tokens  # the premise: no shared word, even in the titles

    vector, tokens = _vector(service, question), lexical_tokens(question)
    lexical = retriever.search(vector, tokens, 3, mode="bm25")
    assert all(_section_key(h.chunk) != section for h in lexical)
    dense = retriever.search(vector, tokens, 3, mode="dense")
    assert any(_section_key(h.chunk) == section for h in dense)
    hybrid = retriever.search(vector, tokens, 3, mode="hybrid")
    assert any(_section_key(h.chunk) == section for h in hybrid)


# Sentence evidence on the dense side


@pytest.mark.parametrize("question", QUESTIONS)
def test_dense_ranks_by_chunk_similarity_plus_best_sentence_similarity(service: QAService, question: str):
    retriever = service.retriever
    index = retriever.index
    vector = _vector(service, question)
    hits = retriever.search(vector, lexical_tokens(question), _everything(retriever), mode="dense")
    assert len(hits) == len(index.chunks)

    chunk_similarity = _chunk_vectors(index) @ vector
    sentence_similarity = index.sentence_vectors @ vector
    evidence = {
        c.id: float(chunk_similarity[c.id] + sentence_similarity[c.first_sentence : c.last_sentence + 1].max())
        for c in index.chunks
    }
    ranked = [evidence[h.chunk.id] for h in hits]
    assert all(a >= b - 1e-5 for a, b in itertools.pairwise(ranked))
    assert ranked[0] == pytest.approx(max(evidence.values()), abs=1e-5)


def test_the_best_sentence_changes_the_dense_order(service: QAService):
    """A ranking by chunk similarity alone would differ: the sentence evidence is really used."""
    retriever = service.retriever
    index = retriever.index
    question = "When was ASTRI founded?"
    vector = _vector(service, question)
    hits = retriever.search(vector, lexical_tokens(question), _everything(retriever), mode="dense")
    chunk_similarity = _chunk_vectors(index) @ vector
    by_chunk_alone = sorted(range(len(index.chunks)), key=lambda i: -chunk_similarity[i])
    assert [h.chunk.id for h in hits[:5]] != by_chunk_alone[:5]


# Titles as evidence


@pytest.mark.parametrize(
    ("word", "document_id", "title"),
    [
        ("ambitions", "notes/international-collaboration", "Middle East and global AI hub ambitions"),
        ("monitoring", "notes/smart-city", "Environmental monitoring and weather"),
    ],
)
def test_a_section_title_word_finds_the_section(service: QAService, word: str, document_id: str, title: str):
    retriever = service.retriever
    index = retriever.index
    section = _section_id(index, document_id, title)
    chunks = {c.id for c in index.chunks if _section_key(c) == section}
    (token,) = lexical_tokens(word)
    assert token in lexical_tokens(title)
    assert all(token not in _body_tokens(index, index.chunks[i]) for i in chunks)  # only the title has it

    hits = retriever.search(_vector(service, word), [token], _everything(retriever), mode="bm25")
    assert chunks <= {h.chunk.id for h in hits}


def test_a_document_title_word_finds_every_chunk_of_the_document(service: QAService):
    retriever = service.retriever
    index = retriever.index
    document_id = "hong-kong-ai-ecosystem"
    (token,) = lexical_tokens("thriving")
    assert token in lexical_tokens(index.documents[document_id].title)
    assert all(token not in _body_tokens(index, c) for c in index.chunks)  # in no chunk's text, only the title

    hits = retriever.search(_vector(service, "thriving"), [token], _everything(retriever), mode="bm25")
    assert {h.chunk.id for h in hits} == {c.id for c in index.chunks if c.document_id == document_id}


# Hits


def _check_hits(hits: list[Hit], k: int, vector: np.ndarray, chunk_vectors: np.ndarray) -> None:
    assert len(hits) <= k
    assert [h.rank for h in hits] == list(range(len(hits)))
    assert all(0 < h.score <= 1 for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    for hit in hits:
        assert hit.similarity == pytest.approx(float(chunk_vectors[hit.chunk.id] @ vector), abs=1e-5)


@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
@pytest.mark.parametrize("k", [1, 5, 40])
def test_hits_are_ranked_scored_and_carry_the_chunk_similarity(service: QAService, mode: str, k: int):
    retriever = service.retriever
    chunk_vectors = _chunk_vectors(retriever.index)
    for question in (*QUESTIONS, DISAGREEING, "24EC55"):
        vector = _vector(service, question)
        hits = retriever.search(vector, lexical_tokens(question), k, mode=mode)
        assert hits
        if mode != "bm25":
            assert len(hits) == k
        _check_hits(hits, k, vector, chunk_vectors)


@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
def test_k_beyond_the_corpus_returns_each_chunk_at_most_once(service: QAService, mode: str):
    retriever = service.retriever
    count = len(retriever.index.chunks)
    question = "Hong Kong AI research"  # words found in most chunks, so BM25 ranks many of them
    vector = _vector(service, question)
    hits = retriever.search(vector, lexical_tokens(question), count + 25, mode=mode)
    ids = [h.chunk.id for h in hits]
    assert len(ids) == len(set(ids))
    if mode == "bm25":
        assert 0 < len(ids) <= count
    else:
        assert sorted(ids) == list(range(count))
    _check_hits(hits, count + 25, vector, _chunk_vectors(retriever.index))


def test_bm25_without_tokens_returns_nothing(service: QAService):
    retriever = service.retriever
    vector = _vector(service, "What is the?")
    assert lexical_tokens("What is the?") == []
    assert retriever.search(vector, [], 5, mode="bm25") == []
    hybrid = retriever.search(vector, [], 5, mode="hybrid")
    assert [h.chunk for h in hybrid] == [h.chunk for h in retriever.search(vector, [], 5, mode="dense")]


def test_an_unknown_mode_is_an_error_not_an_empty_result(service: QAService):
    vector, _ = service.retrieve("When was ASTRI founded?")
    with pytest.raises(ValueError, match="unknown retrieval mode 'Hybrid'"):
        service.retriever.search(vector, ["astri"], 3, mode="Hybrid")


def test_a_markdown_title_is_counted_once_in_what_the_model_and_bm25_see(service: QAService):
    index = service.index
    document = next(d for d in index.documents.values() if d.sections and d.sections[-1].path[:1] == (d.title,))
    section = document.sections[-1]
    heading = embedding_text(document, section, "").split(". ")[0]
    assert heading.count(document.title) == 1 and heading.endswith(section.title)
