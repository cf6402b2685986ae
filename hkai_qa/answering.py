"""Hits -> Answer: the sentence (or two adjacent sentences) that best answers, verbatim, or no answer."""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence, Set
from dataclasses import dataclass
from typing import Any

import numpy as np

from hkai_qa.citations import cite
from hkai_qa.highlighting import CHINESE_YEAR, expected_answer, find_highlight
from hkai_qa.index import Index
from hkai_qa.languages import CJK, MULTILINGUAL
from hkai_qa.lexical import question_tokens, word_tokens
from hkai_qa.retrieval import Retriever
from hkai_qa.types import Answer, Citation, Hit

# Weights of the sentence ranking: similarity to the question, share of the question's weighted
# terms the sentence (with its section title) contains, and the rank of the chunk it came from.
_COVERAGE_WEIGHT = 0.35
_RANK_WEIGHT = 0.1
# "When ...?" wants a date, "How many ...?" a number and "What is X?" a sentence that defines X: a sentence
# that holds the kind of answer asked for gains as much as coming from the top chunk.
_TYPE_WEIGHT = 0.1
_HOLDS = {
    "date": re.compile(
        rf"\b(1[89]|20)\d\d\b|{CHINESE_YEAR}|\b(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\b", re.I
    ),
    "amount": re.compile(r"\d"),
}
# "What is X?" / "Who are X?": X is the subject a defining sentence names.
_DEFINITION = re.compile(
    r"^\W*(?:what|who)\s+(?:is|are|was|were)\s+(?:(?:the|a|an)\s+)?(?P<subject>[^?]{1,80}?)\W*$", re.I
)
# A neighbour joins the answer when it adds this much of the question's weight, or when it ranks nearly as
# high itself: the evidence is then split across the two sentences ("The Fund opened in 2021." | "It has
# HK$1 billion.") and either alone may miss what was asked. The one that adds the asked-for words joins
# whatever its own similarity: a sentence that continues another ("Fintech 2030 has four pillars ...") is
# short and leans on the one before, so alone it scores low.
_PAIR_GAIN = 0.15
_PAIR_SCORE_GAP = 0.15
_TWO_QUESTIONS = re.compile(r"\w.*\band\s+(?:what|who|whom|whose|which|when|where|why|how)\b", re.I)
# The multilingual model's similarities are compressed (most sentences of a topic score 0.80-0.90), so
# they are stretched to weigh against coverage and rank as the English model's do: the spread (standard
# deviation) of candidate similarities per tuning question is 0.132 for all-MiniLM-L6-v2 on the English
# questions and 0.022 for multilingual-e5-small on the Chinese ones, a ratio of 6.1.
_MULTILINGUAL_STRETCH = 6.1
# One letter, digit or character ("X", "7", "〇", "車") asks nothing one sentence can answer: the models still
# rank sentences for it (a Chinese character alone got answers at confidence 0.42-0.49), so only the closest
# sections are offered.
_CONTENT = re.compile(r"[^\W_]|[#+]")  # letters, digits, characters; "C#" and "C++" are two
_MIN_CONTENT = 2
# Sections offered when abstaining ("closest: ...").
RELATED_SECTIONS = 3
# Further citations must score within this margin of the answer: "up to top_k", never padding.
_SUPPORT_MARGIN = 0.25


@dataclass(frozen=True, slots=True)
class _Candidate:
    sentence: int
    similarity: float
    coverage: float
    chunk_rank: int
    chunk_similarity: float
    score: float


