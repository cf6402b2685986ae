"""The chat page in a real Chromium (Debian's /usr/bin/chromium) against the live test server.

Every test gets a fresh browser context, so sessionStorage and history start empty. Screenshots of three
states go to $HKAI_QA_SCREENSHOTS (`make screenshots` sets it to docs/ for the README), else to a temp folder."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
from fastapi import FastAPI
from playwright.sync_api import Browser, CDPSession, Locator, Page, Request, Route, expect, sync_playwright

from hkai_qa.api import create_app
from hkai_qa.building import build_index
from hkai_qa.config import Settings
from hkai_qa.embedding import Embedder
from hkai_qa.service import QAService

pytestmark = pytest.mark.browser

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(os.environ.get("HKAI_QA_SCREENSHOTS") or Path(tempfile.gettempdir()) / "hkai-qa-screenshots")
LAMPPOSTS = "What are smart lampposts equipped with?"
OFF_TOPIC = "Who won the 2018 World Cup?"
LAMPPOST_PHRASE = "AI-powered sensors"  # the tightest answering phrase, highlighted
SCRIPT_PAYLOAD = "<script>window.__pwned = 1</script>"
IMG_PAYLOAD = '<img src=x onerror="window.__pwned = 2">'
LAMPPOSTS_ZH = "智慧燈柱"  # "smart lampposts", as an input method composes it
# Cantonese with markup in it, a character outside the BMP (𨋢, "lift") and a line break: all shown as typed.
CANTONESE_MARKUP = '智慧燈柱裝咗乜嘢？<b>粗體</b> & <img src=x onerror="window.__pwned = 3">\n搭𨋢上去睇'
CJK_FONTS = (
    "PingFang HK",
    "PingFang TC",
    "Microsoft JhengHei",
    "Noto Sans CJK TC",
    "Noto Sans TC",
    "Source Han Sans TC",
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} not found: the browser tests need Debian's Chromium (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def _new_page(
    browser: Browser, width: int = 1280, height: int = 800, color_scheme: Literal["light", "dark"] = "light"
) -> tuple[Page, list[str]]:
    context = browser.new_context(
        viewport={"width": width, "height": height}, color_scheme=color_scheme, reduced_motion="reduce"
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on(
        "console",
        lambda message: (
            problems.append(f"console: {message.text}") if "Content Security Policy" in message.text else None
        ),
    )
    return page, problems


@pytest.fixture
def page(browser: Browser, server_url: str) -> Iterator[Page]:
    """A 1280x800 page; fails the test on any uncaught script error or CSP violation."""
    opened, problems = _new_page(browser)
    yield opened
    opened.context.close()
    assert problems == []


def ask(page: Page, question: str) -> Locator:
    """Type a question, press Enter, and return its exchange once the reply (of any kind) is in."""
    before = page.locator(".exchange").count()
    page.fill("#question", question)
    page.press("#question", "Enter")
    exchange = page.locator(".exchange").nth(before)
    exchange.locator(".answer, .no-answer, [role=alert]").first.wait_for()
    return exchange


def asked_text(exchange: Locator) -> str:
    """The question as its bubble shows it: the bubble's own text, without the screen-reader prefix."""
    bubble = exchange.locator(".bubble-user")
    # Text only: the one element inside is the visually hidden "You asked: ".
    expect(bubble.locator("*")).to_have_count(1)
    expect(bubble.locator(":scope > span.visually-hidden")).to_have_text("You asked: ")
    return str(
        bubble.evaluate(
            "el => [...el.childNodes].filter((n) => n.nodeType === Node.TEXT_NODE).map((n) => n.data).join('')"
        )
    )


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name))


def hold_requests(page: Page, pattern: str) -> list[Route]:
    """Keep matching requests waiting (the caller continues or aborts them) to see the page mid-request."""
    held: list[Route] = []
    page.route(pattern, lambda route: held.append(route))
    return held


def wait_for_held(page: Page, held: list[Route]) -> Route:
    for _ in range(200):
        if held:
            return held[0]
        page.wait_for_timeout(25)
    raise AssertionError("the request never left the page")


def luminance(css_colour: str) -> float:
    """Relative luminance (0 black .. 1 white) of a computed `rgb(r, g, b)` colour."""
    channels = [int(n) / 255 for n in re.findall(r"\d+", css_colour)[:3]]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def test_answer_with_sources(page: Page, server_url: str) -> None:
    page.goto(server_url)
    expect(page.locator("button.example")).to_have_count(4)
    exchange = ask(page, LAMPPOSTS)

    expect(exchange.locator(".bubble-user")).to_contain_text(LAMPPOSTS)
    answer = exchange.locator(".answer")
    expect(answer.locator(".answer-text")).to_contain_text(LAMPPOST_PHRASE)
    # The answering phrase is highlighted (the API's `highlight` offsets), not the whole sentence.
    marked = answer.locator(".answer-text mark")
    expect(marked).to_have_count(1)
    expect(marked).to_contain_text(LAMPPOST_PHRASE)
    marked_text = marked.text_content() or ""
    answer_text = answer.locator(".answer-text").text_content() or ""
    assert len(marked_text) < len(answer_text) / 2

    cards = exchange.locator(".source-card")
    assert cards.count() >= 2
    title = cards.first.locator(".source-title").text_content()
    section = cards.first.locator(".source-section").text_content()
    assert section in {"Smart City Initiatives", "Smart lampposts"}
    # The confidence cue is in words: where the answer is from, and how sure the page is.
    cue = answer.locator(".answer-cue")
    expect(cue).to_contain_text(f"From {title}, section {section}")
    expect(cue).to_contain_text(re.compile(r"(high|medium|low) confidence"))
    expect(cue).not_to_contain_text(re.compile(r"\d\.\d"))
    # The first card quotes the answer with the same phrase marked; the others quote plainly.
    quote = cards.first.locator("blockquote")
    expect(quote).to_have_text(answer_text)
    expect(quote.locator("mark")).to_have_text(marked_text)
    expect(cards.locator("blockquote mark")).to_have_count(1)
    expect(page.locator(".welcome")).to_have_count(0)
    screenshot(page, "screenshot-answer.png")


