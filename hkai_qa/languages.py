"""Which embedding space a question goes to: English (and other Latin-script) text keeps the fast
all-MiniLM-L6-v2 path; text with letters of another script (Chinese, Japanese, Korean, ...) goes to the
multilingual model, which all-MiniLM-L6-v2 cannot read."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

ENGLISH = "english"
MULTILINGUAL = "multilingual"
SPACES = (ENGLISH, MULTILINGUAL)

# A letter outside the Latin script (ASCII, Latin-1, Latin Extended-A/B, IPA, Additional: "café", "Đà Nẵng",
# "ə"), and outside the spacing modifier letters ("Kongʼs" with U+02BC is English).
_NOT_LATIN = re.compile(r"[^\W\d_\u0000-\u02ff\u1e00-\u1eff]")
# Han (with its extensions and compatibility block), kana (also half-width), bopomofo and hangul: the scripts
# written without spaces between words, which BM25 reads as character pairs.
CJK = re.compile(
    r"[\u3040-\u30ff\u3100-\u312f\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f"
    r"\U00020000-\U0003134f]"
)


# Combining marks (accents written as a second code point, as in a decomposed "Zu\u0308rich"): inside a word, not
# between words, which `\w` alone would make them. NFC composes most, not all ("q\u0303" has no composed form).
COMBINING_MARKS = "\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"
# A letter or digit of a word, with any combining marks after it.
WORD_CHARACTER = f"(?:[^\\W_][{COMBINING_MARKS}]*)"

# Chinese words average about one and a half characters, so six characters weigh as much as four English words.
CHARACTERS_PER_WORD = 1.5
_LETTERS = re.compile(r"[^\W\d_]+")


def mostly_other_script(text: str) -> bool:
    """Whether most of a passage's words are outside the Latin script, so the English model cannot read it:
    a Chinese paragraph that names "InnoHK" is; an English one that names 香港 is not. Han and kana count by
    character (CHARACTERS_PER_WORD to a word), other scripts by word."""
    text = unicodedata.normalize("NFKC", text)
    words = _LETTERS.findall(CJK.sub(" ", text))
    other = sum(_NOT_LATIN.search(word) is not None for word in words)
    return len(CJK.findall(text)) / CHARACTERS_PER_WORD + other > len(words) - other


# Full-width ASCII (U+FF01-U+FF5E) and the ideographic space, as Chinese input methods type them: "ＡＳＴＲＩ".
_HALF_WIDTH = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}


def fold_width(text: str) -> str:
    """Full-width letters, digits and punctuation as their ASCII forms ("ＡＳＴＲＩ" -> "ASTRI"), nothing else
    (NFKC would also turn "D²4H" into "D24H")."""
    return text.translate(_HALF_WIDTH)


@lru_cache(maxsize=4096)
def needs_multilingual(text: str) -> bool:
    """Whether `text` needs the multilingual model: any Chinese, Japanese or Korean character ("ASTRI 係幾時成立？"
    is mostly Latin letters yet only readable as Chinese), or mostly words in another script ("Что такое HKSTP?").
    A Greek or Cyrillic letter in English ("What is μ-law?", "Moscow (Москва)") stays English, and
    compatibility forms count as what they stand for: full-width "ＡＩ" and the ligature "ﬁ" are Latin."""
    normalised = unicodedata.normalize("NFKC", text)
    return CJK.search(normalised) is not None or (
        _NOT_LATIN.search(normalised) is not None and mostly_other_script(normalised)
    )


# Refused in questions and queries: C0 and C1 control characters other than tab, line feed and carriage
# return, and the bidirectional embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069), which
# can make text display differently from what it says. The marks U+200E, U+200F and U+061C stay allowed:
# they are ordinary in copied Arabic and Hebrew text and only set the direction of their own place.
REFUSED_CHARACTERS = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"
_REFUSED = re.compile(f"[{REFUSED_CHARACTERS}]")


def refused_character(text: str) -> tuple[str, str] | None:
    """The kind and the message for the first character a question may not hold, or None: the one rule for
    HTTP (422) and the command line."""
    found = _REFUSED.search(text)
    if found is None:
        return None
    code = f"U+{ord(found.group()):04X}"
    if ord(found.group()) >= 0x202A:  # the refused characters from there on are all bidirectional controls
        return (
            "bidi_control",
            f"bidirectional control {code} is not allowed (it can make text display differently from what it says)",
        )
    return "control_character", f"control character {code} is not allowed (tabs and line breaks are)"
