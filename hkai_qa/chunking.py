"""Sections -> sentences -> sentence-aligned chunks, every one with offsets into its document's text."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence

import blingfire

from hkai_qa.code_blocks import LINK, code_paragraphs, markdown_code
from hkai_qa.languages import CHARACTERS_PER_WORD
from hkai_qa.types import Chunk, Document, Sentence

# A line that starts one of these begins a new block even without a blank line before it.
_BLOCK_START = re.compile(r"^[ \t]*(?:[-*+][ \t]+|\d{1,3}[.)][ \t]+|>[ \t]*|sources?:)", re.I)
_LIST_MARKER = re.compile(r"^[ \t]*(?:[-*+]|\d{1,3}[.)]|(?:>[ \t]*)+)[ \t]*")  # "> > quoted twice" too
_NOT_AN_ANSWER = re.compile(
    r"^\W*(?:sources?|references?|see also|資料來源|资料来源|來源|来源|參考資料|参考资料|另見|另见)\s*[:：]", re.I
)
_MIN_WORDS = 4
# blingfire sometimes ends a sentence after a title ("... banks. Dr." | "Chan agreed.") or a reference
# abbreviation ("see Cap." | "486 of the laws"). Titles always precede a name; references precede a number.
_TITLE_END = re.compile(r"(?<![^\W_])(?:Dr|Mr|Mrs|Ms|Prof|St|Sr|Jr|Mt|Rev|Hon|Gov|Sen|Rep)\.$")
_REFERENCE_END = re.compile(r"(?:^|\s|\()(?:No|Nos|Cap|Fig|Art|Sec|Vol|Ord|pp?)\.$")
_REFERENCE_NEXT = re.compile(r"\s*[\d(]")
# Han ideographs, including the supplementary planes where Cantonese characters such as 𨋢 live.
_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_CJK = f"{_HAN}\u3000-\u303f\uff01-\uff60"  # with CJK and full-width punctuation
_CJK_TEXT = re.compile(f"[{_CJK}]")
# A Chinese sentence ends at 。！？ and keeps any run of them ("？！") and the closing quotes or brackets after them.
_CJK_END = re.compile(r"(?:[。！？][」』”’）〕】》〉)]*)+")
_OPENING_QUOTE = {"」": "「", "』": "『", "”": "“", "’": "‘"}
# A quotation within one line: the sentence ends inside it ("「你好嗎？我很好。」") are not the sentence's.
_QUOTATION = re.compile(r"「[^「」\n]{1,200}」|『[^『』\n]{1,200}』|“[^“”\n]{1,200}”")
# blingfire reads a line break as a space, but Chinese text is not wrapped, so a break between Chinese text ends a
# sentence; with English on either side it may be a wrapped English sentence that names something in Chinese.
# An English sentence's end with Chinese text right after it ("... in Pok Fu Lam. 研究所專注於…"), which blingfire
# does not cut.
_LATIN_END_BEFORE_CJK = re.compile(f"(?<=[^\\W_][.!?])[ \t\u3000]+(?=[{_CJK}])")
_CJK_LINE_BREAK = re.compile(f"(?<=[{_CJK}])[ \t]*\n(?=[ \t]*[{_CJK}])")
_HAN_CHARACTER = re.compile(f"[{_HAN}]")
_WORD = re.compile(f"[^\\W{_HAN}]+")  # \w+ without Han, which has no spaces and is counted by character

TokenCounter = Callable[[Sequence[str]], list[int]]


def split_sentences(document: Document) -> list[Sentence]:
    """Split every section into sentences; offsets survive abbreviations, decimals and quotes."""
    sentences: list[Sentence] = []
    fenced = markdown_code(document.text, document.source)
    for index, section in enumerate(document.sections):
        blocks = _blocks(document.text, section.start, section.end)
        for (start, end), code in zip(blocks, code_paragraphs(document.text, blocks, fenced), strict=True):
            block = document.text[start:end]
            # A source line is never an answer, nor is any sentence after its first full stop.
            source = _NOT_AN_ANSWER.match(block) is not None
            for a, b in _sentence_spans(block):
                text = block[a:b]
                lead = len(text) - len(text.lstrip())
                a, text = a + lead, text.strip()
                if not text:
                    continue
                sentences.append(
                    Sentence(
                        document_id=document.id,
                        section=index,
                        start=start + a,
                        end=start + a + len(text),
                        citable=not source and not code and _is_citable(text),
                    )
                )
    return sentences


def chunk_sentences(
    sentences: Sequence[Sentence],
    document: Document,
    count_tokens: TokenCounter,
    max_tokens: int,
    first_id: int = 0,
    first_sentence: int = 0,
) -> list[Chunk]:
    """Group consecutive sentences of one section into windows of at most `max_tokens` word pieces.

    Windows never cross sections; neighbouring windows share one sentence so that an answer
    spanning a boundary still sits whole in some chunk. Ids count from `first_id` and sentence numbers
    from `first_sentence`, so the chunks of many documents share one numbering.
    """
    text = document.text
    sizes = count_tokens([text[s.start : s.end] for s in sentences])
    chunks: list[Chunk] = []
    i = 0
    while i < len(sentences):
        j, used = i, sizes[i]
        while (
            j + 1 < len(sentences)
            and sentences[j + 1].section == sentences[i].section
            and used + sizes[j + 1] <= max_tokens
        ):
            j += 1
            used += sizes[j]
        chunks.append(
            Chunk(
                id=first_id + len(chunks),
                document_id=document.id,
                section=sentences[i].section,
                start=sentences[i].start,
                end=sentences[j].end,
                first_sentence=first_sentence + i,
                last_sentence=first_sentence + j,
            )
        )
        at_section_end = j + 1 >= len(sentences) or sentences[j + 1].section != sentences[i].section
        i = j + 1 if at_section_end or j == i else j
    return chunks


# Line and page breaks other than "\n" (vertical tab, form feed, the file/group/record separators, NEL, U+2028,
# U+2029) are breaks inside a paragraph, as "\n" is, but blingfire ends a sentence at them: "... delivery
# drones<U+2028>over the harbour." came out as two sentences, the first a confident answer. Sentences are found
# in a copy with them as "\n" (one character for one, so every offset holds).
_OTHER_LINE_BREAKS = dict.fromkeys((0x0B, 0x0C, 0x1C, 0x1D, 0x1E, 0x85, 0x2028, 0x2029), "\n")


def _sentence_spans(block: str) -> list[tuple[int, int]]:
    """blingfire's sentence offsets, with pieces that end in a title abbreviation joined to the next."""
    block = block.translate(_OTHER_LINE_BREAKS)
    spans: list[tuple[int, int]] = []
    for a, b in blingfire.text_to_sentences_and_offsets(block)[1]:
        previous = block[spans[-1][0] : spans[-1][1]] if spans else ""
        if spans and (
            _TITLE_END.search(previous) or (_REFERENCE_END.search(previous) and _REFERENCE_NEXT.match(block[a:b]))
        ):
            spans[-1] = (spans[-1][0], b)
        else:
            spans.append((a, b))
    return _split_chinese(block, spans) if _CJK_TEXT.search(block) else spans


