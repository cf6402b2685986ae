"""Raw bytes of an HTML page or a PDF -> text with headings at character offsets, ready to become a Document.

HTML goes through selectolax (the Lexbor HTML5 parser). trafilatura was tried on the same pages: its main-text
heuristics found the article on a tidy page, but on a page laid out with plain <div>s it kept the menu, its
Markdown output escapes characters ("on \\* Tuesday") so quotes are no longer verbatim, a paragraph starting
"# of sensors" reads back as a heading, and it brings a dozen dependencies (it would not even import against
lxml 6 without one more). With selectolax we walk the parsed tree ourselves: entities are decoded by the parser,
what is dropped (scripts, styles, <nav>, page <header>, <footer>, <aside>, cookie banners) is a short list we
can read, and we record each heading's offset as we write it, so no text is ever re-interpreted as Markdown.
PDFs go through pypdf, one section per page that has text.

Every text format gets LF line endings before it is parsed: Markdown parsers also break lines at CRLF and at a
lone CR (classic Mac files), and section offsets must count the same lines as the parser.
"""

from __future__ import annotations

import codecs
import io
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from selectolax.lexbor import LexborHTMLParser, LexborNode

from hkai_qa.errors import UnreadableDocument

Heading = tuple[int, str, int, int]  # level, title, heading start, body start: offsets into the text


@dataclass(frozen=True, slots=True)
class Extracted:
    """Text taken from a page or a PDF, its headings, and the title the file declares ("" when none)."""

    title: str
    text: str
    headings: tuple[Heading, ...]


# Never article text, wherever they stand in the page.
_DROPPED_TAGS = frozenset(
    {"script", "style", "noscript", "template", "svg", "math", "canvas", "iframe", "object", "embed", "nav"}
    | {"aside", "footer", "form", "button", "select", "dialog", "head", "title", "meta", "link"}
)
_DROPPED_ROLES = frozenset(
    {"navigation", "banner", "contentinfo", "complementary", "dialog", "alertdialog", "search", "menu"}
)
# In an id or class: a cookie banner anywhere in the name, or page furniture as a whole word ("main-nav").
_BOILERPLATE_NAME = re.compile(
    r"cookie|consent|gdpr|(?<![a-z])(?:nav|navbar|navigation|menu|menubar|breadcrumbs?|sidebar|footer)(?![a-z])",
    re.I,
)
_INLINE_TAGS = frozenset(
    {"a", "abbr", "b", "bdi", "bdo", "big", "cite", "code", "data", "del", "dfn", "em", "font", "i", "ins"}
    | {"kbd", "label", "mark", "nobr", "q", "s", "samp", "small", "span", "strong", "sub", "sup", "time"}
    | {"tt", "u", "var", "wbr", "img", "picture", "ruby", "rb", "rp", "rt", "acronym", "strike"}
)
_HEADING_TAGS = {f"h{level}": level for level in range(1, 7)}
_META_CHARSET = re.compile(rb"<meta\b[^>]*?charset\s*=\s*[\"']?\s*([A-Za-z0-9._:-]+)", re.I)
_LETTER_OR_DIGIT = re.compile(r"[^\W_]")
_LINE_ENDING = re.compile(r"\r\n?")
_SURROGATE = re.compile("[\ud800-\udfff]")
# Python registers these as text encodings, but they transform text rather than name a page's charset.
_NOT_CHARSETS = frozenset({"utf-7", "unicode-escape", "raw-unicode-escape", "punycode", "idna", "undefined"})


def has_words(text: str) -> bool:
    """True when `text` holds at least one letter or digit."""
    return _LETTER_OR_DIGIT.search(text) is not None


def normalise_line_endings(text: str) -> str:
    """`text` with every CRLF and lone CR turned into LF."""
    return _LINE_ENDING.sub("\n", text)


def decode_html(raw: bytes) -> str:
    """Decode a page with the charset its <meta> declares, else UTF-8; undecodable bytes are an error."""
    declared = None if raw.startswith(codecs.BOM_UTF8) else _declared_charset(raw)
    try:
        return raw.decode(declared or "utf-8-sig")  # a byte-order mark outranks <meta>, as in browsers
    except UnicodeDecodeError as exc:
        if declared:
            raise UnreadableDocument(f"not {declared} text as its <meta> charset declares (byte {exc.start})") from exc
        raise UnreadableDocument(f"not UTF-8 text (byte {exc.start}); declare its encoding in <meta charset>") from exc
    except UnicodeError as exc:  # a codec that fails without naming the byte
        raise UnreadableDocument(f"not {declared or 'UTF-8'} text ({exc})") from exc


