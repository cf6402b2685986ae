"""Chinese documents end to end: the fixture corpus (tests/fixtures/zh-corpus, two Traditional and one
Simplified Markdown document translated from corpus/notes) built with the real models and FAISS into a
temporary index, then asked through the real service. Answers are the documents' own sentences, their
citations slice the files on disk exactly, and nothing is converted between Traditional and Simplified."""

from __future__ import annotations

import asyncio
import math
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from hkai_qa.building import build_index
from hkai_qa.config import Settings
from hkai_qa.embedding import Embedder
from hkai_qa.languages import ENGLISH, MULTILINGUAL
from hkai_qa.lexical import lexical_tokens
from hkai_qa.multilingual_embedding import MultilingualEmbedder
from hkai_qa.service import QAService
from hkai_qa.types import Answer

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "zh-corpus"
RISE, SMART_CITY, HEALTHCARE = "rise-of-hong-kong-ai", "smart-city", "healthcare"


def file_text(document_id: str) -> str:
    """The document as written on disk, independent of anything the index stores."""
    return (FIXTURE / f"{document_id}.md").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def zh_service(
    tmp_path_factory: pytest.TempPathFactory, embedder: Embedder, multilingual: MultilingualEmbedder
) -> Iterator[QAService]:
    """The fixture corpus built (English and multilingual vectors) into a fresh index, served."""
    corpus = tmp_path_factory.mktemp("zh") / "corpus"
    shutil.copytree(FIXTURE, corpus, ignore=shutil.ignore_patterns("*.jsonl"))
    service = _build_and_serve(corpus, embedder, multilingual)
    documents = service.index.documents.values()
    assert (len(documents), sum(len(d.sections) for d in documents)) == (3, 11)
    yield service
    service.close()


def _build_and_serve(corpus: Path, embedder: Embedder, multilingual: MultilingualEmbedder) -> QAService:
    """The corpus built with both models into a fresh index beside it, and a service over that index."""
    index = corpus.parent / "index"
    build_index(corpus, index, embedder, multilingual=multilingual)
    settings = Settings(corpus_dir=corpus, index_dir=index, rate_limit="none", multilingual_threads=2)
    return QAService(settings, embedder)


def assert_cites_file(answer: Answer, document_id: str, section: str, sentence: str) -> None:
    """The answer is exactly `sentence`, cited at offsets that slice the file on disk to it."""
    assert answer.text == sentence
    citation = answer.citations[0]
    assert (citation.document_id, citation.section) == (document_id, section)
    assert citation.quote == sentence
    assert file_text(document_id)[citation.start : citation.end] == sentence


# Characters of the Traditional answers below and their Simplified forms, which must never appear in them.
SIMPLIFIED = {
    "為": "为",
    "項": "项",
    "撥": "拨",
    "億": "亿",
    "啟": "启",
    "舉": "举",
    "網": "网",
    "預": "预",
    "報": "报",
}


@pytest.mark.parametrize(
    ("question", "section", "sentence"),
    [
        (
            "政府為InnoHK旗艦項目撥款多少？",
            "InnoHK與香港生成式人工智能研發中心",
            "政府為InnoHK旗艦項目撥款100億元，InnoHK啟動典禮於2022年5月25日舉行。",
        ),
        (  # Cantonese
            "天文台幾時喺網站推出「盤古」模型嘅預報圖？",
            "環境監測與天氣",
            "2023年10月，香港天文台在其網站推出「盤古」人工智能模型的預報圖。",
        ),
    ],
)
def test_a_chinese_question_gets_the_traditional_sentence_verbatim(
    zh_service: QAService, question: str, section: str, sentence: str
) -> None:
    answer, _ = zh_service.ask(question)
    assert_cites_file(answer, RISE if section.startswith("InnoHK") else SMART_CITY, section, sentence)
    assert answer.text is not None
    assert any(traditional in answer.text for traditional in SIMPLIFIED)
    assert not any(simplified in answer.text for simplified in SIMPLIFIED.values())


