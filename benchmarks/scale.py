"""Scale benchmark: chunk vector search at 10k, 100k and 1M synthetic vectors with the index the builder picks.

Vectors (384-d float32, unit length) are embedding-like rather than uniform: uniform random vectors in
384 dimensions have no neighbourhoods, and approximate search recall collapses on them. Here each vector
is a blend of two sub-topic centres of the same topic (64 topics, 4,096 sub-topics, blend weight uniform),
plus Gaussian noise, plus a mean direction all vectors share; the spread along dimension i falls as
i**-0.375, so the variance decays like an embedding's spectrum. Measured on 3,000 of them: mean pairwise
cosine 0.13, mean nearest-neighbour cosine 0.70, participation ratio 59 (the real corpus's sentence vectors:
0.27, 0.73, 36, a single-domain collection). Queries are held-out vectors drawn the same way. A mixture
favours IVF, whose k-means can find its centres; the blending keeps sub-topics from being separate islands,
but recall on a real million-chunk collection should be checked again when there is one.

For each size: the index type `choose_vector_index` picks (hkai_qa/vector_index.py), build seconds, p50/p95
milliseconds of one question searched as the retriever does it (a single vector, depth 50), recall@10 of
those results against exact search (IndexFlatIP), memory (the serialized index bytes and the process's RSS
growth while building), and exact search timed in the same runs as the reference: the ratio is what to
compare across machines. Every figure is the median of `--runs` runs. FAISS builds with its default OpenMP
threads (the machine's cores) and searches with them too unless `--search-threads` says otherwise; one IVF
question runs on one thread either way, but exact search splits a single question over all threads from
10,000 vectors. Prints a table and writes JSON (machine, versions, date, settings).

    python benchmarks/scale.py [--sizes 10000,100000,1000000] [--queries 200] [--runs 3] [--search-threads N]
                               [--out PATH]
    python benchmarks/scale.py --sizes 5000,10000,20000,50000 --index ivf   # where exact stops paying
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import psutil

from hkai_qa.vector_index import EXACT_LIMIT, VectorIndexSpec, build_vector_index, choose_vector_index

ROOT = Path(__file__).resolve().parent.parent
DIMENSION = 384
DEPTH = 50  # what Retriever.search asks FAISS for with the default top_k and candidates
TARGET_P50_MS = 5.0  # issue 7, at 1M chunks
TARGET_RECALL = 0.95
TARGET_SIZE = 1_000_000
_TOPICS, _SUBTOPICS, _TOPIC_SPREAD, _NOISE, _SHARED = 64, 4096, 0.6, 0.8, 0.5


def synthetic_vectors(count: int, seed: int) -> np.ndarray:
    """`count` embedding-like unit vectors; the topic structure is fixed, `seed` draws the points."""
    structure = np.random.default_rng(0)
    scale = np.arange(1, DIMENSION + 1, dtype=np.float32) ** -0.375
    scale /= np.linalg.norm(scale)
    shared = structure.standard_normal(DIMENSION, dtype=np.float32)
    shared *= _SHARED / np.linalg.norm(shared)
    topics = structure.standard_normal((_TOPICS, DIMENSION), dtype=np.float32) * scale
    topic_of = structure.integers(0, _TOPICS, _SUBTOPICS)
    centres = (
        topics[topic_of] + _TOPIC_SPREAD * structure.standard_normal((_SUBTOPICS, DIMENSION), dtype=np.float32) * scale
    )
    by_topic = np.argsort(topic_of, kind="stable")  # sub-topics grouped by topic: siblings are a slice
    counts = np.bincount(topic_of, minlength=_TOPICS)
    offsets = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rng = np.random.default_rng(seed)
    out = np.empty((count, DIMENSION), dtype=np.float32)
    for start in range(0, count, 100_000):  # in blocks: the temporaries stay small next to the result
        n = min(100_000, count - start)
        first = rng.integers(0, _SUBTOPICS, n)
        topic = topic_of[first]
        second = by_topic[offsets[topic] + (rng.random(n) * counts[topic]).astype(np.int64)]
        weight = rng.random((n, 1), dtype=np.float32)
        block = weight * centres[first] + (1 - weight) * centres[second]
        block += _NOISE * rng.standard_normal((n, DIMENSION), dtype=np.float32) * scale + shared
        out[start : start + n] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def time_queries(index: faiss.Index, queries: np.ndarray) -> tuple[list[float], np.ndarray]:
    """Milliseconds per single-vector search at the retriever's depth, and the ids found."""
    times, found = [], np.empty((len(queries), DEPTH), dtype=np.int64)
    for row, query in enumerate(queries):
        vector = query.reshape(1, -1)
        started = time.perf_counter()
        _, ids = index.search(vector, DEPTH)
        times.append((time.perf_counter() - started) * 1000)
        found[row] = ids[0]
    return times, found


def recall_at_10(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(set(f[:10].tolist()) & set(t[:10].tolist())) for f, t in zip(found, truth, strict=True))
    return hits / truth[:, :10].size


