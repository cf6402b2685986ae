"""Questions -> vectors on the hot path: the exported ONNX model called directly, without the framework.

sentence-transformers' `encode` costs about 1.5 ms per call on this 2-core machine before and after the
model runs (input checks, sorting, feature dicts, torch tensors). For a question that is a quarter of the
whole answer, so questions go straight to ONNX Runtime: the model folder's own fast tokenizer, the same
`model.onnx` the embedder exported, mean pooling over real tokens and unit length, exactly what the
folder's sentence-transformers modules do. It is used only for folders whose modules are that pipeline
(Transformer -> mean Pooling -> Normalize); anything else keeps the embedder. The tests check its vectors
against torch and against sentence-transformers on real sentences.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

_MEAN_POOLING = {
    "pooling_mode_mean_tokens": True,
    "pooling_mode_cls_token": False,
    "pooling_mode_max_tokens": False,
    "pooling_mode_mean_sqrt_len_tokens": False,
}


class OnnxQuestionEncoder:
    """Unit-length float32 vectors for short texts from an exported sentence-transformers folder."""

    def __init__(self, folder: Path, max_tokens: int, session_options: Any) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        self.max_tokens = max_tokens  # the model's max_seq_length, as sentence-transformers truncates
        self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._tokenizer.enable_truncation(self.max_tokens)
        self._tokenizer.no_padding()
        self._session = onnxruntime.InferenceSession(
            str(folder / "onnx" / "model.onnx"), session_options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._lock = threading.Lock()

    @classmethod
    def supports(cls, folder: Path) -> bool:
        """Whether the folder's pipeline is Transformer -> mean Pooling -> Normalize (what this reproduces)."""
        try:
            modules = [m["type"].rsplit(".", 1)[-1] for m in _read_json(folder / "modules.json")]
            pooling = _read_json(folder / "1_Pooling" / "config.json")
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return False
        # Newer sentence-transformers write {"pooling_mode": "mean"}, older ones one flag per mode.
        means = pooling.get("pooling_mode") == "mean" or (
            "pooling_mode" not in pooling and all(pooling.get(k, False) == v for k, v in _MEAN_POOLING.items())
        )
        files = (folder / "tokenizer.json").is_file() and (folder / "onnx" / "model.onnx").is_file()
        return modules == ["Transformer", "Pooling", "Normalize"] and means and files

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """One row per text, in order; a batch is padded to its longest text (padding is masked out)."""
        encodings = self._tokenizer.encode_batch(list(texts))
        longest = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), longest), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, encoding in enumerate(encodings):
            ids[row, : len(encoding.ids)] = encoding.ids
            mask[row, : len(encoding.ids)] = 1
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        with self._lock:
            tokens = self._session.run(None, feed)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (tokens * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return np.ascontiguousarray(pooled / norms, dtype=np.float32)


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))