def test_a_simplified_question_finds_a_traditional_sentence(zh_service: QAService) -> None:
    question = "智慧灯柱上的摄影机有没有人脸识别功能？"
    assert zh_service.retriever.space_for(question) == MULTILINGUAL
    answer, _ = zh_service.ask(question)
    # The sentence stays Traditional (燈 攝 機 臉 識 別), though the question wrote 灯 摄 机 脸 识 别.
    assert_cites_file(answer, SMART_CITY, "智慧燈柱", "香港智慧燈柱上的攝影機只對著公眾地方，並沒有人臉識別功能。")


def test_a_traditional_question_finds_a_simplified_sentence(zh_service: QAService) -> None:
    answer, _ = zh_service.ask("醫院管理局的人工智能模型每日處理多少張胸部X光片？")
    assert_cites_file(
        answer, HEALTHCARE, "医院管理局的人工智能", "医院管理局的一个人工智能模型每日处理约2,000张胸部X光片。"
    )


@pytest.mark.parametrize(
    ("question", "document_id", "section"),
    [
        ("When was ASTRI founded?", RISE, "應科院與香港科學園"),
        ("How many images was VisionFM pre-trained on?", HEALTHCARE, "医疗机器人与基础模型"),
        ("Do the cameras on smart lampposts have facial recognition?", SMART_CITY, "智慧燈柱"),
    ],
)
def test_an_english_question_about_a_chinese_document_gets_its_section_to_read_not_an_answer(
    zh_service: QAService, question: str, document_id: str, section: str
) -> None:
    """The English model cannot read Chinese, so an English question goes on to the Chinese chunks through the
    multilingual model, but only for the closest sections: across languages its confidence does not separate
    right answers from off-topic ones (README), so it never answers from them."""
    retriever = zh_service.retriever
    assert retriever.space_for(question) == ENGLISH and retriever.other_script_pass(question)
    assert retriever.other_script is not None and retriever.other_script.mask.all()  # every chunk is Chinese
    answer, _ = zh_service.ask(question)
    assert answer.text is None and answer.citations == ()
    assert (answer.related[0].document_id, answer.related[0].section) == (document_id, section)
    assert 1 <= len(answer.related) <= 3
    for related in answer.related:
        assert file_text(related.document_id)[related.start : related.end] == related.quote
    # The HTTP path (the micro-batcher, then the multilingual model on a worker thread) gives the same.
    over_http, _, _ = asyncio.run(zh_service.ask_async(question))
    assert over_http.text is None and over_http.related == answer.related


def test_the_english_model_never_ranks_chinese_chunks_when_the_multilingual_model_can(zh_service: QAService) -> None:
    retriever = zh_service.retriever
    question = "When was ASTRI founded?"
    readable = retriever.readable_chunks(question)
    assert readable is not None and readable.count == 0 and not readable.mask.any()
    assert zh_service.retrieve(question)[1] == []
    # Chinese questions are matched in the multilingual space over every chunk.
    assert retriever.readable_chunks("應科院喺邊一年成立㗎？") is None


@pytest.mark.parametrize(
    ("question", "document_id", "section"),
    [
        ("智慧交通基金每個項目的資助上限是多少？", SMART_CITY, "交通管理"),
        ("香港科技園公司根據哪條條例運作？", RISE, "應科院與香港科學園"),
        ("多尺度医疗机器人中心在科学园占地多少？", HEALTHCARE, "医疗机器人与基础模型"),
    ],
)
def test_bm25_alone_ranks_the_section_that_shares_the_question_words_first(
    zh_service: QAService, multilingual: MultilingualEmbedder, question: str, document_id: str, section: str
) -> None:
    retriever = zh_service.retriever
    vector = multilingual.encode_questions([question])[0]
    tokens = lexical_tokens(question)
    hits = retriever.search(vector, tokens, 5, mode="bm25", space=MULTILINGUAL)
    top = hits[0].chunk
    assert (top.document_id, retriever.index.section_of(top).title) == (document_id, section)
    # What matched are the character pairs the question shares with the chunk (with its titles).
    shared = {t for t in tokens if t in retriever.index.chunk_text(top)}
    assert len(shared) >= 3


