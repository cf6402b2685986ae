"""Vectors cached by the content hash of the exact text the model saw, so a rebuild embeds only what changed.

One file per model under `<index>/cache/`, an `.npz` of two arrays (hex keys and float32 vectors) read with
`allow_pickle=False`. The file is replaced atomically; a cache that cannot be read is ignored (and rebuilt),
never trusted: it can only cost time, not correctness, because every key is the SHA-256 of its text.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from hkai_qa.files import write_atomically

CACHE_DIR = "cache"
log = logging.getLogger("hkai_qa.embedding_cache")


class TextEncoder(Protocol):
    """What the cache needs of a model: the English Embedder and the MultilingualEmbedder both are one."""

    @property
    def name(self) -> str: ...

    @property
    def fingerprint(self) -> str: ...

    def encode(
        self, texts: Sequence[str], batch_size: int = ..., progress: Callable[[int], None] | None = ...
    ) -> np.ndarray: ...


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Text hash -> unit vector, for one model."""

    def __init__(self, path: Path, vectors: dict[str, np.ndarray]) -> None:
        self.path = path
        self._vectors = vectors
        self.used: set[str] = set()

    @classmethod
    def open(cls, index_dir: Path, embedder: TextEncoder) -> EmbeddingCache:
        """The cache for this exact model (name and files) in `index_dir`; empty when there is none or it
        is unreadable."""
        identity = hashlib.sha256(f"{embedder.name}\0{embedder.fingerprint}".encode()).hexdigest()[:16]
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", embedder.name).strip("-.")[:40] or "model"
        path = index_dir / CACHE_DIR / f"embeddings-{slug}-{identity}.npz"
        vectors: dict[str, np.ndarray] = {}
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as stored:
                    keys, matrix = stored["keys"], stored["vectors"]
                    if keys.ndim != 1 or matrix.ndim != 2 or len(keys) != len(matrix):
                        raise ValueError("keys and vectors do not line up")
                    vectors = {str(k): matrix[i] for i, k in enumerate(keys)}
            except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
                log.warning("ignoring unreadable embedding cache %s (%s); it will be rebuilt", path, exc)
        return cls(path, vectors)

    def __len__(self) -> int:
        return len(self._vectors)

    def embed(
        self,
        texts: Sequence[str],
        embedder: TextEncoder,
        progress: Callable[[int], None] | None = None,
        batch_size: int = 64,
    ) -> tuple[np.ndarray, int]:
        """Vectors for `texts` (cached ones reused) and how many distinct texts went to the model."""
        keys = [text_key(text) for text in texts]
        missing = {key: text for key, text in zip(keys, texts, strict=True) if key not in self._vectors}
        if missing:
            fresh = embedder.encode(list(missing.values()), batch_size=batch_size, progress=progress)
            if self._vectors and fresh.shape[1] != next(iter(self._vectors.values())).shape[0]:
                # another dimension: no old entry can be from this model, so none may be used
                self._vectors = {}
                missing = dict(zip(keys, texts, strict=True))
                fresh = embedder.encode(list(missing.values()), batch_size=batch_size, progress=progress)
            self._vectors.update(zip(missing, fresh, strict=True))
        self.used.update(keys)
        if not keys:
            return np.zeros((0, 0), dtype=np.float32), 0
        return np.ascontiguousarray(np.stack([self._vectors[key] for key in keys]), dtype=np.float32), len(missing)

    def save(self) -> None:
        """Keep the entries this build used (the cache follows the corpus) and replace the file atomically."""
        kept = sorted(self.used)
        if not kept:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.savez(
            buffer,
            keys=np.array(kept, dtype="U64"),
            vectors=np.stack([self._vectors[key] for key in kept]).astype(np.float32),
        )
        write_atomically(self.path, buffer.getvalue())
