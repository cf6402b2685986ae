"""Text -> lexical tokens, the words BM25 and answer extraction match: stemmed English words without stopwords,
identifiers kept whole and in parts, Chinese as character pairs."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import Stemmer
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from hkai_qa.languages import CJK, WORD_CHARACTER, fold_width

# Words that carry meaning in this domain ("first cohort", "six principles", "found") stay searchable.
_KEEP = {
    "first", "second", "third", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "fifteen", "twenty", "forty", "fifty", "sixty", "hundred", "found", "fire", "bill",
    "call", "empty", "fill", "full", "front", "move", "name", "show", "side", "top", "part", "system", "interest",
}  # fmt: skip
STOPWORDS = frozenset(ENGLISH_STOP_WORDS - _KEEP) | {"s", "does", "did", "tell"}
# Identifiers keep their inner punctuation: "HK$3", "2.0", "AI-powered", "R&D"; parts are indexed too.
_TOKEN = re.compile(f"{WORD_CHARACTER}+(?:[.$&/+-]{WORD_CHARACTER}+)*")
_PARTS = re.compile(r"[.$&/+-]")
_stemmer = Stemmer.Stemmer("english")


@lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    return str(_stemmer.stemWord(word)) if word.isalpha() else word


_CJK_RUN = re.compile(f"((?:{CJK.pattern})+)")


def lexical_tokens(text: str) -> list[str]:
    """Lower-cased, stemmed content tokens; compound identifiers also yield their parts.

    Chinese (and other CJK) text has no spaces between words: its runs yield overlapping character
    pairs ("智慧燈柱" -> 智慧 慧燈 燈柱), which need no dictionary and keep Traditional characters as written.
    Full-width letters and digits are read as ASCII ("ＡＩ" -> ai, "２００１" -> 2001), and text in either canonical
    form as the same (NFC: "crêpe" typed on a Mac, or in many PDFs, is "e" + U+0302), in questions and texts alike."""
    tokens: list[str] = []
    text = unicodedata.normalize("NFC", fold_width(text))
    for number, piece in enumerate(_CJK_RUN.split(text.lower().replace("’", "'"))):
        if number % 2:  # a CJK run
            tokens.extend([piece] if len(piece) == 1 else [piece[i : i + 2] for i in range(len(piece) - 1)])
            continue
        for match in _TOKEN.finditer(piece):
            word = match.group()
            parts = _PARTS.split(word) if _PARTS.search(word) else []
            for token in (word, *parts):
                if token and token not in STOPWORDS:
                    tokens.append(_stem(token))
    return tokens


@lru_cache(maxsize=4096)
def question_tokens(question: str) -> frozenset[str]:
    """The distinct lexical tokens of a question, cached: every stage of one answer asks for them."""
    return frozenset(lexical_tokens(question))


@lru_cache(maxsize=4096)
def word_tokens(word: str) -> frozenset[str]:
    """The lexical tokens of one word or short phrase, cached for the per-word passes of answering."""
    return frozenset(lexical_tokens(word))
