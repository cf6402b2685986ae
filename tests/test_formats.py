"""HTML pages and PDFs become Documents: main text only, headings as sections, offsets into the stored text."""

from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path

import pypdf
import pytest

from hkai_qa.documents import decode_document, parse_document, read_document
from hkai_qa.errors import UnreadableDocument

FORMATS = Path(__file__).resolve().parent / "fixtures" / "formats"
PAGE_FURNITURE = [
    "SENTINEL",  # every piece of page furniture in article.html carries one
    "dataLayer",
    "font-family",
    "Accept",
    "Privacy policy",
    "Kowloon Tech Times",
    "Related stories",
    "Most read",
]


@pytest.fixture(scope="module")
def article():
    return read_document(FORMATS / "article.html", FORMATS.parent)


@pytest.fixture(scope="module")
def report():
    return read_document(FORMATS / "report.pdf", FORMATS.parent)


def _sections(document):
    return {s.title: document.text[s.start : s.end] for s in document.sections}


def _html(body: str, head: str = "") -> bytes:
    return f"<!doctype html><html><head>{head}</head><body>{body}</body></html>".encode()


def _pdf(writer: pypdf.PdfWriter) -> bytes:
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def _text_pdf(content: bytes, to_unicode: bytes = b"") -> bytes:
    """A one-page PDF, written out by hand, that draws `content` (PDF text operators) in Helvetica;
    `to_unicode` is the font's ToUnicode map, which tells a reader what characters the codes are."""
    draw = b"BT /F1 12 Tf 50 800 Td " + content + b" ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 4 0 R >> >> "
        b"/Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica" + (b" /ToUnicode 6 0 R" if to_unicode else b"") + b" >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(draw), draw),
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(to_unicode), to_unicode),
    ]
    pdf = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(pdf))
        pdf += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(pdf)
    pdf += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    pdf += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    pdf += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(pdf)


# HTML


def test_html_article_headings_become_sections_with_paths(article):
    assert article.id == "formats/article" and article.source == "formats/article.html"
    assert article.title == "Harbourline Robotics Week draws record crowds"
    assert [s.path for s in article.sections] == [
        ("Harbourline Robotics Week draws record crowds",),
        ("Harbourline Robotics Week draws record crowds", "Autonomous ferries"),
        ("Harbourline Robotics Week draws record crowds", "Autonomous ferries", "Safety record"),
        ("Harbourline Robotics Week draws record crowds", "Robots in the classroom"),
        ("Harbourline Robotics Week draws record crowds", "What comes next"),
    ]
    assert [s.anchor for s in article.sections][:2] == [
        "harbourline-robotics-week-draws-record-crowds",
        "autonomous-ferries",
    ]


def test_html_is_stored_as_markdown_whose_offsets_slice_each_section(article):
    assert article.text.startswith("# Harbourline Robotics Week draws record crowds\n\nBy Mei Ling Chan")
    assert "\n\n## Autonomous ferries\n\n" in article.text and "\n\n### Safety record\n\n" in article.text
    sections = _sections(article)
    assert sections["Safety record"] == (
        "According to the institute, the Lantau Swift has completed 2,400 test crossings without a single collision."
    )
    assert sections["Robots in the classroom"] == (
        "Secondary schools brought robots that students had built themselves. Three projects stood out:\n\n"
        "- A tea-sorting arm built by pupils in Sham Shui Po.\n"
        "- A tide-measuring buoy that reports every ten minutes.\n"
        "- A library robot that reshelves books by colour."
    )
    assert sections["What comes next"].endswith("assistive robots for older residents.")
    # The stored text reads back as Markdown to the very same sections.
    assert parse_document(article.id, article.text, article.source).sections == article.sections


@pytest.mark.parametrize("furniture", PAGE_FURNITURE)
def test_html_drops_scripts_styles_navigation_header_footer_asides_and_cookie_banner(article, furniture):
    assert furniture not in article.text


def test_html_entities_are_decoded_and_text_is_verbatim(article):
    assert "Research & development teams" in article.text
    assert "the organisers’ new “open bench” format" in article.text
    assert "&amp;" not in article.text and "&rsquo;" not in article.text
    assert (
        "The star of the week was the Lantau Swift, an electric ferry that crossed Victoria Harbour in eleven "
        "minutes under full autonomy." in article.text
    )


