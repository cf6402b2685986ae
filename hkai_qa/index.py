"""The index on disk: versions of FAISS vectors + JSON metadata + a checksummed manifest.

Each build writes a fresh version folder and publishes it by atomically replacing the `CURRENT`
pointer, so a reader never sees a half-written index. One writer at a time holds `.build.lock`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from hkai_qa.errors import IndexInvalid, IndexNotFound
from hkai_qa.files import fsync_dir
from hkai_qa.types import Chunk, Document, Section, Sentence
from hkai_qa.vector_index import (
    EXACT_LIMIT,
    VectorIndexSpec,
    build_vector_index,
    choose_vector_index,
    prepare_for_search,
)
from hkai_qa.versions import (
    KEEP_VERSIONS,
    STAGING_PREFIX,
    VERSIONS,
    build_lock,
    current_version,
    history,
    prune,
    publish,
)

FORMAT_VERSION = 1
_FILES = ("documents.json", "sentences.json", "chunks.json", "chunks.faiss", "sentences.npy")
# Written when the build has the multilingual model: the same chunks and sentences in its vector space.
_MULTILINGUAL_FILES = ("chunks.multilingual.faiss", "sentences.multilingual.npy")

# Abstention calibration: logistic weights over answer features, fitted on the tuning split of
# tests/eval/questions.jsonl (see hkai_qa/evaluation.py); copied into every manifest.
CALIBRATION_FEATURES = (
    "sentence_similarity",
    "coverage",
    "chunk_similarity",
    "unseen",
    "missing_terms",
    "margin",
    "missing_names",
)
DEFAULT_CALIBRATION: dict[str, Any] = {
    "features": list(CALIBRATION_FEATURES),
    "weights": [1.7729, 4.6258, 0.4594, -0.0812, 0.3802, 2.4005, -1.5461],
    "bias": -4.3908,
    "threshold": 0.29,
}
# The same kind of model for questions answered through the multilingual space, fitted on the tuning
# split of the Chinese questions: its similarities are compressed (on- and off-topic both score high), so
# the English weights do not carry over.
MULTILINGUAL_CALIBRATION_FEATURES = ("sentence_similarity", "chunk_similarity", "margin", "coverage")
DEFAULT_MULTILINGUAL_CALIBRATION: dict[str, Any] = {
    "features": list(MULTILINGUAL_CALIBRATION_FEATURES),
    "weights": [3.7545, 4.0018, 3.2922, 3.4994],
    "bias": -6.9272,
    "threshold": 0.41,
}
# And for an answer read in the question's own script (a Chinese question answered from a Chinese document),
# fitted on the tune split of the Chinese questions over the Chinese fixture corpus: there the question's
# character pairs match the text, so coverage means what it does in English, not what it does across
# languages, and same-language similarities run higher. Manifests written before it use the one above.
DEFAULT_SAME_SCRIPT_CALIBRATION: dict[str, Any] = {
    "features": list(MULTILINGUAL_CALIBRATION_FEATURES),
    "weights": [1.2401, 1.2007, 2.5261, 4.1975],
    "bias": -3.3161,
    "threshold": 0.49,
}


@dataclass(frozen=True, slots=True)
class VectorSpace:
    """One model's vectors of the chunks (searched through FAISS) and of every sentence (row per sentence)."""

    chunk_vectors: faiss.Index
    sentence_vectors: np.ndarray


@dataclass(slots=True)
class Index:
    """A loaded, validated index version."""

    path: Path
    manifest: dict[str, Any]
    documents: dict[str, Document]
    sentences: list[Sentence]
    chunks: list[Chunk]
    chunk_vectors: faiss.Index
    sentence_vectors: np.ndarray
    multilingual: VectorSpace | None = None  # None when built without the multilingual model, or not loaded

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    def chunk_text(self, chunk: Chunk) -> str:
        return self.documents[chunk.document_id].text[chunk.start : chunk.end]

    def sentence_text(self, sentence: Sentence) -> str:
        return self.documents[sentence.document_id].text[sentence.start : sentence.end]

    def section_of(self, chunk: Chunk | Sentence) -> Section:
        return self.documents[chunk.document_id].sections[chunk.section]


def document_fingerprint(document: Document) -> str:
    """Hash of everything indexed about a document (text, title, source, sections), not the text alone:
    a renamed extension or a new HTML title changes what is stored and embedded."""
    payload = json.dumps(_document_json(document), ensure_ascii=False, sort_keys=True).encode("utf-8")
    return hashlib.sha256(payload).hexdigest()