def _split_chinese(block: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Cut again at Chinese sentence ends and line breaks; blingfire cuts "「好！」" before its closing quote.

    Sentence ends inside a quotation are the quotation's, and a quotation that opens a sentence and runs
    straight on into it is that sentence's subject, not a sentence: "「你好嗎？」是它最常聽到的一句話。" is one
    sentence; "他問：「你好嗎？我很好。」" then "她笑了。" are two."""
    ends = list(_CJK_END.finditer(block))
    inside = {i for end in ends for i in range(end.start() + 1, end.end())}
    inside |= {i for quote in _QUOTATION.finditer(block) for i in range(quote.start() + 1, quote.end())}
    runs_on = {end.end() for end in ends if _opens_and_runs_on(block, end)}
    english_ends = {
        end.start() for end in _LATIN_END_BEFORE_CJK.finditer(block) if not _TITLE_END.search(block[: end.start()])
    }
    cuts = ({b for _, b in spans} | {end.end() for end in ends} | english_ends) - inside - runs_on
    cuts |= {brk.start() for brk in _CJK_LINE_BREAK.finditer(block)}
    # Consecutive cuts cover the whole block, so only whitespace (stripped by the caller) falls between sentences.
    bounds = [0, *sorted(cut for cut in cuts if 0 < cut < len(block)), len(block)]
    return [(a, b) for a, b in itertools.pairwise(bounds) if block[a:b].strip()]


def _opens_and_runs_on(block: str, end: re.Match[str]) -> bool:
    """Whether a sentence end that closes a quotation ("？」") closes one that opened its sentence, with text
    following at once: then the quotation is a part of the sentence."""
    opening = _OPENING_QUOTE.get(end.group()[-1])
    if opening is None or end.end() >= len(block) or block[end.end()].isspace():
        return False
    start = block.rfind(opening, 0, end.start())
    before = block[:start].rstrip(" \t\u3000")
    return start >= 0 and (not before or before[-1] in "。！？」』”’\n")


def _blocks(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Paragraphs of a section, with list items and "Source:" lines as blocks of their own."""
    blocks: list[tuple[int, int]] = []
    block_start = last_end = -1
    position = start
    for line in text[start:end].splitlines(keepends=True):
        line_start, line_end = position, position + len(line.rstrip())
        position += len(line)
        if not line.strip():
            if block_start >= 0:
                blocks.append((block_start, last_end))
                block_start = -1
            continue
        if block_start >= 0 and _BLOCK_START.match(line):
            blocks.append((block_start, last_end))
            block_start = -1
        if block_start < 0:
            marker = _LIST_MARKER.match(line) if not _NOT_AN_ANSWER.match(line) else None
            block_start = line_start + (marker.end() if marker else 0)
        last_end = line_end
    if block_start >= 0:
        blocks.append((block_start, last_end))
    # A line that is only a marker (">" between quoted paragraphs, a lone "-") holds no text.
    return [(a, b) for a, b in blocks if text[a:b].strip()]


def only_source_lines(document: Document) -> bool:
    """Whether every paragraph of the document is a source line ("Source: ...", "資料來源：..."), so none can answer.

    Judged by paragraph (each source line is one), not by sentence: "Source: HK Government. Press release."
    is one source line whatever its full stops."""
    blocks = [block for section in document.sections for block in _blocks(document.text, section.start, section.end)]
    return bool(blocks) and all(_NOT_AN_ANSWER.match(document.text[start:end]) for start, end in blocks)


def _is_citable(sentence: str) -> bool:
    """Source lines, links alone and fragments (such as a text cut off mid-sentence) are never answers."""
    if _NOT_AN_ANSWER.match(sentence) or not re.search(r"[^\W_]", LINK.sub(" ", sentence)):
        return False
    words = len(_WORD.findall(sentence)) + len(_HAN_CHARACTER.findall(sentence)) / CHARACTERS_PER_WORD
    return words >= _MIN_WORDS
