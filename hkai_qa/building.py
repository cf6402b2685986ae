"""Build the index from the corpus: read, chunk, embed what changed, write a version, publish it.

Incremental: vectors come from the embedding cache when the exact text was embedded before, so unchanged
documents cost no model time; when nothing changed at all (same documents, model and settings as the
current valid version) no new version is written. One build at a time per index folder (a lock file).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hkai_qa.chunking import chunk_sentences, split_sentences
from hkai_qa.corpus import corpus_lock
from hkai_qa.documents import load_corpus
from hkai_qa.embedding import Embedder
from hkai_qa.embedding_cache import EmbeddingCache
from hkai_qa.errors import EmptyCorpus, IndexInvalid, IndexNotFound
from hkai_qa.index import FORMAT_VERSION, document_fingerprint, embedding_text, validate_version, write_version
from hkai_qa.multilingual_embedding import DIMENSION, MultilingualEmbedder
from hkai_qa.types import Chunk, Document, Sentence
from hkai_qa.versions import build_lock, clear_staging, current_version

# stage, done, total: "reading", "chunking", "embedding" (texts), "writing", "done"
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class BuildSummary:
    """What a build did: the CLI prints it, an HTTP rebuild job returns it."""

    version: str
    published: bool  # False when nothing changed and the current version was kept
    documents: int
    sections: int
    chunks: int
    sentences: int
    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    unchanged: int = 0
    embedded: int = 0  # distinct texts sent to the model
    reused: int = 0  # texts whose vectors came from the cache
    skipped: tuple[tuple[str, str], ...] = ()  # (file, reason) for files that could not be read
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "published": self.published,
            "documents": self.documents,
            "sections": self.sections,
            "chunks": self.chunks,
            "sentences": self.sentences,
            "added": list(self.added),
            "changed": list(self.changed),
            "removed": list(self.removed),
            "unchanged": self.unchanged,
            "embedded": self.embedded,
            "reused": self.reused,
            "skipped": [{"file": file, "reason": reason} for file, reason in self.skipped],
            "seconds": round(self.seconds, 3),
        }


def build_index(
    corpus_dir: Path,
    index_dir: Path,
    embedder: Embedder,
    chunk_tokens: int = 200,
    force: bool = False,
    progress: Progress | None = None,
    batch_size: int = 64,
    multilingual: MultilingualEmbedder | None = None,
    lock_held: bool = False,
) -> BuildSummary:
    """Build and publish a new version of `corpus_dir` into `index_dir` (or keep the current one if
    nothing changed and not `force`). Raises BuildRunning when another build holds the lock; with `lock_held`,
    the caller holds it already (a rebuild job takes it when it is asked for).

    With `multilingual`, every sentence is also embedded by the multilingual model (cached the same way),
    so questions in other scripts can be matched against the same text."""
    started = time.perf_counter()
    step: Progress = progress or (lambda *_: None)
    with nullcontext() if lock_held else build_lock(index_dir):
        clear_staging(index_dir)
        step("reading", 0, 0)
        corpus = load_corpus(corpus_dir, lock=corpus_lock(index_dir))  # never half of an upload
        documents = list(corpus.documents)
        previous = _current_manifest(index_dir, embedder)
        before: dict[str, str] = dict(previous["documents"]) if previous else {}
        now = {d.id: document_fingerprint(d) for d in documents}
        added = tuple(sorted(set(now) - set(before)))
        removed = tuple(sorted(set(before) - set(now)))
        changed = tuple(sorted(i for i in set(now) & set(before) if now[i] != before[i]))
        unchanged = len(now) - len(added) - len(changed)
        pipeline = pipeline_fingerprint()
        same_settings = (
            previous is not None
            and previous.get("chunk_tokens") == chunk_tokens
            and previous.get("pipeline") == pipeline
            and previous.get("multilingual", {}).get("fingerprint")
            == (multilingual.fingerprint if multilingual else None)
        )
        if previous is not None and same_settings and not (added or removed or changed or force):
            step("done", 1, 1)
            counts = previous["counts"]
            return BuildSummary(
                version=str(previous["version"]),
                published=False,
                documents=int(counts["documents"]),
                sections=int(counts["sections"]),
                chunks=int(counts["chunks"]),
                sentences=int(counts["sentences"]),
                unchanged=unchanged,
                skipped=corpus.skipped,
                seconds=time.perf_counter() - started,
            )

        step("chunking", 0, len(documents))
        sentences, chunks, chunk_texts = _chunk(documents, embedder, chunk_tokens)
        if not chunks:
            raise EmptyCorpus(f"no text to index in {corpus_dir}: every document is empty or only headings")
        by_id = {d.id: d for d in documents}
        sentence_texts = [by_id[s.document_id].text[s.start : s.end] for s in sentences]
        texts = chunk_texts + sentence_texts
        cache = EmbeddingCache.open(index_dir, embedder)
        done = 0

        def embedded(count: int) -> None:
            nonlocal done
            done += count
            step("embedding", done, total)

        answers = [t for t, s in zip(sentence_texts, sentences, strict=True) if s.citable] if multilingual else []
        total = len({*texts}) + len({*answers})  # the cache lowers it
        step("embedding", 0, total)
        vectors, fresh = cache.embed(texts, embedder, embedded, batch_size=batch_size)
        cache.save()  # before writing: a build killed while writing still leaves its vectors for the next
        spaces = None
        if multilingual is not None:
            spaces, more = _multilingual_vectors(index_dir, multilingual, chunks, sentences, sentence_texts, embedded)
            fresh += more
            texts += answers
        step("writing", 0, 1)
        version = write_version(
            index_dir,
            documents,
            sentences,
            chunks,
            vectors[: len(chunk_texts)],
            vectors[len(chunk_texts) :],
            embedder.name,
            chunk_tokens,
            pipeline,
            embedder.fingerprint,
            multilingual=spaces,
        )
        step("done", 1, 1)
    return BuildSummary(
        version=version,
        published=True,
        documents=len(documents),
        sections=sum(len(d.sections) for d in documents),
        chunks=len(chunks),
        sentences=len(sentences),
        added=added,
        changed=changed,
        removed=removed,
        unchanged=unchanged,
        embedded=fresh,
        reused=len(texts) - fresh,
        skipped=corpus.skipped,
        seconds=time.perf_counter() - started,
    )


def pipeline_fingerprint() -> str:
    """A hash of the code that turns files into chunks: when it changes, a rebuild re-chunks everything
    (the embedding cache still spares the model every text that comes out the same)."""
    from hkai_qa import building, chunking, documents, formats, index

    digest = hashlib.sha256()
    for module in (documents, formats, chunking, index, building):
        digest.update(Path(str(module.__file__)).read_bytes())
    return digest.hexdigest()[:16]


def _multilingual_vectors(
    index_dir: Path,
    model: MultilingualEmbedder,
    chunks: list[Chunk],
    sentences: list[Sentence],
    sentence_texts: list[str],
    progress: Callable[[int], None],
) -> tuple[tuple[np.ndarray, np.ndarray, dict[str, str]], int]:
    """The multilingual model's sentence vectors, and chunk vectors as the normalised mean of their sentences.

    Sentences alone are embedded: a chunk's text is its sentences, and the mean of their vectors ranked
    chunks as well as embedding each chunk did (section hit@1 on the English tuning questions, 0.958 both),
    at about half the model time. Sentences that are never answers ("Source: https://..." lines, fragments)
    get a zero vector: to this model a URL looks close to any Chinese question, and would outrank the text."""
    citable = [number for number, sentence in enumerate(sentences) if sentence.citable]
    cache = EmbeddingCache.open(index_dir, model)
    # Batches of 16 hold the model about a second here, so Chinese questions keep flowing during a rebuild.
    embedded, fresh = cache.embed([sentence_texts[n] for n in citable], model, progress, batch_size=16)
    cache.save()
    space = np.zeros((len(sentences), embedded.shape[1] if citable else DIMENSION), dtype=np.float32)
    space[citable] = embedded
    # A chunk is a run of consecutive sentences: its vector is their sum, normalised.
    sums = np.stack([space[c.first_sentence : c.last_sentence + 1].sum(axis=0) for c in chunks])
    means = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
    identity = {"model": model.name, "fingerprint": model.fingerprint}
    return (np.ascontiguousarray(means, dtype=np.float32), space, identity), fresh


def _chunk(
    documents: list[Document], embedder: Embedder, chunk_tokens: int
) -> tuple[list[Sentence], list[Chunk], list[str]]:
    """Sentences and chunks of every document, and the text the model sees for each chunk."""
    sentences: list[Sentence] = []
    chunks: list[Chunk] = []
    chunk_texts: list[str] = []
    for document in documents:
        local = split_sentences(document)
        headings = [embedding_text(document, section, "") for section in document.sections]
        heading_budget = max(embedder.count_tokens(headings), default=0)
        budget = max(chunk_tokens - heading_budget, 32)
        for chunk in chunk_sentences(local, document, embedder.count_tokens, budget, len(chunks), len(sentences)):
            chunks.append(chunk)
            section = document.sections[chunk.section]
            chunk_texts.append(embedding_text(document, section, document.text[chunk.start : chunk.end]))
        sentences.extend(local)
    return sentences, chunks, chunk_texts


def _current_manifest(index_dir: Path, embedder: Embedder) -> dict[str, Any] | None:
    """The current version's manifest when it is valid for this very model (name and files), else None."""
    try:
        manifest = validate_version(index_dir, current_version(index_dir), embedder.name)
    except (IndexNotFound, IndexInvalid):
        return None
    if manifest["model"].get("fingerprint") != embedder.fingerprint:
        return None
    return manifest if manifest.get("format_version") == FORMAT_VERSION else None
