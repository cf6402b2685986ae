"""Incremental builds, the embedding cache, the build lock, versions and rollback, on real files."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from hkai_qa.building import build_index
from hkai_qa.embedding_cache import CACHE_DIR
from hkai_qa.errors import BuildRunning, IndexInvalid
from hkai_qa.index import list_versions, load_index, rollback
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