def test_html_title_falls_back_to_title_element_then_file_name():
    with_title = decode_document(_html("<h2>Part</h2><p>Body text.</p>", "<title>Page  Title</title>"), "a.html")
    assert with_title.title == "Page Title"
    bare = decode_document(_html("<p>Body text.</p>"), "notes/harbour_notes.htm")
    assert bare.title == "Harbour notes" and [s.title for s in bare.sections] == ["Introduction"]


def test_html_article_header_keeps_its_title_while_the_site_header_goes():
    page = _html(
        "<header><h1>Site name</h1></header><article><header><h1>Real title</h1>"
        "<p>By a reporter</p></header><p>Article body text.</p></article>"
    )
    document = decode_document(page, "p.html")
    assert document.title == "Real title"
    assert "Site name" not in document.text and "By a reporter" in document.text


def test_html_blocks_never_run_together_and_inline_markup_never_splits_words():
    page = _html("<div>alpha<div>beta</div>gamma</div><p>bo<b>ld</b> and<br>next line</p><td>cell</td>")
    text = decode_document(page, "p.html").text
    assert text == "alpha\n\nbeta\n\ngamma\n\nbold and\nnext line\n\ncell"


def test_html_nested_list_items_each_get_a_dash():
    page = _html("<ul><li>Fruit<ul><li>Apple</li><li><p>Pear</p></li></ul></li><li>Veg</li></ul><p>After.</p>")
    assert decode_document(page, "l.html").text == "- Fruit\n- Apple\n- Pear\n- Veg\n\nAfter."


def test_html_nested_beyond_reason_is_unreadable_not_a_crash():
    page = _html("<div>" * 5000 + "<p>Deep text.</p>" + "</div>" * 5000)
    with pytest.raises(UnreadableDocument, match="nested too deeply"):
        decode_document(page, "deep.html")


def test_html_text_that_looks_like_markdown_is_not_a_heading():
    page = _html("<h1>Lab</h1><p># of sensors: 12.</p><h2>Next</h2><p>More.</p>")
    document = decode_document(page, "lab.html")
    assert [s.title for s in document.sections] == ["Lab", "Next"]
    assert _sections(document)["Lab"] == "# of sensors: 12."


def test_html_table_rows_become_lines():
    page = _html("<table><tr><th>Year</th><th>Grants</th></tr><tr><td>2023</td><td>HK$5m</td></tr></table>")
    assert decode_document(page, "t.html").text == "Year | Grants\n2023 | HK$5m"


@pytest.mark.parametrize(
    ("meta", "encoding", "words"),
    [
        ('<meta charset="windows-1252">', "cp1252", "Café naïve"),
        ('<meta http-equiv="Content-Type" content="text/html; charset=big5">', "big5", "香港人工智能"),
    ],
)
def test_html_declared_charset_is_honoured(meta: str, encoding: str, words: str):
    raw = f"<html><head>{meta}</head><body><p>{words}</p></body></html>".encode(encoding)
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")  # so only the declared charset can read it
    assert decode_document(raw, "c.html").text == words


def test_html_without_a_charset_must_be_utf8_and_the_byte_is_named():
    raw = "<html><body><p>Caf\xe9 au lait</p></body></html>".encode("latin-1")
    with pytest.raises(UnreadableDocument, match=r"^c\.html: not UTF-8 text \(byte 18\)"):
        decode_document(raw, "c.html")
    declared = b'<meta charset="utf-8"><p>Caf\xe9</p>'
    with pytest.raises(UnreadableDocument, match=r"not utf-8 text as its <meta> charset declares \(byte 28\)"):
        decode_document(declared, "d.html")
    unknown = '<meta charset="no-such-charset"><p>Café</p>'.encode()
    assert decode_document(unknown, "u.html").text == "Café"


