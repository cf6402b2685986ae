"""Question files -> Questions: the JSON-lines eval records, each checked, with file and line named when one
is not a question."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hkai_qa.errors import InvalidRequest


@dataclass(frozen=True, slots=True)
class Question:
    """One eval question; unanswerable ones have no document, section or gold phrase."""

    id: str
    question: str
    answerable: bool
    document_id: str | None
    section: str | None
    gold: str | None
    kind: str
    split: str
    language: str = "en"  # "zh" for the Chinese questions, reported apart


def load_questions(path: Path) -> list[Question]:
    """Read a JSON-lines question file, one record a line; InvalidRequest names the file and line of the
    first record that is not a question, and a file that cannot be read or holds none."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InvalidRequest(f"{path}: cannot be read ({exc.strerror or exc.__class__.__name__})") from None
    questions = []
    # Lines split on \n only: U+2028 and its kind may stand inside a JSON string.
    for number, line in enumerate(raw.removeprefix(b"\xef\xbb\xbf").split(b"\n"), 1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRequest(f"{path}:{number}: not UTF-8 text") from None
        if not text.strip():
            continue
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            # A syntax error, nesting too deep, or a number too long to read (a ValueError of its own).
            if isinstance(exc, json.JSONDecodeError):
                reason = exc.msg
            else:
                reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            raise InvalidRequest(f"{path}:{number}: not valid JSON ({reason})") from None
        try:
            questions.append(_question(data))
        except ValueError as exc:
            raise InvalidRequest(f"{path}:{number}: {exc}") from None
    if not questions:
        raise InvalidRequest(f"no questions in {path}")
    return questions


_GOLD_FIELDS = ("document_id", "section", "gold")  # needed when answerable, null or absent otherwise
_LANGUAGES = ("en", "zh")


def _question(data: object) -> Question:
    """One record as a Question; ValueError saying what is wrong with it."""
    if not isinstance(data, dict):
        raise ValueError(f"a question must be a JSON object, not {_json_type(data)}")
    for name in ("id", "question"):
        _require_text(data, name)
    if "answerable" not in data:
        raise ValueError("`answerable` is missing: it must be true or false")
    answerable = data["answerable"]
    if not isinstance(answerable, bool):
        raise ValueError(f"`answerable` must be true or false, not {_json_type(answerable)}")
    for name in _GOLD_FIELDS:
        if answerable:
            _require_text(data, name, "for an answerable question")
        elif data.get(name) is not None and not isinstance(data[name], str):
            raise ValueError(f"`{name}` must be a string or null, not {_json_type(data[name])}")
    for name in ("kind", "split"):
        _require_text(data, name)
    language = data.get("language")
    if language is not None and language not in _LANGUAGES:
        shown = repr(language[:40]) if isinstance(language, str) else _json_type(language)
        raise ValueError(f"`language` must be one of {', '.join(map(repr, _LANGUAGES))} or absent, not {shown}")
    return Question(
        id=data["id"],
        question=data["question"],
        answerable=answerable,
        document_id=data.get("document_id"),
        section=data.get("section"),
        gold=data.get("gold"),
        kind=data["kind"],
        split=data["split"],
        language=language or "en",
    )


def _require_text(data: dict[str, Any], name: str, why: str = "") -> None:
    wanted = f"a non-empty string{' ' + why if why else ''}"
    if name not in data:
        raise ValueError(f"`{name}` is missing: it must be {wanted}")
    value = data[name]
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"`{name}` must be {wanted}, not {'blank' if isinstance(value, str) else _json_type(value)}")


def _json_type(value: object) -> str:
    """How JSON names the type of a parsed value (a value is not echoed: it may be long)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"
