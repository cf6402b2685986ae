"""The embedding model through ONNX Runtime and torch: the same vectors, one export reused, clear failures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hkai_qa.documents import load_corpus
from hkai_qa.embedding import Embedder, onnx_folder
from hkai_qa.errors import ModelNotFound

ROOT = Path(__file__).resolve().parent.parent


def _corpus_sentences(limit: int = 120) -> list[str]:
    corpus = load_corpus(ROOT / "corpus")
    sentences: list[str] = []
    for document in corpus.documents:
        sentences.extend(line.strip() for line in document.text.split(". ") if len(line.strip()) > 20)
    return sentences[:limit]


def test_onnx_and_torch_vectors_agree_on_real_sentences(embedder: Embedder) -> None:
    """Corpus vectors and question vectors may come from either path; they must be the same vectors."""
    torch_model = Embedder("all-MiniLM-L6-v2", "torch")
    texts = [*_corpus_sentences(), "What does the AI Supercomputing Centre offer?", "智慧燈柱裝有甚麼？"]
    onnx_vectors = embedder.encode(texts)
    torch_vectors = torch_model.encode(texts)
    assert embedder.backend == "onnx" and torch_model.backend == "torch"
    assert onnx_vectors.shape == torch_vectors.shape == (len(texts), 384)
    cosines = np.sum(onnx_vectors * torch_vectors, axis=1)
    assert cosines.min() >= 0.9999, f"least agreement {cosines.min()} on {texts[int(cosines.argmin())]!r}"
    assert np.allclose(np.linalg.norm(onnx_vectors, axis=1), 1.0, atol=1e-5)


def test_one_question_and_a_batch_give_the_same_vector(embedder: Embedder) -> None:
    """Micro-batching pads questions to the longest in the batch; padding must not change a vector."""
    questions = ["What is ASTRI?", "How much computing power does the AI Supercomputing Centre have in total?"]
    alone = np.vstack([embedder.encode([q]) for q in questions])
    together = embedder.encode(questions)
    assert np.sum(alone * together, axis=1).min() >= 0.9999


def test_the_export_is_made_once_and_reused(embedder: Embedder, model_cache: Path) -> None:
    folder = onnx_folder(model_cache, embedder.fingerprint)
    model_file = folder / "onnx" / "model.onnx"
    assert model_file.is_file()
    written = model_file.stat().st_mtime_ns
    again = Embedder("all-MiniLM-L6-v2", "auto", model_cache)
    vector = again.encode(["smart lampposts"])
    assert again.backend == "onnx"
    assert model_file.stat().st_mtime_ns == written  # loaded, not exported again
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".staging-")]
    assert float(vector[0] @ embedder.encode(["smart lampposts"])[0]) >= 0.9999


def test_auto_without_a_cache_folder_runs_torch() -> None:
    model = Embedder("all-MiniLM-L6-v2")
    model.warm_up()
    assert model.backend == "torch"


def test_onnx_for_a_model_that_is_not_local_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match="not a local model folder"):
        Embedder("no-such-model", "onnx", tmp_path).warm_up()
    assert not (tmp_path / "onnx").exists() or not any((tmp_path / "onnx").iterdir())


def test_an_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown embedding backend"):
        Embedder("all-MiniLM-L6-v2", "tensorflow")
