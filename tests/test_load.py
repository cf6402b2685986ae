"""Real `hkai-qa serve` processes under load, on loopback: ten seconds of locust users all get 200, and a
server with a tiny rate limit and queue sheds a burst with 429 or 503, each a JSON error with Retry-After.

Counts only, never timings: how fast it goes is benchmarks/serve.py's business.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from servers import ServeProcess

from hkai_qa.config import Settings

ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILE = ROOT / "benchmarks" / "locustfile.py"
QUESTIONS = Path(__file__).resolve().parent / "eval" / "questions.jsonl"
ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith("HKAI_QA_")},
    "HF_HUB_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def _server(settings: Settings, log: Path, **env: str) -> ServeProcess:
    """`hkai-qa serve` on the session index in its own process, with extra HKAI_QA_ settings."""
    return ServeProcess(settings.corpus_dir, settings.index_dir, log, {**ENV, **env})


@pytest.fixture(scope="module")
def servers(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServeProcess]]:
    """Two servers started side by side: `open` (no rate limit) and `tight` (5 questions a second per
    client, one question waiting for the model at most, no answer cache)."""
    folder = tmp_path_factory.mktemp("load")
    started = {
        "open": _server(settings, folder / "open.log", HKAI_QA_RATE_LIMIT="none"),
        "tight": _server(
            settings,
            folder / "tight.log",
            HKAI_QA_RATE_LIMIT="5/second",
            HKAI_QA_MAX_PENDING="1",
            HKAI_QA_ANSWER_CACHE="0",
        ),
    }
    try:
        for server in started.values():
            server.wait_ready()
        yield started
    finally:
        for server in started.values():
            server.stop()


def test_ten_seconds_of_locust_users_all_get_answers(servers: dict[str, ServeProcess], tmp_path: Path):
    server = servers["open"]
    statuses, stats = tmp_path / "statuses.json", tmp_path / "stats"
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", "10", "-r", "10"]
    command += ["-t", "10s", "--host", server.url, "--only-summary", "--stop-timeout", "10", "--loglevel", "WARNING"]
    command += ["--questions", str(QUESTIONS), "--statuses", str(statuses), "--json-file", str(stats)]
    done = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=120, check=False)

    assert done.returncode == 0, done.stderr[-3000:]
    counted = json.loads(statuses.read_text(encoding="utf-8"))["statuses"]
    assert set(counted) == {"200"}, counted  # no 429, no 503, no dropped connection
    assert counted["200"] > 0
    entries = json.loads((tmp_path / "stats.json").read_text(encoding="utf-8"))
    assert sum(e["num_requests"] for e in entries) == counted["200"]
    assert sum(e["num_failures"] for e in entries) == 0
    assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200


def test_an_overloaded_server_sheds_with_json_errors(servers: dict[str, ServeProcess]):
    server = servers["tight"]
    questions = [json.loads(line)["question"] for line in QUESTIONS.read_text(encoding="utf-8").splitlines()]

    async def burst() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
        async with httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) as client:
            return await asyncio.gather(*(client.post("/ask", json={"question": q}) for q in questions[:100]))

    responses = asyncio.run(burst())  # a hang fails here: every request must finish within the timeout

    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {200, 429, 503}, statuses
    assert statuses[200] > 0, statuses
    assert statuses[429] + statuses[503] > 0, statuses
    for response in responses:
        if response.status_code != 200:
            error = response.json()["error"]
            assert error["type"] and error["message"], error
            assert int(response.headers["Retry-After"]) >= 1
    assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200  # still up, and /health not limited