def extract_answer(
    question: str,
    vector: np.ndarray,
    hits: Sequence[Hit],
    retriever: Retriever,
    top_k: int,
    min_confidence: float | None = None,
) -> Answer:
    """Pick the best-supported span from the hits, or abstain when confidence is too low."""
    index = retriever.index
    content = len(_CONTENT.findall(unicodedata.normalize("NFKC", question)))
    readable = retriever.can_read(question) and content >= _MIN_CONTENT
    best = _best(question, vector, hits, retriever) if readable else None
    if best is None:
        return Answer(question=question, text=None, confidence=0.0, citations=(), related=related_sections(hits, index))
    candidates, (start, end), features = best
    calibration = calibration_for(index, _reading(question, candidates[0], retriever))
    threshold = calibration["threshold"] if min_confidence is None else min_confidence
    confidence = _confidence(calibration, features)
    if confidence < threshold:
        return Answer(
            question=question, text=None, confidence=confidence, citations=(), related=related_sections(hits, index)
        )
    sentence = index.sentences[candidates[0].sentence]
    first = cite(index, sentence.document_id, sentence.section, start, end, candidates[0].similarity)
    answer_span = (sentence.document_id, sentence.section, start, end)
    floor = candidates[0].score - _SUPPORT_MARGIN
    supporting = [c for c in candidates[1:] if c.score >= floor]
    citations = [first, *_supporting(supporting, index, top_k - 1, answer_span)]
    return Answer(
        question=question,
        text=first.quote,
        confidence=confidence,
        citations=tuple(citations),
        highlight=find_highlight(question, first.quote),
    )


# How an answer was read, each with its own confidence model in the index manifest: by the English model; by
# the multilingual model across languages (a Chinese question, an English sentence); or by the multilingual
# model in the question's own script (a Chinese question, a Chinese sentence).
ENGLISH_READING, ACROSS_LANGUAGES, SAME_SCRIPT = "english", "multilingual", "same_script"


def calibration_for(index: Index, reading: str) -> dict[str, Any]:
    """The confidence model of a way of reading (`ENGLISH_READING`, ...), from the index manifest; an index
    built before the same-script model existed uses the across-languages one."""
    if reading == ENGLISH_READING:
        return dict(index.manifest["calibration"])
    multilingual = index.manifest["multilingual"]
    if reading == SAME_SCRIPT and "same_script_calibration" in multilingual:
        return dict(multilingual["same_script_calibration"])
    return dict(multilingual["calibration"])


def answer_features(
    question: str, vector: np.ndarray, hits: Sequence[Hit], retriever: Retriever
) -> tuple[dict[str, float], str] | None:
    """The features the confidence model sees for the best candidate, and how it was read (for calibration)."""
    best = _best(question, vector, hits, retriever)
    return None if best is None else (best[2], _reading(question, best[0][0], retriever))


def _reading(question: str, best: _Candidate, retriever: Retriever) -> str:
    """Same script: a question with Chinese (or Japanese, Korean) characters answered from a sentence mostly in
    them, where character pairs can match; a Russian question answered from Chinese text reads across."""
    if retriever.space_for(question) != MULTILINGUAL:
        return ENGLISH_READING
    index = retriever.index
    text = index.sentence_text(index.sentences[best.sentence])
    same = retriever.in_other_script(best.sentence) and CJK.search(question) and CJK.search(text)
    return SAME_SCRIPT if same else ACROSS_LANGUAGES


def _best(
    question: str, vector: np.ndarray, hits: Sequence[Hit], retriever: Retriever
) -> tuple[list[_Candidate], tuple[int, int], dict[str, float]] | None:
    """Ranked candidates, the answer span, and the confidence features of that span."""
    weights = _question_weights(question, retriever)
    space = retriever.space_for(question)
    stretch = _MULTILINGUAL_STRETCH if space == MULTILINGUAL else 1.0
    candidates = _candidates(vector, space, stretch, hits, retriever, weights, _expected_type(question))
    if not candidates:
        return None
    compound = _TWO_QUESTIONS.search(question) is not None
    start, end, coverage = _extend(candidates[0], candidates, retriever, weights, compound)
    total = sum(weights.values())
    unseen = sum(w for t, w in weights.items() if not retriever.seen(t)) / total if total else 0.0
    answered = _tokens_between(retriever, candidates[0].sentence, start, end)
    titled = answered | _title_tokens(retriever, candidates[0])
    features = {
        "sentence_similarity": candidates[0].similarity,
        "coverage": coverage,
        "chunk_similarity": candidates[0].chunk_similarity,
        "unseen": unseen,
        # Near misses ("Who is the CEO of Cyberport?") match a sentence well but leave a term unanswered.
        "missing_terms": float(sum(t not in answered for t in weights)),
        # A clear winner over the next candidate is more often right than one of several near-equals.
        "margin": candidates[0].score - candidates[1].score if len(candidates) > 1 else 1.0,
        # A name the question asks about ("Sha Tin") that the answer and its titles never mention.
        "missing_names": float(sum(t not in titled for t in _names(question))),
    }
    return candidates, (start, end), features


