"""The HTTP API over a real server on loopback: shapes, offsets, documents and every bad input."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest


@pytest.fixture(scope="module")
def client(server_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server_url, timeout=30) as http:
        yield http


def _error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"type", "message", "request_id"}
    assert body["error"]["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    return str(body["error"]["message"])


def test_ask_answers_with_a_verbatim_cited_span(client: httpx.Client):
    response = client.post("/ask", json={"question": "What are smart lampposts equipped with?"})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "question", "answer", "confidence", "highlight", "citations", "related", "index_version", "took_ms"
    }  # fmt: skip
    assert "AI-powered sensors" in body["answer"]
    start, end = body["highlight"]
    assert body["answer"][start:end] == "AI-powered sensors"
    assert 0 <= body["confidence"] <= 1 and body["took_ms"] > 0
    first = body["citations"][0]
    assert first["quote"] == body["answer"]
    assert first["section"] in {"Smart City Initiatives", "Smart lampposts"}
    document = client.get(f"/documents/{first['document_id']}").json()
    for citation in body["citations"]:
        text = client.get(f"/documents/{citation['document_id']}").json()["text"]
        assert text[citation["start"] : citation["end"]] == citation["quote"]
    assert document["id"] == first["document_id"]
    health = client.get("/health").json()
    assert body["index_version"] == health["index_version"]


def test_ask_off_topic_is_null_with_related_sections(client: httpx.Client):
    body = client.post("/ask", json={"question": "Who won the 2018 World Cup?"}).json()
    assert body["answer"] is None and body["citations"] == [] and body["highlight"] is None
    assert body["related"] and body["related"][0]["url"].startswith("/?doc=")


def test_ask_top_k_limits_citations(client: httpx.Client):
    body = client.post("/ask", json={"question": "When was ASTRI founded?", "top_k": 1}).json()
    assert len(body["citations"]) == 1


def test_search_returns_hits_with_offsets(client: httpx.Client):
    body = client.post("/search", json={"query": "smart lampposts", "top_k": 4}).json()
    assert len(body["hits"]) == 4
    hit = body["hits"][0]
    assert set(hit) == {"document_id", "document_title", "section", "text", "start", "end", "score"}
    text = client.get(f"/documents/{hit['document_id']}").json()["text"]
    assert text[hit["start"] : hit["end"]] == hit["text"]
    assert "lamppost" in hit["text"].lower()


def test_documents_list_and_document_with_slash_in_id(client: httpx.Client):
    listing = client.get("/documents").json()
    ids = [d["id"] for d in listing["documents"]]
    assert "hong-kong-ai-ecosystem" in ids and "notes/smart-city" in ids
    assert listing["index_version"] and listing["built_at"]
    note = client.get("/documents/notes/smart-city").json()
    assert set(note) == {"id", "title", "text", "sections"}
    assert note["title"] and note["sections"]
    for section in note["sections"]:
        assert set(section) == {"title", "start", "end", "anchor"}
        assert 0 <= section["start"] < section["end"] <= len(note["text"])


def test_health_reports_version_and_counts(client: httpx.Client):
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["model"] == "all-MiniLM-L6-v2"
    assert body["documents"] >= 9 and body["chunks"] > 0 and body["sentences"] > body["chunks"] / 2


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        ({"question": ""}, "empty"),
        ({"question": "   \n\t "}, "empty"),
        ({"question": "x" * 1001}, "longer than 1000"),
        ({"question": "ok", "top_k": 0}, "top_k"),
        ({"question": "ok", "top_k": 21}, "top_k"),
        ({"question": "ok", "top_k": "many"}, "top_k"),
        ({}, "question is required"),
        ({"question": 42}, "question"),
        ({"question": "ok", "topk": 3}, "topk"),
        ({"question": "ok", "top_k": True}, "top_k"),
        ({"question": "\u200b\u2060 "}, "empty"),
        ({"question": "\u200b\x00 "}, "control character U+0000"),
        ([], "body"),
    ],
)
def test_bad_ask_input_is_a_clear_422(client: httpx.Client, payload: dict[str, object], needle: str):
    assert needle in _error(client.post("/ask", json=payload), 422)


def test_malformed_json_is_a_clear_400(client: httpx.Client):
    response = client.post("/ask", content=b'{"question": "unterminated', headers={"content-type": "application/json"})
    assert "not valid JSON" in _error(response, 400)


def test_unparseable_body_is_a_clear_400(client: httpx.Client):
    response = client.post("/ask", content=b'{"question": "\xff\xfe"}', headers={"content-type": "application/json"})
    assert "not valid JSON" in _error(response, 400)


def test_lone_surrogate_escape_is_refused_and_the_connection_survives(client: httpx.Client):
    body = b'{"question": "\\ud800"}'
    assert "not valid Unicode" in _error(
        client.post("/ask", content=body, headers={"content-type": "application/json"}), 422
    )
    assert client.get("/health").status_code == 200


def test_bad_search_input_is_refused(client: httpx.Client):
    assert "the query is empty" in _error(client.post("/search", json={"query": " "}), 422)


def test_unknown_document_and_route_are_404(client: httpx.Client):
    assert "no document with id 'notes/nope'" in _error(client.get("/documents/notes/nope"), 404)
    _error(client.get("/nowhere"), 404)
    _error(client.get("/ask"), 405)


def test_page_and_docs_are_served_with_a_same_origin_csp(client: httpx.Client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy and "http" not in policy
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/docs-static/swagger-ui-bundle.js" in docs.text
    assert client.get("/docs-static/swagger-ui-bundle.js").status_code == 200


def test_openapi_describes_every_field(client: httpx.Client):
    schema = client.get("/openapi.json").json()
    assert {"/ask", "/search", "/documents", "/documents/{document_id}", "/health"} <= set(schema["paths"])
    for name in ("AskRequest", "AskResponse", "CitationOut", "SearchRequest", "SearchHit", "DocumentOut", "Health"):
        properties = schema["components"]["schemas"][name]["properties"]
        undescribed = [field for field, spec in properties.items() if not spec.get("description")]
        assert not undescribed, f"{name}: {undescribed}"