def test_open_citation_marks_the_quote(page: Page, server_url: str) -> None:
    page.goto(server_url)
    exchange = ask(page, LAMPPOSTS)
    card = exchange.locator(".source-card").first
    quote = card.locator("blockquote").text_content()
    assert quote

    card.locator("a.open-source").click()
    panel = page.locator("#doc-panel")
    expect(panel).to_be_visible()
    expect(panel).to_have_attribute("role", "dialog")
    cited = panel.locator("mark#cited")
    expect(cited).to_have_count(1)
    assert cited.text_content() == quote
    expect(cited).to_be_in_viewport()
    assert "doc=" in page.url and "start=" in page.url  # shareable, and no reload happened:
    expect(exchange).to_be_visible()

    page.get_by_role("button", name="Close document view").click()
    expect(panel).to_be_hidden()


def test_not_covered_lists_closest_sections(page: Page, server_url: str) -> None:
    page.goto(server_url)
    exchange = ask(page, OFF_TOPIC)
    bubble = exchange.locator(".no-answer")
    expect(bubble).to_contain_text("don't cover")
    expect(bubble).to_contain_text("Closest sections:")
    links = bubble.locator("a.related-link")
    assert links.count() >= 1
    expect(exchange.locator(".answer")).to_have_count(0)
    screenshot(page, "screenshot-not-covered.png")

    section = links.first.text_content()
    links.first.click()
    expect(page.locator("#doc-panel")).to_be_visible()
    expect(page.locator("#doc-panel .doc-section-title", has_text=section or "").first).to_be_visible()


def test_hostile_markup_renders_as_text(page: Page, server_url: str) -> None:
    page.goto(f"{server_url}/?doc=extra/xss-sample&start=0&end=10")
    panel = page.locator("#doc-panel")
    expect(panel.locator(".doc-text").first).to_be_visible()
    text = panel.text_content() or ""
    assert SCRIPT_PAYLOAD in text
    assert IMG_PAYLOAD in text
    assert panel.locator("img, script").count() == 0

    page.get_by_role("button", name="Close document view").click()
    exchange = ask(page, "zebra-finch payload")
    expect(exchange.locator(".answer")).to_contain_text(SCRIPT_PAYLOAD)
    exchange.locator("a.open-source").first.click()
    expect(panel.locator("mark#cited")).to_contain_text(SCRIPT_PAYLOAD)
    assert page.locator("#transcript img, #transcript script, #doc-panel img, #doc-panel script").count() == 0
    assert page.evaluate("window.__pwned") is None


def test_no_request_leaves_localhost(page: Page, server_url: str) -> None:
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    page.goto(server_url)
    exchange = ask(page, LAMPPOSTS)
    exchange.locator("a.open-source").first.click()
    expect(page.locator("#doc-panel mark#cited")).to_be_visible()
    page.keyboard.press("Escape")
    page.click("#documents-button")
    expect(page.locator(".doc-list")).to_be_visible()
    page.goto(f"{server_url}/docs")  # the offline Swagger UI
    expect(page.locator("#swagger-ui .info")).to_contain_text("hkai-qa")
    expect(page.locator("#swagger-ui")).to_contain_text("/ask")

    assert any(url.endswith("/ask") for url in urls)
    assert any("/documents/" in url for url in urls)
    assert any(url.endswith("/openapi.json") for url in urls)
    outside = [url for url in urls if not url.startswith((server_url + "/", "data:", "about:"))]
    assert outside == []


def test_keyboard_only(page: Page, server_url: str) -> None:
    page.goto(server_url)
    active = "document.activeElement"
    for _ in range(15):
        page.keyboard.press("Tab")
        if page.evaluate(f"{active}.id") == "question":
            break
    assert page.evaluate(f"{active}.id") == "question", "Tab never reached the question box"

    page.keyboard.type(LAMPPOSTS)
    page.keyboard.press("Enter")
    expect(page.locator(".answer")).to_contain_text("AI-powered sensors")
    assert page.evaluate(f"{active}.id") == "question"

    for _ in range(30):
        page.keyboard.press("Shift+Tab")
        if page.evaluate(f"{active}.matches('a.open-source')"):
            break
    assert page.evaluate(f"{active}.matches('a.open-source')"), "Shift+Tab never reached a source link"
    link_href = page.evaluate(f"{active}.getAttribute('href')")

    page.keyboard.press("Enter")
    panel = page.locator("#doc-panel")
    expect(panel).to_be_visible()
    expect(panel.locator("mark#cited")).to_be_visible()
    assert page.evaluate(f"!!{active}.closest('#doc-panel')"), "focus did not move into the panel"

    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    assert page.evaluate(f"{active}.getAttribute('href')") == link_href, "focus did not return to the link"


def test_composer_keys(page: Page, server_url: str) -> None:
    page.goto(server_url)
    box = page.locator("#question")
    expect(box).not_to_have_attribute("maxlength", re.compile(".*"))  # no silent cut: the page counts instead
    expect(page.get_by_label("Your question")).to_be_visible()

    box.fill("first line")
    box.press("Shift+Enter")
    box.type("second line")
    assert box.input_value() == "first line\nsecond line"
    # Enter that confirms an IME composition (isComposing / keyCode 229) must not send.
    for init in ("{key: 'Enter', isComposing: true}", "{key: 'Enter', keyCode: 229}"):
        sent = box.evaluate(
            f"el => !el.dispatchEvent(new KeyboardEvent('keydown', {{...{init}, bubbles: true, cancelable: true}}))"
        )
        assert sent is False
    box.fill("   ")
    box.press("Enter")
    page.wait_for_timeout(200)
    expect(page.locator(".exchange")).to_have_count(0)


