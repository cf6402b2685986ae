"""Request ids, access logs, metrics and health probes over real HTTP, and through the real `hkai-qa serve`."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from servers import ServeProcess

from hkai_qa.access_log import JsonFormatter
from hkai_qa.api import create_app
from hkai_qa.building import build_index
from hkai_qa.config import Settings
from hkai_qa.embedding import Embedder
from hkai_qa.service import QAService

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TOKEN = "observability-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ANSWERED = "What are smart lampposts equipped with?"
ABSTAINED = "Who won the 2018 World Cup?"
FRESH_ID = re.compile(r"[0-9a-f]{32}")


def _secret_failure() -> None:
    raise RuntimeError("secret detail: /etc/hkai-qa/credentials")


@pytest.fixture(scope="module")
def observed(settings: Settings, service: QAService, start_server: Callable[[FastAPI], str]) -> str:
    """A real server on the session index, with one route that fails unexpectedly (only in this test app)."""
    app = create_app(Settings(corpus_dir=settings.corpus_dir, index_dir=settings.index_dir, rate_limit="none"), service)
    app.add_api_route("/boom", _secret_failure)
    return start_server(app)


def _metrics(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(f"{url}/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def _records(caplog: pytest.LogCaptureFixture, request_id: str) -> list[logging.LogRecord]:
    """The access records of one request; the line is written just after the response is sent."""
    deadline = time.monotonic() + 10
    while True:
        found = [r for r in caplog.records if r.name == "hkai_qa.access" and r.__dict__.get("request_id") == request_id]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


def test_a_json_log_record_is_one_line_whatever_its_message_holds():
    record = logging.LogRecord("hkai_qa.jobs", logging.WARNING, __file__, 1, "bad %s", ("line\nbreak\u2028here",), None)
    record.__dict__["job"] = "abc"
    [line] = JsonFormatter().format(record).splitlines()
    entry = json.loads(line)
    assert entry["message"] == "bad line\nbreak\u2028here" and entry["job"] == "abc" and entry["level"] == "WARNING"
    assert "\u2028" not in line  # escaped, so no reader splits the record


def test_a_python_warning_is_logged_as_one_json_line_like_the_rest():
    # A library's warning on stderr broke the one-JSON-object-per-line log of a served process.
    script = (
        "import warnings\n"
        "from hkai_qa.access_log import configure_logging\n"
        "configure_logging('json')\n"
        "warnings.warn('SOCKS support needs an optional dependency', UserWarning)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    [line] = done.stderr.splitlines()
    record = json.loads(line)
    assert record["logger"] == "py.warnings" and record["level"] == "WARNING"
    assert "UserWarning: SOCKS support needs an optional dependency" in record["message"]


def test_every_response_carries_a_request_id(observed: str):
    first, second = httpx.get(f"{observed}/health"), httpx.get(f"{observed}/nowhere")
    assert FRESH_ID.fullmatch(first.headers["x-request-id"]) and FRESH_ID.fullmatch(second.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


@pytest.mark.parametrize("incoming", ["x" * 65, "has space", "a/b", "id;drop", "tab\tid", ""])
def test_an_unsafe_incoming_id_is_replaced(observed: str, incoming: str):
    response = httpx.get(f"{observed}/health", headers={"X-Request-ID": incoming})
    assert FRESH_ID.fullmatch(response.headers["x-request-id"])


def test_a_safe_incoming_id_is_echoed_in_the_header_and_in_error_bodies(observed: str):
    assert httpx.get(f"{observed}/health", headers={"X-Request-ID": "req-2024.07_a"}).headers["x-request-id"] == (
        "req-2024.07_a"
    )
    for method, path, body, status in [
        ("GET", "/nowhere", None, 404),
        ("GET", "/documents/notes/nope", None, 404),
        ("GET", "/ask", None, 405),
        ("POST", "/ask", {}, 422),
        ("POST", "/search", {"query": "ASTRI\x00"}, 422),
        ("POST", "/index/rebuild", None, 403),
    ]:
        response = httpx.request(method, f"{observed}{path}", json=body, headers={"X-Request-ID": "e-42"})
        assert response.status_code == status, (path, response.text)
        assert response.headers["x-request-id"] == "e-42" and response.json()["error"]["request_id"] == "e-42"


def test_an_unexpected_error_is_a_500_with_the_id_and_no_details(observed: str, caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.INFO, logger="hkai_qa"):
        response = httpx.get(f"{observed}/boom", headers={"X-Request-ID": "boom-1"})
        [line] = _records(caplog, "boom-1")
    assert response.status_code == 500 and response.headers["x-request-id"] == "boom-1"
    assert response.json() == {
        "error": {
            "type": "internal_error",
            "message": "something went wrong on our side; the error was logged",
            "request_id": "boom-1",
        }
    }
    assert "secret detail" not in response.text and "Traceback" not in response.text
    assert line.__dict__["status"] == 500 and line.__dict__["route"] == "/boom"


def test_the_access_log_has_one_line_per_request_with_its_fields(
    observed: str, service: QAService, caplog: pytest.LogCaptureFixture
):
    question = "Which private lantern festival question is this?"
    with caplog.at_level(logging.INFO, logger="hkai_qa"):
        httpx.get(f"{observed}/documents/notes/smart-city", headers={"X-Request-ID": "log-doc"})
        httpx.post(f"{observed}/ask", json={"question": question}, headers={"X-Request-ID": "log-ask", **AUTH})
        httpx.post(f"{observed}/ask", content=b" " * 70_000, headers={"X-Request-ID": "log-413"})
        [document], [ask], [refused] = (_records(caplog, i) for i in ("log-doc", "log-ask", "log-413"))
    lines = [json.loads(JsonFormatter().format(record)) for record in (document, ask, refused)]
    assert {key: lines[0][key] for key in ("logger", "request_id", "method", "route", "status", "client")} == {
        "logger": "hkai_qa.access",
        "request_id": "log-doc",
        "method": "GET",
        "route": "/documents/{document_id:path}",  # the template, never the raw path
        "status": 200,
        "client": "127.0.0.1",
    }
    assert lines[0]["index_version"] == service.index.version and lines[0]["latency_ms"] >= 0
    assert (lines[1]["route"], lines[1]["status"]) == ("/ask", 200)
    assert (lines[2]["route"], lines[2]["status"]) == ("/ask", 413)  # refused before routing, still its route
    written = "\n".join(JsonFormatter().format(r) for r in caplog.records)
    assert question not in written and TOKEN not in written


def test_metrics_count_requests_answers_and_abstentions_and_describe_the_index(observed: str, service: QAService):
    before = _metrics(observed)
    assert httpx.post(f"{observed}/ask", json={"question": ANSWERED}, timeout=30).json()["answer"]
    assert httpx.post(f"{observed}/ask", json={"question": ABSTAINED}, timeout=30).json()["answer"] is None
    httpx.get(f"{observed}/documents/notes/smart-city")
    httpx.get(f"{observed}/no/such/path/12345")
    httpx.post(f"{observed}/ask", content=b" " * 70_000)
    after = _metrics(observed)

    def moved(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert moved("hkai_qa_answers_total", outcome="answered") == 1
    assert moved("hkai_qa_answers_total", outcome="abstained") == 1
    requests = "hkai_qa_http_request_duration_seconds_count"
    assert moved(requests, route="/ask", status="200") == 2
    assert moved(requests, route="/ask", status="413") == 1
    assert moved(requests, route="/documents/{document_id:path}", status="200") == 1
    assert moved(requests, route="unmatched", status="404") == 1
    assert not any("12345" in str(labels) for _, labels in after)  # raw paths never become labels
    buckets = {dict(labels)["le"] for name, labels in after if name == "hkai_qa_http_request_duration_seconds_bucket"}
    assert {"0.001", "10.0", "+Inf"} <= buckets
    index = service.index
    assert after[("hkai_qa_index_info", (("version", index.version),))] == 1
    assert after[("hkai_qa_index_documents", ())] == len(index.documents)
    assert after[("hkai_qa_index_chunks", ())] == len(index.chunks)
    assert after[("hkai_qa_ready", ())] == 1


def test_rebuild_jobs_are_counted_by_outcome_and_timed(
    tmp_path: Path, embedder: Embedder, start_server: Callable[[FastAPI], str]
):
    corpus = tmp_path / "corpus"
    shutil.copytree(FIXTURES / "tiny-corpus", corpus)
    settings = Settings(corpus_dir=corpus, index_dir=tmp_path / "index", admin_token=TOKEN, rate_limit="none")
    build_index(corpus, settings.index_dir, embedder)
    url = start_server(create_app(settings, QAService(settings, embedder)))

    def rebuild() -> dict[str, Any]:
        job = httpx.post(f"{url}/index/rebuild", headers=AUTH, json={"force": True}).json()
        deadline = time.monotonic() + 120
        while job["state"] in ("queued", "running"):
            assert time.monotonic() < deadline, job
            time.sleep(0.1)
            job = httpx.get(f"{url}/index/jobs/{job['id']}", headers=AUTH).json()
        return dict(job)

    assert rebuild()["state"] == "succeeded"
    for file in [p for p in corpus.rglob("*") if p.is_file()]:
        file.unlink()  # nothing left to index: the next rebuild fails
    assert rebuild()["state"] == "failed"
    for _ in range(2):  # a job is counted once, however often it is scraped
        metrics = _metrics(url)
    assert metrics[("hkai_qa_rebuilds_total", (("outcome", "succeeded"),))] == 1
    assert metrics[("hkai_qa_rebuilds_total", (("outcome", "failed"),))] == 1
    assert metrics[("hkai_qa_rebuild_duration_seconds_count", ())] == 2


def test_healthz_and_readyz_once_loaded(observed: str, service: QAService):
    live = httpx.get(f"{observed}/healthz")
    assert live.status_code == 200 and live.json() == {"status": "ok"}
    ready = httpx.get(f"{observed}/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready", "index_version": service.index.version}


def test_readyz_is_503_until_the_service_has_loaded(settings: Settings, service: QAService):
    app = create_app(settings, service)
    app.state.service = None  # as it is while the model and index load in the background

    async def probe() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        # ASGITransport runs no lifespan, so nothing ever loads
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hkai-qa.test") as client:
            return (
                await client.get("/healthz"),
                await client.get("/readyz", headers={"X-Request-ID": "wait-1"}),
                await client.get("/metrics"),
            )

    live, waiting, scraped = asyncio.run(probe())
    assert live.status_code == 200
    assert waiting.status_code == 503 and int(waiting.headers["retry-after"]) >= 1
    assert waiting.json()["error"]["type"] == "not_ready" and waiting.json()["error"]["request_id"] == "wait-1"
    assert "hkai_qa_ready 0.0" in scraped.text and "hkai_qa_index_info" not in scraped.text


def test_serve_logs_one_json_line_per_request_and_never_the_token(tmp_path: Path, embedder: Embedder):
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    shutil.copytree(FIXTURES / "tiny-corpus", corpus)
    build_index(corpus, index, embedder)
    log = tmp_path / "serve.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "HKAI_QA_ADMIN_TOKEN": TOKEN}
    question = "How long is the first oolong infusion?"
    server = ServeProcess(corpus, index, log, env, stdout_to_log=False)  # stdout has the CLI's "serving" line
    url = server.url
    try:
        server.wait_ready(120)
        spoofed = {"X-Request-ID": "cli-ask", "X-Forwarded-For": "203.0.113.9"}
        assert httpx.post(f"{url}/ask", json={"question": question}, headers=spoofed, timeout=30).status_code == 200
        httpx.get(f"{url}/documents/guides/tea", headers={"X-Request-ID": "cli-doc"})
        wrong = {"Authorization": "Bearer wrong-token-abcdef123456", "X-Request-ID": "cli-401"}
        assert httpx.post(f"{url}/index/rebuild", headers=wrong).status_code == 401
        assert httpx.get(f"{url}/index/jobs", headers={**AUTH, "X-Request-ID": "cli-jobs"}).status_code == 200
        httpx.get(f"{url}/nowhere?q=query-marker-7f3a", headers={"X-Request-ID": "cli-404"})
    finally:
        server.stop()
    text = log.read_text(encoding="utf-8")
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]  # every line is JSON
    access = [line for line in lines if line["logger"] == "hkai_qa.access"]
    by_id = {line["request_id"]: line for line in access}
    assert len(by_id) == len(access)  # one line per request, uvicorn's own access log is off
    assert not any(line["logger"].startswith("uvicorn.access") for line in lines)
    expected = {
        "cli-ask": ("POST", "/ask", 200),
        "cli-doc": ("GET", "/documents/{document_id:path}", 200),
        "cli-401": ("POST", "/index/rebuild", 401),
        "cli-jobs": ("GET", "/index/jobs", 200),
        "cli-404": ("GET", "unmatched", 404),
    }
    for request_id, (method, route, status) in expected.items():
        line = by_id[request_id]
        assert (line["method"], line["route"], line["status"]) == (method, route, status)
        assert line["client"] == "127.0.0.1"  # X-Forwarded-For is not trusted by default
        assert line["level"] == "INFO" and isinstance(line["latency_ms"], float)
    assert by_id["cli-doc"]["index_version"] == (index / "CURRENT").read_text().strip()
    assert TOKEN not in text and "wrong-token-abcdef123456" not in text
    assert question not in text and "query-marker-7f3a" not in text  # no question text, no query strings