def embedding_text(document: Document, section: Section, text: str) -> str:
    """What the model sees for a chunk: titles count as evidence for the text under them."""
    # A Markdown section's path already starts with the document's own title: count it once.
    path = section.path[1:] if section.path[:1] == (document.title,) else section.path
    heading = " > ".join(p for p in (document.title, *path) if p)
    return f"{heading}. {text}"


def write_version(
    index_dir: Path,
    documents: Sequence[Document],
    sentences: Sequence[Sentence],
    chunks: Sequence[Chunk],
    chunk_vectors: np.ndarray,
    sentence_vectors: np.ndarray,
    model: str,
    chunk_tokens: int,
    pipeline: str = "",
    model_fingerprint: str = "",
    exact_limit: int = EXACT_LIMIT,
    multilingual: tuple[np.ndarray, np.ndarray, dict[str, str]] | None = None,
) -> str:
    """Write a new version folder (manifest last), make it current, prune old ones; returns its name.

    The chunk vectors are searched exactly below `exact_limit` of them, through IVF from there (vector_index.py).
    `multilingual`: the chunk and sentence vectors of the multilingual model, and its name and fingerprint.
    Call with the build lock held. Until the final rename the files live in a `.staging-*` folder that
    no reader looks at, so a crash at any point leaves the current version untouched.
    """
    counts = {
        "documents": len(documents),
        "sections": sum(len(d.sections) for d in documents),
        "chunks": len(chunks),
        "sentences": len(sentences),
    }
    built_at = datetime.now(UTC)
    digest = hashlib.sha256("".join(d.sha256 for d in documents).encode()).hexdigest()[:8]
    version = f"{built_at:%Y%m%dT%H%M%S%f}Z-{digest}"
    versions = index_dir / VERSIONS
    versions.mkdir(parents=True, exist_ok=True)
    staging = versions / f"{STAGING_PREFIX}{version}"
    staging.mkdir()
    try:
        _write_json(staging / "documents.json", [_document_json(d) for d in documents])
        _write_json(
            staging / "sentences.json", [[s.document_id, s.section, s.start, s.end, s.citable] for s in sentences]
        )
        _write_json(
            staging / "chunks.json",
            [[c.document_id, c.section, c.start, c.end, c.first_sentence, c.last_sentence] for c in chunks],
        )
        spec = choose_vector_index(len(chunk_vectors), exact_limit)
        faiss.write_index(build_vector_index(chunk_vectors, spec), str(staging / "chunks.faiss"))
        np.save(staging / "sentences.npy", sentence_vectors, allow_pickle=False)
        files = list(_FILES)
        extra: dict[str, Any] = {}
        if multilingual is not None:
            chunk_space, sentence_space, identity = multilingual
            faiss.write_index(build_vector_index(chunk_space, spec), str(staging / "chunks.multilingual.faiss"))
            np.save(staging / "sentences.multilingual.npy", sentence_space, allow_pickle=False)
            files += _MULTILINGUAL_FILES
            extra["multilingual"] = {
                **identity,
                "dimension": int(sentence_space.shape[1]),
                "calibration": DEFAULT_MULTILINGUAL_CALIBRATION,
                "same_script_calibration": DEFAULT_SAME_SCRIPT_CALIBRATION,
            }
        _failpoint("HKAI_QA_FAILPOINT_BEFORE_MANIFEST")
        manifest = {
            "format_version": FORMAT_VERSION,
            "version": version,
            "built_at": built_at.isoformat(),
            "model": {"name": model, "dimension": int(chunk_vectors.shape[1]), "fingerprint": model_fingerprint},
            "chunk_tokens": chunk_tokens,
            "pipeline": pipeline,
            "counts": counts,
            "documents": {d.id: document_fingerprint(d) for d in documents},
            "calibration": DEFAULT_CALIBRATION,
            "vector_index": spec.as_manifest(),
            **extra,
            "files": {name: _sha256(staging / name) for name in files},
        }
        _write_json(staging / "manifest.json", manifest)  # written last: its presence marks a whole version
        _fsync_tree(staging)
        staging.rename(versions / version)
        fsync_dir(versions)
        publish(index_dir, version)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    prune(index_dir, keep=KEEP_VERSIONS)
    return version


def load_index(index_dir: Path, model: str, multilingual: bool = True) -> Index:
    """Load and validate the current version against its manifest and the configured model.

    `multilingual=False` leaves the multilingual vectors on disk (checked, not loaded): a service without the
    model cannot use them, and they are as large as the English ones."""
    try:
        return load_version(index_dir, current_version(index_dir), model, multilingual)
    except IndexInvalid as exc:
        if "was built with model" in exc.message:
            raise
        raise IndexInvalid(
            f"{exc.message} (`hkai-qa versions` lists the versions kept; `hkai-qa rollback` serves the one before, "
            "or rebuild with `hkai-qa build --force`)"
        ) from exc