# Records each Enter keydown once the page's own handler on the box has run (this listener is on the document),
# with what the handler did: whether it took the key (defaultPrevented) and whether a question went out.
RECORD_ENTERS = """() => {
    const box = document.getElementById("question");
    window.__enters = [];
    window.__composition = [];
    for (const type of ["compositionstart", "compositionend"]) {
        box.addEventListener(type, () => window.__composition.push(type));
    }
    document.addEventListener("keydown", (event) => {
        if (event.key !== "Enter") return;
        window.__enters.push({
            composing: event.isComposing,
            keyCode: event.keyCode,
            taken: event.defaultPrevented,
            exchanges: document.querySelectorAll(".exchange").length,
            value: box.value,
        });
    });
}"""


def ime_enter(cdp: CDPSession, key_code: int) -> None:
    """Enter as an input method passes it on: a raw key-down with no text (the IME uses the key, the page gets
    no character). Key code 229 ("Process") is how browsers report IME keys; with 13, the key's own code,
    isComposing is the only sign left that the key belongs to the composition."""
    for kind, code in (("rawKeyDown", key_code), ("keyUp", 13)):
        cdp.send(
            "Input.dispatchKeyEvent",
            {
                "type": kind,
                "key": "Enter",
                "code": "Enter",
                "windowsVirtualKeyCode": code,
                "nativeVirtualKeyCode": code,
            },
        )


def test_enter_during_real_ime_composition_does_not_send(page: Page, server_url: str) -> None:
    asks: list[Request] = []
    page.on("request", lambda request: asks.append(request) if request.url.endswith("/ask") else None)
    page.goto(server_url)
    page.evaluate(RECORD_ENTERS)
    box = page.locator("#question")
    box.focus()
    cdp = page.context.new_cdp_session(page)

    # A real composition through the browser's IME path: compositionstart/update, the text underlined in the box.
    cdp.send("Input.imeSetComposition", {"text": LAMPPOSTS_ZH, "selectionStart": 4, "selectionEnd": 4})
    page.wait_for_function("window.__composition.includes('compositionstart')")
    assert box.input_value() == LAMPPOSTS_ZH
    # Enter to pick the candidate, while the composition is still open: the page must leave it to the IME.
    for key_code in (229, 13):
        ime_enter(cdp, key_code)
    page.wait_for_function("window.__enters.length === 2")
    untouched = {"taken": False, "exchanges": 0, "value": LAMPPOSTS_ZH}
    assert page.evaluate("window.__enters") == [
        {"composing": True, "keyCode": 229, **untouched},
        {"composing": True, "keyCode": 13, **untouched},
    ]

    # The IME commits the text (compositionend). Safari then still delivers the confirming Enter, as key code 229
    # with isComposing already false: that one must not send either.
    cdp.send("Input.insertText", {"text": LAMPPOSTS_ZH})
    page.wait_for_function("window.__composition.includes('compositionend')")
    ime_enter(cdp, 229)
    page.wait_for_function("window.__enters.length === 3")
    assert page.evaluate("window.__enters[2]") == {"composing": False, "keyCode": 229, **untouched}
    expect(page.locator(".exchange")).to_have_count(0)
    assert box.input_value() == LAMPPOSTS_ZH

    # A plain Enter after the composition sends the question, once, exactly as composed.
    with page.expect_request(lambda request: request.url.endswith("/ask")) as sent:
        page.keyboard.press("Enter")
    assert json.loads(sent.value.post_data or "{}")["question"] == LAMPPOSTS_ZH
    assert page.evaluate("window.__enters[3]") == {
        "composing": False,
        "keyCode": 13,
        "taken": True,
        "exchanges": 1,
        "value": "",
    }
    exchange = page.locator(".exchange")
    expect(exchange).to_have_count(1)
    exchange.locator(".answer, .no-answer, [role=alert]").first.wait_for()
    assert asked_text(exchange) == LAMPPOSTS_ZH
    assert [request.url for request in asks] == [f"{server_url}/ask"]  # none from the Enters during composition


def test_chinese_question_shows_as_typed(page: Page, server_url: str) -> None:
    page.goto(server_url)
    box = page.locator("#question")
    first_line, second_line = CANTONESE_MARKUP.split("\n")
    box.press_sequentially(first_line)
    box.press("Shift+Enter")
    box.press_sequentially(second_line)
    assert box.input_value() == CANTONESE_MARKUP
    with page.expect_request(lambda request: request.url.endswith("/ask")) as sent:
        box.press("Enter")
    assert json.loads(sent.value.post_data or "{}")["question"] == CANTONESE_MARKUP
    exchange = page.locator(".exchange")
    exchange.locator(".answer, .no-answer, [role=alert]").first.wait_for()

    assert asked_text(exchange) == CANTONESE_MARKUP  # text, not markup: no <b>, no <img>
    bubble = exchange.locator(".bubble-user")
    expect(bubble).to_have_css("white-space", "pre-wrap")  # the line break shows as one
    assert page.locator("#transcript b, #transcript img").count() == 0
    assert page.evaluate("window.__pwned") is None
    page.reload()  # and the same from the saved conversation
    expect(page.locator(".exchange")).to_have_count(1)
    assert asked_text(page.locator(".exchange")) == CANTONESE_MARKUP


def font_families(locator: Locator) -> list[str]:
    css = str(locator.evaluate("el => getComputedStyle(el).fontFamily"))
    return [name.strip().strip("\"'") for name in css.split(",")]


def test_composer_and_messages_have_chinese_fonts(page: Page, server_url: str) -> None:
    page.goto(server_url)
    exchange = ask(page, LAMPPOSTS_ZH)
    reply = exchange.locator(".bubble-bot").first
    for name, locator in (
        ("composer", page.locator("#question")),
        ("question", exchange.locator(".bubble-user")),
        ("reply", reply),
    ):
        families = font_families(locator)
        assert [font for font in CJK_FONTS if font not in families] == [], (name, families)
        assert families[-1] == "sans-serif", (name, families)  # the generic fallback, last


