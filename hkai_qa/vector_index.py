"""Which FAISS index holds the chunk vectors: exact search while the collection is small, IVF beyond.

The vectors are unit length, so inner product is cosine similarity for every index type. The choice and
its parameters are recorded in the manifest (`vector_index`) and the query-time one (nprobe) is applied
again at load, so the manifest, not whatever the FAISS file happens to carry, says how a version is searched.

Why IVF and not HNSW (benchmarks/scale.py, 1M embedding-like vectors, the shared 2-core VM): IndexIVFFlat with
1,024 lists trained and filled in 23 s and reached recall@10 0.999 at nprobe 16 with a p50 of 2.3 ms;
IndexHNSWFlat (M 32, efConstruction 40) took 12.5 minutes to build and levelled off near recall 0.97
(0.966 at efSearch 64, 0.5 ms). Every rebuild re-creates the index, so build time is paid on each upload.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np

# Below this many chunks the search is exact (IndexFlatIP). Measured on the 2-core VM (benchmarks/scale.py):
# one exact search costs under 0.6 ms up to 9,999 vectors. From 10,000 FAISS splits a single exact search
# over its OpenMP threads, which on a busy VM costs 2-16 ms (single-threaded it would grow 0.14 ms per
# 1,000 vectors, 5 ms near 35,000), while IVF answers in 0.1-0.2 ms at 10k-50k with recall@10 1.0.
EXACT_LIMIT = 10_000
IVF_NPROBE = 16  # lists searched per question: recall@10 0.999 at 1M (nprobe 8: 0.97, 12: 0.99)
_POINTS_PER_LIST = 64  # k-means training sample per list (FAISS warns below 39)

TYPES = ("flat", "ivf")


@dataclass(frozen=True, slots=True)
class VectorIndexSpec:
    """How the chunk vectors are indexed and searched; `as_manifest()` is what the manifest records."""

    type: str  # "flat" (exact) or "ivf"
    nlist: int = 0
    nprobe: int = 0

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"vector index type must be one of {', '.join(TYPES)}, not {self.type!r}")
        if self.type == "ivf" and not 1 <= self.nprobe <= self.nlist:
            raise ValueError(f"an IVF index needs 1 <= nprobe <= nlist, got nprobe {self.nprobe}, nlist {self.nlist}")

    def as_manifest(self) -> dict[str, Any]:
        """The manifest's `vector_index` entry."""
        if self.type == "flat":
            return {"type": "flat", "metric": "inner_product"}
        return {"type": "ivf", "metric": "inner_product", "nlist": self.nlist, "nprobe": self.nprobe}

    @classmethod
    def from_manifest(cls, entry: Any) -> VectorIndexSpec:
        """Read a manifest's `vector_index` entry (ValueError when malformed); versions from before it are flat."""
        if entry is None:
            return cls("flat")
        if not isinstance(entry, dict) or entry.get("metric") != "inner_product":
            raise ValueError(f"vector_index must name the inner_product metric, got {entry!r}")
        if entry.get("type") == "ivf":
            values = [entry.get("nlist"), entry.get("nprobe")]
            numbers = [v for v in values if isinstance(v, int) and not isinstance(v, bool)]
            if len(numbers) != len(values):
                raise ValueError(f"vector_index needs integer nlist and nprobe, got {entry!r}")
            return cls("ivf", *numbers)
        return cls(str(entry.get("type")))


