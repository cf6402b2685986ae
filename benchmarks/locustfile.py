"""Locust users that ask questions as fast as they can, for the overload run of benchmarks/serve.py and the
load smoke test (tests/test_load.py). Loopback only; the run is bounded by locust's own `-t`.

    locust -f benchmarks/locustfile.py --headless -u 200 -r 50 -t 30s --host http://127.0.0.1:PORT \\
        --questions tests/eval/questions.jsonl --statuses statuses.json

200, 429 (rate limited) and 503 (shedding load) are the answers an overloaded server may give; anything else,
a dropped connection or a request slower than `--request-timeout` counts as a failure. `--statuses` writes
how many responses had each status (0: no response at all) and the slowest response in milliseconds.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path
from typing import Any

from locust import constant, events, task
from locust.contrib.fasthttp import FastHttpUser

ALLOWED = {200, 429, 503}
DEFAULT_QUESTIONS = Path(__file__).resolve().parent.parent / "tests" / "eval" / "questions.jsonl"

_bodies: list[str] = []
_next = itertools.count()
_statuses: Counter[int] = Counter()
_slowest_ms = 0.0


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument("--questions", default=str(DEFAULT_QUESTIONS), help="JSON lines with a `question` each.")
    parser.add_argument("--statuses", default="", help="Write the count of each response status here (JSON).")
    parser.add_argument("--request-timeout", type=float, default=10.0, help="Seconds before a request fails.")


@events.init.add_listener
def _load(environment: Any, **_: Any) -> None:
    options = environment.parsed_options
    lines = Path(options.questions).read_text(encoding="utf-8").splitlines()
    _bodies.extend(json.dumps({"question": json.loads(line)["question"]}) for line in lines if line.strip())
    Asker.network_timeout = Asker.connection_timeout = options.request_timeout


@events.request.add_listener
def _count(response_time: float, response: Any = None, **_: Any) -> None:
    global _slowest_ms
    status = int(getattr(response, "status_code", 0) or 0)
    _statuses[status] += 1
    _slowest_ms = max(_slowest_ms, float(response_time or 0.0))


@events.quitting.add_listener
def _write(environment: Any, **_: Any) -> None:
    path = environment.parsed_options.statuses if environment.parsed_options else ""
    if path:
        counts = {str(status): count for status, count in sorted(_statuses.items())}
        Path(path).write_text(json.dumps({"statuses": counts, "slowest_ms": round(_slowest_ms, 1)}) + "\n")


class Asker(FastHttpUser):
    """One client: POST /ask with the next question, again and again, without pause."""

    wait_time = constant(0)

    @task
    def ask(self) -> None:
        body = _bodies[next(_next) % len(_bodies)]
        headers = {"Content-Type": "application/json"}
        with self.client.post("/ask", data=body, headers=headers, catch_response=True) as response:
            if response.status_code in ALLOWED:
                response.success()  # shedding load with 429 or 503 is allowed; the test counts them apart
            else:
                response.failure(f"status {response.status_code}")
