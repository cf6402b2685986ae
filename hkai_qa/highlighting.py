"""Answer -> the tightest phrase that answers the question, as offsets inside the answer.

No tagger: dates and amounts for "when" and "how many" questions; otherwise the phrase that follows
the question's own words in the answer ("... equipped with [AI-powered sensors] demonstrate ...").
"""

from __future__ import annotations

import re
from typing import Literal

from hkai_qa.languages import WORD_CHARACTER
from hkai_qa.lexical import STOPWORDS, question_tokens, word_tokens

# A year in Chinese text, where no word boundary sets it off: "於2001年" is a date, "撥款2000萬元" is not.
CHINESE_YEAR = r"(?<!\d)(?:1[89]|20)\d\d年"
_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\.?"
_DATE = re.compile(
    rf"\b(?:\d{{1,2}}\s+{_MONTH}\s+(?:19|20)\d\d|{_MONTH}\s+\d{{1,2}},?\s+(?:19|20)\d\d|{_MONTH}\s+(?:19|20)\d\d"
    rf"|(?:early|mid|late)-?\s?(?:19|20)\d\d|(?:19|20)\d\d(?:/\d\d|-\d\d)?)\b"
    # Chinese dates run into the characters around them: "於2001年5月7日成立", "2023年年中".
    rf"|{CHINESE_YEAR}(?:\d{{1,2}}月(?:\d{{1,2}}日)?|年[初中底])?"
)
_AMOUNT = re.compile(
    r"(?<![\w.$-])(?:HK\$|US\$|RMB\s?|\$)?\d[\d,]*(?:\.\d+)?(?:-\d+)?\+?(?:-[a-z]+)?"
    r"(?:\s?(?:%|per\s?cent))?(?:\s(?:billion|million|thousand|hundred))?(?:\s(?!of\b|in\b|to\b|for\b)[a-z][a-z-]+)?"
)
# Chinese and Cantonese ask the same ("幾時", "哪一年"; "多少", "幾多") anywhere in the question.
_WHEN = re.compile(
    r"^\W*(when|what (year|date|month|day))\b|\b(since|until) when\b"
    r"|幾時|几时|何時|何时|[哪邊边]一?年|[什甚]麼時候|什么时候|[哪邊边]一?[天日]|幾月|几月",
    re.I,
)
_HOW_MUCH = re.compile(
    r"\bhow (many|much|large|big|long|old|fast|far)\b|\bwhat (percentage|share|proportion|amount)\b"
    r"|多少|[幾几]多|[幾几][個个位間间家所項项]|多[大長长久]|[幾几]耐|[幾几]成|百分之[幾几]",
    re.I,
)
_MONEY_WORDS = re.compile(
    r"\b(?:fund\w*|cost\w*|fees?|price\w*|budget\w*|money|spen[dt]\w*|invest\w*|donat\w*|subsid\w*|grants?|paid|pay\w*)\b",
    re.I,
)
_CURRENCY = re.compile(r"(?:HK\$|US\$|RMB|\$)")
_WORD = re.compile(f"{WORD_CHARACTER}+(?:[’'.$&/-]{WORD_CHARACTER}+)*")
_DETERMINERS = frozenset({"the", "a", "an", "its", "their", "his", "her", "this", "these", "those"})
_CONNECTORS = frozenset({"and", "of", "for", "&", "de"})
_MAX_WORDS = 10


def find_highlight(question: str, answer: str) -> tuple[int, int] | None:
    """(start, end) inside `answer` of the phrase that answers, or None when no phrase stands out."""
    typed = _typed_match(question, answer)
    if typed is not None:
        return typed
    asked = question_tokens(question)
    words = list(_WORD.finditer(answer))
    in_question = [not word_tokens(w.group()).isdisjoint(asked) for w in words]
    best: tuple[int, int] | None = None
    best_length = 0
    for i in range(len(words)):
        # A phrase can start right after each run of the question's own words (and stopwords).
        if not in_question[i] or (i + 1 < len(words) and in_question[i + 1]):
            continue
        run = _phrase_after(answer, words, in_question, i + 1)
        if len(run) > best_length:
            best, best_length = (run[0].start(), run[-1].end()), len(run)
    if best is None:
        return None
    start, end = best
    if answer[start:end].count("(") > answer[start:end].count(")") and ")" in answer[end : end + 30]:
        end = answer.index(")", end) + 1
    return start, end


def _phrase_after(answer: str, words: list[re.Match[str]], in_question: list[bool], i: int) -> list[re.Match[str]]:
    while i < len(words) and words[i].group().lower() in STOPWORDS:
        i += 1
    run: list[re.Match[str]] = []
    for j in range(i, min(i + _MAX_WORDS, len(words))):
        word = words[j]
        lower = word.group().lower()
        following = words[j + 1] if j + 1 < len(words) else None
        proper_name_goes_on = (
            lower in _CONNECTORS
            and bool(run)
            and run[-1].group()[0].isupper()
            and following is not None
            and following.group()[0].isupper()
        )
        if (lower in STOPWORDS and not proper_name_goes_on) or (in_question[j] and not run):
            break
        if following is not None and following.group().lower() in _DETERMINERS:
            break  # a word followed by "the" is mostly a verb: the phrase ends before it
        run.append(word)
        if following is None or _breaks(answer, word, following):
            break
    return run


def expected_answer(question: str) -> Literal["date", "amount"] | None:
    """ "date" for "when ...?", "amount" for "how many / how much ...?", else None."""
    return "date" if _WHEN.search(question) else "amount" if _HOW_MUCH.search(question) else None


def _typed_match(question: str, answer: str) -> tuple[int, int] | None:
    """The date or amount that answers: the first one, unless a later one names what was asked for
    ("12 unicorns" for "How many unicorns ...?") or is money when the question asks about money."""
    kind = expected_answer(question)
    if kind is None:
        return None
    pattern = _DATE if kind == "date" else _AMOUNT
    asked = question.lower()
    asked_tokens = question_tokens(question)
    wants_money = kind == "amount" and _MONEY_WORDS.search(question) is not None
    best: tuple[int, int] | None = None
    best_score = -1
    for match in pattern.finditer(answer):
        start, end = match.span()
        last = answer[start:end].rsplit(" ", 1)
        if len(last) == 2 and last[1].lower() in STOPWORDS:
            end -= len(last[1]) + 1
        text = answer[start:end]
        if text.lower() in asked or (pattern is _AMOUNT and re.fullmatch(r"(19|20)\d\d(-\d\d)?", text)):
            continue  # words of the question, or a bare year, are not the amount asked for
        score = int(not word_tokens(text).isdisjoint(asked_tokens)) + int(
            wants_money and _CURRENCY.match(text) is not None
        )
        if score > best_score:
            best, best_score = (start, end), score
    return best


def _breaks(text: str, left: re.Match[str], right: re.Match[str]) -> bool:
    """Whether punctuation between two words ends a clause (brackets and quotes do not)."""
    between = text[left.end() : right.start()]
    return bool(re.search(r"[,;:.!?—–]|\s-\s", between))
