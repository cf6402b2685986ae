"""Build benchmark: first build, no-change rebuild, forced rebuild from the cache, one changed document.

Each figure is the median wall time of `hkai-qa build` run as a user runs it (a fresh process each time,
so interpreter start-up and imports count), next to the seconds the build itself reports. Prints a table
and writes JSON (machine, versions, date) under benchmarks/results/.

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

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 0.10  # issue 4: a no-change rebuild takes under 10% of the first build
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=ROOT / "corpus")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()

    rows: dict[str, list[tuple[float, float]]] = {"first": [], "no-change": [], "forced": [], "one-changed": []}
    last: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="hkai-bench-") as scratch:
        corpus = Path(scratch) / "corpus"
        shutil.copytree(args.corpus, corpus)
        changing = sorted(p for p in corpus.rglob("*.md"))[0]
        original = changing.read_bytes()
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
    print(f"build benchmark: {args.corpus} ({args.runs} fresh index folders; wall = a new process per build)")
    print(f"{'build':<13} {'wall p50':>9} {'own p50':>8} {'x first':>8}")
    for name, r in results.items():
        print(f"{name:<13} {r['wall_s_median']:>8.2f}s {r['reported_s_median']:>7.2f}s {r['ratio_to_first']:>8.3f}")
    verdict = "met" if ratio < TARGET_RATIO else "NOT met"
    print(f"no-change rebuild / first build = {ratio:.3f} (target < {TARGET_RATIO}: {verdict})")
    print(f"first build: {last['first']}")

    record = {
        "benchmark": "build",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "versions": {p: _version(p) for p in ("hkai-qa", "torch", "sentence-transformers", "faiss-cpu", "numpy")},
        "corpus": str(args.corpus),
        "results": results,
        "target": {"no_change_ratio_below": TARGET_RATIO, "met": ratio < TARGET_RATIO},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"build-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


if __name__ == "__main__":
    main()
