"""Prometheus metrics of one app: request latency, answers and abstentions, the served index, rebuild jobs.

Every app gets a registry of its own (no import-time globals), so tests and several apps in one process
never share counts. Labels stay bounded: routes are templates, never raw paths.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from hkai_qa.errors import HkaiError

# From a cached answer (about a millisecond) to a question that waited behind a busy model (seconds).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# From a no-change rebuild (a second) to embedding a large corpus from scratch (half an hour).
BUILD_BUCKETS = (1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)


class Metrics:
    """The app's metrics; `render` writes them in the format a scraper asks for."""

    def __init__(self, state: Any) -> None:
        """`state` is the app's `app.state`, read at scrape time for the service and its rebuild jobs."""
        self.registry = CollectorRegistry()
        self._state = state
        self._requests = Histogram(
            "hkai_qa_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template and status.",
            ["route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._answers = Counter(
            "hkai_qa_answers", "Questions answered with a span, or abstained on.", ["outcome"], registry=self.registry
        )
        self._rebuilds = Counter(
            "hkai_qa_rebuilds", "HTTP rebuild jobs finished, by outcome.", ["outcome"], registry=self.registry
        )
        self._rebuild_seconds = Histogram(
            "hkai_qa_rebuild_duration_seconds",
            "Time an HTTP rebuild job ran, from start to success or failure.",
            buckets=BUILD_BUCKETS,
            registry=self.registry,
        )
        for outcome in ("answered", "abstained"):
            self._answers.labels(outcome)  # both series exist from the start, so rates work from the first scrape
        for outcome in ("succeeded", "failed"):
            self._rebuilds.labels(outcome)
        self._counted_jobs: set[str] = set()
        self.registry.register(_ServedIndex(state))

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        """Count one finished request under its route template."""
        self._requests.labels(route, str(status)).observe(seconds)

    def record_answer(self, answered: bool) -> None:
        """Count one /ask: answered with a span (True) or abstained (False)."""
        self._answers.labels("answered" if answered else "abstained").inc()

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """The metrics as bytes and their content type (Prometheus text, or OpenMetrics when asked for)."""
        self._count_finished_jobs()
        encode, content_type = choose_encoder(accept or "")
        return encode(self.registry), content_type

    def _count_finished_jobs(self) -> None:
        # Jobs live in RebuildJobs (the last 50, one running at a time); each is counted once, the first
        # time a scrape sees it finished, so the counters only grow.
        jobs = getattr(self._state, "jobs", None)
        if jobs is None:
            return
        kept = set()
        for job in jobs.all():
            kept.add(job.id)
            if job.state not in ("succeeded", "failed") or job.id in self._counted_jobs:
                continue
            self._counted_jobs.add(job.id)
            self._rebuilds.labels(job.state).inc()
            if job.started_at and job.finished_at:
                ran = datetime.fromisoformat(job.finished_at) - datetime.fromisoformat(job.started_at)
                self._rebuild_seconds.observe(ran.total_seconds())
        self._counted_jobs &= kept  # forget jobs RebuildJobs has dropped, so this set stays small


class _ServedIndex(Collector):
    """Read at every scrape: whether the service is ready, and the version and size of the index it serves."""

    def __init__(self, state: Any) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        service = getattr(self._state, "service", None)
        try:
            index = service.index if service is not None else None
        except HkaiError:  # still loading, or no usable version yet
            index = None
        yield GaugeMetricFamily(
            "hkai_qa_ready", "1 once the model and an index are loaded.", value=int(index is not None)
        )
        if index is None:
            return
        yield InfoMetricFamily("hkai_qa_index", "The index version being served.", value={"version": index.version})
        yield GaugeMetricFamily("hkai_qa_index_documents", "Documents in the served index.", value=len(index.documents))
        yield GaugeMetricFamily("hkai_qa_index_chunks", "Chunks in the served index.", value=len(index.chunks))
        counts = index.manifest.get("counts", {})
        for kind in ("sections", "sentences"):
            if isinstance(counts.get(kind), int):
                yield GaugeMetricFamily(f"hkai_qa_index_{kind}", f"{kind.title()} in the served index.", counts[kind])
        built = datetime.fromisoformat(str(index.manifest["built_at"]))
        yield GaugeMetricFamily(
            "hkai_qa_index_built_timestamp_seconds", "When the served index was built (Unix time).", built.timestamp()
        )
        yield from _query_path(service)


def _query_path(service: Any) -> Iterator[Metric]:
    """The micro-batcher and the answer cache: how much batching happens, what is refused, what is reused."""
    stats = service.batcher.stats
    yield CounterMetricFamily("hkai_qa_question_batches", "Forward passes over batched questions.", stats.batches)
    yield CounterMetricFamily("hkai_qa_batched_questions", "Questions encoded by the batcher.", stats.questions)
    yield CounterMetricFamily(
        "hkai_qa_questions_refused_busy", "Questions refused (503) because the queue was full.", stats.refused
    )
    yield GaugeMetricFamily(
        "hkai_qa_questions_waiting", "Questions waiting for the model now.", service.batcher.pending
    )
    yield GaugeMetricFamily("hkai_qa_largest_batch", "The largest batch encoded so far.", stats.largest)
    yield CounterMetricFamily("hkai_qa_answer_cache_hits", "Answers served from the answer cache.", service.cache_hits)
