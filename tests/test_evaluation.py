"""The eval harness on a tiny corpus with known answers: report shape and values."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from hkai_qa.building import build_index
from hkai_qa.config import Settings
from hkai_qa.documents import load_corpus
from hkai_qa.errors import InvalidRequest
from hkai_qa.evaluation import MODES, Outcome, fit_calibration, is_correct, report, run
from hkai_qa.index import CALIBRATION_FEATURES
from hkai_qa.questions import Question, load_questions
from hkai_qa.service import QAService

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"


@pytest.fixture(scope="module")
def tiny_service(tmp_path_factory, embedder) -> QAService:
    settings = Settings(corpus_dir=FIXTURES / "tiny-corpus", index_dir=tmp_path_factory.mktemp("eval-index"))
    build_index(settings.corpus_dir, settings.index_dir, embedder)
    return QAService(settings, embedder)


def test_report_has_every_metric_per_split(tiny_service: QAService):
    outcomes = run(tiny_service, load_questions(FIXTURES / "tiny-questions.jsonl"))
    result = report(outcomes)
    assert set(result) == {"tune", "heldout", "all"}
    everything = result["all"]
    assert (everything["questions"], everything["answerable"], everything["unanswerable"]) == (5, 3, 2)
    assert set(everything["retrieval"]) == set(MODES)
    assert everything["retrieval"]["hybrid"] == {"hit@1": 1.0, "hit@3": 1.0, "mrr": 1.0}
    assert everything["answer_accuracy"] == 1.0
    assert everything["abstention"] == 1.0 and everything["false_abstention"] == 0.0
    assert everything["longest_answer_sentences"] <= 2
    assert 0 < everything["latency_ms"]["p50"] <= everything["latency_ms"]["p95"]
    assert [row["confidence"] for row in everything["reliability"]] == [
        "0.0-0.2",
        "0.2-0.4",
        "0.4-0.6",
        "0.6-0.8",
        "0.8-1.0",
    ]
    assert sum(row["answers"] for row in everything["reliability"]) == 3
    assert everything["by_kind"] == {
        "direct": {"questions": 2, "right": 1.0},
        "number_date": {"questions": 1, "right": 1.0},
        "offtopic": {"questions": 2, "right": 1.0},
    }
    assert result["heldout"]["questions"] == 2
    json.dumps(result)  # the --json output must serialise


def test_correctness_needs_the_gold_phrase_and_at_most_two_sentences():
    question = Question("q", "?", True, "d", "s", "AI-powered sensors", "direct", "tune")
    assert is_correct(question, "Lampposts carry AI-powered sensors.")
    assert not is_correct(question, "Lampposts carry cameras.")
    assert not is_correct(question, None)
    assert not is_correct(question, "One. Two has AI-powered sensors. Three.")
    unanswerable = Question("u", "?", False, None, None, None, "offtopic", "tune")
    assert is_correct(unanswerable, None) and not is_correct(unanswerable, "Anything.")


GOOD = (
    '{"id": "a", "question": "When?", "answerable": true, "document_id": "d", "section": "s", "gold": "2001", '
    '"kind": "direct", "split": "tune"}'
)


def test_bad_question_file_is_a_clear_error(tmp_path: Path):
    bad = tmp_path / "q.jsonl"
    bad.write_text(f"{GOOD}\nnot json\n", encoding="utf-8")
    with pytest.raises(InvalidRequest, match=r"q\.jsonl:2: not valid JSON"):
        load_questions(bad)


def _record(**changes: object) -> str:
    record = json.loads(GOOD)
    record.update(changes)
    return json.dumps({k: v for k, v in record.items() if v is not ...})


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("[1, 2]", "a question must be a JSON object, not a list"),
        ('"When?"', "a question must be a JSON object, not a string"),
        (_record(question=5), "`question` must be a non-empty string, not a number"),
        (_record(question="  "), "`question` must be a non-empty string, not blank"),
        (_record(id=None), "`id` must be a non-empty string, not null"),
        (_record(gold=5), "`gold` must be a non-empty string for an answerable question, not a number"),
        (_record(gold=None), "`gold` must be a non-empty string for an answerable question, not null"),
        (_record(section=...), "`section` is missing: it must be a non-empty string for an answerable question"),
        (_record(answerable="yes"), "`answerable` must be true or false, not a string"),
        (_record(answerable=1), "`answerable` must be true or false, not a number"),
        (_record(answerable=False, gold=["x"]), "`gold` must be a string or null, not a list"),
        (_record(split=2), "`split` must be a non-empty string, not a number"),
        (_record(kind=...), "`kind` is missing: it must be a non-empty string"),
        (_record(language="fr"), "`language` must be one of 'en', 'zh' or absent, not 'fr'"),
        (_record(language=1), "`language` must be one of 'en', 'zh' or absent, not a number"),
        ('{"id": "x", "question": "When?"}', "`answerable` is missing: it must be true or false"),
        ("[" * 100_000, "not valid JSON (nested too deeply)"),
        ('{"id": ' + "9" * 5000 + "}", "not valid JSON (Exceeds the limit (4300 digits) for integer string conversion"),
    ],
)
def test_every_record_is_checked_and_the_first_bad_one_named_by_line(tmp_path: Path, line: str, says: str):
    path = tmp_path / "q.jsonl"
    path.write_text(f"{GOOD}\n\n{line}\n{GOOD}\n", encoding="utf-8")
    with pytest.raises(InvalidRequest) as caught:
        load_questions(path)
    assert caught.value.message.startswith(f"{path}:3: {says}")


def test_a_file_that_is_not_utf8_empty_or_unreadable_is_a_clear_error(tmp_path: Path):
    path = tmp_path / "q.jsonl"
    path.write_bytes(GOOD.encode() + b"\n\xff\xfe{}\n")
    with pytest.raises(InvalidRequest, match=r"q\.jsonl:2: not UTF-8 text"):
        load_questions(path)
    for empty in (b"", b"\n  \n"):
        path.write_bytes(empty)
        with pytest.raises(InvalidRequest, match=r"^no questions in .*q\.jsonl$"):
            load_questions(path)
    with pytest.raises(InvalidRequest, match=r"cannot be read"):
        load_questions(tmp_path)  # a folder


def test_a_byte_order_mark_and_a_line_separator_inside_a_string_are_read(tmp_path: Path):
    path = tmp_path / "q.jsonl"
    separated = _record(question="When\u2028was it?")
    path.write_text("\ufeff" + GOOD + "\n" + json.dumps(json.loads(separated), ensure_ascii=False), encoding="utf-8")
    questions = load_questions(path)
    assert [q.question for q in questions] == ["When?", "When\u2028was it?"]
    assert questions[0] == Question("a", "When?", True, "d", "s", "2001", "direct", "tune", "en")


def _outcome(number: int, answerable: bool, right: bool, features: dict[str, float]) -> Outcome:
    question = Question(f"q{number}", "?", answerable, None, None, None, "direct", "tune")
    return Outcome(question, {}, None, 0.0, False, right, features, 1.0)


def test_calibration_threshold_keeps_false_abstention_within_the_cap():
    rng = np.random.default_rng(7)
    outcomes = []
    for number in range(120):
        answerable = number % 4 != 0
        right = answerable and number % 31 != 0
        centre = 0.7 if right else 0.4
        features = {name: float(rng.normal(centre, 0.15)) for name in CALIBRATION_FEATURES}
        outcomes.append(_outcome(number, answerable, right, features))
    fitted = fit_calibration(outcomes)
    assert fitted["features"] == list(CALIBRATION_FEATURES) and len(fitted["weights"]) == len(CALIBRATION_FEATURES)
    assert 0.2 < fitted["threshold"] <= 0.8

    def confidence(outcome: Outcome) -> float:
        assert outcome.features is not None
        z = fitted["bias"] + sum(
            w * outcome.features[n] for n, w in zip(fitted["features"], fitted["weights"], strict=True)
        )
        return 1 / (1 + math.exp(-z))

    answerable = [o for o in outcomes if o.question.answerable]
    unanswerable = [o for o in outcomes if not o.question.answerable]
    false_abstention = sum(confidence(o) < fitted["threshold"] for o in answerable) / len(answerable)
    abstention = sum(confidence(o) < fitted["threshold"] for o in unanswerable) / len(unanswerable)
    assert false_abstention <= 0.1  # chosen out of fold for 0.05, so in-sample stays close
    assert abstention >= 0.5
    # A stricter cap never raises the threshold.
    assert fit_calibration(outcomes, max_false_abstention=0.0)["threshold"] <= fitted["threshold"]


def test_chinese_questions_are_reported_apart_from_the_english_ones():
    def outcome(number: int, language: str, split: str, correct: bool) -> Outcome:
        question = Question(f"q{number}", "?", True, "d", "s", "x", "direct", split, language)
        return Outcome(question, dict.fromkeys(MODES, 0), "x" if correct else None, 0.9, correct, correct, None, 1.0)

    outcomes = [outcome(1, "en", "tune", True), outcome(2, "en", "heldout", True)]
    outcomes += [outcome(3, "zh", "tune", False), outcome(4, "zh", "heldout", True), outcome(5, "zh", "heldout", False)]
    result = report(outcomes)
    assert set(result) == {"tune", "heldout", "all", "zh-tune", "zh-heldout", "zh-all"}
    assert result["all"]["questions"] == 2 and result["all"]["answer_accuracy"] == 1.0
    assert result["zh-all"]["questions"] == 3 and result["zh-heldout"]["answer_accuracy"] == 0.5
    assert result["zh-tune"]["false_abstention"] == 1.0


def test_a_calibration_is_fitted_on_its_own_language_only():
    rng = np.random.default_rng(3)
    outcomes = []
    for number in range(80):
        right = number % 3 != 0
        features = {name: float(rng.normal(0.7 if right else 0.4, 0.1)) for name in CALIBRATION_FEATURES}
        question = Question(f"z{number}", "?", right, None, None, None, "zh", "tune", "zh")
        outcomes.append(Outcome(question, {}, None, 0.0, False, right, features, 1.0))
    # English rows that would break any fit that read them: every feature is NaN.
    for number in range(10):
        question = Question(f"e{number}", "?", True, None, None, None, "direct", "tune")
        nan = dict.fromkeys(CALIBRATION_FEATURES, float("nan"))
        outcomes.append(Outcome(question, {}, None, 0.0, False, number % 2 == 0, nan, 1.0))
    fitted = fit_calibration(outcomes, ("sentence_similarity", "margin"), max_false_abstention=0.1, language="zh")
    assert fitted["features"] == ["sentence_similarity", "margin"] and all(w > 0 for w in fitted["weights"])
    # Only the answers read one way count when `reading` is given: none were read in their own script here.
    with pytest.raises(ValueError):
        fit_calibration(outcomes, ("sentence_similarity", "margin"), 0.1, language="zh", reading="same_script")
    with pytest.raises(ValueError):
        fit_calibration(outcomes)  # the English rows alone: NaN features


def test_question_files_name_their_language_or_are_english(tmp_path: Path):
    path = tmp_path / "q.jsonl"
    rows = [
        {"id": "a", "question": "When?", "answerable": False, "kind": "x", "split": "tune"},
        {"id": "b", "question": "幾時？", "answerable": False, "kind": "x", "split": "tune", "language": "zh"},
    ]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    assert [q.language for q in load_questions(path)] == ["en", "zh"]


@pytest.mark.parametrize(
    ("corpus", "questions"),
    [
        (ROOT / "corpus", ROOT / "tests" / "eval" / "questions.jsonl"),
        (ROOT / "benchmarks" / "unseen-corpus" / "corpus", ROOT / "benchmarks" / "unseen-corpus" / "questions.jsonl"),
    ],
    ids=["our-eval", "unseen-corpus"],
)
def test_eval_questions_name_real_sections_holding_their_gold_phrases(corpus: Path, questions: Path):
    """`make eval` and `make eval-unseen` score section hits by title: a change in how documents are read must
    not leave a question naming a section that no longer holds its gold phrase."""
    documents = {d.id: d for d in load_corpus(corpus).documents}
    for question in load_questions(questions):
        if not question.answerable:
            continue
        document = documents[question.document_id or ""]
        sections = [s for s in document.sections if s.title == question.section]
        assert any((question.gold or "") in document.text[s.start : s.end] for s in sections), question.id