def test_bm25_alone_finds_nothing_for_characters_no_document_has(
    zh_service: QAService, multilingual: MultilingualEmbedder
) -> None:
    question = "貓狗寵物"
    vector = multilingual.encode_questions([question])[0]
    assert zh_service.retriever.search(vector, lexical_tokens(question), 5, mode="bm25", space=MULTILINGUAL) == []


def test_chinese_sentences_in_the_index_slice_the_files_exactly(zh_service: QAService) -> None:
    index = zh_service.index
    assert {d: index.documents[d].text for d in index.documents} == {
        d: file_text(d) for d in (RISE, SMART_CITY, HEALTHCARE)
    }
    by_section: dict[tuple[str, str], list[str]] = {}
    for sentence in index.sentences:
        text = file_text(sentence.document_id)[sentence.start : sentence.end]
        assert text and text == text.strip()
        assert text.endswith("。") or not sentence.citable
        by_section.setdefault((sentence.document_id, index.section_of(sentence).title), []).append(text)
    assert len(index.sentences) == 60
    # Split at 。 (a closing 」 stays with its sentence), at line breaks, and never at ， or ；.
    assert by_section[(RISE, "香港人工智能研發院")] == [
        "2025至26年度《財政預算案》預留10億港元成立香港人工智能研發院，由2024年7月成立的數字政策辦公室籌建。",
        "2026至27年度《財政預算案》演辭表示，香港人工智能研發院有限公司「將於今年下半年投入運作」。",
        "2026至27年度《財政預算案》演辭表示，InnoHK已資助16所專門研究人工智能及機械人的實驗室。",
    ]
    lamppost = by_section[(SMART_CITY, "智慧燈柱")]
    assert lamppost[-2:] == [
        "政府正探討以光學雷達（LiDAR）取代攝影機，在智慧燈柱上偵測車輛。",
        "資料來源：https://www.news.gov.hk/eng/2019/07/20190716/20190716_161609_629.html，2019-07-16",
    ]
    sources = [s for s in index.sentences if index.sentence_text(s).startswith("資料來源：")]
    assert len(sources) == 3
    assert not any(s.citable for s in sources)


@pytest.fixture(scope="module")
def mixed_service(
    tmp_path_factory: pytest.TempPathFactory, embedder: Embedder, multilingual: MultilingualEmbedder
) -> Iterator[QAService]:
    """An English document (the tiny fixture's lab) next to a Chinese one (the smart-city note), served."""
    corpus = tmp_path_factory.mktemp("mixed") / "corpus"
    shutil.copytree(FIXTURE.parent / "tiny-corpus", corpus)
    shutil.copy(FIXTURE / f"{SMART_CITY}.md", corpus / f"{SMART_CITY}.md")
    service = _build_and_serve(corpus, embedder, multilingual)
    yield service
    service.close()


def test_in_a_mixed_corpus_english_documents_answer_english_questions_and_chinese_ones_are_shown(
    mixed_service: QAService,
) -> None:
    """An English question is matched by the English model against the English chunks only; when they do not
    answer, the Chinese chunks the multilingual model ranks closest join the related sections. A Chinese
    question sees every chunk and is answered from either."""
    retriever = mixed_service.retriever
    chinese = {c.id for c in retriever.index.chunks if c.document_id == SMART_CITY}
    assert retriever.other_script is not None
    assert {int(i) for i in retriever.other_script.mask.nonzero()[0]} == chinese
    english, _ = mixed_service.ask("How much did the lab receive from the Tide Foundation?")
    assert english.text is not None and "HK$12 million" in english.text
    assert english.citations[0].document_id != SMART_CITY
    _, hits = mixed_service.retrieve("Do the cameras on smart lampposts have facial recognition?")
    assert hits and all(hit.chunk.id not in chinese for hit in hits)  # the English model's own pass
    answer, _ = mixed_service.ask("Do the cameras on smart lampposts have facial recognition?")
    assert answer.text is None  # not from the English document, and never from the Chinese one ...
    assert (SMART_CITY, "智慧燈柱") in {(r.document_id, r.section) for r in answer.related}  # ... but shown
    answer, _ = mixed_service.ask("智慧燈柱上嘅攝影機識唔識認人樣？")
    assert answer.text == "香港智慧燈柱上的攝影機只對著公眾地方，並沒有人臉識別功能。"