def extract_html(raw: bytes) -> Extracted:
    """The main text of a page as Markdown: "# Title", "## Heading", paragraphs, "- " list items."""
    tree = LexborHTMLParser(normalise_line_endings(decode_html(raw)))
    root = _main_element(tree)
    writer = _MarkdownWriter()
    try:
        if root is not None:
            writer.walk(root, in_article=_inside(root, "article"))
    except RecursionError as exc:
        raise UnreadableDocument("HTML nested too deeply to read") from exc
    writer.flush()
    h1 = next((title for level, title, _, _ in writer.headings if level == 1), "")
    title_node = tree.css_first("title")
    page_title = _normalise(title_node.text()) if title_node is not None else ""
    return Extracted(title=h1 or page_title, text=writer.text(), headings=tuple(writer.headings))


def extract_pdf(raw: bytes) -> Extracted:
    """The text layer of each page, joined by blank lines, with a "Page N" heading at the start of each."""
    import pypdf  # only PDF corpora pay for importing it
    from pypdf.errors import DependencyError

    with _quiet_pypdf():
        try:
            reader = pypdf.PdfReader(io.BytesIO(raw))
            if reader.is_encrypted:
                # Many PDFs are encrypted only to restrict printing; they open with an empty password.
                try:
                    opened = reader.decrypt("") != pypdf.PasswordType.NOT_DECRYPTED
                except DependencyError as exc:
                    raise UnreadableDocument(f"encrypted PDF that cannot be decrypted here ({exc})") from exc
                if not opened:
                    raise UnreadableDocument("encrypted PDF: it needs a password")
            pages = [page.extract_text() for page in reader.pages]
            metadata = reader.metadata
            title = metadata.title if metadata is not None else None
            if not isinstance(title, str):  # pypdf hands back whatever object /Title holds: a number, an array
                title = None
        except UnreadableDocument:
            raise
        except Exception as exc:  # any failure of the parser on these bytes means the file cannot be read
            raise UnreadableDocument(f"not a readable PDF ({type(exc).__name__}: {exc})") from exc
    parts: list[str] = []
    headings: list[Heading] = []
    offset = 0
    for number, page in enumerate(pages, start=1):
        body = _clean_pdf_text(page).strip()
        if not has_words(body):
            continue  # a page without a text layer; the numbering of the others stays true
        if parts:
            offset += 2
        heads = _pdf_heading_lines(body)
        if not heads or heads[0][0] != 0:
            headings.append((1, f"Page {number}", offset, offset))
        for start, end, line in heads:  # "Page 2 – History": the page stays in every citation
            headings.append((1, f"Page {number} – {line}", offset + start, offset + end))
        parts.append(body)
        offset += len(body)
    if not parts:
        kind = "no pages" if not pages else "no text layer (a scanned PDF?)"
        raise UnreadableDocument(kind)
    return Extracted(title=_normalise(_clean_pdf_text(title or "")), text="\n\n".join(parts), headings=tuple(headings))


_PDF_HEADING = re.compile(r"[A-Z0-9][^\n]{0,59}")
_MAX_PDF_HEADING_WORDS = 8


def _pdf_heading_lines(body: str) -> list[tuple[int, int, str]]:
    """Heading lines of a page's text layer: (start, start of the text under it, title).

    A text layer has no markup, so a heading is a short line that opens the page or follows a blank line,
    ends without punctuation, and has a line under it that opens with a capital (a line wrapped mid-sentence
    goes on in lower case). Without this, "History" would open the first sentence of the page and be quoted
    in answers.
    """
    heads = []
    lines = list(re.finditer(r"[^\n]*", body))
    for i, line in enumerate(lines):
        text = line.group().strip()
        if not text or (line.start() > 0 and body[max(line.start() - 2, 0) : line.start()] != "\n\n"):
            continue
        following = next((m for m in lines[i + 1 :] if m.start() > line.end()), None)
        if (
            _PDF_HEADING.fullmatch(text)
            and len(text.split()) <= _MAX_PDF_HEADING_WORDS
            and not text.endswith((".", "!", "?", ";", ":", ",", "。", "！", "？"))
            and has_words(text)
            and following is not None
            and following.start() == line.end() + 1
            and following.group()[:1].isupper()  # a sentence opens under a heading; a wrapped line goes on
        ):
            heads.append((line.start(), following.start(), text))
    return heads


def _clean_pdf_text(text: str) -> str:
    # A broken ToUnicode map makes pypdf return lone surrogates, which no UTF-8 file or database can hold.
    return _SURROGATE.sub("\ufffd", normalise_line_endings(text))


@contextmanager
def _quiet_pypdf() -> Iterator[None]:
    # pypdf logs each repair it makes to a damaged file; the file either reads or is reported as unreadable.
    logger = logging.getLogger("pypdf")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _declared_charset(raw: bytes) -> str | None:
    """The codec the page's <meta> names; None when it names none; a codec that is no charset is an error."""
    match = _META_CHARSET.search(raw[:8192])
    if match is None:
        return None
    label = match.group(1).decode("ascii")
    try:
        codec = codecs.lookup(label)
    except LookupError:
        return None  # an unknown label: read it as UTF-8
    # The HTML standard reads a page that declares UTF-16 in an ASCII <meta> as UTF-8.
    if codec.name.startswith(("utf-16", "utf-32")):
        return "utf-8"
    if not codec._is_text_encoding or codec.name in _NOT_CHARSETS or not _reads_as_ascii(codec.name):
        raise UnreadableDocument(f"declares an unsupported charset {label!r}")
    return codec.name


