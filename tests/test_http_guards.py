"""Request guards over real HTTP: body size limit, rate limit per client, hostile characters, CORS."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from hkai_qa.api import create_app
from hkai_qa.config import Settings
from hkai_qa.service import QAService

QUESTION = "What are smart lampposts equipped with?"
ALLOWED = "https://chat.example.org"


@pytest.fixture(scope="module")
def serve(settings: Settings, service: QAService, start_server: Callable[[FastAPI], str]) -> Callable[..., str]:
    """Start a real server on the session index with these settings changed."""

    def start(**overrides: Any) -> str:
        changed = Settings(corpus_dir=settings.corpus_dir, index_dir=settings.index_dir, **overrides)
        return start_server(create_app(changed, service))

    return start


@pytest.fixture(scope="module")
def open_url(serve: Callable[..., str]) -> str:
    """Default settings, but no rate limit: these tests ask many questions."""
    return serve(rate_limit="none")


def _error(response: httpx.Response, status: int, kind: str) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == kind and error["request_id"] == response.headers["x-request-id"]
    return str(error["message"])


def _padded(size: int) -> bytes:
    """A valid /ask body of exactly `size` bytes: the question, then JSON whitespace."""
    body = json.dumps({"question": QUESTION}).encode()
    return body[:-1] + b" " * (size - len(body)) + b"}"


def test_a_body_over_the_limit_is_413_by_its_content_length(open_url: str):
    response = httpx.post(f"{open_url}/ask", content=_padded(70_000), headers={"content-type": "application/json"})
    assert "70,000 bytes; the limit is 65,536" in _error(response, 413, "payload_too_large")


def test_an_honest_content_length_is_refused_before_the_body_is_sent(open_url: str):
    host, port = open_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        # Headers only: a server that waited for the 70,000 bytes would never answer (the timeout fails the test)
        connection.sendall(
            b"POST /search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 70000\r\n\r\n"
        )
        response = http.client.HTTPResponse(connection)
        response.begin()
        body = json.loads(response.read())
    assert response.status == 413 and body["error"]["type"] == "payload_too_large"
    assert body["error"]["request_id"] == response.headers["x-request-id"]


@pytest.mark.parametrize("path", ["/ask", "/search"])
def test_a_chunked_body_without_content_length_is_cut_off_at_the_limit(open_url: str, path: str):
    def chunks() -> Iterator[bytes]:
        yield b'{"question": "' if path == "/ask" else b'{"query": "'
        for _ in range(70):
            yield b"a" * 1000
        yield b'"}'

    request = httpx.Request("POST", f"{open_url}{path}", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in request.headers and request.headers["transfer-encoding"] == "chunked"
    with httpx.Client() as http:
        response = http.send(request)
    assert "over the limit of 65,536 bytes" in _error(response, 413, "payload_too_large")


def test_a_body_just_under_the_limit_is_answered(open_url: str):
    response = httpx.post(
        f"{open_url}/ask", content=_padded(60_000), headers={"content-type": "application/json"}, timeout=30
    )
    assert response.status_code == 200, response.text
    assert "AI-powered sensors" in response.json()["answer"]


def test_uploads_keep_their_own_limit_and_other_admin_bodies_get_the_request_limit(serve: Callable[..., str]):
    url = serve(max_body_bytes=1024, rate_limit="none")  # admin off: no token configured
    upload = httpx.post(f"{url}/documents", files=[("files", ("big.md", b"# Big\n\n" + b"word " * 1000))])
    assert upload.status_code == 403 and upload.json()["error"]["type"] == "admin_disabled"  # not 413
    rebuild = httpx.post(f"{url}/index/rebuild", content=b"{" + b" " * 2000 + b"}")
    _error(rebuild, 413, "payload_too_large")


def test_over_the_rate_limit_is_429_with_retry_after_for_that_client_only(serve: Callable[..., str]):
    url = serve(rate_limit="3/minute")
    with httpx.Client(base_url=url, timeout=30) as http:
        assert [http.post("/search", json={"query": "ASTRI"}).status_code for _ in range(2)] == [200, 200]
        assert http.post("/ask", json={"question": QUESTION}).status_code == 200  # one budget for both
        limited = http.post("/ask", json={"question": QUESTION})
        assert "at most 3 per 1 minute" in _error(limited, 429, "rate_limited")
        assert int(limited.headers["retry-after"]) >= 1
        _error(http.post("/search", json={"query": "ASTRI"}), 429, "rate_limited")
        assert http.get("/documents").status_code == 200 and http.get("/health").status_code == 200
    # Another client address (all of 127/8 is loopback) has a budget of its own
    with httpx.Client(base_url=url, timeout=30, transport=httpx.HTTPTransport(local_address="127.0.0.2")) as other:
        assert other.post("/search", json={"query": "ASTRI"}).status_code == 200


def test_rate_limit_settings_parse_or_are_refused():
    assert Settings().rate_limit == "60/minute"
    assert Settings(rate_limit=" 20/second ").rate_limit == "20/second"
    assert Settings(rate_limit="none").rate_limit is None and Settings(rate_limit="").rate_limit is None
    with pytest.raises(ValidationError, match="not a limit such as"):
        Settings(rate_limit="lots")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("What\x00 is ASTRI?", "control character U+0000"),
        ("ASTRI\x1b[31m", "control character U+001B"),
        ("ASTRI\x7f", "control character U+007F"),
        ("ASTRI\x9b", "control character U+009B"),
        ("When was \u202eIRTSA founded?", "bidirectional control U+202E"),
        ("ASTRI \u2066founded\u2069", "bidirectional control U+2066"),
        ("ASTRI \u202a", "bidirectional control U+202A"),
    ],
)
def test_control_and_bidi_characters_are_a_clear_422(open_url: str, text: str, needle: str):
    ask = httpx.post(f"{open_url}/ask", json={"question": text})
    assert needle in _error(ask, 422, "invalid_request")
    assert _error(ask, 422, "invalid_request").startswith("question: ")
    search = httpx.post(f"{open_url}/search", json={"query": text})
    assert needle in _error(search, 422, "invalid_request")


@pytest.mark.parametrize(
    "text",
    [
        "香港的人工智能生態系統有甚麼？",
        "What are smart lampposts equipped with? 🤖💡",
        "Qu'est-ce que le Cyberport à Hong Kong, café ?",
        "ASTRI\tfounded\r\nwhen?",
        "\u05de\u05d4 \u200fASTRI\u200e?",  # Hebrew with direction marks, which stay allowed
    ],
)
def test_ordinary_unicode_is_answered(open_url: str, text: str):
    ask = httpx.post(f"{open_url}/ask", json={"question": text}, timeout=30)
    assert ask.status_code == 200, ask.text
    assert ask.json()["question"] == text.strip()
    assert httpx.post(f"{open_url}/search", json={"query": text}, timeout=30).status_code == 200


def test_openapi_states_which_characters_are_refused(open_url: str):
    schemas = httpx.get(f"{open_url}/openapi.json").json()["components"]["schemas"]
    for name, field in (("AskRequest", "question"), ("SearchRequest", "query")):
        pattern = schemas[name]["properties"][field]["pattern"]
        assert "\\x00-\\x08" in pattern and "\\u202a-\\u202e" in pattern and "\\u2066-\\u2069" in pattern


def test_cors_is_closed_by_default(open_url: str):
    simple = httpx.get(f"{open_url}/health", headers={"Origin": ALLOWED})
    assert simple.status_code == 200 and "access-control-allow-origin" not in simple.headers
    preflight = httpx.options(f"{open_url}/ask", headers={"Origin": ALLOWED, "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in preflight.headers


def test_cors_allows_only_the_listed_origins(serve: Callable[..., str]):
    url = serve(cors_origins=[ALLOWED + "/"], rate_limit="none")  # a trailing slash is forgiven
    allowed = httpx.post(f"{url}/search", json={"query": "ASTRI"}, headers={"Origin": ALLOWED})
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == ALLOWED
    assert "x-request-id" in allowed.headers["access-control-expose-headers"].lower()
    preflight = httpx.options(
        f"{url}/ask",
        headers={
            "Origin": ALLOWED,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, authorization",
        },
    )
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == ALLOWED
    assert {"GET", "POST"} <= set(preflight.headers["access-control-allow-methods"].replace(" ", "").split(","))
    other = httpx.post(f"{url}/search", json={"query": "ASTRI"}, headers={"Origin": "https://evil.example"})
    assert other.status_code == 200 and "access-control-allow-origin" not in other.headers
    refused = httpx.options(
        f"{url}/ask", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in refused.headers


def test_cors_origins_must_be_origins():
    with pytest.raises(ValidationError, match="is not an origin"):
        Settings(cors_origins=["https://example.org/chat"])
    with pytest.raises(ValidationError, match="is not an origin"):
        Settings(cors_origins=["example.org"])