def test_an_english_search_over_a_mixed_corpus_lists_passages_from_both_by_evidence(
    mixed_service: QAService,
) -> None:
    """/search joins the English model's ranking of the English chunks with the multilingual model's ranking of
    the Chinese ones (`Retriever.across_scripts`): a chunk the English model, its words and the multilingual
    model all put first ("cameras" in the English lab) comes first, the Chinese lamppost cameras (攝影機),
    which only the models can find, right after it; an off-topic query puts no Chinese passage first."""
    passages, _ = mixed_service.search("cameras", top_k=6)
    documents = [p.hit.chunk.document_id for p in passages]
    assert documents[0] != SMART_CITY and "cameras" in passages[0].text
    assert documents[1] == SMART_CITY and "攝影機" in passages[1].text
    assert 0 < passages[1].hit.score < passages[0].hit.score <= 1
    assert [p.hit.rank for p in passages] == list(range(len(passages)))
    assert len({p.hit.chunk.id for p in passages}) == len(passages) <= 6
    scores = [p.hit.score for p in passages]
    assert scores == sorted(scores, reverse=True)
    over_http, _ = asyncio.run(mixed_service.search_async("cameras", top_k=6))
    assert [p.hit.chunk.id for p in over_http] == [p.hit.chunk.id for p in passages]
    off_topic, _ = mixed_service.search("chocolate cake recipe", top_k=6)
    assert off_topic and off_topic[0].hit.chunk.document_id != SMART_CITY


def test_a_full_multilingual_queue_leaves_an_english_question_its_english_result(mixed_service: QAService) -> None:
    """The pass over the Chinese chunks is optional: when the multilingual model's queue is full, an English
    question still gets its English result (not a 503), which is not cached, so the next asking is complete."""
    question = "Do the cameras on smart lampposts have facial recognition?"
    pending = mixed_service._multilingual_pending
    taken = 0
    while pending.acquire(blocking=False):
        taken += 1
    try:
        answer, _, cached = asyncio.run(mixed_service.ask_async(question))
        assert answer.text is None and not cached
        assert all(r.document_id != SMART_CITY for r in answer.related)  # the English pass's sections only
        passages, _ = asyncio.run(mixed_service.search_async(question))
        assert passages and all(p.hit.chunk.document_id != SMART_CITY for p in passages)
    finally:
        for _ in range(taken):
            pending.release()
    answer, _, cached = asyncio.run(mixed_service.ask_async(question))
    assert not cached and (SMART_CITY, "智慧燈柱") in {(r.document_id, r.section) for r in answer.related}


def test_the_fixture_question_files_name_real_sections_and_phrases(zh_service: QAService) -> None:
    """The Chinese and the English question files of the fixture corpus (README: measured with `hkai-qa eval
    --questions`) point at sections that exist and gold phrases those sections hold, verbatim."""
    from hkai_qa.questions import load_questions

    index = zh_service.index
    for name, language in (("questions.jsonl", "zh"), ("english_questions.jsonl", "en")):
        questions = load_questions(FIXTURE / name)
        assert questions and {q.language for q in questions} == {language}
        for question in questions:
            if not question.answerable:
                continue
            document = index.documents[question.document_id or ""]
            sections = [s for s in document.sections if s.title == question.section]
            assert sections, (question.id, question.section)
            assert any(question.gold in document.text[s.start : s.end] for s in sections), question.id