_ASCII_PROBE = bytes(range(32, 127))


def _reads_as_ascii(charset: str) -> bool:
    # The <meta> was found by reading the bytes as ASCII, so a charset that reads printable ASCII otherwise
    # (EBCDIC, say) cannot be the one the page is written in. A fixed probe, not the tag itself, which may
    # hold other characters (content="José").
    try:
        return _ASCII_PROBE.decode(charset) == _ASCII_PROBE.decode("ascii")
    except UnicodeError:
        return False


def _main_element(tree: LexborHTMLParser) -> LexborNode | None:
    main = tree.css_first("main, [role=main]")
    if main is not None:
        return main
    articles = tree.css("article")
    return articles[0] if len(articles) == 1 else tree.body


def _inside(node: LexborNode, tag: str) -> bool:
    parent = node.parent
    while parent is not None:
        if parent.tag == tag:
            return True
        parent = parent.parent
    return node.tag == tag


def _dropped(node: LexborNode, in_article: bool) -> bool:
    tag = node.tag or ""
    if tag in _DROPPED_TAGS or (tag == "header" and not in_article):  # an article's own <header> holds its title
        return True
    attrs = node.attributes
    if "hidden" in attrs or attrs.get("aria-hidden") == "true" or attrs.get("role") in _DROPPED_ROLES:
        return True
    names = f"{attrs.get('id') or ''} {attrs.get('class') or ''}"
    # A name is only a hint: a wrapper called "page-with-sidebar" that holds the article is kept.
    return _BOILERPLATE_NAME.search(names) is not None and node.css_first("main, article, h1") is None


def _normalise(text: str) -> str:
    return " ".join(text.split())


class _MarkdownWriter:
    """Turns the element tree into Markdown blocks, noting where each heading lands in the text."""

    def __init__(self) -> None:
        self.headings: list[Heading] = []
        self._parts: list[str] = []  # Markdown blocks and the separators between them
        self._last = ""  # the kind of the last block: "p", "li" or "h"
        self._lines: list[list[str]] = [[]]  # the paragraph being gathered, split at <br>
        self._item = False  # inside a list item whose text has not been written yet
        self._length = 0

    def walk(self, node: LexborNode, in_article: bool) -> None:
        for child in node.iter(include_text=True):
            if child.is_text_node:
                self._lines[-1].append(child.text_content or "")
                continue
            tag = child.tag or ""
            if not tag or tag.startswith(("-", "!")) or _dropped(child, in_article):
                continue  # comments, doctype
            if tag == "br":
                self._lines.append([])
            elif tag in _HEADING_TAGS:
                self.flush()
                self._heading(_HEADING_TAGS[tag], _normalise(child.text()))
            elif tag == "li":
                self.flush()
                self._item = True  # the item's first block gets the "- ", even when a nested list follows it
                self.walk(child, in_article)
                self.flush()
                self._item = False
            elif tag in ("table", "pre"):
                self.flush()
                block = self._table(child) if tag == "table" else self._preformatted(child)
                if block:
                    self._add("p", block)
            elif tag in _INLINE_TAGS:
                self.walk(child, in_article)
            else:  # any other element starts and ends a block, so words on either side never run together
                self.flush()
                self.walk(child, in_article or tag == "article")
                self.flush()

    def flush(self) -> None:
        lines = [_normalise("".join(parts)) for parts in self._lines]
        self._lines = [[]]
        text = "\n".join(line for line in lines if line)
        if text and self._item:
            self._add("li", f"- {text}")
            self._item = False
        elif text:
            self._add("p", text)

    def text(self) -> str:
        return "".join(self._parts)

    def _heading(self, level: int, title: str) -> None:
        if title:
            start = self._add("h", f"{'#' * level} {title}")
            self.headings.append((level, title, start, self._length))

    def _add(self, kind: str, markdown: str) -> int:
        """Append a block after the right separator; returns where it starts."""
        if self._parts:
            self._parts.append("\n" if kind == "li" and self._last == "li" else "\n\n")  # items stay one list
            self._length += len(self._parts[-1])
        start = self._length
        self._parts.append(markdown)
        self._length += len(markdown)
        self._last = kind
        return start

    @staticmethod
    def _table(table: LexborNode) -> str:
        rows = []
        for row in table.css("tr"):
            cells = [_normalise(cell.text()) for cell in row.iter() if cell.tag in ("td", "th")]
            if any(cells):
                rows.append(" | ".join(cells))
        return "\n".join(rows)

    @staticmethod
    def _preformatted(pre: LexborNode) -> str:
        lines = (line.rstrip() for line in pre.text().splitlines())
        return "\n".join(line for line in lines if line.strip())