def load_version(index_dir: Path, version: str, model: str, multilingual: bool = True) -> Index:
    """Load one version; IndexInvalid with the reason when it is missing, partial or corrupt."""
    path = index_dir / VERSIONS / version
    if not version or "/" in version or version.startswith(".") or not path.is_dir():
        raise IndexInvalid(f"index version {version!r} does not exist in {index_dir}")
    manifest = read_manifest(path)
    _validate(path, manifest, model)
    try:
        docs = [_document_from_json(d) for d in _read_json(path / "documents.json")]
        sentences = [Sentence(d, s, a, b, bool(c)) for d, s, a, b, c in _read_json(path / "sentences.json")]
        chunks = [Chunk(i, *row) for i, row in enumerate(_read_json(path / "chunks.json"))]
        chunk_vectors = faiss.read_index(str(path / "chunks.faiss"))
        sentence_vectors = np.load(path / "sentences.npy", allow_pickle=False)
        space = None
        if multilingual and "multilingual" in manifest:
            space = VectorSpace(
                faiss.read_index(str(path / "chunks.multilingual.faiss")),
                np.load(path / "sentences.multilingual.npy", allow_pickle=False),
            )
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as exc:
        raise IndexInvalid(f"index version {version} cannot be read ({exc.__class__.__name__}: {exc})") from exc
    documents = {d.id: d for d in docs}
    dimension = manifest["model"]["dimension"]
    if chunk_vectors.ntotal != len(chunks) or sentence_vectors.shape[0] != len(sentences):
        raise IndexInvalid(f"index version {version}: vector counts do not match the chunk and sentence counts")
    if chunk_vectors.d != dimension or sentence_vectors.shape[1] != dimension:
        raise IndexInvalid(f"index version {version}: vector dimension does not match the manifest ({dimension})")
    if space is not None:
        width = manifest["multilingual"]["dimension"]
        if (
            space.chunk_vectors.ntotal != len(chunks)
            or space.chunk_vectors.d != width
            or space.sentence_vectors.shape != (len(sentences), width)
        ):
            raise IndexInvalid(f"index version {version}: the multilingual vectors do not match the chunks")
    try:
        spec = VectorIndexSpec.from_manifest(manifest.get("vector_index"))
        prepare_for_search(chunk_vectors, spec)
        if space is not None:
            prepare_for_search(space.chunk_vectors, spec)
    except ValueError as exc:
        raise IndexInvalid(f"index version {version}: {exc}") from exc
    return Index(path, manifest, documents, sentences, chunks, chunk_vectors, sentence_vectors, space)


def read_manifest(path: Path) -> dict[str, Any]:
    """A version folder's manifest; IndexInvalid when it is missing or not a JSON object."""
    try:
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IndexInvalid(f"index version {path.name} in {path.parent.parent} has no readable manifest") from exc
    if not isinstance(manifest, dict):
        raise IndexInvalid(f"index version {path.name} has a malformed manifest")
    return manifest


def validate_version(index_dir: Path, version: str, model: str) -> dict[str, Any]:
    """Check a version's manifest and file checksums without loading it; returns the manifest."""
    path = index_dir / VERSIONS / version
    if not version or "/" in version or version.startswith(".") or not path.is_dir():
        raise IndexInvalid(f"index version {version!r} does not exist in {index_dir}")
    manifest = read_manifest(path)
    _validate(path, manifest, model)
    return manifest


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """One version folder as `hkai-qa versions` lists it."""

    version: str
    current: bool
    built_at: str | None
    counts: dict[str, int]
    problem: str | None  # why it cannot be loaded, None when it validates