@pytest.mark.parametrize(
    "charset",
    [
        *["base64", "hex", "rot13", "zip", "bz2", "uu", "quopri"],  # bytes-to-bytes codecs: raised LookupError
        *["punycode", "undefined"],  # raised UnicodeError
        *["utf-7", "unicode_escape", "raw_unicode_escape", "idna"],  # read, but changed the text
        *["cp037", "cp500"],  # EBCDIC: the ASCII <meta> itself would read as other characters
    ],
)
def test_html_declaring_a_codec_that_is_not_a_page_charset_is_unreadable(charset: str):
    raw = f'<html><head><meta charset="{charset}"></head><body><p>1+1=2 and C:\\new</p></body></html>'.encode()
    with pytest.raises(UnreadableDocument) as error:
        decode_document(raw, "c.html")
    assert error.value.message == f"c.html: declares an unsupported charset {charset!r}"
    assert error.value.status == 422  # an upload gets a 4xx with the reason, never a 500


@pytest.mark.parametrize("label", ["latin1", "ISO-8859-1", "cp1252"])
def test_html_declared_charset_is_read_in_any_spelling_python_knows(label: str):
    raw = f'<meta charset="{label}"><p>Caf\xe9: 1+1=2 in C:\\new</p>'.encode("latin-1")
    assert decode_document(raw, "c.html").text == "Caf\xe9: 1+1=2 in C:\\new"


@pytest.mark.parametrize("ending", ["\r\n", "\r"], ids=["crlf", "classic-mac-cr"])
def test_html_with_crlf_or_cr_line_endings_is_stored_with_lf(ending: str):
    page = _html("\n<h1>Title</h1>\n<p>One\ntwo</p>\n<pre>a = 1\nb = 2</pre>\n".replace("\n", ending))
    document = decode_document(page, "p.html")
    assert document.text == "# Title\n\nOne two\n\na = 1\nb = 2"
    assert _sections(document) == {"Title": "One two\n\na = 1\nb = 2"}


def test_html_with_no_main_text_is_unreadable():
    page = _html("<nav><a href='/'>Home</a></nav><script>var x = 1;</script><h1>Only a heading</h1><footer>©</footer>")
    with pytest.raises(UnreadableDocument, match=r"^empty\.html: no main text"):
        decode_document(page, "empty.html")


# PDF


def test_pdf_has_one_section_per_page(report):
    assert report.id == "formats/report"
    # each page opens with a heading line, which joins the page number in the title instead of the text
    assert [s.title for s in report.sections] == ["Page 1 – Overview", "Page 2 – History", "Page 3 – Outlook"]
    assert [s.anchor for s in report.sections] == ["page-1-overview", "page-2-history", "page-3-outlook"]
    assert [s.path for s in report.sections] == [(s.title,) for s in report.sections]


def test_pdf_page_text_is_in_its_own_section(report):
    pages = [report.text[s.start : s.end] for s in report.sections]
    fact = "The Kowloon Robotics Consortium was founded in 2019 by twelve universities."
    assert fact in pages[1]
    assert fact not in pages[0] and fact not in pages[2]
    assert pages[0].startswith("This annual report") and pages[2].endswith("promised by private donors.")
    assert report.text[: report.sections[1].start].endswith("\n\nHistory\n")
    assert "History" not in pages[1]


def test_pdf_title_comes_from_metadata(report):
    assert report.title == "Kowloon Robotics Consortium Annual Report"


def test_pdf_without_a_title_is_named_after_its_file():
    writer = pypdf.PdfWriter(clone_from=FORMATS / "report.pdf")
    writer.add_metadata({"/Title": "  "})
    assert decode_document(_pdf(writer), "reports/quarterly_report-2024.pdf").title == "Quarterly report 2024"


def test_pdf_pages_without_text_are_skipped_but_numbering_stays_true():
    writer = pypdf.PdfWriter(clone_from=FORMATS / "report.pdf")
    writer.insert_blank_page(index=1)
    document = decode_document(_pdf(writer), "gappy.pdf")
    assert [s.title for s in document.sections] == ["Page 1 – Overview", "Page 3 – History", "Page 4 – Outlook"]
    assert "founded in 2019" in _sections(document)["Page 3 – History"]


def test_scanned_pdf_has_no_text_layer():
    with pytest.raises(UnreadableDocument, match=r"^formats/scanned\.pdf: no text layer \(a scanned PDF\?\)$"):
        read_document(FORMATS / "scanned.pdf", FORMATS.parent)


