"""The chat page in a real Chromium (Debian's /usr/bin/chromium) against the live test server.

Every test gets a fresh browser context, so sessionStorage and history start empty. Screenshots of three
states go to $HKAI_QA_SCREENSHOTS (`make screenshots` sets it to docs/ for the README), else to a temp folder."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, Route, expect, sync_playwright

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
SCRIPT_PAYLOAD = "<script>window.__pwned = 1</script>"
IMG_PAYLOAD = '<img src=x onerror="window.__pwned = 2">'


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} not found: the browser tests need Debian's Chromium (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def _new_page(browser: Browser, width: int = 1280, height: int = 800) -> tuple[Page, list[str]]:
    context = browser.new_context(
        viewport={"width": width, "height": height}, color_scheme="light", reduced_motion="reduce"
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


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name))


def test_answer_with_sources(page: Page, server_url: str) -> None:
    page.goto(server_url)
    expect(page.locator("button.example")).to_have_count(4)
    exchange = ask(page, LAMPPOSTS)

    expect(exchange.locator(".bubble-user")).to_contain_text(LAMPPOSTS)
    answer = exchange.locator(".answer")
    expect(answer).to_contain_text("AI-powered sensors")
    expect(answer.locator(".answer-cue")).to_contain_text("confidence")
    cards = exchange.locator(".source-card")
    assert cards.count() >= 1
    section = cards.first.locator(".source-section").text_content()
    assert section in {"Smart City Initiatives", "Smart lampposts"}
    expect(answer.locator(".answer-cue")).to_contain_text(f"› {section}")
    expect(cards.first.locator("blockquote")).not_to_be_empty()
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
    section = exchange.locator(".source-card .source-section").first.text_content()
    exchange.get_by_role("button", name="Copy").click()
    expect(exchange.locator(".copy-button")).to_have_text("Copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert "AI-powered sensors" in copied
    assert f"› {section}" in copied


def test_server_errors_offer_retry(page: Page, server_url: str) -> None:
    held: list[Route] = []
    page.route("**/ask", lambda route: held.append(route))
    page.goto(server_url)
    page.fill("#question", LAMPPOSTS)
    page.press("#question", "Enter")
    typing = page.locator(".typing")
    expect(typing).to_contain_text("Searching the documents…")
    expect(page.locator("#send")).to_be_disabled()
    for _ in range(100):
        if held:
            break
        page.wait_for_timeout(20)
    error = {"error": {"type": "internal_error", "message": "something went wrong on our side"}}
    held[0].fulfill(status=500, content_type="application/json", body=json.dumps(error))

    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("something went wrong on our side")
    expect(typing).to_have_count(0)
    expect(page.locator("#send")).to_be_enabled()
    page.unroute("**/ask")

    page.route("**/ask", lambda route: route.abort())  # the server is down
    alert.get_by_role("button", name="Retry").click()
    expect(page.get_by_role("alert")).to_contain_text("Can't reach the server.")
    page.unroute("**/ask")

    page.get_by_role("alert").get_by_role("button", name="Retry").click()
    expect(page.locator(".answer")).to_contain_text("AI-powered sensors")
    expect(page.get_by_role("alert")).to_have_count(0)
    expect(page.locator(".exchange")).to_have_count(1)


def test_documents_view(page: Page, server_url: str) -> None:
    listing = page.request.get(f"{server_url}/documents").json()
    page.goto(server_url)
    page.click("#documents-button")
    panel = page.locator("#doc-panel")
    expect(panel.locator(".doc-list-item")).to_have_count(len(listing["documents"]))
    expect(panel.locator(".index-info")).to_contain_text(listing["index_version"])
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
