"""Sentences and chunks: boundaries that survive tricky punctuation, offsets that slice exactly."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from pathlib import Path

import pytest

from hkai_qa.chunking import chunk_sentences, split_sentences
from hkai_qa.documents import parse_document, read_document

ROOT = Path(__file__).resolve().parent.parent


def _sentences(text: str, source: str = "t.txt") -> list[str]:
    document = parse_document("t", text, source)
    return [text[s.start : s.end] for s in split_sentences(document)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Under Cap. 486 there are six principles. The law dates from 1995.",
            ["Under Cap. 486 there are six principles.", "The law dates from 1995."],
        ),
        (
            "The Budget allocated HK$3 billion for the scheme. It runs for three years.",
            ["The Budget allocated HK$3 billion for the scheme.", "It runs for three years."],
        ),
        (
            "Growth was 3.5 percent, e.g. in banks. Dr. Chan agreed with Prof. Lee.",
            ["Growth was 3.5 percent, e.g. in banks.", "Dr. Chan agreed with Prof. Lee."],
        ),
        (
            "It works with the Royal College of Art. The other centres differ.",
            ["It works with the Royal College of Art.", "The other centres differ."],
        ),
        (
            "Growth was strong in banks. Dr. Chan agreed. See No. 5 below.",
            ["Growth was strong in banks.", "Dr. Chan agreed.", "See No. 5 below."],
        ),
        (
            "He cited “over 800 AI companies.” The fund followed.",
            ["He cited “over 800 AI companies.”", "The fund followed."],
        ),
        (
            "Innovation is taking center stage—Artificial Intelligence (AI). The SAR is a key player.",
            ["Innovation is taking center stage—Artificial Intelligence (AI).", "The SAR is a key player."],
        ),
    ],
)
def test_sentence_boundaries(text: str, expected: list[str]):
    assert _sentences(text) == expected


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x0c", "\x0b", "\x85", "\x1e"])
def test_line_and_page_breaks_inside_a_sentence_do_not_end_it(separator: str):
    # blingfire ends a sentence at these; "The ... drones" alone was then a confident answer.
    text = f"The Drone Hub tests delivery drones{separator}over the harbour. It employs forty{separator}engineers."
    assert _sentences(text) == [
        f"The Drone Hub tests delivery drones{separator}over the harbour.",
        f"It employs forty{separator}engineers.",
    ]


def test_source_lines_and_list_items_are_their_own_sentences():
    text = (
        "# T\n\n## S\n\nThe fact is stated here.\nSource: https://example.org/a.b, 2024-12-09\n\n"
        "- First item is a point.\n- Second item is another.\n"
    )
    document = parse_document("t", text, "t.md")
    sentences = split_sentences(document)
    quotes = [(text[s.start : s.end], s.citable) for s in sentences]
    assert quotes == [
        ("The fact is stated here.", True),
        ("Source: https://example.org/a.b, 2024-12-09", False),
        ("First item is a point.", True),
        ("Second item is another.", True),
    ]


def test_no_sentence_of_a_source_line_is_citable_even_after_a_full_stop():
    text = (
        "# T\n\nThe fund opened in 2024 for startups.\n"
        "Source: Hong Kong Government. Press release of 3 May 2024 on the fund.\n"
    )
    sentences = split_sentences(parse_document("t", text, "t.md"))
    citable = [(text[s.start : s.end], s.citable) for s in sentences]
    assert citable[0] == ("The fund opened in 2024 for startups.", True)
    assert len(citable) >= 2 and not any(flag for _, flag in citable[1:])


def test_article_sentences_slice_exactly_and_fragment_is_not_citable():
    article = read_document(ROOT / "corpus" / "hong-kong-ai-ecosystem.txt", ROOT / "corpus")
    sentences = split_sentences(article)
    for sentence in sentences:
        quote = article.text[sentence.start : sentence.end]
        assert quote == quote.strip() and quote
        section = article.sections[sentence.section]
        assert section.start <= sentence.start < sentence.end <= section.end
    assert article.text[sentences[-1].start : sentences[-1].end] == "As the city"
    assert not sentences[-1].citable


def test_chunks_stay_inside_sections_respect_the_budget_and_overlap(embedder):
    text = "# Doc\n\n## One\n\n" + " ".join(f"Sentence number {i} talks about harbour drones." for i in range(40))
    text += "\n\n## Two\n\nA short closing section."
    document = parse_document("d", text, "d.md")
    sentences = split_sentences(document)
    chunks = chunk_sentences(sentences, document, embedder.count_tokens, max_tokens=60)
    assert len(chunks) > 3
    for chunk in chunks:
        assert sentences[chunk.first_sentence].section == sentences[chunk.last_sentence].section == chunk.section
        span = [text[s.start : s.end] for s in sentences[chunk.first_sentence : chunk.last_sentence + 1]]
        assert sum(embedder.count_tokens(span)) <= 60 or len(span) == 1
        assert text[chunk.start : chunk.end].startswith(span[0]) and text[chunk.start : chunk.end].endswith(span[-1])
    first_section = [c for c in chunks if c.section == 0]
    for left, right in itertools.pairwise(first_section):
        assert right.first_sentence == left.last_sentence  # one sentence shared between neighbours
    assert chunks[-1].section == 1 and text[chunks[-1].start : chunks[-1].end] == "A short closing section."


def _without_spaces(quotes: Iterable[str]) -> str:
    """The characters of the quotes in order: only whitespace may fall between sentences."""
    return "".join("".join(quotes).split())


def _quotes(text: str, source: str = "t.txt") -> list[tuple[str, bool]]:
    document = parse_document("t", text, source)
    sentences = split_sentences(document)
    assert _without_spaces(text[s.start : s.end] for s in sentences) == _without_spaces([text])
    return [(text[s.start : s.end], s.citable) for s in sentences]


def test_traditional_chinese_ends_sentences_at_full_width_marks_and_closing_quotes():
    text = (
        "香港科學園於2001年成立，位於沙田白石角。園區內有超過一千家科技公司！"
        "政府說：「創新科技是經濟的新引擎。」數碼港則專注金融科技？"
    )
    assert _quotes(text) == [
        ("香港科學園於2001年成立，位於沙田白石角。", True),
        ("園區內有超過一千家科技公司！", True),
        ("政府說：「創新科技是經濟的新引擎。」", True),
        ("數碼港則專注金融科技？", True),
    ]


def test_simplified_chinese_keeps_a_closing_quote_with_its_question():
    text = "香港科技园于2001年成立，位于沙田白石角。他问：“人工智能能否改变金融业？”答案是肯定的！数码港专注金融科技。"
    assert _quotes(text) == [
        ("香港科技园于2001年成立，位于沙田白石角。", True),
        ("他问：“人工智能能否改变金融业？”", True),
        ("答案是肯定的！", True),
        ("数码港专注金融科技。", True),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ASTRI 於2000年成立。它位於科學園。", [("ASTRI 於2000年成立。", True), ("它位於科學園。", True)]),
        (
            "香港生產力促進局（HKPC）推出AI計劃。The scheme started in 2023. 申請人數超過五百。Dr. 陳大文說計劃成功。",
            [
                ("香港生產力促進局（HKPC）推出AI計劃。", True),
                ("The scheme started in 2023.", True),
                ("申請人數超過五百。", True),
                ("Dr. 陳大文說計劃成功。", True),
            ],
        ),
        (  # blingfire does not cut an English sentence from the Chinese one after it
            "It was founded in 2010 in Pok Fu Lam. 研究所專注於海洋人工智能。",
            [("It was founded in 2010 in Pok Fu Lam.", True), ("研究所專注於海洋人工智能。", True)],
        ),
    ],
)
def test_chinese_mixed_with_english(text: str, expected: list[tuple[str, bool]]):
    assert _quotes(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("他大叫：「成功了！」大家都鼓掌。", ["他大叫：「成功了！」", "大家都鼓掌。"]),
        ("報告指出：『這是真的嗎？』』記者問。", ["報告指出：『這是真的嗎？』』", "記者問。"]),
        ("（詳情見附件！）下一段開始。", ["（詳情見附件！）", "下一段開始。"]),
        ("真的嗎？！是的。。。", ["真的嗎？！", "是的。。。"]),
        # A quotation that opens the sentence and runs on is its subject, not a sentence of its own.
        ("「你好嗎？」是它最常聽到的一句話。", ["「你好嗎？」是它最常聽到的一句話。"]),
        ("我很好。「你好嗎？」是它最常聽到的一句話。", ["我很好。", "「你好嗎？」是它最常聽到的一句話。"]),
        ("“真的嗎？”成了口頭禪。她問：“真的嗎？”他點頭。", ["“真的嗎？”成了口頭禪。", "她問：“真的嗎？”", "他點頭。"]),
        ("標題\n「你好嗎？」是它最常聽到的一句話。", ["標題", "「你好嗎？」是它最常聽到的一句話。"]),
        # Sentence ends inside a quotation are the quotation's.
        ("「你好嗎？我很好。」是常見的對話。", ["「你好嗎？我很好。」是常見的對話。"]),
        ("他說：「你好嗎？我很好。」然後走了。", ["他說：「你好嗎？我很好。」", "然後走了。"]),
    ],
)
def test_chinese_closing_quotes_and_runs_of_marks_stay_with_their_sentence(text: str, expected: list[str]):
    assert [quote for quote, _ in _quotes(text)] == expected


def test_a_line_break_inside_chinese_text_ends_a_sentence():
    text = "香港的人工智能發展迅速\n數碼港支持本地初創企業  \n科學園提供研發設施。\nThe parks work together."
    assert _quotes(text) == [
        ("香港的人工智能發展迅速", True),
        ("數碼港支持本地初創企業", True),
        ("科學園提供研發設施。", True),
        ("The parks work together.", True),
    ]


def test_a_wrapped_english_sentence_that_names_something_in_chinese_stays_whole():
    text = "The centre is known as 數碼港\nin Chinese and opened in 2004. It hosts start-ups."
    assert _quotes(text) == [
        ("The centre is known as 數碼港\nin Chinese and opened in 2004.", True),
        ("It hosts start-ups.", True),
    ]


@pytest.mark.parametrize(
    ("sentence", "citable"),
    [
        ("它位於科學園。", True),  # six characters: a short but whole sentence
        ("數碼港成立。", False),  # five characters
        ("是的。", False),
        ("香港AI公司。", False),
        ("香港有800家AI公司。", True),
        ("Source: 香港政府統計處的人工智能報告", False),
        ("資料來源：香港政府統計處的人工智能報告", False),  # a Chinese source line, full-width colon
        ("来源: 香港政府统计处的人工智能报告", False),
    ],
)
def test_chinese_sentences_are_citable_by_characters_and_fragments_are_not(sentence: str, citable: bool):
    assert _quotes(sentence) == [(sentence, citable)]


def test_english_is_split_as_before_even_beside_chinese():
    text = (
        "The Hong Kong Science Park (香港科學園) opened in\n2001. It hosts over 1,000 companies.\n\n"
        "Cyberport was\nfounded in 2004! Why? Growth, e.g. in fintech. As the city"
    )
    document = parse_document("t", text, "t.txt")
    quotes = [(text[s.start : s.end], s.citable) for s in split_sentences(document)]
    assert quotes == [
        ("The Hong Kong Science Park (香港科學園) opened in\n2001.", True),
        ("It hosts over 1,000 companies.", True),
        ("Cyberport was\nfounded in 2004!", True),
        ("Why?", False),
        ("Growth, e.g. in fintech.", True),
        ("As the city", False),
    ]


def test_chinese_file_sentences_slice_exactly_and_lose_only_whitespace():
    folder = ROOT / "tests" / "fixtures" / "zh"
    document = read_document(folder / "hong-kong-ai.md", folder)
    sentences = split_sentences(document)
    for index, section in enumerate(document.sections):
        body = document.text[section.start : section.end]
        quotes = [document.text[s.start : s.end] for s in sentences if s.section == index]
        assert all(quote == quote.strip() and quote for quote in quotes)
        assert _without_spaces(quotes) == _without_spaces([body])
    traditional = [document.text[s.start : s.end] for s in sentences if s.section == 0]
    assert traditional[2:] == [
        "政府說：「創新科技是經濟的新引擎。」",
        "數碼港則專注金融科技？",
        "創科局的重點",
        "研發資助計劃",
        "人才入境計劃。",
    ]
    assert all(s.citable for s in sentences)


def _citable(text: str, source: str = "t.txt") -> list[tuple[str, bool]]:
    document = parse_document("t", text, source)
    return [(text[s.start : s.end], s.citable) for s in split_sentences(document)]


def test_code_examples_grammar_rules_and_links_are_context_not_answers():
    text = (
        "Docs\n\nA class definition is executed once.\n\nThe following code:\n\n"
        "   class Foo(object):\n       pass\n\n"
        "is equivalent to the statement above.\n\n"
        ">>> d = {'one': 1}\n>>> list(d)\n['one']\n\n"
        'raise_stmt ::= "raise" [expression ["from" expression]]\n\n'
        "http://www.apache.org/licenses/LICENSE-2.0\n\n"
        "total = f(a)[0] + g(b)\n\n"
        ">>> a == b == c\n    True\n"
    )
    citable = [sentence for sentence, flag in _citable(text) if flag]
    assert citable == ["A class definition is executed once.", "is equivalent to the statement above."]


@pytest.mark.parametrize(
    "text",
    [
        # Clauses of a licence indented under a lead-in stay answers.
        "Terms\n\nEach of You must do as follows:\n\n    (a) give any other recipients a copy of this License; and\n",
        # Prose that names code, numbers and amounts is prose.
        'Notes\n\nThe clause "except*" handles an ExceptionGroup of 3 errors, costing HK$3 billion in 2024-25.\n',
        # Chinese has no spaces between words, and ASCII brackets inside it are not code.
        "筆記\n\n香港科技園公司(HKSTP)於2001年5月7日成立，支援超過一千間公司。\n",
        "筆記\n\n市民可瀏覽www.gov.hk/renew了解詳情及網上續期。\n",
        # Inline Markdown code names things in a sentence; a table's cells are words; links inside sentences count.
        "Notes\n\nRun `make test` before `git push`, and set `max_tokens` in `hkai.toml`.\n",
        "Notes\n\n| Service | Fee |\n|---|---|\n| Licence renewal | HK$300 |\n",
        "Notes\n\nApply online at www.gov.hk/apply.\n",
        # Notices indented under a lead-in, and quoted e-mail.
        "Notes\n\nOpening hours:\n\n    Mon - Fri: 10am - 6pm, Sat 10am - 1pm\n",
        "Notes\n\nFor enquiries, please contact:\n\n    Ms Chan - 2345 6789 / chan@hkai.org.hk\n",
        "Notes\n\n>>> On Monday, John Chan wrote:\n>>> The budget meeting is moved to Thursday at 3pm.\n",
    ],
)
def test_prose_under_a_lead_in_or_naming_code_stays_citable(text: str):
    last, citable = _citable(text)[-1]
    assert citable, last


def test_a_line_holding_only_a_quote_or_list_marker_is_skipped_not_a_crash():
    text = "Mail\n\n> The meeting is at 3pm.\n>\n> Please confirm the room.\n\n-\n"
    assert [sentence for sentence, _ in _citable(text)] == ["The meeting is at 3pm.", "Please confirm the room."]


@pytest.mark.parametrize("quote", [">>> ", "> > ", ">> "])
def test_quoted_e_mail_keeps_its_text_without_the_quote_marks(quote: str):
    text = f"Notes\n\n{quote}On Monday, John Chan wrote:\n{quote}The budget meeting is moved to Thursday at 3pm.\n"
    assert _citable(text)[-1] == ("The budget meeting is moved to Thursday at 3pm.", True)


def test_a_numbered_heading_ending_in_a_colon_heads_its_clause_which_stays_an_answer():
    clause = "Subject to sections 3(a), 4(b) and 5(c), You may copy the Work."
    text = f"Licence\n\nTerms apply to all users here.\n\n1. Redistribution:\n\n   {clause}\n"
    document = parse_document("t", text, "t.txt")
    assert [s.title for s in document.sections] == ["Introduction", "Redistribution"]
    assert _citable(text)[-1] == (clause, True)


@pytest.mark.parametrize("indent", ["\t", " " * 8])
def test_code_indented_by_a_tab_is_code_as_when_indented_by_spaces(indent: str):
    lead_in = "    The simple form is equivalent to:"
    text = f"Title\n\nIntro text is written here.\n\n{lead_in}\n\n{indent}class Foo(object): pass\n"
    assert _citable(text)[-1] == ("class Foo(object): pass", False)
