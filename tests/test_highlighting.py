"""The answering phrase inside an answer: dates, amounts, and the phrase after the question's words."""

from __future__ import annotations

import unicodedata

import pytest

from hkai_qa.highlighting import find_highlight
from hkai_qa.lexical import lexical_tokens


@pytest.mark.parametrize(
    ("question", "answer", "phrase"),
    [
        (
            "What are smart lampposts equipped with?",
            "Innovations like smart lampposts equipped with AI-powered sensors demonstrate the city’s commitment.",
            "AI-powered sensors",
        ),
        ("When was ASTRI founded?", "ASTRI was founded by the HKSAR Government in 2000 to do research.", "2000"),
        ("When did the centre open?", "The centre opened on 9 December 2024 in Cyberport.", "9 December 2024"),
        (
            "How much did the Budget allocate?",
            "The 2024-25 Budget allocated HK$3 billion for a scheme.",
            "HK$3 billion",
        ),
        ("How much computing power does it have?", "It has a computing power of 1,300 petaflops.", "1,300 petaflops"),
        (
            "How many unicorns has HKSTP supported?",
            "HKSTP hosts 31 research centres and has supported 12 unicorns so far.",
            "12 unicorns",
        ),
        (
            "How much funding did the pilot get?",
            "The pilot uses 11 sets of cameras and secured HK$6.8 million from the Bureau.",
            "HK$6.8 million",
        ),
        (
            "What is Cap. 486?",
            "Cap. 486 is the Personal Data (Privacy) Ordinance, enacted in 1995.",
            "Personal Data (Privacy) Ordinance",
        ),
        (
            "What is HKSTP?",
            "HKSTP is the Hong Kong Science and Technology Parks Corporation, formed in 2001.",
            "Hong Kong Science and Technology Parks Corporation",
        ),
    ],
)
def test_highlight_is_the_answering_phrase(question: str, answer: str, phrase: str):
    span = find_highlight(question, answer)
    assert span is not None
    assert answer[span[0] : span[1]] == phrase


def test_no_highlight_when_nothing_in_the_answer_relates_to_the_question():
    assert find_highlight("Who won the World Cup?", "Lampposts carry sensors.") is None


def test_offsets_count_code_points_with_emoji_and_cjk():
    answer = "香港 🤖 lampposts are equipped with AI-powered sensors on every pole."
    start, end = find_highlight("What are lampposts equipped with?", answer) or (0, 0)
    assert answer[start:end] == "AI-powered sensors"


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("ASTRI 係幾時成立㗎？", "date"),
        ("香港科技園哪一年成立？", "date"),
        ("数码港什么时候开幕？", "date"),
        ("數碼港有幾多間初創公司？", "amount"),
        ("超算中心有多少算力？", "amount"),
        ("智慧燈柱裝有甚麼？", None),
    ],
)
def test_chinese_questions_ask_for_dates_and_amounts_too(question: str, kind: str | None):
    from hkai_qa.highlighting import expected_answer

    assert expected_answer(question) == kind


def test_a_chinese_when_question_highlights_the_date_in_the_english_answer():
    answer = "The Hong Kong Science and Technology Parks Corporation (HKSTP) was formed on 7 May 2001."
    highlight = find_highlight("香港科技園幾時成立？", answer)
    assert highlight is not None and answer[highlight[0] : highlight[1]] == "7 May 2001"


@pytest.mark.parametrize(
    ("question", "answer", "date"),
    [
        ("When was HKSTP established?", "香港科技園公司（HKSTP）於2001年5月7日成立。", "2001年5月7日"),
        ("香港科技園公司於何時成立？", "香港科技園公司（HKSTP）於2001年5月7日成立。", "2001年5月7日"),
        ("When was the pilot scheme completed?", "多功能智慧燈柱試驗計劃於2023年12月完成。", "2023年12月"),
        ("天文台幾時開始試用？", "並自2023年年中起試用人工智能天氣預測模型。", "2023年年中"),
    ],
)
def test_a_date_in_chinese_text_is_highlighted_though_it_runs_into_the_characters(
    question: str, answer: str, date: str
):
    """Chinese puts no space around a date ("於2001年5月7日成立"), so word boundaries do not find it."""
    highlight = find_highlight(question, answer)
    assert highlight is not None and answer[highlight[0] : highlight[1]] == date


def test_a_decomposed_answer_is_read_in_words_as_the_composed_question_is():
    # A document written with combining marks ("Zu" + U+0308 "rich") against a question taken in NFC: the
    # question's own word must not be marked as the answer ('Zürich builds magnetic microrobots' was).
    answer = unicodedata.normalize("NFD", "The ETH lab in Zürich builds magnetic microrobots.")
    start, end = find_highlight("What does the ETH lab in Zürich build?", answer)
    assert answer[start:end] == "magnetic microrobots"
    # A mark with no composed form ("q" + U+0303) stays inside its word, in questions and documents alike.
    assert lexical_tokens("q\u0303uality Zu\u0308rich") == ["q\u0303uality", "zürich"]
