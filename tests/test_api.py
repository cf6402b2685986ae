"""The HTTP API over a real server on loopback: shapes, offsets, documents and every bad input."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from hkai_qa.config import Settings
from hkai_qa.service import QAService


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
    assert set(note) == {"id", "title", "text", "sections", "index_version"}
    assert note["index_version"] == listing["index_version"]  # offsets of that version's answers fit this text
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
    assert 'data-max-question="1000"' in page.text  # the server's question limit, for the page to count against
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


# Chinese questions: encoded by the multilingual model, matched against the same English sentences, and
# answered with the verbatim English span and its citation.
HKSTP_EN = "When was the Hong Kong Science and Technology Parks Corporation formed?"
HKSTP_ZH = "香港科技園幾時成立？"  # Cantonese, Traditional characters
HKSTP_ZH_SIMPLIFIED = "香港科技园什么时候成立？"  # Mandarin, Simplified characters
HKSTP_SENTENCE = "The Hong Kong Science and Technology Parks Corporation (HKSTP) was formed on 7 May 2001."
ASTRI_EN = "When was ASTRI founded?"
ASTRI_MIXED = "ASTRI 係幾時成立㗎？"  # an English name in a Cantonese question
OFF_TOPIC_ZH = "2018年世界盃冠軍是誰？"  # "Who won the 2018 World Cup?"


def _ask(client: httpx.Client, question: str) -> dict[str, Any]:
    response = client.post("/ask", json={"question": question})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = json.loads(response.content.decode("utf-8"))  # JSON is UTF-8: strictly so
    return body


def _highlighted(body: dict[str, Any]) -> str:
    assert body["highlight"] is not None, body
    start, end = body["highlight"]
    assert 0 <= start < end <= len(body["answer"])
    return str(body["answer"][start:end])


def _assert_quotes_are_verbatim(client: httpx.Client, citations: list[dict[str, Any]]) -> None:
    for citation in citations:
        text = client.get(f"/documents/{citation['document_id']}").json()["text"]
        assert text[citation["start"] : citation["end"]] == citation["quote"], citation


def test_chinese_question_gets_the_english_questions_sentence_and_citation(client: httpx.Client):
    english, chinese = _ask(client, HKSTP_EN), _ask(client, HKSTP_ZH)
    assert chinese["question"] == HKSTP_ZH
    assert chinese["answer"] == english["answer"] == HKSTP_SENTENCE
    keys = ("document_id", "document_title", "section", "quote", "start", "end", "url")
    first = chinese["citations"][0]
    assert {k: first[k] for k in keys} == {k: english["citations"][0][k] for k in keys}
    assert first["document_id"] == "notes/rise-of-hong-kong-ai"
    assert first["section"] == "ASTRI and Hong Kong Science Park"
    assert first["quote"] == chinese["answer"]
    _assert_quotes_are_verbatim(client, chinese["citations"])
    assert _highlighted(chinese) == "7 May 2001"
    assert chinese["related"] == [] and 0 <= chinese["confidence"] <= 1


def test_simplified_chinese_question_is_answered_from_the_same_sentence(client: httpx.Client):
    body = _ask(client, HKSTP_ZH_SIMPLIFIED)
    assert body["question"] == HKSTP_ZH_SIMPLIFIED
    assert body["answer"].startswith(HKSTP_SENTENCE)  # the span may run on into the next sentence on HKSTP
    first = body["citations"][0]
    assert first["document_id"] == "notes/rise-of-hong-kong-ai"
    assert first["section"] == "ASTRI and Hong Kong Science Park"
    assert first["start"] == _ask(client, HKSTP_EN)["citations"][0]["start"]
    assert first["quote"] == body["answer"]
    _assert_quotes_are_verbatim(client, body["citations"])
    assert _highlighted(body) == "7 May 2001"


def test_mixed_english_and_chinese_question_highlights_the_year(client: httpx.Client):
    english, mixed = _ask(client, ASTRI_EN), _ask(client, ASTRI_MIXED)
    assert mixed["question"] == ASTRI_MIXED
    assert mixed["answer"] == english["answer"]
    assert "(ASTRI) was founded by the HKSAR Government in 2000." in mixed["answer"]
    keys = ("document_id", "section", "start", "end")
    assert {k: mixed["citations"][0][k] for k in keys} == {k: english["citations"][0][k] for k in keys}
    _assert_quotes_are_verbatim(client, mixed["citations"])
    assert _highlighted(mixed) == "2000"


def test_off_topic_chinese_question_is_null_with_related_sections(client: httpx.Client):
    body = _ask(client, OFF_TOPIC_ZH)
    assert body["question"] == OFF_TOPIC_ZH
    assert body["answer"] is None and body["citations"] == [] and body["highlight"] is None
    assert body["related"]
    for related in body["related"]:
        assert related["url"].startswith("/?doc=") and related["section"]
    _assert_quotes_are_verbatim(client, body["related"])


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        (HKSTP_ZH, HKSTP_ZH),
        (ASTRI_MIXED, ASTRI_MIXED),
        (f"\u3000 {HKSTP_ZH}\n", HKSTP_ZH),  # an ideographic space is trimmed like any other
        ("搭𨋢去科學園要幾耐？", "搭𨋢去科學園要幾耐？"),  # 𨋢 ("lift") lies outside the BMP
    ],
)
def test_chinese_question_comes_back_exactly(client: httpx.Client, sent: str, kept: str):
    raw = json.dumps({"question": sent}, ensure_ascii=True)  # \u escapes, surrogate pairs for 𨋢
    for content in (raw.encode("ascii"), json.dumps({"question": sent}, ensure_ascii=False).encode("utf-8")):
        response = client.post("/ask", content=content, headers={"content-type": "application/json"})
        assert response.status_code == 200, response.text
        assert json.loads(response.content.decode("utf-8"))["question"] == kept


def test_search_with_a_chinese_query_ranks_the_right_section_first(client: httpx.Client):
    for query in ("香港科技園", HKSTP_ZH):
        body = client.post("/search", json={"query": query, "top_k": 3}).json()
        assert body["query"] == query
        hit = body["hits"][0]
        assert (hit["document_id"], hit["section"]) == (
            "notes/rise-of-hong-kong-ai",
            "ASTRI and Hong Kong Science Park",
        )
        assert "7 May 2001" in hit["text"]
        text = client.get(f"/documents/{hit['document_id']}").json()["text"]
        assert text[hit["start"] : hit["end"]] == hit["text"]


def test_the_page_counts_against_the_limit_this_server_applies(
    settings: Settings, service: QAService, start_server: Callable[[FastAPI], str]
):
    from hkai_qa.api import create_app

    url = start_server(create_app(settings.model_copy(update={"max_question_chars": 50}), service))
    with httpx.Client(base_url=url, timeout=30) as client:
        assert 'data-max-question="50"' in client.get("/").text