@pytest.mark.parametrize(
    "question",
    [
        "海港機械人實驗室幾時成立？",
        "實驗室從潮汐基金獲得多少資金？",
        "每部無人機裝有甚麼？",
        "實驗室的水底無人機檢查甚麼？",
    ],
)
def test_a_chinese_question_about_an_english_document_is_not_answered_from_a_chinese_one_for_its_language(
    mixed_service: QAService, question: str
) -> None:
    """The multilingual model scores a passage higher for being in the question's language: uncorrected, each of
    these questions about the English lab was answered from the Chinese smart-city note (its funding, cameras
    and pilot scheme, at confidence 0.50-0.57). With the language offset they are answered from the lab or not
    at all."""
    answer, _ = mixed_service.ask(question)
    assert answer.text is None or answer.citations[0].document_id == "harbour-lab"


def test_in_a_mixed_corpus_chinese_questions_get_answers_from_either_language(mixed_service: QAService) -> None:
    answer, _ = mixed_service.ask("實驗室的水底無人機檢查甚麼？")
    assert answer.text == "The lab builds underwater drones that inspect the piers of Victoria Harbour."
    answer, _ = mixed_service.ask("智慧燈柱上嘅攝影機識唔識認人樣？")
    assert answer.text == "香港智慧燈柱上的攝影機只對著公眾地方，並沒有人臉識別功能。"


def test_the_language_offset_moves_passages_of_one_script_together(
    zh_service: QAService, mixed_service: QAService, multilingual: MultilingualEmbedder
) -> None:
    """A question's similarities to all passages in other scripts are lowered by one amount, so their order
    among themselves is the model's own; English passages, and sentences with no vector, keep the model's
    similarity exactly."""
    vector = multilingual.encode_questions(["智慧燈柱收集甚麼數據？"])[0]
    for service in (zh_service, mixed_service):
        retriever = service.retriever
        numbers = np.arange(len(retriever.index.sentences))
        raw = retriever.vectors(MULTILINGUAL).sentence_vectors[numbers] @ vector
        corrected = retriever.sentence_similarities(vector, numbers, MULTILINGUAL)
        shift = retriever.language_shift(vector, MULTILINGUAL)
        assert shift > 0
        sentences = retriever.index.sentences
        chinese = np.array([s.citable and (s.document_id == SMART_CITY or service is zh_service) for s in sentences])
        assert chinese.sum() >= 10
        assert np.allclose(raw[chinese] - corrected[chinese], shift, atol=1e-6)
        assert np.array_equal(raw[~chinese], corrected[~chinese])  # English, and "資料來源：" lines (no vector)


@pytest.fixture(scope="module")
def corpus_with_a_chinese_note(
    tmp_path_factory: pytest.TempPathFactory, settings: Settings, embedder: Embedder, multilingual: MultilingualEmbedder
) -> Iterator[QAService]:
    """Our corpus with one short, unrelated Chinese document added (a fictional speech lab founded 在香港仔),
    built beside the session index's embedding cache so only the new document is embedded."""
    root = tmp_path_factory.mktemp("with-note")
    shutil.copytree(settings.corpus_dir, root / "corpus")
    shutil.copy(FIXTURE.parent / "zh-lab" / "star-river-lab.md", root / "corpus" / "star-river-lab.md")
    (root / "index" / "cache").mkdir(parents=True)
    for cache in (settings.index_dir / "cache").glob("embeddings-*.npz"):
        shutil.copy(cache, root / "index" / "cache" / cache.name)
    service = _build_and_serve(root / "corpus", embedder, multilingual)
    yield service
    service.close()