_NAME = re.compile(r"(?<=\S\s)[A-Z][\w$&@.-]*|\b[a-z]+[A-Z][\w$&@.-]*|\b[A-Z]{2,}[\w$&@.-]*")


def _names(question: str) -> set[str]:
    """Tokens of the proper names and acronyms a question asks about ("Sha Tin", "CEO", "InnoHK")."""
    return {t for m in _NAME.finditer(question) for t in word_tokens(m.group())}


def _title_tokens(retriever: Retriever, candidate: _Candidate) -> frozenset[str]:
    document = retriever.index.documents[retriever.index.sentences[candidate.sentence].document_id]
    return word_tokens(document.title)


def _tokens_between(retriever: Retriever, number: int, start: int, end: int) -> frozenset[str]:
    """Tokens (with section titles) of the sentences around `number` that lie inside [start, end)."""
    sentences = retriever.index.sentences
    numbers = [n for n in (number - 1, number, number + 1) if 0 <= n < len(sentences)]
    inside = [
        n
        for n in numbers
        if sentences[n].document_id == sentences[number].document_id
        and sentences[n].start >= start
        and sentences[n].end <= end
    ]
    return frozenset().union(*(retriever.sentence_tokens[n] for n in inside))


def _question_weights(question: str, retriever: Retriever) -> dict[str, float]:
    return {token: retriever.idf(token) for token in question_tokens(question)}


def _expected_type(question: str) -> re.Pattern[str] | None:
    """A loose test that a sentence holds the kind of answer the question asks for, if it asks for one:
    a date, an amount, or for "What is X?" a sentence that defines X ("X is a ...")."""
    kind = expected_answer(question)
    if kind is not None:
        return _HOLDS[kind]
    asked = _DEFINITION.match(question)
    if asked is None:
        return None
    subject = r"\s+".join(re.escape(word) for word in asked.group("subject").split())
    # "X is a ...", "X (XY) was the ...", "X refers to ...", or the appositive '"X", a ...'.
    defines = (
        r"(?:\s*\([^)]{1,40}\))?(?:\s+(?:is|are|was|were)\s+(?:a|an|the|one)|\s+refers\s+to|\W{0,2},\s+(?:a|an|the))\b"
    )
    return re.compile(rf"(?<!\w){subject}(?!\w){defines}", re.I)


def _coverage(weights: dict[str, float], tokens: Set[str]) -> float:
    total = sum(weights.values())
    return sum(w for t, w in weights.items() if t in tokens) / total if total else 0.0


