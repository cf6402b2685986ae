"""Reading the corpus: ids, titles, sections and offsets into the original text."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import threading
from pathlib import Path

import pypdf
import pytest

from hkai_qa.documents import SUFFIXES, decode_document, load_corpus, parse_document, read_document
from hkai_qa.errors import CorpusNotFound, EmptyCorpus, InvalidRequest, UnreadableDocument, UnsupportedFormat
from hkai_qa.types import Corpus

ROOT = Path(__file__).resolve().parent.parent
FORMATS = ROOT / "tests" / "fixtures" / "formats"
ARTICLE_SECTIONS = [
    "Introduction",
    "The Rise of Hong Kong AI",
    "AI in Finance and Business",
    "Smart City Initiatives",
    "Healthcare and Biotechnology",
    "Educational Excellence in AI",
    "Challenges and Opportunities",
    "International Collaboration",
    "Conclusion",
]


@pytest.fixture(scope="module")
def article():
    return read_document(ROOT / "corpus" / "hong-kong-ai-ecosystem.txt", ROOT / "corpus")


SEED_SHA256 = (
    "844daf4236de7d0264b1ecceeb21fef892b473056647076b1a150fe7e7b2c710"  # shared/seeds/000_4ac96cfb31c63835.txt
)


def test_article_is_the_seed_byte_for_byte():
    article = (ROOT / "corpus" / "hong-kong-ai-ecosystem.txt").read_bytes()
    assert hashlib.sha256(article).hexdigest() == SEED_SHA256
    seed = ROOT.parent / "shared" / "seeds" / "000_4ac96cfb31c63835.txt"
    if seed.exists():
        assert article == seed.read_bytes()


def test_article_has_title_intro_seven_sections_and_conclusion(article):
    assert article.id == "hong-kong-ai-ecosystem"
    assert article.title == "Hong Kong’s Thriving AI Ecosystem the Future with Innovation"
    assert [s.title for s in article.sections] == ARTICLE_SECTIONS


def test_article_section_offsets_point_at_their_text(article):
    by_title = {s.title: article.text[s.start : s.end] for s in article.sections}
    assert by_title["Introduction"].startswith("In the bustling metropolis of Hong Kong")
    assert by_title["Smart City Initiatives"].startswith("As Hong Kong evolves into a smart city")
    assert "1. Smart City" not in by_title["Smart City Initiatives"]
    assert by_title["International Collaboration"].endswith("on a broader scale.")
    assert by_title["Conclusion"].startswith("In the heart of Asia")
    assert by_title["Conclusion"].endswith("As the city")
    starts = [s.start for s in article.sections]
    assert starts == sorted(starts)


def test_markdown_headings_give_paths_and_intro():
    text = (
        "Lead text before any heading.\n\n# Title\n\nUnder title.\n\n## Part A\n\nAlpha.\n\n"
        "### Deep\n\nBeta.\n\n## Part B\n\nGamma.\n"
    )
    document = parse_document("notes/x", text, "notes/x.md")
    assert document.title == "Title"
    assert [(s.title, s.path) for s in document.sections] == [
        ("Introduction", ("Introduction",)),
        ("Title", ("Title",)),
        ("Part A", ("Title", "Part A")),
        ("Deep", ("Title", "Part A", "Deep")),
        ("Part B", ("Title", "Part B")),
    ]
    assert [text[s.start : s.end] for s in document.sections] == [
        "Lead text before any heading.",
        "Under title.",
        "Alpha.",
        "Beta.",
        "Gamma.",
    ]


def test_markdown_heading_inside_code_fence_is_not_a_section():
    text = "# Doc\n\n## Real\n\nText.\n\n```\n# not a heading\n```\n"
    assert [s.title for s in parse_document("d", text, "d.md").sections] == ["Real"]


def test_plain_text_headings_with_and_without_numbers():
    text = "Report Title\n\nOpening words here.\n\nBackground:\n\nSome background.\n\nII) Method\n\nWe measured it.\n"
    document = parse_document("r", text, "r.txt")
    assert document.title == "Report Title"
    assert [s.title for s in document.sections] == ["Introduction", "Background", "Method"]


def test_anchors_are_unique_within_a_document():
    text = "# T\n\n## Notes\n\na.\n\n## Notes\n\nb.\n"
    assert [s.anchor for s in parse_document("d", text, "d.md").sections] == ["notes", "notes-2"]


def test_load_corpus_reads_md_markdown_txt_recursively_with_ids(tmp_path: Path):
    (tmp_path / "a.txt").write_text("Alpha text.", encoding="utf-8")
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / "sub" / "b.md").write_text("# B\n\nBeta text.", encoding="utf-8")
    (tmp_path / "sub" / "deeper" / "c.markdown").write_text("# C\n\nGamma.", encoding="utf-8")
    (tmp_path / "ignored.docx").write_bytes(b"PK\x03\x04")
    (tmp_path / ".hidden.md").write_text("# H\n\nhidden", encoding="utf-8")
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "broken.pdf").write_bytes(b"%PDF-1.4 garbage")
    corpus = load_corpus(tmp_path)
    assert isinstance(corpus, Corpus) and corpus.skipped == ()
    assert [d.id for d in corpus.documents] == ["a", "sub/b", "sub/deeper/c"]
    assert [d.title for d in corpus.documents] == ["A", "B", "C"]


def test_suffixes_cover_text_markdown_html_and_pdf():
    assert {".md", ".markdown", ".txt", ".html", ".htm", ".pdf"} <= SUFFIXES


def test_load_corpus_reads_good_files_of_every_format_and_skips_bad_ones_with_reasons(tmp_path: Path):
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "article.html").write_bytes((FORMATS / "article.html").read_bytes())
    (tmp_path / "report.PDF").write_bytes((FORMATS / "report.pdf").read_bytes())
    (tmp_path / "notes.md").write_text("# Notes\n\nGood text.", encoding="utf-8")
    (tmp_path / "scanned.pdf").write_bytes((FORMATS / "scanned.pdf").read_bytes())
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 garbage")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (tmp_path / "empty.md").write_bytes(b"")
    (tmp_path / "headings.md").write_text("# Only\n\n## Headings\n", encoding="utf-8")
    corpus = load_corpus(tmp_path)
    assert [d.id for d in corpus.documents] == ["notes", "report", "web/article"]
    assert [d.source for d in corpus.documents] == ["notes.md", "report.PDF", "web/article.html"]
    assert [s.title for s in corpus.documents[1].sections] == [
        "Page 1 – Overview",
        "Page 2 – History",
        "Page 3 – Outlook",
    ]
    skipped = dict(corpus.skipped)
    assert list(skipped) == ["broken.pdf", "empty.md", "headings.md", "latin1.txt", "scanned.pdf"]
    assert skipped["broken.pdf"].startswith("not a readable PDF (")
    assert skipped["empty.md"] == "empty file"
    assert skipped["headings.md"] == "no text outside headings"
    assert skipped["latin1.txt"] == "not UTF-8 text (byte 3)"
    assert skipped["scanned.pdf"] == "no text layer (a scanned PDF?)"


def test_missing_and_empty_corpus_are_clear_errors(tmp_path: Path):
    with pytest.raises(CorpusNotFound, match="not found"):
        load_corpus(tmp_path / "nope")
    with pytest.raises(EmptyCorpus, match="no documents"):
        load_corpus(tmp_path)


def test_corpus_of_only_unreadable_files_says_how_many_and_why(tmp_path: Path):
    (tmp_path / "big5.txt").write_bytes("香港人工智能".encode("big5"))
    (tmp_path / "zero.md").write_bytes(b"")
    message = r"no readable documents .*: 2 file\(s\) skipped, the first because big5\.txt: not UTF-8 text \(byte 0\)"
    with pytest.raises(EmptyCorpus, match=message):
        load_corpus(tmp_path)


def test_non_utf8_text_is_reported_with_its_byte_offset_not_mangled():
    with pytest.raises(UnreadableDocument, match=r"^notes/cafe\.txt: not UTF-8 text \(byte 3\)$") as error:
        decode_document(b"caf\xe9 au lait", "notes/cafe.txt")
    assert error.value.status == 422 and error.value.type == "unreadable_document"
    # A byte offset, not a character offset: "ı" takes two bytes.
    with pytest.raises(UnreadableDocument, match=r"^m\.md: not UTF-8 text \(byte 6\)$"):
        decode_document("# Tı\n".encode() + b"\xff", "m.md")


SOURCES_ONLY = "only source lines (such as 'Source: ...'), no text to answer from"


@pytest.mark.parametrize(
    ("raw", "relative", "reason"),
    [
        (b"", "empty.txt", "empty file"),
        (b"", "empty.pdf", "empty file"),
        (b" \n\t\n", "blank.md", "no text"),
        (b"# Title\n\n## Part\n", "headings.md", "no text outside headings"),
        (b"---\n\n***\n", "rules.md", "no text"),
        (b"# Links\n\nSource: https://example.org/a\n\nSources: https://example.org/b\n", "links.md", SOURCES_ONLY),
        ("資料來源：https://www.info.gov.hk/\n資料來源：政府新聞公報\n".encode(), "來源.txt", SOURCES_ONLY),
        (b"Source: Hong Kong Government. Press release of 3 May 2024 on the AI fund.\n", "release.txt", SOURCES_ONLY),
    ],
)
def test_empty_and_textless_files_are_unreadable(raw: bytes, relative: str, reason: str):
    with pytest.raises(UnreadableDocument) as error:
        decode_document(raw, relative)
    assert error.value.message == f"{relative}: {reason}"


def test_unsupported_format_lists_the_supported_ones():
    with pytest.raises(UnsupportedFormat) as error:
        decode_document(b"PK\x03\x04", "reports/annual.docx")
    assert error.value.status == 415 and error.value.type == "unsupported_format"
    assert error.value.message == (
        "reports/annual.docx: '.docx' files are not supported (supported: .htm, .html, .markdown, .md, .pdf, .txt)"
    )
    with pytest.raises(UnsupportedFormat, match="files without an extension"):
        decode_document(b"text", "README")


def test_decode_document_matches_read_document(tmp_path: Path):
    (tmp_path / "guides").mkdir()
    path = tmp_path / "guides" / "intro.md"
    path.write_text("# Intro\n\nHello there.", encoding="utf-8")
    assert decode_document(path.read_bytes(), "guides/intro.md") == read_document(path, tmp_path)
    assert read_document(path, tmp_path).id == "guides/intro"


def test_duplicate_ids_are_refused(tmp_path: Path):
    (tmp_path / "x.md").write_text("# X\n\nMarkdown twin.", encoding="utf-8")
    (tmp_path / "x.txt").write_text("Plain twin.", encoding="utf-8")
    with pytest.raises(InvalidRequest, match=r"x\.md and x\.txt would both be document 'x'"):
        load_corpus(tmp_path)
    (tmp_path / "x.txt").unlink()
    (tmp_path / "x.pdf").write_bytes(b"%PDF-1.4 garbage")  # unreadable, yet its name still clashes
    with pytest.raises(InvalidRequest, match=r"x\.md and x\.pdf would both be document 'x'"):
        load_corpus(tmp_path)


def test_byte_order_mark_is_not_part_of_the_text(tmp_path: Path):
    (tmp_path / "bom.md").write_bytes("\ufeff# BOM Title\n\nBody text.".encode())
    (tmp_path / "plain.txt").write_bytes("\ufeffPlain Title\n\nBody text here.".encode())
    documents = {d.id: d for d in load_corpus(tmp_path).documents}
    assert documents["bom"].title == "BOM Title" and [s.title for s in documents["bom"].sections] == ["BOM Title"]
    assert documents["plain"].title == "Plain Title" and not documents["plain"].text.startswith("\ufeff")


def test_double_spaced_text_gets_no_spurious_conclusion():
    text = "Doc Title\n\n\nIntro.\n\n\nBackground\n\n\nPara one.\n\n\nPara two.\n\n\nPara three.\n"
    assert [s.title for s in parse_document("d", text, "d.txt").sections] == ["Introduction", "Background"]


def test_closing_paragraph_only_after_the_last_heading():
    text = "T\n\nIntro.\n\nOne\n\nA.\n\n\nB.\n\nTwo\n\nC.\n\n\nThe end.\n"
    sections = parse_document("d", text, "d.txt").sections
    assert [(s.title, text[s.start : s.end]) for s in sections] == [
        ("Introduction", "Intro."),
        ("One", "A.\n\n\nB."),
        ("Two", "C."),
        ("Conclusion", "The end."),
    ]


MARKDOWN_LF = "Lead text.\n\n# Title\n\nUnder the title,\nover two lines.\n\n## Part\n\nAlpha.\n"
PLAIN_LF = "Report Title\n\nOpening words here.\n\nBackground:\n\nSome background,\nover two lines.\n"


@pytest.mark.parametrize("ending", ["\r\n", "\r"], ids=["crlf", "classic-mac-cr"])
@pytest.mark.parametrize(
    ("name", "lf_text", "bodies"),
    [
        pytest.param(
            "notes.md",
            MARKDOWN_LF,
            [("Introduction", "Lead text."), ("Title", "Under the title,\nover two lines."), ("Part", "Alpha.")],
            id="markdown",
        ),
        pytest.param(
            "report.txt",
            PLAIN_LF,
            [("Introduction", "Opening words here."), ("Background", "Some background,\nover two lines.")],
            id="plain-text",
        ),
    ],
)
def test_crlf_and_cr_line_endings_read_as_lf_with_offsets_into_the_stored_text(
    tmp_path: Path, ending: str, name: str, lf_text: str, bodies: list[tuple[str, str]]
):
    (tmp_path / name).write_bytes(lf_text.replace("\n", ending).encode())
    document = read_document(tmp_path / name, tmp_path)
    assert document.text == lf_text
    assert [(s.title, document.text[s.start : s.end]) for s in document.sections] == bodies
    assert document.sections == parse_document(document.id, lf_text, name).sections


def test_classic_mac_markdown_from_the_review_reads_instead_of_crashing(tmp_path: Path):
    (tmp_path / "mac.md").write_bytes(b"Line one.\rLine two.\r\r# Heading\rBody text here.\n")
    (document,) = load_corpus(tmp_path).documents
    assert document.text == "Line one.\nLine two.\n\n# Heading\nBody text here.\n"
    assert [(s.title, document.text[s.start : s.end]) for s in document.sections] == [
        ("Introduction", "Line one.\nLine two."),
        ("Heading", "Body text here."),
    ]


def test_parse_document_stores_the_text_it_counted_offsets_in():
    document = parse_document("d", "# T\r\rFirst.\r\r## Next\r\rSecond.", "d.md")
    assert document.text == "# T\n\nFirst.\n\n## Next\n\nSecond."
    assert [document.text[s.start : s.end] for s in document.sections] == ["First.", "Second."]


def _pdf_titled(title: bytes) -> bytes:
    """The report PDF with `title` (4 bytes of PDF syntax, such as b" 77 " or b"[77]") as its /Title."""
    writer = pypdf.PdfWriter(clone_from=FORMATS / "report.pdf")
    writer.add_metadata({"/Title": "77"})
    buffer = io.BytesIO()
    writer.write(buffer)
    raw = buffer.getvalue()
    assert raw.count(b"/Title (77)") == 1
    return raw.replace(b"/Title (77)", b"/Title " + title)  # same length, so the cross-reference table holds


@pytest.mark.parametrize("title", [b" 77 ", b"[77]"], ids=["number", "array"])
def test_pdf_whose_title_is_not_text_is_named_after_its_file(title: bytes):
    document = decode_document(_pdf_titled(title), "reports/annual_report.pdf")  # raised AttributeError
    assert document.title == "Annual report"
    assert [s.title for s in document.sections] == ["Page 1 – Overview", "Page 2 – History", "Page 3 – Outlook"]


def test_files_that_used_to_crash_a_build_are_read_or_skipped_one_by_one(tmp_path: Path):
    # Each of these raised out of load_corpus (IndexError, LookupError, UnicodeError, AttributeError) and so
    # stopped the whole build.
    (tmp_path / "notes.md").write_text("# Notes\n\nGood text.", encoding="utf-8")
    (tmp_path / "mac.md").write_bytes(b"# Mac\r\rText with CR line endings.\r")
    (tmp_path / "base64.html").write_bytes(b'<meta charset="base64"><p>Text.</p>')
    (tmp_path / "punycode.html").write_bytes(b'<meta charset="punycode"><p>Text.</p>')
    (tmp_path / "numbered_title.pdf").write_bytes(_pdf_titled(b" 77 "))
    corpus = load_corpus(tmp_path)
    assert [(d.id, d.title) for d in corpus.documents] == [
        ("mac", "Mac"),
        ("notes", "Notes"),
        ("numbered_title", "Numbered title"),
    ]
    assert dict(corpus.skipped) == {
        "base64.html": "declares an unsupported charset 'base64'",
        "punycode.html": "declares an unsupported charset 'punycode'",
    }


def test_files_deleted_while_the_corpus_is_read_are_left_out_not_fatal(tmp_path: Path):
    (tmp_path / "keep.md").write_text("# Keep\n\nKept text.", encoding="utf-8")
    stop = threading.Event()

    def churn() -> None:  # folders of complete files appear and vanish while load_corpus walks and reads
        while not stop.is_set():
            for n in range(4):
                folder = tmp_path / f"churn{n}"
                folder.mkdir(exist_ok=True)
                for m in range(4):
                    (folder / ".partial").write_text("# Brief\n\nBrief text.", encoding="utf-8")
                    os.replace(folder / ".partial", folder / f"f{m}.md")
                shutil.rmtree(folder, ignore_errors=True)

    worker = threading.Thread(target=churn)
    worker.start()
    try:
        # Before, about one pass in five raised FileNotFoundError (from Path.rglob) or listed a vanished file as
        # unreadable.
        for _ in range(200):
            corpus = load_corpus(tmp_path)
            assert corpus.skipped == ()
            assert "keep" in [d.id for d in corpus.documents]
    finally:
        stop.set()
        worker.join()


def test_special_files_and_dangling_links_are_not_documents(tmp_path: Path):
    (tmp_path / "real.md").write_text("# Real\n\nReal text.", encoding="utf-8")
    os.mkfifo(tmp_path / "pipe.md")  # reading it would block the build forever
    (tmp_path / "gone.md").symlink_to(tmp_path / "missing.md")
    (tmp_path / "folder.md").mkdir()
    corpus = load_corpus(tmp_path)
    assert [d.id for d in corpus.documents] == ["real"] and corpus.skipped == ()


def _titles(text: str, source: str = "d.txt") -> list[tuple[str, ...]]:
    return [s.path for s in parse_document("d", text, source).sections]


def test_underlined_plain_text_headings_give_the_title_and_sections():
    # reStructuredText and Markdown setext style, as exported documentation and licences are written.
    text = (
        'The "try" statement\n*******************\n\nThe statement handles errors:\n\n   try: pass\n\n'
        '"except" clause\n===============\n\nThe clause names handlers.\n\n'
        '"finally" clause\n================\n\nThe clause always runs.\n'
    )
    document = parse_document("d", text, "d.txt")
    assert document.title == 'The "try" statement'
    assert [(s.title, text[s.start : s.end]) for s in document.sections] == [
        ("Introduction", "The statement handles errors:\n\n   try: pass"),
        ('"except" clause', "The clause names handlers."),
        ('"finally" clause', "The clause always runs."),
    ]


def test_overlined_title_and_numbered_underlined_sections():
    text = "=====\nGuide\n=====\n\nIntro words.\n\n1. Definitions\n--------------\n\nA term means a word.\n"
    document = parse_document("d", text, "d.txt")
    assert document.title == "Guide"
    assert [s.title for s in document.sections] == ["Introduction", "Definitions"]


def test_underlined_and_plain_headings_mix():
    text = "HKAI Guide\n==========\n\n1. Introduction\n\nThis guide explains how.\n\n2. Fees\n\nThe fee is HK$300.\n"
    document = parse_document("d", text, "d.txt")
    assert (document.title, [s.title for s in document.sections]) == ("HKAI Guide", ["Introduction", "Fees"])


@pytest.mark.parametrize(
    "block",
    [
        "```````````````````\npip install hkai-qa\n```````````````````",  # a code fence, not an over- and underline
        "~~~~~~~~~~~~~~~~~~~\npip install hkai-qa\n~~~~~~~~~~~~~~~~~~~",
        "She waited by the pier for her brother\n.......................................",
        "Currency     Rate\n-----------------",  # a table's header row
        "Signed by the tenant\n____________________",  # a form's blank
        "=========\nThe Title\n---------",  # an overline that is not the underline
        "one line of the body,\nover a rule\n===========",  # the last line of a paragraph
    ],
)
def test_rules_fences_blanks_and_table_borders_do_not_make_headings(block: str):
    text = f"Report Title\n\nOpening words here.\n\n{block}\n\nThe text that follows runs on.\n"
    document = parse_document("d", text, "d.txt")
    assert (document.title, [s.title for s in document.sections]) == ("Report Title", ["Introduction"])


def test_an_underlined_title_followed_at_once_by_its_text_is_a_heading():
    text = "Guide\n=====\n\nIntro words.\n\nDefinitions\n-----------\nA term means a word.\n"
    document = parse_document("d", text, "d.txt")
    assert [(s.title, text[s.start : s.end]) for s in document.sections] == [
        ("Introduction", "Intro words."),
        ("Definitions", "A term means a word."),
    ]


def test_numbered_steps_in_title_case_are_not_clauses_outside_a_licence():
    text = (
        "Setup Guide\n\nFollow these steps to connect.\n\n1. Open Settings. Then tap the network name.\n\n"
        "2. Select Wireless Network. Enter the password.\n"
    )
    assert [s.title for s in parse_document("d", text, "d.txt").sections] == ["Introduction"]


def test_a_rule_under_a_paragraph_line_is_not_a_heading():
    text = "Report\n\nThe first paragraph runs on\nand ends here.\n-----\n\nMore text follows.\n"
    assert _titles(text) == [("Introduction",)]


def test_numbered_clause_titles_alone_or_run_in_start_sections_but_numbered_steps_do_not():
    text = (
        "Licence\n\n   1. Definitions.\n\n      A term means a word.\n\n"
        "   2. Grant of Copyright License. Each Contributor grants You a licence.\n\n"
        "   3. Trademarks. This License grants no right to use trade names.\n\n"
        "   4. Preheat the oven. Then bake the bread.\n\n"
        "   5. Mr. Chan opened the meeting. 6. No. 8 signal was hoisted.\n\n"
        "   7. LeCun Y. Deep learning. Nature.\n\n   8. Go to bed.\n\n   100 Days. That is how long it took.\n"
    )
    document = parse_document("d", text, "d.txt")
    assert [s.title for s in document.sections] == ["Definitions", "Grant of Copyright License", "Trademarks"]
    # A run-in title's section holds the whole clause, title and all, so the first words stay citable.
    assert text[document.sections[1].start : document.sections[1].end].lstrip().startswith("2. Grant of Copyright")
    assert text[document.sections[2].start : document.sections[2].end].endswith("That is how long it took.")


@pytest.mark.parametrize(
    "line",
    [
        'The simple form, "assert expression", is equivalent to:',  # a lead-in, not a title
        "is roughly equivalent to:",
        "* constants defined to be false",  # a list item
        '   global_stmt ::= "global" identifier',  # code, indented under the prose it illustrates
    ],
)
def test_lead_ins_list_items_and_indented_code_lines_are_not_headings(line: str):
    text = f"Notes\n\nOpening words here.\n\n{line}\n\nThe text after it.\n"
    assert _titles(text) == [("Introduction",)]


def test_under_an_underlined_title_only_underlined_and_numbered_lines_are_headings():
    # Python's help() pages and the MPL: terms, notes and lead-ins stand alone on a line between paragraphs.
    text = (
        "Mapping Types\n*************\n\nA mapping maps keys to values.\n\nlen(d)\n\n   Return the number of items.\n\n"
        "Note\n\n   Views are dynamic.\n\n1. Steps\n\nThe import runs in steps.\n\n"
        "2. check if the module has that name\n\nIf not, it fails.\n\nDictionary views\n================\n\n"
        "A view reflects changes.\n"
    )
    document = parse_document("d", text, "d.txt")
    assert document.title == "Mapping Types"
    assert [s.title for s in document.sections] == ["Introduction", "Steps", "Dictionary views"]
