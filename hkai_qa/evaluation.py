"""Measure the service on a question file: retrieval, answers, abstention, calibration, latency."""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import blingfire
import numpy as np

from hkai_qa.answering import answer_features, extract_answer
from hkai_qa.index import CALIBRATION_FEATURES
from hkai_qa.languages import fold_width
from hkai_qa.questions import Question
from hkai_qa.retrieval import MODES
from hkai_qa.service import QAService

_BINS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0001)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the service did with one question."""

    question: Question
    section_ranks: dict[str, int | None]  # rank of the gold section per retrieval mode (0 = first)
    answer: str | None
    confidence: float
    correct: bool
    best_correct: bool  # whether the best candidate would be right if the service never abstained
    features: dict[str, float] | None
    latency_ms: float
    reading: str | None = None  # how the best candidate was read (answering.ENGLISH_READING, ...): its model


def run(service: QAService, questions: Sequence[Question], top_k: int = 3) -> list[Outcome]:
    """Ask every question through the service and record retrieval ranks and answers."""
    for question in questions[:3]:  # warm up caches and threads before timing
        service.ask(question.question, top_k)
    outcomes = []
    for question in questions:
        started = time.perf_counter()
        answer, _ = service.ask(question.question, top_k)
        latency = (time.perf_counter() - started) * 1000
        text = fold_width(question.question)  # as `ask` reads it
        vector, hits = service.retrieve(text, top_k)
        ranks = {mode: _section_rank(service, question, text, vector, mode) for mode in MODES}
        best = extract_answer(text, vector, hits, service.retriever, top_k, min_confidence=0.0)
        read = answer_features(text, vector, hits, service.retriever)
        outcomes.append(
            Outcome(
                question=question,
                section_ranks=ranks,
                answer=answer.text,
                confidence=answer.confidence,
                correct=is_correct(question, answer.text),
                best_correct=question.answerable and is_correct(question, best.text),
                features=None if read is None else read[0],
                latency_ms=latency,
                reading=None if read is None else read[1],
            )
        )
    return outcomes


def is_correct(question: Question, answer: str | None) -> bool:
    """Right: an abstention on an unanswerable question, or a short answer holding the gold phrase."""
    if not question.answerable:
        return answer is None
    if answer is None or question.gold is None:
        return False
    return question.gold.lower() in answer.lower() and sentence_count(answer) <= 2


def sentence_count(text: str) -> int:
    return len(blingfire.text_to_sentences_and_offsets(text)[1])


def _section_rank(service: QAService, question: Question, text: str, vector: np.ndarray, mode: str) -> int | None:
    if not question.answerable:
        return None
    sections: list[tuple[str, str]] = []
    for hit in service.ranking(text, 20, mode, vector=vector):
        key = (hit.chunk.document_id, service.index.section_of(hit.chunk).title)
        if key not in sections:
            sections.append(key)
    gold = (question.document_id or "", question.section or "")
    return sections.index(gold) if gold in sections else None


def report(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """Metrics per split (tune, heldout, all) of the English questions, then of each other language
    apart ("zh-tune", "zh-heldout", "zh-all"), so a language's results never mix into another's."""
    groups: dict[str, list[Outcome]] = {}
    for language in dict.fromkeys(o.question.language for o in outcomes):
        prefix = "" if language == "en" else f"{language}-"
        mine = [o for o in outcomes if o.question.language == language]
        for split in ("tune", "heldout"):
            groups[f"{prefix}{split}"] = [o for o in mine if o.question.split == split]
        groups[f"{prefix}all"] = mine
    return {name: _metrics(group) for name, group in groups.items() if group}


def _metrics(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    answerable = [o for o in outcomes if o.question.answerable]
    unanswerable = [o for o in outcomes if not o.question.answerable]
    retrieval = {}
    for mode in MODES:
        ranks = [o.section_ranks[mode] for o in answerable]
        retrieval[mode] = {
            "hit@1": _share(r is not None and r < 1 for r in ranks),
            "hit@3": _share(r is not None and r < 3 for r in ranks),
            "mrr": round(statistics.fmean(1 / (r + 1) if r is not None else 0.0 for r in ranks), 4) if ranks else 0.0,
        }
    latencies = sorted(o.latency_ms for o in outcomes)
    return {
        "questions": len(outcomes),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "retrieval": retrieval,
        "answer_accuracy": _share(o.correct for o in answerable),
        "abstention": _share(o.answer is None for o in unanswerable),
        "false_abstention": _share(o.answer is None for o in answerable),
        "longest_answer_sentences": max((sentence_count(o.answer) for o in outcomes if o.answer), default=0),
        "latency_ms": {"p50": _percentile(latencies, 50), "p95": _percentile(latencies, 95)},
        "reliability": _reliability(outcomes),
        "by_kind": _by_kind(outcomes),
    }


def _by_kind(outcomes: Sequence[Outcome]) -> dict[str, dict[str, Any]]:
    """Share right per kind of question (answered with the gold phrase, or abstained when unanswerable)."""
    kinds: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        kinds.setdefault(outcome.question.kind, []).append(outcome)
    return {
        kind: {"questions": len(group), "right": _share(o.correct for o in group)}
        for kind, group in sorted(kinds.items())
    }


def _reliability(outcomes: Sequence[Outcome]) -> list[dict[str, Any]]:
    """Share of right outcomes per confidence bin, over the questions that got an answer."""
    rows = []
    answered = [o for o in outcomes if o.answer is not None]
    for low, high in itertools.pairwise(_BINS):
        group = [o for o in answered if low <= o.confidence < high]
        rows.append(
            {
                "confidence": f"{low:.1f}-{min(high, 1.0):.1f}",
                "answers": len(group),
                "right": _share(o.correct for o in group),
            }
        )
    return rows


def _share(flags: Iterable[bool]) -> float:
    values = list(flags)
    return round(sum(values) / len(values), 4) if values else 0.0


def _percentile(values: Sequence[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 2) if values else 0.0


def fit_calibration(
    outcomes: Sequence[Outcome],
    names: Sequence[str] = CALIBRATION_FEATURES,
    max_false_abstention: float = 0.05,
    language: str = "en",
    reading: str | None = None,
) -> dict[str, Any]:
    """Fit the confidence model on tuning outcomes and choose the abstention threshold.

    A label is 1 when the best candidate, answered, would be right; unanswerable questions are 0. The
    threshold is the highest that keeps false abstention within `max_false_abstention`, judged on
    out-of-fold confidences so it is not chosen on the very questions the model was fitted to. Only the
    questions of `language` count, and with `reading` only the answers read that way: each way of reading
    has its own model.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    rows = [
        o
        for o in outcomes
        if o.question.split == "tune"
        and o.question.language == language
        and o.features is not None
        and (reading is None or o.reading == reading)
    ]
    features = np.array([[o.features[name] for name in names] for o in rows if o.features is not None])
    labels = np.array([o.best_correct for o in rows], dtype=int)
    model = LogisticRegression(C=10.0, max_iter=1000).fit(features, labels)
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    out_of_fold = cross_val_predict(
        LogisticRegression(C=10.0, max_iter=1000), features, labels, cv=folds, method="predict_proba"
    )[:, 1]
    answerable = np.array([o.question.answerable for o in rows])
    threshold = 0.2
    for candidate in np.arange(0.2, 0.81, 0.01):
        if np.mean(out_of_fold[answerable] < candidate) <= max_false_abstention:
            threshold = float(candidate)
    return {
        "features": list(names),
        "weights": [round(float(w), 4) for w in model.coef_[0]],
        "bias": round(float(model.intercept_[0]), 4),
        "threshold": round(threshold, 2),
    }
