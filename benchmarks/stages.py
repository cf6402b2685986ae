"""Where one question's time goes, in process: encoding, BM25, FAISS, fusion, extraction.

Encoding is timed three ways: the question path the server uses (ONNX Runtime called directly), the same
ONNX model through sentence-transformers, and torch (the reference the issue's ratios use).

Loads the default index with the service as the server does, then runs every question of the eval file
through each stage separately, `--repeats` times; each figure is the median over repeats of the per-stage
p50 (and p95) in milliseconds. The model's own floor is the ONNX encode; everything after it should stay
well under a millisecond on the default corpus. Prints a table and writes JSON under benchmarks/results/.

    python benchmarks/stages.py [--index index] [--questions tests/eval/questions.jsonl] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from hkai_qa.answering import extract_answer
from hkai_qa.config import Settings
from hkai_qa.embedding import Embedder
from hkai_qa.lexical import lexical_tokens
from hkai_qa.service import QAService

ROOT = Path(__file__).resolve().parent.parent
TARGET_AFTER_ENCODE_MS = 1.0  # issue 7: BM25, FAISS and extraction together well under a millisecond


def _time(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000


def profile(service: QAService, torch_model: Embedder, questions: list[str]) -> dict[str, list[float]]:
    """Milliseconds per question for each stage, in one pass over the questions."""
    retriever = service.snapshot()
    candidates = service.settings.candidates
    question_path = service.embedder.question_encoder()
    times: dict[str, list[float]] = {
        name: []
        for name in (
            "encode (question path)",
            "encode (ONNX via s-t)",
            "encode (torch)",
            "tokenise",
            "FAISS",
            "BM25",
            "search (FAISS+BM25+fusion)",
            "extract answer",
            "after encode (total)",
        )
    }
    for question in questions:
        vector = service.embedder.encode([question])[0]
        tokens = lexical_tokens(question)
        times["encode (question path)"].append(_time(lambda q=question: question_path([q])))
        times["encode (ONNX via s-t)"].append(_time(lambda q=question: service.embedder.encode([q])))
        times["encode (torch)"].append(_time(lambda q=question: torch_model.encode([q])))
        times["tokenise"].append(_time(lambda q=question: lexical_tokens(q)))
        times["FAISS"].append(
            _time(
                lambda v=vector: retriever.index.chunk_vectors.search(
                    v.reshape(1, -1), min(50, len(retriever.index.chunks))
                )
            )
        )
        times["BM25"].append(_time(lambda t=tokens: retriever._bm25.get_scores(t)))  # the BM25 stage alone
        hits = retriever.search(vector, tokens, candidates)
        times["search (FAISS+BM25+fusion)"].append(_time(lambda v=vector, t=tokens: retriever.search(v, t, candidates)))
        times["extract answer"].append(
            _time(lambda q=question, v=vector, h=hits: extract_answer(q, v, h, retriever, 3, None))
        )

        def after_encode(q: str = question, v: np.ndarray = vector) -> None:
            found = retriever.search(v, lexical_tokens(q), candidates)
            extract_answer(q, v, found, retriever, 3, None)

        times["after encode (total)"].append(_time(after_encode))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, default=ROOT / "index")
    parser.add_argument("--questions", type=Path, default=ROOT / "tests" / "eval" / "questions.jsonl")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()

    records = [json.loads(line) for line in args.questions.read_text(encoding="utf-8").splitlines() if line]
    # English only: the stages are compared with the English model's encode (Chinese questions use another).
    questions = [r["question"] for r in records if r.get("language", "en") == "en"]
    service = QAService(Settings(index_dir=args.index))
    torch_model = Embedder(service.settings.model, "torch")
    torch_model.warm_up()
    profile(service, torch_model, questions[:10])  # warm caches and allocators
    runs = [profile(service, torch_model, questions) for _ in range(args.repeats)]
    stages: dict[str, dict[str, float]] = {}
    for name in runs[0]:
        stages[name] = {
            "p50_ms": statistics.median(float(np.percentile(run[name], 50)) for run in runs),
            "p95_ms": statistics.median(float(np.percentile(run[name], 95)) for run in runs),
        }

    print(f"stages of one question, in process ({len(questions)} questions x {args.repeats} runs, medians)")
    print(f"  {'stage':<28} {'p50 ms':>8} {'p95 ms':>8}")
    for name, figures in stages.items():
        print(f"  {name:<28} {figures['p50_ms']:>8.3f} {figures['p95_ms']:>8.3f}")
    after = stages["after encode (total)"]["p50_ms"]
    verdict = "met" if after < TARGET_AFTER_ENCODE_MS else "NOT met"
    print(f"  everything after encoding: p50 {after:.3f} ms (target < {TARGET_AFTER_ENCODE_MS} ms: {verdict})")
    result: dict[str, Any] = {
        "benchmark": "stages",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "versions": {
            p: metadata.version(p) for p in ("onnxruntime", "torch", "sentence-transformers", "faiss-cpu", "bm25s")
        },
        "backend": service.embedder.backend,
        "index_version": service.index.version,
        "chunks": len(service.index.chunks),
        "questions": len(questions),
        "repeats": args.repeats,
        "stages": stages,
        "target_after_encode_ms": TARGET_AFTER_ENCODE_MS,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"stages-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    service.close()


if __name__ == "__main__":
    main()
