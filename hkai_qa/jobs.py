"""Rebuild jobs for the HTTP admin API: one at a time, in a background thread, with progress and a result.

A job builds from the server's corpus folder into its index folder under the same lock as the CLI, then
loads the new version into the running service before it reports success, so "succeeded" means served.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from hkai_qa.building import build_index
from hkai_qa.errors import Conflict, HkaiError, JobNotFound
from hkai_qa.service import QAService
from hkai_qa.versions import build_lock

State = Literal["queued", "running", "succeeded", "failed"]
KEEP_JOBS = 50
log = logging.getLogger("hkai_qa.jobs")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(slots=True)
class Job:
    id: str
    force: bool
    state: State = "queued"
    stage: str = "queued"
    done: int = 0
    total: int = 0
    created_at: str = field(default_factory=_now)
    started_at: str | None = None
    finished_at: str | None = None
    summary: dict[str, Any] | None = None
    error: dict[str, str] | None = None
    index_version: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state,
            "force": self.force,
            "progress": {"stage": self.stage, "done": self.done, "total": self.total},
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "summary": self.summary,
            "error": self.error,
            "index_version": self.index_version,
        }


class RebuildJobs:
    """Starts rebuilds of the service's corpus and remembers the last few jobs."""

    def __init__(self, service: QAService) -> None:
        self.service = service
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()

    def start(self, force: bool = False) -> Job:
        """Queue a rebuild and return at once; Conflict while another rebuild from this server runs, and
        BuildRunning while another process (`hkai-qa build`, `hkai-qa rollback`) holds the index's lock."""
        with self._lock:
            running = next((j for j in self._jobs.values() if j.state in ("queued", "running")), None)
            if running is not None:
                raise Conflict(
                    f"rebuild job {running.id} is still {running.state}; follow it at /index/jobs/{running.id}"
                )
            # The job holds the index's writer lock from now on (BuildRunning if another process has it), so a
            # `hkai-qa build` started after this answer is the one refused, never the job.
            held = ExitStack()
            held.enter_context(build_lock(self.service.settings.index_dir))
            job = Job(id=uuid.uuid4().hex[:16], force=force)
            self._jobs[job.id] = job
            while len(self._jobs) > KEEP_JOBS:
                self._jobs.popitem(last=False)
        try:
            worker = threading.Thread(target=self._run, args=(job, held), name=f"hkai-qa-rebuild-{job.id}", daemon=True)
            worker.start()
        except BaseException:
            held.close()
            raise
        return job

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            shown = job_id if len(job_id) <= 64 else job_id[:64] + "…"
            raise JobNotFound(f"no rebuild job {shown!r} (the server keeps the last {KEEP_JOBS})")
        return job

    def all(self) -> list[Job]:
        with self._lock:
            return list(reversed(self._jobs.values()))

    def _run(self, job: Job, held: ExitStack) -> None:
        with held:  # the index's writer lock, taken by `start`
            self._build(job)

    def _build(self, job: Job) -> None:
        settings = self.service.settings
        job.state, job.started_at = "running", _now()
        started = time.perf_counter()

        def progress(stage: str, done: int, total: int) -> None:
            job.stage, job.done, job.total = stage, done, total

        outcome: State = "failed"
        try:
            summary = build_index(
                settings.corpus_dir,
                settings.index_dir,
                self.service.embedder,
                settings.chunk_tokens,
                force=job.force,
                progress=progress,
                batch_size=16,  # shorter holds on the model, so questions keep flowing during a build
                multilingual=self.service.multilingual,
                lock_held=True,
            )
            self.service.reload()
            job.summary = summary.as_json()
            outcome = "succeeded"
            log.info(
                "rebuild job %s succeeded: version %s in %.1f s", job.id, self.service.index.version, summary.seconds
            )
        except HkaiError as exc:
            job.error = {"type": exc.type, "message": exc.message}
            log.warning("rebuild job %s failed: %s", job.id, exc.message)
        except Exception as exc:  # the job must end and say so; the old index keeps serving either way
            job.error = {
                "type": "internal_error",
                "message": f"the rebuild failed unexpectedly ({exc.__class__.__name__})",
            }
            log.exception("rebuild job %s failed unexpectedly after %.1f s", job.id, time.perf_counter() - started)
        finally:
            # The version served now: the new one after a success, the one that kept serving after a failure.
            try:
                job.index_version = self.service.index.version
            except HkaiError:  # no index loaded at all
                job.index_version = None
            job.stage = "done" if outcome == "succeeded" else "failed"
            job.finished_at = _now()
            job.state = outcome  # last, so a client that sees the job finished sees all of it
