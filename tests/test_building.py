"""Incremental builds, the embedding cache, the build lock, versions and rollback, on real files."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pytest

from hkai_qa.building import BuildSummary, build_index
from hkai_qa.embedding_cache import CACHE_DIR
from hkai_qa.errors import BuildRunning, IndexInvalid
from hkai_qa.index import DEFAULT_MULTILINGUAL_CALIBRATION, list_versions, load_index, rollback
from hkai_qa.versions import VERSIONS, build_lock, current_version

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "tiny-corpus"
MODEL = "all-MiniLM-L6-v2"


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    shutil.copytree(FIXTURE, folder)
    return folder


def _built(corpus: Path, index: Path, embedder, **options):
    before = embedder.encoded
    summary = build_index(corpus, index, embedder, **options)
    return summary, embedder.encoded - before


def test_second_build_without_changes_embeds_nothing_and_keeps_the_version(corpus, tmp_path, embedder):
    index = tmp_path / "index"
    first, first_calls = _built(corpus, index, embedder)
    assert first.published and first_calls == first.embedded > 0
    assert set(first.added) == {"harbour-lab", "guides/tea"} and first.unchanged == 0
    again, calls = _built(corpus, index, embedder)
    assert calls == 0 and again.embedded == 0
    assert not again.published and again.version == first.version == current_version(index)
    assert again.unchanged == 2 and again.chunks == first.chunks


def test_forced_build_writes_a_new_version_from_the_cache_alone(corpus, tmp_path, embedder):
    index = tmp_path / "index"
    first, _ = _built(corpus, index, embedder)
    forced, calls = _built(corpus, index, embedder, force=True)
    assert calls == 0 and forced.embedded == 0 and forced.reused > 0
    assert forced.published and forced.version != first.version == list_versions(index, MODEL)[1].version
    old, new = load_index(index, MODEL), None
    assert old.version == forced.version
    new = np.load(index / VERSIONS / first.version / "sentences.npy", allow_pickle=False)
    assert np.array_equal(old.sentence_vectors, new)  # cached vectors are the vectors the model gave


def test_changed_added_and_removed_documents(corpus, tmp_path, embedder):
    index = tmp_path / "index"
    first, _ = _built(corpus, index, embedder)
    tea = corpus / "guides" / "tea.md"
    tea.write_text(tea.read_text(encoding="utf-8") + "\nGreen tea wants water at 80 degrees Celsius.\n", "utf-8")
    (corpus / "harbour-lab.txt").unlink()
    (corpus / "ferries.txt").write_text("The Star Ferry crosses Victoria Harbour in nine minutes.\n", "utf-8")
    summary, calls = _built(corpus, index, embedder)
    assert summary.changed == ("guides/tea",) and summary.added == ("ferries",) and summary.removed == ("harbour-lab",)
    assert summary.unchanged == 0 and summary.published
    # only texts that are new went to the model: the new document and the tea chunks that changed
    assert 0 < calls == summary.embedded < first.embedded
    loaded = load_index(index, MODEL)
    assert set(loaded.documents) == {"guides/tea", "ferries"}


def test_unreadable_cache_is_ignored_and_rebuilt(corpus, tmp_path, embedder):
    index = tmp_path / "index"
    first, _ = _built(corpus, index, embedder)
    for cached in (index / CACHE_DIR).iterdir():
        cached.write_bytes(b"not a zip file")
    again, calls = _built(corpus, index, embedder, force=True)
    assert again.published and calls == first.embedded
    _, calls = _built(corpus, index, embedder, force=True)
    assert calls == 0  # the cache was written back whole


def test_a_held_lock_makes_a_second_build_fail_fast(corpus, tmp_path, embedder):
    index = tmp_path / "index"
    with build_lock(index), pytest.raises(BuildRunning, match="another build is running"):
        build_index(corpus, index, embedder)
    summary, _ = _built(corpus, index, embedder)  # released: the next one runs
    assert summary.published


def test_versions_lists_newest_first_and_flags_a_corrupt_one(corpus, tmp_path, embedder):
    index = tmp_path / "index"
    first, _ = _built(corpus, index, embedder)
    second, _ = _built(corpus, index, embedder, force=True)
    (index / VERSIONS / first.version / "chunks.json").write_text("[]", encoding="utf-8")
    versions = list_versions(index, MODEL)
    assert [v.version for v in versions] == [second.version, first.version]
    assert versions[0].current and versions[0].problem is None and versions[0].counts["documents"] == 2
    assert not versions[1].current and "checksum" in (versions[1].problem or "")


def test_rollback_to_the_previous_version_and_refuse_a_corrupt_one(corpus, tmp_path, embedder):
    index = tmp_path / "index"
    first, _ = _built(corpus, index, embedder)
    second, _ = _built(corpus, index, embedder, force=True)
    assert rollback(index, MODEL) == first.version == current_version(index)
    assert rollback(index, MODEL, second.version) == second.version == current_version(index)
    (index / VERSIONS / first.version / "manifest.json").unlink()
    with pytest.raises(IndexInvalid, match="no readable manifest"):
        rollback(index, MODEL, first.version)
    with pytest.raises(IndexInvalid, match="no earlier valid version"):
        rollback(index, MODEL)
    with pytest.raises(IndexInvalid, match="does not exist"):
        rollback(index, MODEL, "../../etc")
    assert current_version(index) == second.version


def test_only_the_last_versions_are_kept_and_staging_leftovers_are_cleared(corpus, tmp_path, embedder):
    index = tmp_path / "index"
    built = [_built(corpus, index, embedder, force=True)[0].version for _ in range(5)]
    (index / VERSIONS / ".staging-left-by-a-killed-build").mkdir()
    _built(corpus, index, embedder, force=True)
    names = sorted(p.name for p in (index / VERSIONS).iterdir())
    assert len(names) == 3 and built[-1] in names and not any(n.startswith(".") for n in names)


def test_pruning_and_rollback_follow_the_order_versions_were_served(corpus, tmp_path, embedder):
    index = tmp_path / "index"
    v1, v2, v3 = (_built(corpus, index, embedder, force=True)[0].version for _ in range(3))
    assert rollback(index, MODEL, v1) == v1  # v3 is rolled away from: it drops out of the served order
    v4 = _built(corpus, index, embedder, force=True)[0].version
    assert {p.name for p in (index / VERSIONS).iterdir()} == {v4, v1, v2}  # v3 pruned first
    assert rollback(index, MODEL) == v1  # what was served before v4
    assert rollback(index, MODEL) == v2  # and again one further back, never back and forth
    assert current_version(index) == v2 != v3


def test_a_lock_taken_for_a_build_in_one_thread_is_let_go_by_another(corpus, tmp_path, embedder):
    # A rebuild job takes the lock when it is asked for (so a CLI build started later is the one refused) and
    # its worker thread builds under it, then lets it go.
    index = tmp_path / "index"
    held = ExitStack()
    held.enter_context(build_lock(index))
    with pytest.raises(BuildRunning):
        build_index(corpus, index, embedder)  # anyone else is refused

    def worker() -> None:
        with held:
            results.append(build_index(corpus, index, embedder, lock_held=True))

    results: list[BuildSummary] = []
    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(timeout=300)
    assert results and results[0].published
    with build_lock(index):  # let go by the worker: free again
        pass


def test_a_damaged_history_file_never_blocks_builds_or_rollbacks(corpus, tmp_path, embedder):
    index = tmp_path / "index"
    first = _built(corpus, index, embedder)[0].version
    with (index / "HISTORY").open("ab") as handle:
        handle.write(b"\xff\xfe garbage ../../etc\n")
    second = _built(corpus, index, embedder, force=True)[0].version
    assert current_version(index) == second
    assert rollback(index, MODEL) == first


def test_a_new_extension_or_title_is_a_change_even_when_the_text_is_the_same(corpus, tmp_path, embedder):
    index = tmp_path / "index"
    _built(corpus, index, embedder)
    (corpus / "guides" / "tea.md").rename(corpus / "guides" / "tea.txt")
    summary, _ = _built(corpus, index, embedder)
    assert summary.published and summary.changed == ("guides/tea",)
    assert load_index(index, MODEL).documents["guides/tea"].source == "guides/tea.txt"


def test_a_different_model_in_a_folder_never_reuses_another_models_vectors(corpus, tmp_path, embedder):
    from hkai_qa.embedding import Embedder, resolve_model

    index = tmp_path / "index"
    _built(corpus, index, embedder)
    folder = tmp_path / "my-model"
    shutil.copytree(resolve_model(MODEL), folder)
    local = Embedder(str(folder))
    first = build_index(corpus, index, local)  # another model name: everything embedded afresh
    assert first.published and first.embedded == local.encoded > 0
    assert build_index(corpus, index, local).published is False
    (folder / "README.md").write_text("retrained: same name, other files\n", encoding="utf-8")
    changed = Embedder(str(folder))
    again = build_index(corpus, index, changed)
    assert again.published and again.embedded == changed.encoded == first.embedded


# --- the multilingual space (a second model's vectors of the same sentences) ---

MULTILINGUAL_FILES = {"chunks.multilingual.faiss", "sentences.multilingual.npy"}
ENGLISH_FILES = {"documents.json", "sentences.json", "chunks.json", "chunks.faiss", "sentences.npy", "manifest.json"}


@pytest.fixture()
def small_corpus(tmp_path: Path) -> Path:
    """Seven sentences: four citable, a source line, a fragment, and a section that is only a source line."""
    folder = tmp_path / "small-corpus"
    folder.mkdir()
    (folder / "harbour.md").write_text(
        "# Harbour Lab\n\n## Robots\n\n"
        "The lab builds underwater drones that inspect the piers of Victoria Harbour. "
        "Each drone carries a sonar scanner and two cameras.\n\n"
        "Source: https://example.org/harbour-lab, 2024-01-01\n\n"
        "## Funding\n\nThe lab received HK$12 million from the Tide Foundation. Thanks a lot.\n\n"
        "## Links\n\nSource: https://example.org/more, 2024-02-02\n",
        encoding="utf-8",
    )
    (folder / "tea.txt").write_text("Oolong brews best with water at 90 degrees Celsius. Steep it twice.\n", "utf-8")
    return folder


def _ml_built(corpus: Path, index: Path, embedder, multilingual, **options):
    """A build and how many texts went to the multilingual model."""
    before = multilingual.encoded
    summary = build_index(corpus, index, embedder, multilingual=multilingual, **options)
    return summary, multilingual.encoded - before


def _files(index: Path, version: str) -> set[str]:
    return {p.name for p in (index / VERSIONS / version).iterdir()}


def _manifest(index: Path, version: str) -> dict:
    return json.loads((index / VERSIONS / version / "manifest.json").read_text(encoding="utf-8"))


def _sentence_rows(index: Path, version: str) -> list[list]:
    return json.loads((index / VERSIONS / version / "sentences.json").read_text(encoding="utf-8"))


def test_a_multilingual_build_writes_both_spaces_and_a_manifest_entry(small_corpus, tmp_path, embedder, multilingual):
    index = tmp_path / "index"
    summary, calls = _ml_built(small_corpus, index, embedder, multilingual)
    assert summary.published and calls == 4  # the four citable sentences, nothing else
    assert _files(index, summary.version) == ENGLISH_FILES | MULTILINGUAL_FILES
    manifest = _manifest(index, summary.version)
    entry = manifest["multilingual"]
    assert entry["model"] == "multilingual-e5-small-q4" and entry["fingerprint"] == multilingual.fingerprint
    assert entry["dimension"] == 384 and entry["calibration"] == DEFAULT_MULTILINGUAL_CALIBRATION
    folder = index / VERSIONS / summary.version
    for name in MULTILINGUAL_FILES:
        assert manifest["files"][name] == hashlib.sha256((folder / name).read_bytes()).hexdigest()
    loaded = load_index(index, MODEL)
    assert loaded.multilingual is not None
    assert loaded.multilingual.chunk_vectors.ntotal == summary.chunks
    assert loaded.multilingual.sentence_vectors.shape == (summary.sentences, 384)


def test_multilingual_sentence_vectors_are_passages_for_citable_sentences_and_zero_otherwise(
    small_corpus, tmp_path, embedder, multilingual
):
    index = tmp_path / "index"
    summary, _ = _ml_built(small_corpus, index, embedder, multilingual)
    folder = index / VERSIONS / summary.version
    space = np.load(folder / "sentences.multilingual.npy", allow_pickle=False)
    assert space.dtype == np.float32 and space.shape == (summary.sentences, 384) == (8, 384)
    rows = _sentence_rows(index, summary.version)
    documents = {d["id"]: d["text"] for d in json.loads((folder / "documents.json").read_text(encoding="utf-8"))}
    texts = [documents[doc][start:end] for doc, _, start, end, _ in rows]
    citable = np.array([bool(row[4]) for row in rows])
    assert citable.sum() == 4 and not all(citable)
    assert {t for t, c in zip(texts, citable, strict=True) if not c} == {
        "Source: https://example.org/harbour-lab, 2024-01-01",
        "Thanks a lot.",
        "Source: https://example.org/more, 2024-02-02",
        "Steep it twice.",
    }
    assert not space[~citable].any()  # all zeros
    assert np.allclose(np.linalg.norm(space[citable], axis=1), 1.0, atol=1e-4)
    cited = [t for t, c in zip(texts, citable, strict=True) if c]
    assert np.allclose(space[citable], multilingual.encode(cited), atol=1e-4)  # passages, not queries
    assert not np.allclose(space[citable], multilingual.encode_questions(cited), atol=1e-3)


def test_multilingual_chunk_vectors_are_the_normalised_mean_of_their_sentences(
    small_corpus, tmp_path, embedder, multilingual
):
    import faiss

    index = tmp_path / "index"
    summary, _ = _ml_built(small_corpus, index, embedder, multilingual)
    folder = index / VERSIONS / summary.version
    space = np.load(folder / "sentences.multilingual.npy", allow_pickle=False)
    chunk_index = faiss.read_index(str(folder / "chunks.multilingual.faiss"))
    chunks = json.loads((folder / "chunks.json").read_text(encoding="utf-8"))
    assert chunk_index.ntotal == len(chunks) == summary.chunks and chunk_index.d == 384
    stored = chunk_index.reconstruct_n(0, chunk_index.ntotal)
    assert np.all(np.isfinite(stored))
    empty = 0
    for number, (_, _, _, _, first, last) in enumerate(chunks):
        total = space[first : last + 1].sum(axis=0)
        norm = np.linalg.norm(total)
        if norm == 0:  # only source lines and fragments: nothing to match, not NaN
            empty += 1
            assert not stored[number].any()
            continue
        assert np.allclose(stored[number], total / norm, atol=1e-5), f"chunk {number}"
        assert abs(np.linalg.norm(stored[number]) - 1.0) < 1e-4
    assert empty == 1  # the "Links" section
    several = [n for n, c in enumerate(chunks) if c[5] - c[4] >= 1 and space[c[4] : c[5] + 1].any(axis=1).sum() >= 2]
    assert several  # a mean of more than one sentence was checked, not only copies


def test_an_unchanged_multilingual_build_publishes_nothing(small_corpus, tmp_path, embedder, multilingual):
    index = tmp_path / "index"
    first, _ = _ml_built(small_corpus, index, embedder, multilingual)
    english_before = embedder.encoded
    again, calls = _ml_built(small_corpus, index, embedder, multilingual)
    assert not again.published and again.version == first.version == current_version(index)
    assert calls == 0 and embedder.encoded == english_before and again.embedded == 0
    assert len(list_versions(index, MODEL)) == 1


def test_turning_multilingual_off_and_on_forces_new_versions(small_corpus, tmp_path, embedder, multilingual):
    index = tmp_path / "index"
    first, _ = _ml_built(small_corpus, index, embedder, multilingual)
    off = build_index(small_corpus, index, embedder, multilingual=None)
    assert off.published and off.version != first.version == list_versions(index, MODEL)[1].version
    assert off.embedded == 0  # the English vectors all came from the cache
    assert _files(index, off.version) == ENGLISH_FILES and "multilingual" not in _manifest(index, off.version)
    assert load_index(index, MODEL).multilingual is None
    still_off = build_index(small_corpus, index, embedder, multilingual=None)
    assert not still_off.published and still_off.version == off.version
    on, calls = _ml_built(small_corpus, index, embedder, multilingual)
    assert on.published and on.version not in (first.version, off.version)
    assert calls == 0 and on.embedded == 0  # the multilingual cache outlived the build without it
    assert _files(index, on.version) == ENGLISH_FILES | MULTILINGUAL_FILES
    loaded = load_index(index, MODEL)
    assert loaded.version == on.version and loaded.multilingual is not None
    old = np.load(index / VERSIONS / first.version / "sentences.multilingual.npy", allow_pickle=False)
    assert np.array_equal(loaded.multilingual.sentence_vectors, old)


def test_a_forced_multilingual_rebuild_comes_from_the_caches(small_corpus, tmp_path, embedder, multilingual):
    index = tmp_path / "index"
    first, first_calls = _ml_built(small_corpus, index, embedder, multilingual)
    assert first.embedded > first_calls == 4
    english_before = embedder.encoded
    forced, calls = _ml_built(small_corpus, index, embedder, multilingual, force=True)
    assert forced.published and forced.version != first.version
    assert forced.embedded == 0 and calls == 0 and embedder.encoded == english_before
    assert forced.reused == first.embedded  # every text, English and multilingual, came from a cache
    for name in ("sentences.multilingual.npy", "sentences.npy"):
        old = np.load(index / VERSIONS / first.version / name, allow_pickle=False)
        new = np.load(index / VERSIONS / forced.version / name, allow_pickle=False)
        assert np.array_equal(old, new), name


def test_a_changed_document_sends_only_its_new_sentences_to_the_multilingual_model(
    small_corpus, tmp_path, embedder, multilingual
):
    index = tmp_path / "index"
    _ml_built(small_corpus, index, embedder, multilingual)
    tea = small_corpus / "tea.txt"
    tea.write_text(tea.read_text(encoding="utf-8") + "Green tea wants water at 80 degrees Celsius.\n", "utf-8")
    summary, calls = _ml_built(small_corpus, index, embedder, multilingual)
    assert summary.published and summary.changed == ("tea",) and calls == 1
    loaded = load_index(index, MODEL)
    assert loaded.multilingual is not None
    number = next(n for n, s in enumerate(loaded.sentences) if loaded.sentence_text(s).startswith("Green tea"))
    fresh = multilingual.encode(["Green tea wants water at 80 degrees Celsius."])[0]
    assert np.allclose(loaded.multilingual.sentence_vectors[number], fresh, atol=1e-4)


def test_build_progress_counts_the_multilingual_texts(small_corpus, tmp_path, embedder, multilingual):
    events: list[tuple[str, int, int]] = []
    summary = build_index(
        small_corpus, tmp_path / "index", embedder, multilingual=multilingual, progress=lambda *e: events.append(e)
    )
    embedding = [(done, total) for stage, done, total in events if stage == "embedding"]
    assert embedding[0][0] == 0 and embedding[-1] == (summary.embedded, summary.embedded)
    assert [done for done, _ in embedding] == sorted(done for done, _ in embedding)