def test_one_chinese_document_does_not_draw_chinese_questions_about_the_english_ones(
    corpus_with_a_chinese_note: QAService,
) -> None:
    """Before the language offset "香港科技園幾時成立？" was answered from the lab note ("在香港仔成立", confidence
    0.71); with the offset alone it abstained, the note still ranked first by its character pairs. Now it gets
    the English sentence it gets without the note, ranked first, and the lab's own questions its own answers."""
    service = corpus_with_a_chinese_note
    question = "香港科技園幾時成立？"
    answer, _ = service.ask(question)
    assert answer.text is not None and "Hong Kong Science and Technology Parks Corporation" in answer.text
    assert answer.citations[0].document_id == "notes/rise-of-hong-kong-ai"
    passages, _ = service.search(question, top_k=3)
    assert passages[0].hit.chunk.document_id == "notes/rise-of-hong-kong-ai"
    answer, _ = service.ask("星河實驗室的創辦人是誰？")
    assert answer.text is not None and "陳大文博士" in answer.text
    assert answer.citations[0].document_id == "star-river-lab"


def test_bm25_weighs_chinese_character_pairs_by_the_share_of_chunks_that_could_hold_them(
    corpus_with_a_chinese_note: QAService, zh_service: QAService, service: QAService
) -> None:
    """In an index mostly in English, a Chinese question is ranked by its names; in one all in Chinese (or all in
    English) by all its words, as one ranking."""
    tokens = ["astri", "成立", "香港"]
    mixed = corpus_with_a_chinese_note.retriever
    assert mixed.other_script is not None
    share = mixed.other_script.count / len(mixed.index.chunks)
    assert 0 < share < 0.1
    assert mixed._lexical_parts(tokens, MULTILINGUAL, None) == [(tokens, share), (["astri"], 1 - share)]
    assert mixed._lexical_parts(tokens, ENGLISH, None) == [(tokens, 1.0)]
    assert zh_service.retriever._lexical_parts(tokens, MULTILINGUAL, None) == [(tokens, 1.0)]
    assert service.retriever._lexical_parts(tokens, MULTILINGUAL, None) == [(tokens, 1.0)]


def test_in_a_bilingual_paragraph_only_the_chinese_sentences_are_corrected(
    tmp_path: Path, embedder: Embedder, multilingual: MultilingualEmbedder
) -> None:
    """Each sentence is judged by its own text, not by the chunk around it: "The institute employs about 600
    engineers." keeps the model's similarity though its paragraph (and chunk) is mostly Chinese."""
    corpus = tmp_path / "corpus"
    shutil.copytree(FIXTURE.parent / "tiny-corpus", corpus)
    shutil.copy(FIXTURE.parent / "zh" / "hong-kong-ai.md", corpus / "hong-kong-ai.md")
    service = _build_and_serve(corpus, embedder, multilingual)
    try:
        retriever = service.retriever
        index = retriever.index
        by_text = {index.sentence_text(s): n for n, s in enumerate(index.sentences)}
        english, chinese = by_text["The institute employs about 600 engineers."], by_text["它位於科學園。"]
        assert any(
            c.first_sentence <= english <= c.last_sentence and c.first_sentence <= chinese <= c.last_sentence
            for c in index.chunks
        )  # one chunk holds both
        vector = multilingual.encode_questions(["應科院有幾多名工程師？"])[0]
        shift = retriever.language_shift(vector, MULTILINGUAL)
        numbers = [english, chinese]
        raw = retriever.vectors(MULTILINGUAL).sentence_vectors[numbers] @ vector
        corrected = retriever.sentence_similarities(vector, numbers, MULTILINGUAL)
        assert shift > 0
        assert corrected[0] == raw[0]
        assert corrected[1] == pytest.approx(raw[1] - shift, abs=1e-6)
        # The chunk is mostly Chinese, yet its English sentence is the English model's to find: a chunk is hidden
        # from English questions only when every sentence in it is in another script.
        answer, _ = service.ask("How many engineers does the institute employ?")
        assert answer.text == "The institute employs about 600 engineers."
        assert answer.citations[0].document_id == "hong-kong-ai"
    finally:
        service.close()


