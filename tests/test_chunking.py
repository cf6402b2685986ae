"""Sentences and chunks: boundaries that survive tricky punctuation, offsets that slice exactly."""

from __future__ import annotations

import itertools
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