def test_narrow_viewport(browser: Browser, server_url: str) -> None:
    page, problems = _new_page(browser, 375, 740)
    try:
        page.goto(server_url)
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        exchange = ask(page, LAMPPOSTS)
        expect(exchange.locator(".answer")).to_be_visible()
        expect(page.locator("#send")).to_be_in_viewport()
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        exchange.locator("a.open-source").first.click()
        expect(page.locator("#doc-panel mark#cited")).to_be_in_viewport()
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        box = page.locator("#doc-panel").bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 375
    finally:
        page.context.close()
    assert problems == []


def test_reload_keeps_conversation_and_clear_empties_it(page: Page, server_url: str) -> None:
    page.goto(server_url)
    page.get_by_role("button", name="What is the AI Supercomputing Centre?").click()
    page.locator(".exchange .answer, .exchange .no-answer").first.wait_for()
    ask(page, LAMPPOSTS)
    expect(page.locator(".exchange")).to_have_count(2)

    page.reload()
    expect(page.locator(".exchange")).to_have_count(2)
    expect(page.locator(".exchange").nth(0)).to_contain_text("What is the AI Supercomputing Centre?")
    expect(page.locator(".exchange").nth(1).locator(".answer")).to_contain_text("AI-powered sensors")

    page.click("#clear-button")
    expect(page.locator(".exchange")).to_have_count(0)
    expect(page.locator("button.example")).to_have_count(4)
    page.reload()
    expect(page.locator(".exchange")).to_have_count(0)