def measure(size: int, queries: int, reference_queries: int, runs: int, kind: str, threads: int) -> dict[str, Any]:
    """One row of the table: build, time and check the chosen index at `size` vectors."""
    vectors = synthetic_vectors(size, seed=1)
    held_out = synthetic_vectors(queries, seed=2)
    if kind == "auto":
        spec = choose_vector_index(size)
    elif kind == "flat":
        spec = VectorIndexSpec("flat")
    else:
        spec = choose_vector_index(size, exact_limit=0)
    process = psutil.Process()
    gc.collect()
    rss_before = process.memory_info().rss
    started = time.perf_counter()
    index = build_vector_index(vectors, spec)
    build_seconds = time.perf_counter() - started
    rss_growth = process.memory_info().rss - rss_before
    index_bytes = len(faiss.serialize_index(index))
    exact = index if spec.type == "flat" else build_vector_index(vectors, VectorIndexSpec("flat"))
    _, truth = exact.search(held_out, 10)
    build_threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads or build_threads)
    reference = held_out[:reference_queries]
    p50s, p95s, exact_p50s, recalls = [], [], [], []
    for _ in range(runs):  # chosen and exact alternate, so a noisy neighbour slows both
        times, found = time_queries(index, held_out)
        exact_times, _ = time_queries(exact, reference)
        p50s.append(statistics.median(times))
        p95s.append(float(np.percentile(times, 95)))
        exact_p50s.append(statistics.median(exact_times))
        recalls.append(recall_at_10(found, truth))
    p50, exact_p50 = statistics.median(p50s), statistics.median(exact_p50s)
    row = {
        "size": size,
        "vector_index": spec.as_manifest(),
        "build_seconds": round(build_seconds, 2),
        "p50_ms": round(p50, 3),
        "p95_ms": round(statistics.median(p95s), 3),
        "exact_p50_ms": round(exact_p50, 3),
        "p50_to_exact": round(p50 / exact_p50, 4),
        "recall_at_10": round(statistics.median(recalls), 4),
        "index_bytes": index_bytes,
        "vector_bytes": int(vectors.nbytes),
        "rss_growth_bytes": int(rss_growth),
        "runs": {"p50_ms": p50s, "p95_ms": p95s, "exact_p50_ms": exact_p50s, "recall_at_10": recalls},
    }
    faiss.omp_set_num_threads(build_threads)
    del index, exact, vectors
    gc.collect()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated collection sizes")
    parser.add_argument("--queries", type=int, default=200, help="held-out questions per run")
    parser.add_argument("--reference-queries", type=int, default=50, help="of those, timed on exact search too")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--search-threads", type=int, default=0, help="OpenMP threads while timing (0: FAISS default)")
    parser.add_argument("--index", choices=("auto", "flat", "ivf"), default="auto", help="auto: as a build chooses")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "scale.json")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    started = time.perf_counter()
    rows = []
    for size in sizes:
        print(f"{size:,} vectors ...", file=sys.stderr, flush=True)
        rows.append(
            measure(
                size,
                args.queries,
                min(args.reference_queries, args.queries),
                args.runs,
                args.index,
                args.search_threads,
            )
        )
    print(
        f"{'chunks':>9}  {'index':<22} {'build s':>8} {'p50 ms':>7} {'p95 ms':>7} {'exact p50':>9} {'ratio':>7}"
        f" {'recall@10':>9} {'index MB':>8} {'RSS+ MB':>8}"
    )
    for row in rows:
        spec = row["vector_index"]
        name = spec["type"] if spec["type"] == "flat" else f"ivf nlist {spec['nlist']} nprobe {spec['nprobe']}"
        target = ""
        if row["size"] == TARGET_SIZE:
            target = f"  target: p50 <= {TARGET_P50_MS:g} ms, recall@10 >= {TARGET_RECALL}"
        print(
            f"{row['size']:>9,}  {name:<22} {row['build_seconds']:>8.1f} {row['p50_ms']:>7.3f} {row['p95_ms']:>7.3f}"
            f" {row['exact_p50_ms']:>9.3f} {row['p50_to_exact']:>7.4f} {row['recall_at_10']:>9.3f}"
            f" {row['index_bytes'] / 1e6:>8.0f} {row['rss_growth_bytes'] / 1e6:>8.0f}{target}"
        )
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - started, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "faiss_threads": faiss.omp_get_max_threads(),  # the default, used to build
            "platform": platform.platform(),
            "processor": platform.processor(),
            "python": platform.python_version(),
        },
        "versions": {p: metadata.version(p) for p in ("faiss-cpu", "numpy")},
        "settings": {
            "queries": args.queries,
            "reference_queries": min(args.reference_queries, args.queries),
            "runs": args.runs,
            "depth": DEPTH,
            "index": args.index,
            "search_threads": args.search_threads or faiss.omp_get_max_threads(),
            "exact_limit": EXACT_LIMIT,
        },
        "targets": {"size": TARGET_SIZE, "p50_ms": TARGET_P50_MS, "recall_at_10": TARGET_RECALL},
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