def test_blank_pdf_made_by_pypdf_has_no_text_layer():
    writer = pypdf.PdfWriter()
    writer.add_blank_page(width=595, height=842)
    with pytest.raises(UnreadableDocument, match="no text layer"):
        decode_document(_pdf(writer), "blank.pdf")


def test_garbage_pdf_is_unreadable_and_pypdf_logs_nothing(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(UnreadableDocument, match=r"^broken\.pdf: not a readable PDF \(.+\)$"):
        decode_document(b"%PDF-1.4 garbage", "broken.pdf")
    assert [r for r in caplog.records if r.name.startswith("pypdf")] == []
    assert logging.getLogger("pypdf").level == logging.NOTSET  # the quiet spell ends with the call


def test_pdf_text_with_cr_and_crlf_line_endings_is_stored_with_lf():
    raw = _text_pdf(rb"(First line.\rSecond line.\r\nThird line.) Tj")
    assert pypdf.PdfReader(io.BytesIO(raw)).pages[0].extract_text() == "First line.\rSecond line.\r\nThird line."
    document = decode_document(raw, "cr.pdf")
    assert document.text == "First line.\nSecond line.\nThird line."
    assert _sections(document) == {"Page 1": document.text}


def test_pdf_text_with_lone_surrogates_gets_replacement_characters_and_is_read():
    # A broken ToUnicode map sends "O" to half a UTF-16 surrogate pair; hashing the text raised UnicodeEncodeError.
    cmap = (
        b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap\n1 begincodespacerange <00> <FF> "
        b"endcodespacerange\n1 beginbfchar <4F> <D800> endbfchar\nendcmap CMapName currentdict /CMap "
        b"defineresource pop end end"
    )
    document = decode_document(_text_pdf(b"(Overview of the year.) Tj", to_unicode=cmap), "broken-map.pdf")
    assert document.text == "\ufffdverview of the year."
    assert document.sha256 == hashlib.sha256(document.text.encode()).hexdigest()


def test_password_protected_pdf_is_unreadable_but_an_empty_user_password_opens():
    locked = pypdf.PdfWriter(clone_from=FORMATS / "report.pdf")
    locked.encrypt(user_password="secret", owner_password="owner")
    with pytest.raises(UnreadableDocument, match=r"^locked\.pdf: encrypted PDF: it needs a password$"):
        decode_document(_pdf(locked), "locked.pdf")
    restricted = pypdf.PdfWriter(clone_from=FORMATS / "report.pdf")
    restricted.encrypt(user_password="", owner_password="owner")
    assert [s.title for s in decode_document(_pdf(restricted), "restricted.pdf").sections] == [
        "Page 1 – Overview",
        "Page 2 – History",
        "Page 3 – Outlook",
    ]


def test_html_meta_tag_with_other_characters_still_declares_its_charset():
    page = (
        '<html><head><meta name="author" content="José" charset="iso-8859-1"></head>'
        "<body><h1>Café</h1><p>Le café ouvre.</p></body></html>"
    )
    document = decode_document(page.encode("latin-1"), "page.html")
    assert "Le café ouvre." in document.text


def test_pdf_heading_lines_need_a_blank_line_before_and_text_after():
    raw = _text_pdf(
        rb"(Findings) Tj 0 -14 Td (The survey counted 4,312 hives) Tj 0 -14 Td (across 17 villages.) Tj "
        rb"0 -28 Td (Methods) Tj 0 -14 Td (Volunteers walked every trail.) Tj"
    )
    text = pypdf.PdfReader(io.BytesIO(raw)).pages[0].extract_text()
    document = decode_document(raw, "bees.pdf")
    sections = _sections(document)
    assert next(iter(sections)) == "Page 1 – Findings", text
    # a wrapped line inside a paragraph ("across 17 villages.") is never a heading
    assert "The survey counted 4,312 hives\nacross 17 villages." in sections["Page 1 – Findings"]


def test_a_short_line_that_goes_on_in_lower_case_is_text_not_a_heading():
    raw = _text_pdf(rb"(Hong Kong AI policy) Tj 0 -14 Td (was revised in the spring of that year.) Tj")
    document = decode_document(raw, "wrapped.pdf")
    assert [s.title for s in document.sections] == ["Page 1"]
    assert document.text.startswith("Hong Kong AI policy\nwas revised")