def test_copy_answer_with_its_source(page: Page, server_url: str) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server_url)
    page.goto(server_url)
    exchange = ask(page, LAMPPOSTS)
    card = exchange.locator(".source-card").first
    title = card.locator(".source-title").text_content()
    section = card.locator(".source-section").text_content()
    answer = exchange.locator(".answer-text").text_content() or ""
    exchange.get_by_role("button", name="Copy the answer and its source").click()
    expect(exchange.locator(".copy-button")).to_contain_text("Copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.startswith(answer)
    assert f"{title} › {section}" in copied
    assert f"{server_url}/?doc=" in copied  # a link that opens the cited span


def test_waiting_disables_send_and_shows_typing(page: Page, server_url: str) -> None:
    held = hold_requests(page, "**/ask")
    page.goto(server_url)
    page.fill("#question", LAMPPOSTS)
    page.press("#question", "Enter")
    route = wait_for_held(page, held)

    typing = page.get_by_role("status")
    expect(typing).to_contain_text("Searching the documents…")
    expect(typing.locator(".typing-dots")).to_be_visible()
    expect(page.get_by_role("button", name="Send")).to_be_disabled()
    expect(page.locator("#transcript")).to_have_attribute("aria-busy", "true")
    page.fill("#question", OFF_TOPIC)  # a second question cannot jump the queue
    page.press("#question", "Enter")
    page.wait_for_timeout(150)
    expect(page.locator(".exchange")).to_have_count(1)
    assert len(held) == 1

    route.continue_()  # the real server answers
    expect(page.locator(".answer")).to_contain_text(LAMPPOST_PHRASE)
    expect(page.locator(".typing")).to_have_count(0)
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    expect(page.locator("#transcript")).to_have_attribute("aria-busy", "false")
    assert page.locator("#question").input_value() == OFF_TOPIC  # not lost: it can be sent now
    page.unroute("**/ask")


def test_server_error_is_readable(page: Page, server_url: str) -> None:
    page.goto(server_url)
    # No letters or digits: the page sends it, and the real server refuses it.
    page.fill("#question", "?!?")
    page.press("#question", "Enter")
    alert = page.locator(".exchange").get_by_role("alert")
    expect(alert).to_contain_text("Couldn't get an answer.")
    expect(alert).to_contain_text("no letters or digits")  # the server's own words
    expect(alert.get_by_role("button", name="Retry")).to_be_visible()
    expect(page.locator(".typing")).to_have_count(0)

    exchange = ask(page, LAMPPOSTS)  # the page is not stuck
    expect(exchange.locator(".answer")).to_contain_text(LAMPPOST_PHRASE)


def test_server_down_offers_retry(page: Page, server_url: str) -> None:
    page.goto(server_url)
    page.route("**/ask", lambda route: route.abort())  # the server is down
    exchange = ask(page, LAMPPOSTS)
    alert = exchange.get_by_role("alert")
    expect(alert).to_contain_text("Can't reach the server.")
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    alert.get_by_role("button", name="Retry").click()
    expect(alert).to_contain_text("Can't reach the server.")  # still down: still readable
    expect(page.locator(".typing")).to_have_count(0)
    page.unroute("**/ask")

    exchange.get_by_role("alert").get_by_role("button", name="Retry").click()
    expect(exchange.locator(".answer")).to_contain_text(LAMPPOST_PHRASE)
    expect(page.get_by_role("alert")).to_have_count(0)
    expect(page.locator(".exchange")).to_have_count(1)
    page.reload()  # the answered retry is part of the saved conversation
    expect(page.locator(".exchange .answer")).to_contain_text(LAMPPOST_PHRASE)


def test_documents_view(page: Page, server_url: str) -> None:
    listing = page.request.get(f"{server_url}/documents").json()
    page.goto(server_url)
    page.get_by_role("button", name="Documents").click()
    expect(page.get_by_role("dialog", name="Documents")).to_be_visible()
    panel = page.locator("#doc-panel")
    expect(panel.locator(".doc-list-item")).to_have_count(len(listing["documents"]))
    for document in listing["documents"]:
        expect(panel.get_by_role("heading", name=document["title"], exact=True)).to_be_visible()
    sections = sum(len(document["sections"]) for document in listing["documents"])
    expect(panel.locator("a.section-link")).to_have_count(sections)
    expect(panel).to_contain_text(f"{len(listing['documents'])} documents · {sections} sections")
    info = panel.locator(".index-info")
    expect(info).to_contain_text(listing["index_version"])
    built = info.locator("time")  # the build time, readable, with the exact instant in `datetime`
    expect(built).to_have_attribute("datetime", listing["built_at"])
    expect(built).to_contain_text(listing["built_at"][:4])
    expect(panel).to_contain_text("notes/smart-city")
    screenshot(page, "screenshot-documents.png")

    panel.get_by_role("link", name="Smart lampposts", exact=True).click()
    expect(panel.locator("#smart-lampposts")).to_be_in_viewport()
    expect(panel.locator(".doc-panel-title")).to_have_text("Smart City Initiatives in Hong Kong")
    assert "section=smart-lampposts" in page.url

    page.go_back()
    expect(panel).to_be_hidden()
    page.go_forward()
    expect(panel).to_be_visible()


def test_dark_theme_follows_the_system(browser: Browser, server_url: str) -> None:
    colours = {}
    for scheme in ("light", "dark"):
        page, problems = _new_page(browser, color_scheme=scheme)
        try:
            page.goto(server_url)
            exchange = ask(page, LAMPPOSTS)
            colours[scheme] = {
                name: page.locator(selector).evaluate(f"el => getComputedStyle(el).{prop}")
                for name, selector, prop in [
                    ("page", "body", "backgroundColor"),
                    ("text", "body", "color"),
                    ("bubble", ".answer", "backgroundColor"),
                    ("mark", ".answer-text mark", "backgroundColor"),
                ]
            }
            expect(exchange.locator(".answer")).to_be_visible()
        finally:
            page.context.close()
        assert problems == []
    light, dark = colours["light"], colours["dark"]
    for name in light:
        assert light[name] != dark[name], f"{name} looks the same in both themes"
    assert luminance(light["page"]) > 0.8 > 0.05 > luminance(dark["page"])
    assert luminance(dark["text"]) > 0.6 > 0.05 > luminance(light["text"])
    assert luminance(dark["bubble"]) < 0.05


def test_screen_reader_semantics(page: Page, server_url: str) -> None:
    page.goto(server_url)
    log = page.get_by_role("log", name="Conversation")
    expect(log).to_have_attribute("aria-live", "polite")
    expect(page.get_by_role("textbox", name="Your question")).to_be_visible()
    for name in ("Send", "Documents", "Clear conversation", LAMPPOSTS):
        expect(page.get_by_role("button", name=name, exact=True)).to_have_count(1)
    expect(page.get_by_role("link", name="API", exact=True)).to_be_visible()

    exchange = ask(page, LAMPPOSTS)
    expect(log.locator(".exchange")).to_have_count(1)  # replies are added inside the live log
    expect(exchange.get_by_role("button", name="Copy the answer and its source")).to_be_visible()
    section = exchange.locator(".source-section").first.text_content()
    expect(
        exchange.get_by_role("link", name=re.compile(f"^Open in document: .+ › {re.escape(section or '')}$")).first
    ).to_be_visible()
    page.get_by_role("button", name="Documents").click()
    expect(page.get_by_role("dialog", name="Documents").locator(".doc-list")).to_be_visible()
    expect(page.get_by_role("button", name="Close document view")).to_be_visible()

    # Every control on the page has an accessible name (an unnamed one shows as a bare `- button`).
    tree = page.locator("body").aria_snapshot()
    unnamed = re.findall(r"^\s*- (button|link|textbox|checkbox|combobox)\s*(?::|$)", tree, flags=re.M)
    assert unnamed == [], tree


def test_fonts_are_local_and_cover_chinese(page: Page, server_url: str) -> None:
    page.goto(server_url)
    family = page.locator("body").evaluate("el => getComputedStyle(el).fontFamily")
    assert any(cjk in family for cjk in ("PingFang HK", "Noto Sans CJK TC", "Microsoft JhengHei")), family
    assert page.locator("#question").evaluate("el => getComputedStyle(el).fontFamily") == family
    # No web fonts or remote stylesheets at all: system fonts only, so nothing to fetch.
    assert page.evaluate("document.fonts.size") == 0
    sheets = page.evaluate("[...document.styleSheets].map(s => s.href)")
    assert sheets == [f"{server_url}/static/style.css"]
    scripts = page.evaluate("[...document.scripts].map(s => s.src)")
    assert scripts == [f"{server_url}/static/app.js"]  # no framework download


def test_content_security_policy_is_enforced(browser: Browser, server_url: str) -> None:
    page, problems = _new_page(browser)
    page.route("https://example.com/**", lambda route: route.abort())  # in case the policy lets them out
    try:
        response = page.goto(server_url)
        assert response is not None
        policy = response.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "script-src 'self'" in policy
        violations = page.evaluate(
            """async () => {
                const seen = [];
                document.addEventListener("securitypolicyviolation", (e) => seen.push(e.violatedDirective));
                const script = document.createElement("script");
                script.textContent = "window.__inline = 1";
                document.body.append(script);
                const image = new Image();
                image.src = "https://example.com/tracker.png";
                document.body.append(image);
                await fetch("https://example.com/").catch(() => null);
                await new Promise((resolve) => setTimeout(resolve, 200));
                return seen;
            }"""
        )
        assert page.evaluate("window.__inline") is None
        assert {"script-src-elem", "img-src", "connect-src"} <= set(violations), violations
    finally:
        page.context.close()
    assert problems, "the browser reported no CSP violation"


# Chinese questions typed into the page: the reply is the verbatim English sentence with its citation.
HKSTP_ZH = "香港科技園幾時成立？"
HKSTP_SENTENCE = "The Hong Kong Science and Technology Parks Corporation (HKSTP) was formed on 7 May 2001."
HKSTP_SECTION = "ASTRI and Hong Kong Science Park"
OFF_TOPIC_ZH = "2018年世界盃冠軍是誰？"


def ime_commit_and_send(page: Page, text: str) -> Locator:
    """Compose `text` through the browser's IME path, commit it, press Enter; the exchange once answered."""
    box = page.locator("#question")
    box.focus()
    cdp = page.context.new_cdp_session(page)
    cdp.send("Input.imeSetComposition", {"text": text, "selectionStart": len(text), "selectionEnd": len(text)})
    expect(box).to_have_value(text)
    cdp.send("Input.insertText", {"text": text})  # the IME commits the candidate
    expect(box).to_have_value(text)
    with page.expect_request(lambda request: request.url.endswith("/ask")) as sent:
        box.press("Enter")
    assert json.loads(sent.value.post_data or "{}")["question"] == text
    exchange = page.locator(".exchange").last
    exchange.locator(".answer, .no-answer, [role=alert]").first.wait_for()
    assert asked_text(exchange) == text
    return exchange


def test_chinese_question_shows_the_english_answer_with_its_citation(page: Page, server_url: str) -> None:
    listing = page.request.get(f"{server_url}/documents").json()
    title = next(d["title"] for d in listing["documents"] if d["id"] == "notes/rise-of-hong-kong-ai")
    page.goto(server_url)
    exchange = ime_commit_and_send(page, HKSTP_ZH)

    answer = exchange.locator(".answer")
    expect(answer.locator(".answer-text")).to_have_text(HKSTP_SENTENCE)
    expect(answer.locator(".answer-text mark")).to_have_text("7 May 2001")
    expect(answer.locator(".answer-cue")).to_contain_text(f"From {title}, section {HKSTP_SECTION}")
    card = exchange.locator(".source-card").first
    expect(card.locator(".source-title")).to_have_text(title)
    expect(card.locator(".source-section")).to_have_text(HKSTP_SECTION)
    expect(card.locator("blockquote")).to_have_text(HKSTP_SENTENCE)
    expect(card.locator("blockquote mark")).to_have_text("7 May 2001")
    expect(exchange.locator(".no-answer, [role=alert]")).to_have_count(0)

    card.locator("a.open-source").click()  # the citation opens the English document at the sentence
    panel = page.locator("#doc-panel")
    expect(panel.locator(".doc-panel-title")).to_have_text(title)
    expect(panel.locator("mark#cited")).to_have_text(HKSTP_SENTENCE)
    expect(panel.locator("mark#cited")).to_be_in_viewport()


def test_off_topic_chinese_question_is_not_covered_with_closest_sections(page: Page, server_url: str) -> None:
    related = page.request.post(f"{server_url}/ask", data={"question": OFF_TOPIC_ZH}).json()["related"]
    assert related
    page.goto(server_url)
    exchange = ime_commit_and_send(page, OFF_TOPIC_ZH)

    bubble = exchange.locator(".no-answer")
    expect(bubble).to_contain_text("The documents don't cover this.")
    expect(bubble).to_contain_text("Closest sections:")
    expect(bubble.locator("a.related-link")).to_have_text([r["section"] for r in related])
    expect(exchange.locator(".answer")).to_have_count(0)


# A real server whose corpus the test edits and rebuilds, for answers given before the documents changed.
ADMIN_TOKEN = "web-test-admin-token-0123456789"
TEA_QUESTION = "How hot should the water be for oolong tea?"
TEA_SENTENCE = "Oolong brews best with water at 90 degrees Celsius."
REVISION = "This guide was revised in 2025 after a tasting panel in Sheung Wan."


@pytest.fixture
def changing_server(tmp_path: Path, embedder: Embedder, start_server: Callable[[FastAPI], str]) -> dict[str, Any]:
    """A live server over a copy of the tiny corpus, with the admin API on so the test can rebuild it."""
    corpus = tmp_path / "corpus"
    shutil.copytree(FIXTURES / "tiny-corpus", corpus)
    settings = Settings(
        corpus_dir=corpus,
        index_dir=tmp_path / "index",
        admin_token=ADMIN_TOKEN,
        reload_interval=0.2,
        rate_limit="none",
    )
    build_index(corpus, settings.index_dir, embedder)
    url = start_server(create_app(settings, QAService(settings, embedder)))
    return {"url": url, "corpus": corpus}


def revise_and_rebuild(server: dict[str, Any]) -> None:
    """Put a new paragraph at the top of the tea guide (so every later offset moves), rebuild through the admin
    API, and wait until the server answers from the new version."""
    url = server["url"]
    old = httpx.get(f"{url}/health").json()["index_version"]
    tea = server["corpus"] / "guides" / "tea.md"
    title, rest = tea.read_text(encoding="utf-8").split("\n\n", 1)
    tea.write_text(f"{title}\n\n{REVISION}\n\n{rest}", encoding="utf-8")
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    job = httpx.post(f"{url}/index/rebuild", headers=auth).json()
    deadline = time.monotonic() + 120
    while job["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
        job = httpx.get(f"{url}/index/jobs/{job['id']}", headers=auth).json()
    assert job["state"] == "succeeded", job
    while httpx.get(f"{url}/health").json()["index_version"] == old:
        assert time.monotonic() < deadline, "the server never picked up the new version"
        time.sleep(0.1)


def test_changed_document_is_fetched_again_after_a_rebuild(page: Page, changing_server: dict[str, Any]) -> None:
    page.goto(changing_server["url"])
    panel = page.locator("#doc-panel")
    first = ask(page, TEA_QUESTION)
    expect(first.locator(".answer-text")).to_have_text(TEA_SENTENCE)
    first.locator("a.open-source").first.click()
    expect(panel.locator("mark#cited")).to_have_text(TEA_SENTENCE)  # the page has the document now
    page.keyboard.press("Escape")

    revise_and_rebuild(changing_server)
    second = ask(page, TEA_QUESTION)  # the same page, no reload: an answer from the new version
    expect(second.locator(".source-card blockquote").first).to_have_text(TEA_SENTENCE)
    old_href = first.locator("a.open-source").first.get_attribute("href")
    new_href = second.locator("a.open-source").first.get_attribute("href")
    assert old_href != new_href  # the sentence moved
    second.locator("a.open-source").first.click()
    expect(panel.locator("mark#cited")).to_have_text(TEA_SENTENCE)  # the new offsets on the new text
    expect(panel.locator("#doc-panel-body")).to_contain_text(REVISION)
    expect(panel.locator(".doc-changed")).to_have_count(0)
    page.keyboard.press("Escape")

    # The first answer's offsets point into the old text: nothing wrong is marked, and the page says why.
    first.locator("a.open-source").first.click()
    expect(panel.locator(".doc-changed")).to_have_text(
        "This document has changed since this answer: the quote is no longer at that place, so nothing is highlighted."
    )
    expect(panel.locator("#doc-panel-body")).to_contain_text(REVISION)
    expect(panel.locator("mark")).to_have_count(0)


def test_answer_saved_before_a_rebuild_says_its_document_changed(page: Page, changing_server: dict[str, Any]) -> None:
    page.goto(changing_server["url"])
    expect(ask(page, TEA_QUESTION).locator(".answer-text")).to_have_text(TEA_SENTENCE)
    revise_and_rebuild(changing_server)

    page.reload()  # the answer comes back from storage, with the old version's offsets
    panel = page.locator("#doc-panel")
    saved = page.locator(".exchange").first
    expect(saved.locator(".answer-text")).to_have_text(TEA_SENTENCE)
    saved.locator("a.open-source").first.click()
    expect(panel.locator(".doc-changed")).to_contain_text("This document has changed since this answer")
    expect(panel.locator("#doc-panel-body")).to_contain_text(REVISION)
    expect(panel.locator("mark")).to_have_count(0)
    page.reload()  # the panel's own URL, reloaded: still checked against the quote
    expect(panel.locator(".doc-changed")).to_contain_text("This document has changed since this answer")
    expect(panel.locator("mark")).to_have_count(0)

    page.get_by_role("button", name="Close document view").click()
    fresh = ask(page, TEA_QUESTION)  # a new answer's citation is marked as usual
    fresh.locator("a.open-source").first.click()
    expect(panel.locator("mark#cited")).to_have_text(TEA_SENTENCE)
    expect(panel.locator(".doc-changed")).to_have_count(0)


def test_hung_server_times_out_into_retry(page: Page, server_url: str) -> None:
    page.clock.install()  # the page's timers run on the test's clock: 30 seconds pass at once
    held = hold_requests(page, "**/ask")  # the server takes the question and never answers
    page.goto(server_url)
    page.fill("#question", LAMPPOSTS)
    page.press("#question", "Enter")
    wait_for_held(page, held)
    page.fill("#question", OFF_TOPIC)  # typed while waiting
    page.clock.run_for(29_000)
    expect(page.locator(".typing")).to_be_visible()
    page.clock.run_for(2_000)

    alert = page.locator(".exchange").get_by_role("alert")
    expect(alert).to_contain_text("Couldn't get an answer.")
    expect(alert).to_contain_text("The server did not answer within 30 seconds.")
    expect(page.locator(".typing")).to_have_count(0)
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    expect(page.locator("#transcript")).to_have_attribute("aria-busy", "false")
    expect(page.locator("#question")).to_have_value(OFF_TOPIC)

    page.unroute("**/ask")  # the server is back
    alert.get_by_role("button", name="Retry").click()
    expect(page.locator(".exchange .answer")).to_contain_text(LAMPPOST_PHRASE)
    expect(page.locator(".exchange")).to_have_count(1)
    exchange = ask(page, OFF_TOPIC)  # and the box sends again
    expect(exchange.locator(".no-answer")).to_be_visible()


def test_escape_while_typing_beside_the_panel_keeps_the_typing(page: Page, server_url: str) -> None:
    page.goto(server_url)
    exchange = ask(page, LAMPPOSTS)
    exchange.locator("a.open-source").first.click()
    panel = page.locator("#doc-panel")
    expect(panel.locator("mark#cited")).to_be_visible()
    box = page.locator("#question")
    box.click()  # 1280 wide: the panel sits beside the chat, which stays usable
    page.keyboard.type("follow-up about")
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(box).to_be_focused()
    page.keyboard.type(" privacy")
    expect(box).to_have_value("follow-up about privacy")


def test_narrow_panel_makes_the_page_behind_it_inert(browser: Browser, server_url: str) -> None:
    page, problems = _new_page(browser, 375, 740)
    try:
        page.goto(server_url)
        exchange = ask(page, LAMPPOSTS)
        link = exchange.locator("a.open-source").first
        href = link.get_attribute("href")
        link.click()
        panel = page.locator("#doc-panel")
        expect(panel.locator("mark#cited")).to_be_visible()
        expect(panel).to_have_attribute("aria-modal", "true")
        behind = ["a.skip-link", "header.site-header", "main.chat"]
        assert [page.locator(s).evaluate("el => el.inert") for s in behind] == [True] * 3
        outside = "(a => !!a && a !== document.body && !a.closest('#doc-panel'))(document.activeElement)"
        for key in ["Tab"] * 8 + ["Shift+Tab"] * 8:
            page.keyboard.press(key)
            assert not page.evaluate(outside), page.evaluate("document.activeElement.outerHTML.slice(0, 120)")

        page.set_viewport_size({"width": 1280, "height": 800})  # side by side now: the page is back
        expect(panel).to_have_attribute("aria-modal", "false")
        assert [page.locator(s).evaluate("el => el.inert") for s in behind] == [False] * 3
        page.locator("#question").focus()
        expect(page.locator("#question")).to_be_focused()
        page.set_viewport_size({"width": 375, "height": 740})  # covering again: focus moves into the panel
        expect(panel).to_have_attribute("aria-modal", "true")
        assert page.evaluate("!!document.activeElement.closest('#doc-panel')")

        page.keyboard.press("Escape")
        expect(panel).to_be_hidden()
        assert [page.locator(s).evaluate("el => el.inert") for s in behind] == [False] * 3
        assert page.evaluate("document.activeElement.getAttribute('href')") == href
    finally:
        page.context.close()
    assert problems == []


def test_long_question_is_kept_counted_and_refused(page: Page, server_url: str) -> None:
    asks: list[Request] = []
    page.on("request", lambda request: asks.append(request) if request.url.endswith("/ask") else None)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server_url)
    page.goto(server_url)
    box = page.locator("#question")
    count = page.locator("#question-count")
    expect(count).to_be_hidden()

    pasted = LAMPPOSTS + " " + "Please explain in detail. " * 40 + "END"
    over = len(pasted) - 1000
    page.evaluate("text => navigator.clipboard.writeText(text)", pasted)
    box.focus()
    page.keyboard.press("Control+V")
    expect(box).to_have_value(pasted)  # nothing cut
    expect(count).to_be_visible()
    expect(count).to_have_text(f"{len(pasted):,} / 1,000 characters: {over} characters too many to send")
    expect(box).to_have_attribute("aria-invalid", "true")
    expect(box).to_have_attribute("aria-describedby", re.compile(r"\bquestion-count\b"))
    # Screen readers hear the crossing of the limit once, not every keystroke's count.
    status = page.locator("#question-count-status")
    expect(status).to_have_attribute("aria-live", "polite")
    expect(status).to_have_text(f"{len(pasted):,} / 1,000 characters: {over} characters too many to send")
    box.press("End")
    box.type("!")
    expect(count).to_have_text(f"{len(pasted) + 1:,} / 1,000 characters: {over + 1} characters too many to send")
    expect(status).to_have_text(f"{len(pasted):,} / 1,000 characters: {over} characters too many to send")
    box.press("Backspace")
    box.press("Enter")
    expect(count).to_have_text(
        f"Not sent: the question is {over} characters over the 1,000-character limit. Shorten it, then send."
    )
    expect(status).to_have_text(
        f"Not sent: the question is {over} characters over the 1,000-character limit. Shorten it, then send."
    )
    page.wait_for_timeout(200)
    expect(page.locator(".exchange")).to_have_count(0)
    assert asks == []
    expect(box).to_have_value(pasted)
    expect(box).to_be_focused()

    # Counted in code points, as the server counts: 1,000 of them are 1,200 UTF-16 units here, and allowed.
    at_limit = "智慧燈柱𨋢" * 200
    box.fill("")
    page.evaluate("text => navigator.clipboard.writeText(text)", at_limit)
    page.keyboard.press("Control+V")
    expect(box).to_have_value(at_limit)
    expect(count).to_have_text("1,000 / 1,000 characters")
    expect(box).not_to_have_attribute("aria-invalid", re.compile(".*"))
    with page.expect_request(lambda request: request.url.endswith("/ask")) as sent:
        box.press("Enter")
    assert json.loads(sent.value.post_data or "{}")["question"] == at_limit
    reply = page.locator(".exchange").locator(".answer, .no-answer, [role=alert]").first
    expect(reply).not_to_have_attribute("role", "alert")
    expect(count).to_be_hidden()


def test_keyboard_example_and_retry_leave_focus_in_the_question_box(page: Page, server_url: str) -> None:
    page.goto(server_url)
    box = page.locator("#question")
    page.get_by_role("button", name=LAMPPOSTS).focus()
    page.keyboard.press("Enter")
    expect(page.locator(".exchange .answer")).to_contain_text(LAMPPOST_PHRASE)
    expect(box).to_be_focused()

    page.route("**/ask", lambda route: route.abort())
    exchange = ask(page, OFF_TOPIC)
    page.unroute("**/ask")
    exchange.get_by_role("button", name="Retry").focus()
    page.keyboard.press("Enter")
    expect(exchange.locator(".no-answer")).to_be_visible()
    expect(box).to_be_focused()


def test_retried_question_keeps_its_place_after_reload(page: Page, server_url: str) -> None:
    astri = "When was ASTRI founded?"
    page.goto(server_url)
    page.route("**/ask", lambda route: route.abort())
    first = ask(page, astri)
    page.unroute("**/ask")
    ask(page, LAMPPOSTS)
    first.get_by_role("button", name="Retry").click()
    expect(first.locator(".answer")).to_be_visible()

    page.reload()
    questions = page.locator(".exchange .bubble-user")
    expect(questions).to_have_count(2)
    expect(questions).to_contain_text([astri, LAMPPOSTS])  # page order, not the order the answers came


def test_closest_section_is_not_called_a_citation(page: Page, server_url: str) -> None:
    page.goto(server_url)
    exchange = ask(page, OFF_TOPIC)
    exchange.locator("a.related-link").first.click()
    tools = page.locator("#doc-panel .doc-tools")
    expect(tools).to_contain_text("This is the closest section to your question, not an answer to it")
    expect(tools).not_to_contain_text("cited")
    expect(tools.get_by_role("button")).to_have_text("Jump to the passage")
    expect(page.locator("#doc-panel mark#cited")).to_be_in_viewport()


def test_chinese_question_bubble_has_its_language(page: Page, server_url: str) -> None:
    page.goto(server_url)
    chinese = ask(page, HKSTP_ZH)
    bubble = chinese.locator(".bubble-user")
    expect(bubble).to_have_attribute("lang", "zh")
    expect(bubble.locator(".visually-hidden")).to_have_attribute("lang", "en")  # "You asked: " stays English
    expect(chinese.locator(".answer-text")).to_have_text(HKSTP_SENTENCE)
    expect(chinese.locator(".answer-text")).not_to_have_attribute("lang", re.compile(".*"))  # the English quote
    english = ask(page, LAMPPOSTS)
    expect(english.locator(".bubble-user")).not_to_have_attribute("lang", re.compile(".*"))
    page.reload()
    expect(page.locator(".exchange .bubble-user").first).to_have_attribute("lang", "zh")


def test_confidence_score_is_text_for_everyone(page: Page, server_url: str) -> None:
    page.goto(server_url)
    exchange = ask(page, LAMPPOSTS)
    score = exchange.locator(".answer-score")
    expect(score).to_be_visible()
    expect(score).to_have_text(re.compile(r"^Confidence score [01]\.\d\d of 1$"))
    # In the accessibility tree (not only a hover title), so keyboard and screen-reader users get it too.
    assert re.search(r"Confidence score [01]\.\d\d of 1", exchange.aria_snapshot())
    assert exchange.locator("[title]").count() == 0
