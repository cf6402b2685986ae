"""The chunk vector index by collection size: exact while small, IVF above, recorded and restored via the manifest."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pytest

from hkai_qa.errors import IndexInvalid
from hkai_qa.index import load_version, write_version
from hkai_qa.types import Chunk, Document, Section, Sentence
from hkai_qa.vector_index import (
    EXACT_LIMIT,
    IVF_NPROBE,
    VectorIndexSpec,
    build_vector_index,
    choose_vector_index,
    search,
    subset,
)
from hkai_qa.versions import VERSIONS

MODEL = "all-MiniLM-L6-v2"
DIMENSION = 384


def _clustered(count: int, seed: int, centres: int = 40) -> np.ndarray:
    """Unit vectors around a few fixed random centres: neighbourhoods like embeddings have, unlike uniform noise."""
    fixed = np.random.default_rng(0).standard_normal((centres, DIMENSION)).astype(np.float32)
    rng = np.random.default_rng(seed)
    vectors = fixed[rng.integers(0, centres, count)] + 0.08 * rng.standard_normal((count, DIMENSION)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _write(index_dir: Path, vectors: np.ndarray, **options: int) -> str:
    """A version whose chunks are the characters of one document, one chunk per vector."""
    text = "x" * len(vectors)
    section = Section("All", ("All",), 0, len(text), "all")
    document = Document("doc", "Doc", "doc.md", text, "0" * 64, (section,))
    chunks = [Chunk(i, "doc", 0, i, i + 1, 0, 0) for i in range(len(vectors))]
    sentence_vectors = vectors[:1].copy()
    return write_version(
        index_dir,
        [document],
        [Sentence("doc", 0, 0, len(text))],
        chunks,
        vectors,
        sentence_vectors,
        MODEL,
        200,
        **options,
    )


def _manifest_path(index_dir: Path, version: str) -> Path:
    return index_dir / VERSIONS / version / "manifest.json"


def _edit_manifest(index_dir: Path, version: str, edit: Callable[[dict[str, Any]], object]) -> None:
    path = _manifest_path(index_dir, version)
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


def test_small_collections_are_searched_exactly():
    vectors = _clustered(500, seed=1)
    queries = _clustered(20, seed=2)
    spec = choose_vector_index(len(vectors))
    assert spec == VectorIndexSpec("flat") and len(vectors) < EXACT_LIMIT
    index = build_vector_index(vectors, spec)
    assert isinstance(index, faiss.IndexFlatIP)
    for query in queries:
        scores, ids = index.search(query.reshape(1, -1), 10)
        brute = vectors @ query
        assert ids[0].tolist() == np.argsort(-brute, kind="stable")[:10].tolist()
        assert np.allclose(scores[0], brute[ids[0]], atol=1e-5)


def test_large_collections_get_ivf_through_write_and_load(tmp_path):
    vectors = _clustered(3000, seed=1)
    version = _write(tmp_path, vectors, exact_limit=1000)
    manifest = json.loads(_manifest_path(tmp_path, version).read_text())
    entry = manifest["vector_index"]
    assert entry["type"] == "ivf" and entry["metric"] == "inner_product"
    assert entry["nprobe"] == IVF_NPROBE and entry["nlist"] > IVF_NPROBE

    index = load_version(tmp_path, version, MODEL).chunk_vectors
    assert isinstance(index, faiss.IndexIVFFlat) and index.ntotal == 3000
    assert index.nlist == entry["nlist"] and index.nprobe == IVF_NPROBE
    assert np.allclose(index.reconstruct(1234), vectors[1234])

    queries = _clustered(100, seed=2)
    exact = build_vector_index(vectors, VectorIndexSpec("flat"))
    _, truth = exact.search(queries, 10)
    found = 0
    for query, expected in zip(queries, truth, strict=True):
        _, ids = index.search(query.reshape(1, -1), 50)  # the depth the retriever asks for
        found += len(set(ids[0][:10].tolist()) & set(expected.tolist()))
    assert found / truth.size >= 0.95


def test_the_same_vectors_build_the_same_ivf_index():
    vectors = _clustered(3000, seed=1)
    spec = choose_vector_index(len(vectors), exact_limit=1000)
    first, second = (faiss.serialize_index(build_vector_index(vectors, spec)) for _ in range(2))
    assert np.array_equal(first, second)


def test_nprobe_comes_from_the_manifest_at_load(tmp_path):
    version = _write(tmp_path, _clustered(3000, seed=1), exact_limit=1000)
    _edit_manifest(tmp_path, version, lambda m: m["vector_index"].update(nprobe=7))
    assert load_version(tmp_path, version, MODEL).chunk_vectors.nprobe == 7


def test_ivf_fills_short_results_with_minus_one(tmp_path):
    vectors = _clustered(3000, seed=1)
    index = build_vector_index(vectors, VectorIndexSpec("ivf", nlist=64, nprobe=1))
    _, ids = index.search(vectors[:5], len(vectors))
    # One list holds fewer than all vectors: the rest are -1, which retrieval skips, never a bad id.
    assert (ids == -1).any()
    assert (((ids >= 0) & (ids < len(vectors))) | (ids == -1)).all()
    assert (ids[:, 0] == np.arange(5)).all()


def test_the_default_corpus_size_stays_exact(tmp_path):
    version = _write(tmp_path, _clustered(120, seed=1))
    manifest = json.loads(_manifest_path(tmp_path, version).read_text())
    assert manifest["vector_index"] == {"type": "flat", "metric": "inner_product"}
    assert isinstance(load_version(tmp_path, version, MODEL).chunk_vectors, faiss.IndexFlatIP)


def test_a_manifest_from_before_the_field_loads_as_flat(tmp_path):
    vectors = _clustered(120, seed=1)
    version = _write(tmp_path, vectors)
    _edit_manifest(tmp_path, version, lambda m: m.pop("vector_index"))
    index = load_version(tmp_path, version, MODEL).chunk_vectors
    assert isinstance(index, faiss.IndexFlatIP)
    _, ids = index.search(vectors[7:8], 1)
    assert ids[0][0] == 7


@pytest.mark.parametrize(
    "entry",
    [
        {"type": "flat", "metric": "l2"},
        {"type": "hnsw", "metric": "inner_product", "M": 32},
        {"type": "ivf", "metric": "inner_product", "nlist": 64},
        {"type": "ivf", "metric": "inner_product", "nlist": 64, "nprobe": 0},
        {"type": "ivf", "metric": "inner_product", "nlist": 64, "nprobe": 65},
        {"type": "ivf", "metric": "inner_product", "nlist": 64, "nprobe": True},
        "flat",
    ],
)
def test_a_malformed_vector_index_entry_is_refused(tmp_path, entry):
    version = _write(tmp_path, _clustered(120, seed=1))
    _edit_manifest(tmp_path, version, lambda m: m.update(vector_index=entry))
    with pytest.raises(IndexInvalid, match="malformed manifest"):
        load_version(tmp_path, version, MODEL)


def test_a_manifest_that_disagrees_with_the_file_is_refused(tmp_path):
    version = _write(tmp_path, _clustered(120, seed=1))
    ivf = {"type": "ivf", "metric": "inner_product", "nlist": 64, "nprobe": 16}
    _edit_manifest(tmp_path, version, lambda m: m.update(vector_index=ivf))
    with pytest.raises(IndexInvalid, match="manifest says ivf with 64 lists but the file holds IndexFlatIP"):
        load_version(tmp_path, version, MODEL)


def test_an_ivf_file_without_its_direct_map_is_refused(tmp_path):
    vectors = _clustered(3000, seed=1)
    version = _write(tmp_path, vectors, exact_limit=1000)
    nlist = json.loads(_manifest_path(tmp_path, version).read_text())["vector_index"]["nlist"]
    bare = faiss.IndexIVFFlat(faiss.IndexFlatIP(DIMENSION), DIMENSION, nlist, faiss.METRIC_INNER_PRODUCT)
    bare.train(vectors)
    bare.add(vectors)
    path = tmp_path / VERSIONS / version / "chunks.faiss"
    faiss.write_index(bare, str(path))
    checksum = hashlib.sha256(path.read_bytes()).hexdigest()
    _edit_manifest(tmp_path, version, lambda m: m["files"].update({"chunks.faiss": checksum}))
    with pytest.raises(IndexInvalid, match="cannot reconstruct its vectors"):
        load_version(tmp_path, version, MODEL)


@pytest.mark.parametrize("spec", [VectorIndexSpec("flat"), VectorIndexSpec("ivf", nlist=16, nprobe=16)])
def test_a_search_among_some_ids_finds_exactly_their_nearest(spec: VectorIndexSpec):
    """A filtered search (FAISS's bitmap selector) is the exact nearest among the allowed ids (for IVF when every
    list is probed); its scores are the true inner products."""
    vectors = _clustered(2_000, seed=7)
    index = build_vector_index(vectors, spec)
    queries = _clustered(5, seed=8)
    mask = np.random.default_rng(1).random(len(vectors)) < 0.3
    scores, ids = search(index, queries, 10, subset(mask))
    among = np.flatnonzero(mask)
    expected = among[np.argsort(-(queries @ vectors[among].T), axis=1)[:, :10]]
    assert np.array_equal(ids, expected)
    assert np.allclose(scores, np.take_along_axis(queries @ vectors.T, ids, axis=1), atol=1e-5)
    assert np.array_equal(search(index, queries, 10)[1][:, 0], np.argmax(queries @ vectors.T, axis=1))


def test_ivf_reaches_a_small_subset_clustered_away_from_the_question():
    """IVF filters only inside the lists it probes: with nprobe 2 of 32 a question near the majority never
    reaches a 5% minority in lists of its own (Chinese chunks for an English question). The search probes more
    lists the smaller the share allowed, so it finds the minority's true nearest."""
    rng = np.random.default_rng(3)
    majority = _clustered(1_900, seed=11, centres=10)
    minority = -_clustered(100, seed=12, centres=2)  # the opposite side of the sphere
    vectors = np.concatenate([majority, minority])
    index = build_vector_index(vectors, VectorIndexSpec("ivf", nlist=32, nprobe=2))
    index.nprobe = 2
    query = majority[rng.integers(0, len(majority), 3)]
    mask = np.zeros(len(vectors), dtype=bool)
    mask[len(majority) :] = True
    plain = faiss.SearchParametersIVF()
    plain.sel, plain.nprobe = faiss.IDSelectorBatch(np.flatnonzero(mask)), 2
    assert (index.search(query, 5, params=plain)[1] == -1).any()  # the problem: too few lists probed
    _, ids = search(index, query, 5, subset(mask))
    among = np.flatnonzero(mask)
    expected = among[np.argsort(-(query @ vectors[among].T), axis=1)[:, :5]]
    assert np.array_equal(ids, expected)
