"""The chat page in a real Chromium (Debian's /usr/bin/chromium) against the live test server.

Every test gets a fresh browser context, so sessionStorage and history start empty. Screenshots of three
states go to $HKAI_QA_SCREENSHOTS (`make screenshots` sets it to docs/ for the README), else to a temp folder."""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest
from playwright.sync_api import Browser, CDPSession, Locator, Page, Request, Route, expect, sync_playwright

pytestmark = pytest.mark.browser

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
    expect(box).to_have_attribute("maxlength", "1000")
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
    # Past the box's maxlength (a script can do that), so the real server refuses the question.
    page.locator("#question").evaluate("(box, n) => { box.value = 'x'.repeat(n); }", 1001)
    page.press("#question", "Enter")
    alert = page.locator(".exchange").get_by_role("alert")
    expect(alert).to_contain_text("Couldn't get an answer.")
    expect(alert).to_contain_text("longer than 1000 characters")  # the server's own words
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
