"""Questions -> vectors in micro-batches: questions that arrive together share one forward pass.

One worker thread owns the model for questions. It takes the first waiting question, then every other
question already waiting (up to `max_batch`), optionally waiting `window` seconds for more, and encodes
them in one call. At one client nothing waits for a window (the default is 0: only questions that queued
while the model was busy join a batch); under load, batches grow with concurrency, so throughput grows
instead of queueing one forward pass at a time. The queue is bounded: beyond `max_pending` waiting
questions, `submit` refuses at once (the API answers 503) rather than letting latency grow without end.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from hkai_qa.errors import Overloaded

log = logging.getLogger("hkai_qa.batching")


@dataclass
class BatchStats:
    """What the batcher has done, for /metrics and the benchmarks."""

    batches: int = 0
    questions: int = 0
    refused: int = 0
    largest: int = 0
    sizes: dict[int, int] = field(default_factory=dict)  # batch size -> how many batches had it


class QuestionBatcher:
    """Encodes submitted texts in batches on one worker thread; `submit` returns a Future of the vector."""

    def __init__(
        self,
        encode: Callable[[Sequence[str]], np.ndarray],
        max_batch: int = 32,
        window: float = 0.0,
        max_pending: int = 256,
    ) -> None:
        if max_batch < 1 or max_pending < 1 or window < 0:
            raise ValueError("max_batch and max_pending must be at least 1 and window not negative")
        self._encode = encode
        self.max_batch = max_batch
        self.window = window
        self.max_pending = max_pending
        self.stats = BatchStats()
        self._queue: queue.Queue[tuple[str, Future[np.ndarray]] | None] = queue.Queue()
        self._pending = 0
        self._pending_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="hkai-qa-question-batcher", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        """Questions waiting for the model (the batch being encoded not counted)."""
        return self._pending

    def submit(self, text: str) -> Future[np.ndarray]:
        """Queue one text; Overloaded when `max_pending` texts are already waiting."""
        with self._pending_lock:
            if self._pending >= self.max_pending:
                self.stats.refused += 1
                raise Overloaded("the server is busy answering other questions; try again in a moment")
            self._pending += 1
        future: Future[np.ndarray] = Future()
        self._queue.put((text, future))
        return future

    def close(self) -> None:
        """Stop the worker after the questions already queued."""
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = self._gather(batch)
            self._encode_batch(batch)
            if stop:
                return

    def _gather(self, batch: list[tuple[str, Future[np.ndarray]]]) -> bool:
        """Add waiting questions to `batch`; True when the stop signal was met."""
        deadline = time.monotonic() + self.window
        while len(batch) < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                return False
            if item is None:
                return True
            batch.append(item)
        return False

    def _encode_batch(self, batch: list[tuple[str, Future[np.ndarray]]]) -> None:
        live = [(text, future) for text, future in batch if future.set_running_or_notify_cancel()]
        with self._pending_lock:
            self._pending -= len(batch)
        if not live:
            return
        try:
            vectors = self._encode([text for text, _ in live])
        except Exception as exc:  # every waiting request learns of the failure; the worker lives on
            log.exception("encoding a batch of %d questions failed", len(live))
            for _, future in live:
                future.set_exception(exc)
            return
        stats = self.stats
        stats.batches += 1
        stats.questions += len(live)
        stats.largest = max(stats.largest, len(live))
        stats.sizes[len(live)] = stats.sizes.get(len(live), 0) + 1
        for (_, future), vector in zip(live, vectors, strict=True):
            future.set_result(vector)