def list_versions(index_dir: Path, model: str) -> list[VersionInfo]:
    """Every complete version folder, newest first, each validated."""
    folder = index_dir / VERSIONS
    if not folder.is_dir():
        return []
    try:
        current: str | None = current_version(index_dir)
    except IndexNotFound:
        current = None
    infos = []
    for name in sorted((p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")), reverse=True):
        built_at, counts, problem = None, {}, None
        try:
            manifest = validate_version(index_dir, name, model)
            built_at, counts = str(manifest["built_at"]), dict(manifest["counts"])
        except IndexInvalid as exc:
            problem = exc.message
        infos.append(VersionInfo(name, name == current, built_at, counts, problem))
    return infos


def rollback(index_dir: Path, model: str, version: str | None = None) -> str:
    """Make `version` current again; by default the valid version that was served before this one."""
    with build_lock(index_dir):
        current = current_version(index_dir)
        if version is None:
            valid = {v.version for v in list_versions(index_dir, model) if v.problem is None}
            served = [v for v in reversed(history(index_dir)) if v != current and v in valid]
            older = served or sorted((v for v in valid if v < current), reverse=True)
            if not older:
                raise IndexInvalid(f"no earlier valid version than {current} to roll back to in {index_dir}")
            version = older[0]
        validate_version(index_dir, version, model)
        load_version(index_dir, version, model)  # fully readable, not just checksummed
        publish(index_dir, version, forget=current if version != current else None)
        return version


def _validate(path: Path, manifest: dict[str, Any], model: str) -> None:
    try:
        _check_manifest(path, manifest, model)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise IndexInvalid(
            f"index version {path.name} has a malformed manifest ({exc.__class__.__name__}: {exc})"
        ) from exc


def _check_manifest(path: Path, manifest: dict[str, Any], model: str) -> None:
    version = path.name
    if manifest.get("version") != version:
        raise IndexInvalid(
            f"index version {version}: its manifest names version {manifest.get('version')!r}; "
            "a version folder must keep the name it was built with"
        )
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexInvalid(
            f"index version {version} has format {manifest.get('format_version')}, this program reads "
            f"format {FORMAT_VERSION}: rebuild with `hkai-qa build`"
        )
    built_with = str(manifest.get("model", {}).get("name", ""))
    if built_with.lower() != model.lower():
        raise IndexInvalid(
            f"index version {version} was built with model {built_with!r} but the configured model is "
            f"{model!r}: rebuild, or set HKAI_QA_MODEL={built_with}"
        )
    for name, expected in manifest.get("files", {}).items():
        file = path / name
        if not file.is_file() or _sha256(file) != expected:
            raise IndexInvalid(f"index version {version}: {name} is missing or does not match its checksum")
    expected = set(_FILES) | (set(_MULTILINGUAL_FILES) if "multilingual" in manifest else set())
    if set(manifest.get("files", {})) != expected:
        raise IndexInvalid(f"index version {version}: the manifest does not list the expected files")
    calibrations = [manifest["calibration"]]
    if "multilingual" in manifest:
        calibrations.append(manifest["multilingual"]["calibration"])
        if "same_script_calibration" in manifest["multilingual"]:  # absent in older versions
            calibrations.append(manifest["multilingual"]["same_script_calibration"])
        if not isinstance(manifest["multilingual"]["dimension"], int):
            raise IndexInvalid(f"index version {version}: the manifest is malformed")
    if (
        not all(_calibration_valid(calibration) for calibration in calibrations)
        or not isinstance(manifest["model"]["dimension"], int)
        or not isinstance(manifest["counts"], dict)
        or not isinstance(manifest["built_at"], str)
    ):
        raise IndexInvalid(f"index version {version}: the manifest is malformed")
    VectorIndexSpec.from_manifest(manifest.get("vector_index"))  # absent in older versions: flat


def _calibration_valid(calibration: dict[str, Any]) -> bool:
    return (
        set(calibration["features"]) <= set(CALIBRATION_FEATURES)
        and len(calibration["features"]) == len(calibration["weights"])
        and 0 <= float(calibration["threshold"]) <= 1
    )


def _failpoint(name: str) -> None:
    """A test hook: pause here for the seconds the environment variable `name` gives (default: not at all).

    The crash tests set it so a `kill -9` lands, every time, after the data files and before the manifest.
    """
    seconds = os.environ.get(name, "")
    if seconds:
        time.sleep(float(seconds))


def _document_json(document: Document) -> dict[str, Any]:
    data = asdict(document)
    data["sections"] = [asdict(s) for s in document.sections]
    return data


def _document_from_json(data: dict[str, Any]) -> Document:
    sections = tuple(Section(s["title"], tuple(s["path"]), s["start"], s["end"], s["anchor"]) for s in data["sections"])
    return Document(data["id"], data["title"], data["source"], data["text"], data["sha256"], sections)


def _write_json(path: Path, data: Any) -> None:
    with path.open("w", encoding="utf-8") as handle:
        json.dump(data, handle, ensure_ascii=False, separators=(",", ":"))


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_tree(path: Path) -> None:
    """Flush every file of a folder and then the folder itself to disk."""
    for file in path.iterdir():
        with file.open("rb") as handle:
            os.fsync(handle.fileno())
    fsync_dir(path)
