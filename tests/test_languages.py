"""Which vector space a question goes to, and how CJK text becomes BM25 tokens: real indexes, real models."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from hkai_qa.building import build_index
from hkai_qa.embedding import Embedder
from hkai_qa.index import load_index
from hkai_qa.languages import (
    CJK,
    ENGLISH,
    MULTILINGUAL,
    SPACES,
    fold_width,
    mostly_other_script,
    needs_multilingual,
)
from hkai_qa.lexical import lexical_tokens
from hkai_qa.multilingual_embedding import MultilingualEmbedder
from hkai_qa.retrieval import Retriever

MODEL = "all-MiniLM-L6-v2"
HKSTP = "The Hong Kong Science and Technology Parks Corporation (HKSTP) was formed on 7 May 2001."


@pytest.mark.parametrize(
    "text",
    [
        "When was HKSTP formed?",
        "Where is the café near Cyberport?",
        "Which AI firms work in Đà Nẵng and São Paulo?",
        "Größe, naïve, Ærøskøbing, Łódź, ǅ",  # Latin-1, Extended-A and Extended-B letters
        "2001",
        "HK$3.5 million, 7 May 2001 (Cap. 565) -- 100% !?",
        "",
        "   \n\t",
        "？",  # full-width punctuation is not a letter
        "。！？「」、，：；",
        "１２３",  # full-width digits are not letters either
        "When was Hong Kongʼs Science Park established?",  # U+02BC, a modifier letter used as an apostrophe
        "What is the ﬁrst AI supercomputing centre?",  # the ligature ﬁ is f and i
        "ＡＩ ｉｎ Ｈｏｎｇ Ｋｏｎｇ",  # full-width Latin letters, as a Chinese input method types them
        "What is μ-law?",  # one Greek letter in English: it went to the multilingual model, which answered it
        "How do I fix my phone battery (α)?",
        "Who won the 2018 World Cup in Moscow (Москва)?",
    ],
)
def test_latin_script_digits_and_punctuation_stay_english(text: str) -> None:
    assert needs_multilingual(text) is False


@pytest.mark.parametrize(
    "text",
    [
        "香港科學園幾時成立？",  # Traditional Chinese
        "香港科技园于2001年成立。",  # Simplified Chinese
        "數碼港喺邊度？",  # written Cantonese
        "𨋢",  # a Cantonese character from a supplementary plane (U+282E2), alone
        "搭𨋢上去",
        "ASTRI 係幾時成立？",  # mostly Latin, one Chinese phrase is enough
        "What does 應科院 do?",
        "ひらがな",  # Japanese hiragana
        "カタカナ",  # Japanese katakana
        "香港の人工知能",  # kanji and kana
        "한국어 질문입니다",  # Korean hangul
        "Что такое HKSTP?",  # mostly Cyrillic: not Latin script either
        "Ποιος ίδρυσε το ASTRI;",  # mostly Greek
    ],
)
def test_a_letter_outside_the_latin_script_needs_the_multilingual_space(text: str) -> None:
    assert needs_multilingual(text) is True


def test_space_names() -> None:
    assert (ENGLISH, MULTILINGUAL) == SPACES == ("english", "multilingual")


def test_cjk_pattern_covers_han_extensions_kana_and_hangul() -> None:
    for char in "香港科学園𨋢ひカ한㐀豈":
        assert CJK.fullmatch(char), f"{char!r} (U+{ord(char):04X}) should be CJK"
    for char in "a1é？。 ":
        assert not CJK.fullmatch(char), f"{char!r} should not be CJK"


# --- lexical tokens of CJK text ---


def test_a_cjk_run_becomes_overlapping_character_pairs() -> None:
    assert lexical_tokens("智慧燈柱") == ["智慧", "慧燈", "燈柱"]


def test_a_one_character_run_is_one_token() -> None:
    assert lexical_tokens("港") == ["港"]
    assert lexical_tokens("ASTRI 係 AI") == ["astri", "係", "ai"]
    assert lexical_tokens("𨋢") == ["𨋢"]  # a supplementary-plane character stays whole


def test_both_canonical_forms_of_accented_text_give_the_same_tokens():
    # "crêpe" typed on a Mac, or taken from many PDFs, is "e" + U+0302: the same word to a reader.
    composed = "Élan Robotique makes pâtisserie and crêpes in Zürich"
    decomposed = unicodedata.normalize("NFD", composed)
    assert decomposed != composed
    assert lexical_tokens(decomposed) == lexical_tokens(composed)


def test_supplementary_plane_characters_pair_like_any_other() -> None:
    assert lexical_tokens("搭𨋢上") == ["搭𨋢", "𨋢上"]


def test_mixed_text_keeps_english_identifiers_and_pairs_the_chinese() -> None:
    tokens = lexical_tokens("ASTRI係幾時成立？")
    assert tokens == ["astri", "係幾", "幾時", "時成", "成立"]
    assert lexical_tokens("ASTRI 係幾時成立？") == tokens  # a space between makes no difference
    funding = lexical_tokens("實驗室獲得HK$3資助")
    assert "hk$3" in funding and {"hk", "3"} <= set(funding)
    assert {"實驗", "驗室", "室獲", "獲得", "資助"} <= set(funding)
    assert not any(CJK.search(t) and not (1 <= len(t) <= 2) for t in funding)


def test_full_width_punctuation_splits_runs_and_is_dropped() -> None:
    assert lexical_tokens("香港，科學園。") == ["香港", "科學", "學園"]
    assert lexical_tokens("？！「」") == []


def test_traditional_characters_are_kept_as_written() -> None:
    traditional = lexical_tokens("應科院研究園區")
    assert traditional == ["應科", "科院", "院研", "研究", "究園", "園區"]
    simplified = lexical_tokens("应科院研究园区")
    assert simplified == ["应科", "科院", "院研", "研究", "究园", "园区"]
    assert set(traditional) != set(simplified)


def test_kana_and_hangul_runs_pair_too() -> None:
    assert lexical_tokens("ひらがな") == ["ひら", "らが", "がな"]
    assert lexical_tokens("한국어") == ["한국", "국어"]


def test_english_tokens_are_unchanged_by_the_cjk_path() -> None:
    assert lexical_tokens("The lab received HK$3.5 million") == ["lab", "receiv", "hk$3.5", "hk", "3", "5", "million"]


# --- routing on real indexes ---


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("languages-corpus")
    (folder / "hkstp.txt").write_text(f"{HKSTP}\n", encoding="utf-8")
    (folder / "tea.txt").write_text("Oolong brews best with water at 90 degrees Celsius.\n", encoding="utf-8")
    (folder / "drones.txt").write_text(
        "The lab builds underwater drones that inspect the piers of Victoria Harbour.\n", encoding="utf-8"
    )
    return folder


@pytest.fixture(scope="module")
def with_multilingual(
    corpus: Path, tmp_path_factory: pytest.TempPathFactory, embedder: Embedder, multilingual: MultilingualEmbedder
) -> Retriever:
    folder = tmp_path_factory.mktemp("languages-multilingual")
    build_index(corpus, folder, embedder, multilingual=multilingual)
    index = load_index(folder, MODEL)
    assert index.multilingual is not None
    return Retriever(index)


@pytest.fixture(scope="module")
def english_only(corpus: Path, tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Retriever:
    folder = tmp_path_factory.mktemp("languages-english")
    build_index(corpus, folder, embedder)
    index = load_index(folder, MODEL)
    assert index.multilingual is None
    return Retriever(index)


def test_a_chinese_question_goes_to_the_multilingual_space_when_the_index_has_one(with_multilingual: Retriever) -> None:
    assert with_multilingual.space_for("香港科技園幾時成立？") == MULTILINGUAL
    assert with_multilingual.space_for("ASTRI 係幾時成立？") == MULTILINGUAL
    assert with_multilingual.space_for("香港科技园于哪一年成立？") == MULTILINGUAL


def test_an_english_question_stays_english_even_when_a_multilingual_space_exists(with_multilingual: Retriever) -> None:
    assert with_multilingual.space_for("When was HKSTP formed?") == ENGLISH
    assert with_multilingual.space_for("Is there a café in Đà Nẵng?") == ENGLISH


def test_a_chinese_question_falls_back_to_english_without_a_multilingual_space(english_only: Retriever) -> None:
    assert english_only.space_for("香港科技園幾時成立？") == ENGLISH
    assert english_only.space_for("When was HKSTP formed?") == ENGLISH


def test_vectors_of_each_space(with_multilingual: Retriever, english_only: Retriever) -> None:
    index = with_multilingual.index
    assert index.multilingual is not None
    assert with_multilingual.vectors(MULTILINGUAL) is index.multilingual
    english = with_multilingual.vectors(ENGLISH)
    assert english.chunk_vectors is index.chunk_vectors and english.sentence_vectors is index.sentence_vectors
    with pytest.raises(ValueError, match="not in this index"):  # never the English vectors in its place
        english_only.vectors(MULTILINGUAL)
    with pytest.raises(ValueError, match="not in this index"):
        with_multilingual.vectors("klingon")
    # A Chinese question can be read only where there is a multilingual space; English always.
    assert with_multilingual.can_read("香港科技園幾時成立？") and with_multilingual.can_read("When?")
    assert not english_only.can_read("香港科技園幾時成立？") and english_only.can_read("When?")


def test_a_chinese_question_finds_its_english_answer_in_the_multilingual_space(
    with_multilingual: Retriever, multilingual: MultilingualEmbedder
) -> None:
    question = "香港科技園幾時成立？"
    space = with_multilingual.space_for(question)
    vector = multilingual.encode_questions([question])[0]
    hits = with_multilingual.search(vector, lexical_tokens(question), 3, space=space)
    assert hits, "the multilingual space found nothing"
    index = with_multilingual.index
    assert index.multilingual is not None
    assert index.chunk_text(hits[0].chunk) == HKSTP
    # the similarity reported is the multilingual one: a one-sentence chunk's vector is its sentence's
    expected = float(index.multilingual.sentence_vectors[hits[0].chunk.first_sentence] @ vector)
    assert hits[0].similarity == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize(
    ("text", "other"),
    [
        ("香港科技園公司（HKSTP）於2001年5月7日成立。", True),
        ("政府為InnoHK旗艦項目撥款100億元，InnoHK啟動典禮於2022年5月25日舉行。", True),  # Latin names inside
        ("医院管理局的一个人工智能模型每日处理约2,000张胸部X光片。", True),
        ("Москва — столица России.", True),  # by word for scripts with spaces
        ("Hong Kong (香港) is a city of seven million people.", False),  # a Chinese name inside English
        ("Cyberport 同 Canton Data Exchange、China Unicom Global 簽咗 MoU", False),  # mostly English words
        ("The Hong Kong Science and Technology Parks Corporation was formed on 7 May 2001.", False),
        ("2001 -- 100% !?", False),
        ("", False),
    ],
)
def test_a_passage_is_in_another_script_when_most_of_its_words_are(text: str, other: bool) -> None:
    """Which chunks the English model cannot read: Chinese characters count at 1.5 to a word."""
    assert mostly_other_script(text) is other


def test_full_width_ascii_folds_and_nothing_else_does() -> None:
    """What a Chinese input method types for Latin text becomes ASCII; other compatibility forms stay as written
    (NFKC would make the name "D²4H" into "D24H", which no document says)."""
    assert fold_width("Ｗｈｅｎ ｗａｓ ＡＳＴＲＩ ｆｏｕｎｄｅｄ？") == "When was ASTRI founded?"
    assert fold_width("２００１年，（ＨＫ＄３）\u3000！") == "2001年,(HK$3) !"
    for kept in ("D²4H", "ﬁrst", "½", "①", "香港。「」、", "café"):
        assert fold_width(kept) == kept
    assert lexical_tokens("ＡＩ ｉｎ ２００１，ＨＫ＄３") == lexical_tokens("AI in 2001, HK$3")
