"""The hot-path question encoder: ONNX Runtime called directly must give the model's own vectors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from hkai_qa.embedding import Embedder, onnx_folder
from hkai_qa.question_encoder import OnnxQuestionEncoder

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = [
    json.loads(line)["question"]
    for line in (ROOT / "tests" / "eval" / "questions.jsonl").read_text(encoding="utf-8").splitlines()
]


def test_direct_onnx_vectors_match_sentence_transformers_and_torch(embedder: Embedder) -> None:
    encode = embedder.question_encoder()
    assert getattr(encode, "__self__", None).__class__ is OnnxQuestionEncoder  # the fast path is the one used
    texts = [*QUESTIONS, "x", "智慧燈柱裝有甚麼？", "word " * 400]  # one character, Chinese, past 256 tokens
    direct = np.vstack([encode([t]) for t in texts])
    batched = encode(texts)
    framework = embedder.encode(texts)
    torch_model = Embedder("all-MiniLM-L6-v2", "torch")
    reference = torch_model.encode(texts)
    for vectors in (direct, batched, framework):
        assert vectors.dtype == np.float32 and vectors.shape == (len(texts), 384)
        assert np.sum(vectors * reference, axis=1).min() >= 0.9999
    assert np.sum(direct * framework, axis=1).min() >= 0.99999


def test_only_the_standard_pipeline_takes_the_fast_path(embedder: Embedder, model_cache: Path, tmp_path: Path) -> None:
    folder = onnx_folder(model_cache, embedder.fingerprint)
    assert OnnxQuestionEncoder.supports(folder)
    other = tmp_path / "cls-pooling"
    shutil.copytree(folder, other)
    pooling = other / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text())
    config.update(pooling_mode="cls") if "pooling_mode" in config else config.update(
        pooling_mode_mean_tokens=False, pooling_mode_cls_token=True
    )
    pooling.write_text(json.dumps(config))
    assert not OnnxQuestionEncoder.supports(other)  # a CLS-pooled model would get the wrong vectors
    assert not OnnxQuestionEncoder.supports(tmp_path / "missing")


def test_torch_embedders_keep_their_own_encode() -> None:
    model = Embedder("all-MiniLM-L6-v2", "torch")
    assert model.question_encoder() == model.encode