def choose_vector_index(count: int, exact_limit: int = EXACT_LIMIT) -> VectorIndexSpec:
    """Exact search below `exact_limit` vectors; from there IVF with about sqrt(count) lists (1,024 at 1M).

    At 1M, 2,048 lists searched 1.4 ms instead of 2.3 ms but took 59 s to build instead of 23 s.
    """
    if count < exact_limit:
        return VectorIndexSpec("flat")
    nlist = max(1, min(2 ** round(math.log2(math.sqrt(count))), count // 39))
    return VectorIndexSpec("ivf", nlist, min(IVF_NPROBE, nlist))


def build_vector_index(vectors: np.ndarray, spec: VectorIndexSpec) -> faiss.Index:
    """A FAISS index of `spec`'s type holding `vectors` (float32, unit length) with ids 0..n-1."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    dimension = int(vectors.shape[1])
    if spec.type == "flat":
        flat = faiss.IndexFlatIP(dimension)
        flat.add(vectors)
        return flat
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(dimension), dimension, spec.nlist, faiss.METRIC_INNER_PRODUCT)
    # A random sample, not the first rows: chunks come in document order, so a prefix covers few topics.
    # Fixed seeds (this one and FAISS's k-means seed) make a rebuild of the same vectors give the same index.
    size = min(len(vectors), spec.nlist * _POINTS_PER_LIST)
    sample = np.sort(np.random.default_rng(0).choice(len(vectors), size, replace=False))
    ivf.train(vectors[sample])
    ivf.add(vectors)
    ivf.make_direct_map()  # reconstruct(i), which retrieval uses for chunks BM25 found and FAISS did not
    ivf.nprobe = spec.nprobe
    return ivf


def prepare_for_search(index: faiss.Index, spec: VectorIndexSpec) -> None:
    """Check a loaded index is what the manifest says and set its query-time parameter from it.

    Raises ValueError on a mismatch. FAISS 1.15 does store nprobe in the file, but the manifest is the
    record: a version is searched with the nprobe it was built and measured with.
    """
    if index.metric_type != faiss.METRIC_INNER_PRODUCT:
        raise ValueError("the vector index does not use the inner product metric")
    if spec.type == "flat" and not isinstance(index, faiss.IndexFlat):
        raise ValueError(f"the manifest says flat but the file holds {type(index).__name__}")
    if spec.type == "ivf":
        if not isinstance(index, faiss.IndexIVFFlat) or index.nlist != spec.nlist:
            raise ValueError(f"the manifest says ivf with {spec.nlist} lists but the file holds {_describe(index)}")
        try:
            index.reconstruct(0)
        except RuntimeError as exc:  # no direct map: retrieval could not look up a vector by id
            raise ValueError("the IVF index cannot reconstruct its vectors (no direct map)") from exc
        index.nprobe = spec.nprobe


def _describe(index: faiss.Index) -> str:
    lists = getattr(index, "nlist", None)
    return type(index).__name__ + (f" with {lists} lists" if lists is not None else "")


@dataclass(frozen=True)
class Subset:
    """Some of an index's ids, as a mask and as FAISS's bitmap selector (built once: a batch selector over
    900k ids takes about 90 ms to build, the bitmap 0.2 ms)."""

    mask: np.ndarray  # bool, one per id
    count: int
    bitmap: np.ndarray  # the selector reads this buffer: it must live as long as the selector
    selector: faiss.IDSelector


def subset(mask: np.ndarray) -> Subset:
    """The ids `mask` marks, ready to search among."""
    mask = mask.astype(bool)
    bitmap = np.packbits(mask, bitorder="little")
    selector = faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap))  # n: the bitmap's length in bytes
    return Subset(mask, int(mask.sum()), bitmap, selector)


def search(
    index: faiss.Index, queries: np.ndarray, k: int, among: Subset | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """FAISS search of the `k` nearest vectors, only among the ids of `among` when given.

    Flat indexes filter exactly. IVF looks for the allowed ids only inside the lists it probes, so it probes
    more of them the smaller the allowed share (nprobe / share, at most every list): a minority clustered
    away from the question (Chinese chunks for an English one) is still reached."""
    if among is None:
        return index.search(queries, k)
    if isinstance(index, faiss.IndexIVF):
        ivf = faiss.SearchParametersIVF()
        share = max(among.count, 1) / max(index.ntotal, 1)
        ivf.sel, ivf.nprobe = among.selector, min(index.nlist, math.ceil(index.nprobe / share))
        return index.search(queries, k, params=ivf)
    params = faiss.SearchParameters()
    params.sel = among.selector
    return index.search(queries, k, params=params)