def test_an_english_question_always_sees_the_closest_chinese_section_among_the_related_ones(
    corpus_with_a_chinese_note: QAService,
) -> None:
    """The English chunks are ranked by the English model and their words, the Chinese ones by the multilingual
    model alone, and the two scores do not compare: before, every English section that both found outranked the
    Chinese note, so "Who founded the Star River Lab?" listed three English sections and not the lab's. The
    closest Chinese section now takes the last place when none is among them, over HTTP as in-process."""
    service = corpus_with_a_chinese_note
    question = "Who founded the Star River Lab?"
    answer, _ = service.ask(question)
    assert answer.text is None and len(answer.related) == 3
    assert [r.document_id for r in answer.related][:2] != ["star-river-lab"] * 2
    assert answer.related[-1].document_id == "star-river-lab"
    assert sum(r.document_id == "star-river-lab" for r in answer.related) == 1
    over_http, _, _ = asyncio.run(service.ask_async(question))
    assert over_http.related == answer.related
    answer, _ = service.ask("Which languages does Sing Sing Man support?")  # its name: ranked first on merit
    assert answer.related[0].document_id == "star-river-lab"
    assert sum(r.document_id == "star-river-lab" for r in answer.related) == 1


@pytest.mark.parametrize(
    "question",
    [
        "In which districts does the smart lamppost pilot scheme install lampposts?",
        "Which organisation is the secretariat of the Smart Traffic Fund?",
        "When did the Observatory start showing Pangu model forecasts on its website?",
    ],
)
def test_an_english_search_puts_the_chinese_section_that_answers_first(mixed_service: QAService, question: str) -> None:
    """Merged by score alone, the English lab came first for each of these (its words match "the", "scheme",
    "fund" and the English model ranks it first among English chunks); the multilingual model, which reads both,
    now arbitrates, and the Chinese section that answers comes first, in /search and in the related sections,
    through the HTTP paths as in-process."""
    passages, _ = mixed_service.search(question, top_k=3)
    assert passages[0].hit.chunk.document_id == SMART_CITY
    first, _ = mixed_service.search(question, top_k=1)  # the first place does not depend on how many are asked
    assert [p.hit.chunk.id for p in first] == [passages[0].hit.chunk.id]
    over_http, _ = asyncio.run(mixed_service.search_async(question, top_k=3))
    assert [p.hit.chunk.id for p in over_http] == [p.hit.chunk.id for p in passages]
    answer, _ = mixed_service.ask(question)
    assert answer.text is None and answer.related[0].document_id == SMART_CITY
    answered_over_http, _, _ = asyncio.run(mixed_service.ask_async(question))
    assert answered_over_http.related == answer.related


def test_a_chinese_answer_from_a_chinese_document_is_judged_by_the_same_script_calibration(
    zh_service: QAService,
) -> None:
    """Over Chinese text the question's character pairs match, so coverage means what it does in English; the
    model fitted across languages answered every unanswerable question of the fixture corpus, this one is fitted
    on Chinese questions over these documents (the fixture file's tune split)."""
    from hkai_qa.answering import SAME_SCRIPT, answer_features, calibration_for, extract_answer

    question = "應科院喺邊一年成立㗎？"
    vector, hits = zh_service.retrieve(question)
    read = answer_features(question, vector, hits, zh_service.retriever)
    assert read is not None and read[1] == SAME_SCRIPT
    calibration = calibration_for(zh_service.index, SAME_SCRIPT)
    assert calibration == zh_service.index.manifest["multilingual"]["same_script_calibration"]
    assert calibration != zh_service.index.manifest["multilingual"]["calibration"]
    weights = zip(calibration["features"], calibration["weights"], strict=True)
    z = calibration["bias"] + sum(w * read[0][name] for name, w in weights)
    answer = extract_answer(question, vector, hits, zh_service.retriever, 3)
    assert answer.confidence == round(1 / (1 + math.exp(-z)), 4)