def _candidates(
    vector: np.ndarray,
    space: str,
    stretch: float,
    hits: Sequence[Hit],
    retriever: Retriever,
    weights: dict[str, float],
    expected: re.Pattern[str] | None,
) -> list[_Candidate]:
    index = retriever.index
    seen: dict[int, Hit] = {}
    for hit in hits:
        for number in range(hit.chunk.first_sentence, hit.chunk.last_sentence + 1):
            if index.sentences[number].citable and number not in seen:
                seen[number] = hit
    if not seen:
        return []
    numbers = list(seen)
    similarities = retriever.sentence_similarities(vector, numbers, space)
    candidates = []
    for number, similarity in zip(numbers, similarities.tolist(), strict=True):
        hit = seen[number]
        coverage = _coverage(weights, retriever.sentence_tokens[number])
        score = stretch * similarity + _COVERAGE_WEIGHT * coverage + _RANK_WEIGHT / (1 + hit.rank)
        # In NFC, as the question is: "What is the Zürich lab?" must find a decomposed "Zu\u0308rich lab is".
        if expected is not None and expected.search(
            unicodedata.normalize("NFC", index.sentence_text(index.sentences[number]))
        ):
            score += _TYPE_WEIGHT
        candidates.append(_Candidate(number, similarity, coverage, hit.rank, hit.similarity, score))
    return sorted(candidates, key=lambda c: -c.score)


def _extend(
    best: _Candidate, candidates: list[_Candidate], retriever: Retriever, weights: dict[str, float], compound: bool
) -> tuple[int, int, float]:
    """Join the previous or next sentence when it completes the answer; returns (start, end, coverage).

    A question that asks two things ("When did X open, and what does it do?") takes the better
    neighbour whenever one is a candidate: one sentence rarely answers both."""
    index = retriever.index
    sentence = index.sentences[best.sentence]
    start, end, coverage = sentence.start, sentence.end, best.coverage
    by_number = {c.sentence: c for c in candidates}
    options = []
    for neighbour in (best.sentence - 1, best.sentence + 1):
        other = by_number.get(neighbour)
        if other is None or (index.sentences[neighbour].document_id, index.sentences[neighbour].section) != (
            sentence.document_id,
            sentence.section,
        ):
            continue
        joined = _coverage(weights, retriever.sentence_tokens[best.sentence] | retriever.sentence_tokens[neighbour])
        completes = joined - coverage >= _PAIR_GAIN
        if completes or compound or other.score >= best.score - _PAIR_SCORE_GAP:
            span = (min(start, index.sentences[neighbour].start), max(end, index.sentences[neighbour].end))
            options.append((completes, other.score, joined, *span))
    if options:
        _, _, coverage, start, end = max(options)
    return start, end, coverage


def _confidence(calibration: dict[str, Any], features: dict[str, float]) -> float:
    z = calibration["bias"] + sum(
        w * features[name] for name, w in zip(calibration["features"], calibration["weights"], strict=True)
    )
    return round(1.0 / (1.0 + math.exp(-z)), 4)


def _supporting(
    candidates: Sequence[_Candidate], index: Index, limit: int, answer: tuple[str, int, int, int]
) -> list[Citation]:
    """Up to `limit` further spans, each from a different section where the candidates allow."""
    document_id, section, start, end = answer
    chosen: list[_Candidate] = []
    sections = {(document_id, section)}
    for pass_ in (0, 1):
        for candidate in candidates:
            if len(chosen) >= limit:
                break
            sentence = index.sentences[candidate.sentence]
            overlaps = sentence.document_id == document_id and sentence.start < end and sentence.end > start
            key = (sentence.document_id, sentence.section)
            if overlaps or candidate in chosen or (pass_ == 0 and key in sections):
                continue
            chosen.append(candidate)
            sections.add(key)
    return [
        cite(index, s.document_id, s.section, s.start, s.end, c.similarity)
        for c in chosen
        for s in (index.sentences[c.sentence],)
    ]


def related_sections(hits: Sequence[Hit], index: Index, limit: int = RELATED_SECTIONS) -> tuple[Citation, ...]:
    """The closest sections when abstaining, so a reader can look for themselves."""
    related: list[Citation] = []
    seen: set[tuple[str, int]] = set()
    for hit in hits:
        key = (hit.chunk.document_id, hit.chunk.section)
        if key in seen:
            continue
        seen.add(key)
        related.append(
            cite(index, hit.chunk.document_id, hit.chunk.section, hit.chunk.start, hit.chunk.end, hit.similarity)
        )
        if len(related) >= limit:
            break
    return tuple(related)
