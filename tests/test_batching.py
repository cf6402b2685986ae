"""The micro-batcher: concurrent questions share a forward pass, the queue is bounded, failures reach callers."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import pytest

from hkai_qa.batching import QuestionBatcher
from hkai_qa.embedding import Embedder
from hkai_qa.errors import Overloaded

QUESTIONS = [
    "What is ASTRI?",
    "smart lampposts",
    "How much computing power does the AI Supercomputing Centre have?",
    "Who regulates personal data in Hong Kong?",
    "What is InnoHK?",
    "cap. 486",
]


def test_questions_that_arrive_together_share_a_batch_and_get_their_own_vectors(embedder: Embedder) -> None:
    batcher = QuestionBatcher(embedder.encode, max_batch=32, window=0.05)
    try:
        futures = [batcher.submit(q) for q in QUESTIONS * 3]
        vectors = np.vstack([f.result(timeout=60) for f in futures])
    finally:
        batcher.close()
    assert batcher.stats.questions == len(QUESTIONS) * 3
    assert batcher.stats.largest > 1 and batcher.stats.batches < len(QUESTIONS) * 3
    alone = embedder.encode(QUESTIONS * 3)
    assert np.sum(vectors * alone, axis=1).min() >= 0.9999  # each future holds its own question's vector


def test_batches_never_exceed_max_batch(embedder: Embedder) -> None:
    batcher = QuestionBatcher(embedder.encode, max_batch=4, window=0.05)
    try:
        for future in [batcher.submit(q) for q in QUESTIONS * 3]:
            future.result(timeout=60)
    finally:
        batcher.close()
    assert batcher.stats.largest == 4 and max(batcher.stats.sizes) == 4


class _Gate:
    """An encoder that waits for the test to open it, so the queue can be filled deterministically."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        self.started.set()
        self.release.wait(timeout=30)
        return np.ones((len(texts), 3), dtype=np.float32)


def test_a_full_queue_refuses_at_once_and_the_rest_are_still_answered() -> None:
    gate = _Gate()
    batcher = QuestionBatcher(gate, max_batch=8, max_pending=2)
    try:
        busy = batcher.submit("first")  # taken by the worker, which then waits at the gate
        assert gate.started.wait(timeout=10)
        waiting = [batcher.submit("second"), batcher.submit("third")]
        assert batcher.pending == 2
        with pytest.raises(Overloaded) as refused:
            batcher.submit("fourth")
        assert refused.value.status == 503 and refused.value.headers == {"Retry-After": "1"}
        assert batcher.stats.refused == 1
        gate.release.set()
        for future in [busy, *waiting]:
            assert future.result(timeout=10).shape == (3,)
        assert batcher.pending == 0
        assert batcher.submit("fifth").result(timeout=10).shape == (3,)  # room again
    finally:
        gate.release.set()
        batcher.close()


def test_an_encoding_failure_reaches_every_caller_and_the_worker_lives_on() -> None:
    calls: list[int] = []

    def encode(texts: Sequence[str]) -> np.ndarray:
        calls.append(len(texts))
        if any("boom" in t for t in texts):
            raise RuntimeError("model failed")
        return np.zeros((len(texts), 2), dtype=np.float32)

    batcher = QuestionBatcher(encode, window=0.05)
    try:
        failing = [batcher.submit("boom"), batcher.submit("also in this batch")]
        for future in failing:
            with pytest.raises(RuntimeError, match="model failed"):
                future.result(timeout=10)
        assert batcher.submit("fine").result(timeout=10).shape == (2,)
    finally:
        batcher.close()
    assert calls[0] == 2


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        QuestionBatcher(lambda texts: np.zeros((len(texts), 1)), max_batch=0)
