/* hkai-qa chat page. Plain DOM, no framework, no build step.
 * Safety rule: text from the corpus, the questions and the answers only ever reaches the page through
 * textContent / text nodes (el() below). Nothing here parses strings as HTML. */
"use strict";

(() => {
  const STORAGE_KEY = "hkai-qa.conversation.v1";
  const MAX_STORED = 50;
  const TOP_K = 3;
  // Code points after trimming, as the server counts them; the server writes its own limit into the page.
  const MAX_QUESTION = Number.parseInt(document.documentElement.dataset.maxQuestion, 10) || 1000;
  const COUNT_FROM = Math.floor(MAX_QUESTION * 0.9); // the counter shows from here, before the limit surprises
  const REQUEST_TIMEOUT_MS = 30_000; // a server that has not answered by then is treated as down
  // style.css puts the panel beside the chat from this width; below it the panel covers the page.
  const SIDE_BY_SIDE = matchMedia("(min-width: 72rem)");
  const EXAMPLES = [
    "What are smart lampposts equipped with?",
    "When was ASTRI founded?",
    "What is the AI Supercomputing Centre?",
    "What is Cap. 486?",
  ];

  const WELCOME =
    "Every answer is a sentence lifted from the documents, shown with its source. " +
    "When the documents don't say, you'll be told so, along with the closest sections to read.";

  const byId = (id) => document.getElementById(id);
  const ui = {
    transcript: byId("transcript"),
    composer: byId("composer"),
    question: byId("question"),
    count: byId("question-count"),
    countStatus: byId("question-count-status"),
    send: byId("send"),
    clear: byId("clear-button"),
    documents: byId("documents-button"),
    panel: byId("doc-panel"),
    panelTitle: byId("doc-panel-title"),
    panelMeta: byId("doc-panel-meta"),
    panelBody: byId("doc-panel-body"),
    panelBack: byId("doc-back"),
    panelClose: byId("doc-close"),
  };

  let conversation = loadConversation();
  let pending = false;
  let panelToken = 0; // ignores replies to panel requests that were superseded
  let panelOpener = null;
  let wasOver = false; // whether the question was over the length limit at the last count
  // Offsets in an answer refer to the document as the index that answered saw it, so a cached document is only
  // reused for links of the index version its text came from; the newest version the server reported empties
  // the cache of the others.
  let indexVersion = null;
  const documentCache = new Map();
  const linkTargets = new WeakMap(); // document link -> { kind, quote, version } of what it points at
  const exchangeEntries = new WeakMap(); // .exchange node -> its saved { question, response }

  // ---------------------------------------------------------------- DOM helpers

  /** createElement with attributes; children are nodes or strings (strings become text nodes). */
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }

  const hidden = (text) => el("span", { class: "visually-hidden" }, text);
  const count = (n) => n.toLocaleString("en-US");
  const plural = (n, word) => `${count(n)} ${word}${n === 1 ? "" : "s"}`;
  const sliceChars = (chars, from, to) => chars.slice(from, to).join("");
  const clampInt = (value, low, high) => Math.min(Math.max(value, low), high);

  /** Append chars[from, to) to parent, wrapping its overlap with [markFrom, markTo) in <mark>. */
  function appendMarked(parent, chars, from, to, markFrom, markTo, markAttrs = {}) {
    const a = Math.max(from, markFrom ?? to);
    const b = Math.min(to, markTo ?? from);
    if (!(a < b)) {
      appendPlain(parent, chars, from, to);
      return null;
    }
    appendPlain(parent, chars, from, a);
    const mark = el("mark", markAttrs, sliceChars(chars, a, b));
    parent.append(mark);
    appendPlain(parent, chars, b, to);
    return mark;
  }

  /** Plain text; "Source: ..." lines of the corpus get a quieter style. */
  function appendPlain(parent, chars, from, to) {
    if (from >= to) return;
    const text = sliceChars(chars, from, to);
    const pattern = /^Source:.*$/gm;
    let last = 0;
    for (const match of text.matchAll(pattern)) {
      if (match.index > last) parent.append(text.slice(last, match.index));
      parent.append(el("span", { class: "doc-source" }, match[0]));
      last = match.index + match[0].length;
    }
    if (last < text.length) parent.append(text.slice(last));
  }

  /** The `lang` of text written mostly in Chinese, Japanese or Korean (so screen readers switch voice); null
   * for the rest, which the page's lang="en" covers. One CJK character counts as much as one Latin word. */
  function languageOf(text) {
    const cjk = text.match(/[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}]/gu);
    if (!cjk || cjk.length < (text.match(/\p{Script=Latin}+/gu) || []).length) return null;
    if (/[\p{Script=Hiragana}\p{Script=Katakana}]/u.test(text)) return "ja";
    if (/\p{Script=Hangul}/u.test(text)) return "ko";
    return "zh";
  }

  /** Only same-origin paths from the API become hrefs; anything else is rebuilt from the fields. */
  function citationHref(c) {
    if (typeof c.url === "string" && c.url.startsWith("/") && !c.url.startsWith("//")) return c.url;
    return documentHref(c.document_id, { start: c.start, end: c.end });
  }

  function documentHref(id, { section, start, end } = {}) {
    const params = new URLSearchParams({ doc: id });
    if (section) params.set("section", section);
    if (Number.isInteger(start) && Number.isInteger(end)) {
      params.set("start", String(start));
      params.set("end", String(end));
    }
    return `/?${params}${section ? `#${encodeURIComponent(section)}` : ""}`;
  }

  // ---------------------------------------------------------------- storage

  function loadConversation() {
    try {
      const saved = JSON.parse(sessionStorage.getItem(STORAGE_KEY) || "[]");
      return Array.isArray(saved) ? saved.filter((e) => e && typeof e.question === "string" && e.response) : [];
    } catch {
      return [];
    }
  }

  /** The answered exchanges in the order the page shows them (a retried question keeps its place). */
  function answeredInPageOrder() {
    return Array.from(ui.transcript.querySelectorAll(".exchange"), (node) => exchangeEntries.get(node)).filter(
      Boolean,
    );
  }

  function saveConversation() {
    try {
      if (conversation.length) sessionStorage.setItem(STORAGE_KEY, JSON.stringify(conversation.slice(-MAX_STORED)));
      else sessionStorage.removeItem(STORAGE_KEY);
    } catch {
      /* storage full or disabled: the conversation just won't survive a reload */
    }
    ui.clear.disabled = conversation.length === 0;
  }

  // ---------------------------------------------------------------- network

  const UNREACHABLE = "Can't reach the server. Check that it is running, then retry.";
  const TIMED_OUT =
    `The server did not answer within ${REQUEST_TIMEOUT_MS / 1000} seconds. ` +
    "It may be busy or stuck; retry in a moment.";

  async function requestJSON(path, options = {}) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
    let response;
    let data = null;
    try {
      try {
        response = await fetch(path, {
          ...options,
          signal: controller.signal,
          headers: { Accept: "application/json", ...options.headers },
        });
      } catch {
        throw new Error(controller.signal.aborted ? TIMED_OUT : UNREACHABLE);
      }
      try {
        data = await response.json();
      } catch {
        if (controller.signal.aborted) throw new Error(TIMED_OUT); // the body stalled
        /* not JSON: handled below */
      }
    } finally {
      clearTimeout(timer);
    }
    if (!response.ok) {
      const message = data && data.error && typeof data.error.message === "string" ? data.error.message : "";
      const error = new Error(message || `The server had a problem (HTTP ${response.status}).`);
      error.status = response.status;
      throw error;
    }
    if (!data) throw new Error("The server sent a reply the page could not read.");
    return data;
  }

  const postJSON = (path, body) =>
    requestJSON(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });

  /** Remember the newest index version the server reported; documents cached for another one are dropped. */
  function noteIndexVersion(version) {
    if (typeof version !== "string" || version === indexVersion) return;
    indexVersion = version;
    documentCache.clear();
  }

  /** A document as the index `version` that made a link has it: cached by the version the server says the
   * text is from (a new version empties the cache); fetched when that version's copy is not at hand. */
  async function fetchDocument(id, version) {
    const key = (v) => `${v}\n${id}`;
    if (typeof version === "string" && documentCache.has(key(version))) return documentCache.get(key(version));
    const doc = await requestJSON("/documents/" + id.split("/").map(encodeURIComponent).join("/"));
    doc.chars = Array.from(doc.text); // offsets are Unicode code points
    noteIndexVersion(doc.index_version);
    if (typeof doc.index_version === "string") documentCache.set(key(doc.index_version), doc);
    return doc;
  }

  // ---------------------------------------------------------------- transcript

  function renderWelcome() {
    const list = el("ul", { class: "examples", "aria-labelledby": "examples-label" });
    for (const example of EXAMPLES) {
      list.append(el("li", {}, el("button", { type: "button", class: "example", "data-question": example }, example)));
    }
    return el(
      "div",
      { class: "welcome" },
      el("h2", { class: "welcome-title" }, "Ask about AI in Hong Kong"),
      el("p", { class: "welcome-text" }, WELCOME),
      el("p", { class: "welcome-label", id: "examples-label" }, "Try one of these"),
      list,
    );
  }

  function renderExchange(question) {
    const slot = el("div", { class: "reply" });
    const prefix = el("span", { class: "visually-hidden", lang: "en" }, "You asked: ");
    const asked = el("div", { class: "bubble bubble-user", lang: languageOf(question) }, prefix, question);
    const node = el("article", { class: "exchange" }, asked, slot);
    return { node, slot };
  }

  function renderTyping() {
    return el(
      "div",
      { class: "bubble bubble-bot typing", role: "status" },
      el("span", { class: "typing-dots", "aria-hidden": "true" }, el("span"), el("span"), el("span")),
      el("span", { class: "typing-text" }, "Searching the documents…"),
    );
  }

  function renderError(message, retry) {
    const button = el("button", { type: "button", class: "button button-small retry-button" }, "Retry");
    button.addEventListener("click", retry);
    return el(
      "div",
      { class: "bubble bubble-bot bubble-error", role: "alert" },
      el("div", { class: "error-body" },
        el("p", { class: "error-title" }, "Couldn't get an answer."),
        el("p", { class: "error-text" }, message)),
      button,
    );
  }

  function renderResponse(response) {
    return typeof response.answer === "string" ? renderAnswer(response) : renderNoAnswer(response);
  }

  /** A link to a passage: what it points at travels with it, for the panel to check the text is still there. */
  function passageLink(attrs, label, kind, c, version) {
    const link = el("a", attrs, label);
    linkTargets.set(link, { kind, quote: typeof c.quote === "string" ? c.quote : null, version: version ?? null });
    return link;
  }

  /** The answering phrase as [start, end) code points inside the answer, or null when there is none. */
  function highlightOf(response) {
    const hl = response.highlight;
    if (!Array.isArray(hl) || hl.length !== 2 || !hl.every(Number.isInteger)) return null;
    const [start, end] = hl;
    return start >= 0 && start < end && end <= Array.from(response.answer).length ? [start, end] : null;
  }

  /** Text with its answering phrase (if any) in a <mark>. */
  function markedText(tag, attrs, text, highlight) {
    const chars = Array.from(text);
    const node = el(tag, attrs);
    appendMarked(node, chars, 0, chars.length, highlight ? highlight[0] : null, highlight ? highlight[1] : null);
    return node;
  }

  function confidenceWords(confidence) {
    const value = Number(confidence) || 0;
    if (value >= 0.75) return "high confidence";
    if (value >= 0.55) return "medium confidence";
    return "low confidence: check the source";
  }

  function renderAnswer(response) {
    const highlight = highlightOf(response);
    const lang = languageOf(response.answer);
    const text = markedText("p", { class: "answer-text", lang }, response.answer, highlight);

    const citations = Array.isArray(response.citations) ? response.citations : [];
    const first = citations[0];
    const cue = el("p", { class: "answer-cue" });
    if (first) cue.append("From ", el("cite", {}, first.document_title), `, section ${first.section} · `);
    cue.append(el("span", { class: "cue-confidence" }, confidenceWords(response.confidence)));
    // The number behind the words, as quiet text rather than a hover title, so keyboards and screen readers get it.
    const value = Number(response.confidence || 0).toFixed(2);
    const score = el("p", { class: "answer-score" }, `Confidence score ${value} of 1`);

    const label = el("span", {}, "Copy");
    const copy = el("button", { type: "button", class: "button button-small copy-button" },
      label, hidden(" the answer and its source"));
    copy.addEventListener("click", () => copyAnswer(label, response));

    const footer = el("div", { class: "answer-footer" }, el("div", { class: "answer-meta" }, cue, score), copy);
    const bubble = el("div", { class: "bubble bubble-bot answer" }, text, footer);
    const parts = [bubble];
    if (citations.length) {
      const cards = el("ol", { class: "sources" });
      citations.forEach((c, i) => {
        // The first citation is the answer itself, so its quote gets the same phrase marked.
        const marked = i === 0 && c.quote === response.answer ? highlight : null;
        cards.append(renderSourceCard(c, i, marked, response.index_version));
      });
      const heading = el("p", { class: "sources-label", "aria-hidden": "true" }, "Sources");
      parts.push(el("section", { class: "sources-block", "aria-label": "Sources" }, heading, cards));
    }
    return parts;
  }

  function renderSourceCard(c, index, highlight, version) {
    return el(
      "li",
      { class: "source-card" },
      el(
        "div",
        { class: "source-head" },
        el("span", { class: "source-index", "aria-hidden": "true" }, String(index + 1)),
        el("div", { class: "source-names" },
          el("p", { class: "source-title" }, c.document_title),
          el("p", { class: "source-section" }, c.section)),
      ),
      markedText("blockquote", { class: "source-quote", lang: languageOf(c.quote) }, c.quote, highlight),
      passageLink({
        class: "open-source doc-link",
        href: citationHref(c),
        "aria-label": `Open in document: ${c.document_title} › ${c.section}`,
      }, "Open in document", "citation", c, version),
    );
  }

  function renderNoAnswer(response) {
    const related = Array.isArray(response.related) ? response.related : [];
    const title = el("p", { class: "no-answer-title" }, "The documents don't cover this.");
    const bubble = el("div", { class: "bubble bubble-bot no-answer" }, title);
    if (related.length) {
      const list = el("ul", { class: "related-list" });
      for (const c of related) {
        list.append(el("li", {},
          passageLink({ class: "related-link doc-link", href: citationHref(c) }, c.section, "related", c,
            response.index_version),
          el("span", { class: "related-doc" }, ` · ${c.document_title}`)));
      }
      bubble.append(el("p", { class: "no-answer-label" }, "Closest sections:"), list);
    } else {
      bubble.append(el("p", { class: "no-answer-label" }, "Try rephrasing, or browse the Documents."));
    }
    return [bubble];
  }

  /** Copy the answer with its citation; `label` is the copy button's visible text, which confirms it. */
  async function copyAnswer(label, response) {
    const c = (response.citations || [])[0];
    const link = c ? new URL(citationHref(c), location.origin) : "";
    const text = c ? `${response.answer}\n\n— ${c.document_title} › ${c.section}\n${link}` : response.answer;
    let ok = false;
    try {
      await navigator.clipboard.writeText(text);
      ok = true;
    } catch {
      const scratch = el("textarea", { class: "visually-hidden", "aria-hidden": "true" });
      scratch.value = text;
      document.body.append(scratch);
      scratch.select();
      ok = document.execCommand("copy");
      scratch.remove();
    }
    label.textContent = ok ? "Copied" : "Copy failed";
    setTimeout(() => { label.textContent = "Copy"; }, 2000);
  }

  function renderConversation() {
    ui.transcript.replaceChildren();
    if (!conversation.length) ui.transcript.append(renderWelcome());
    for (const entry of conversation) {
      const { node, slot } = renderExchange(entry.question);
      exchangeEntries.set(node, entry);
      slot.append(...renderResponse(entry.response));
      ui.transcript.append(node);
    }
    ui.clear.disabled = conversation.length === 0;
    ui.transcript.scrollTop = conversation.length ? ui.transcript.scrollHeight : 0;
  }

  function setBusy(busy) {
    pending = busy;
    ui.send.disabled = busy;
    ui.transcript.setAttribute("aria-busy", busy ? "true" : "false");
  }

  function ask(question) {
    question = question.trim();
    if (!question || pending) return;
    ui.transcript.querySelector(".welcome")?.remove();
    const { node, slot } = renderExchange(question);
    ui.transcript.append(node);
    run(question, node, slot);
  }

  async function run(question, node, slot) {
    setBusy(true);
    slot.replaceChildren(renderTyping());
    node.scrollIntoView({ block: "end", behavior: motion() });
    try {
      const response = await postJSON("/ask", { question, top_k: TOP_K });
      noteIndexVersion(response.index_version);
      exchangeEntries.set(node, { question, response });
      conversation = answeredInPageOrder();
      saveConversation();
      slot.replaceChildren(...renderResponse(response));
    } catch (error) {
      slot.replaceChildren(renderError(error.message, () => retry(question, node, slot)));
    } finally {
      setBusy(false);
    }
    node.scrollIntoView({ block: "start", behavior: motion() });
  }

  /** Ask again in place; the Retry button goes away, so the question box takes the focus (as after Send). */
  function retry(question, node, slot) {
    if (pending) return;
    run(question, node, slot);
    ui.question.focus();
  }

  /** Show the question's length once it nears the limit; `refused` says a send was turned down for it. */
  function updateCount({ refused = false } = {}) {
    const length = Array.from(ui.question.value.trim()).length;
    const over = length - MAX_QUESTION;
    ui.count.hidden = length < COUNT_FROM;
    ui.count.classList.toggle("composer-count-over", over > 0);
    if (over > 0) ui.question.setAttribute("aria-invalid", "true");
    else ui.question.removeAttribute("aria-invalid");
    const tally = `${count(length)} / ${count(MAX_QUESTION)} characters`;
    if (over <= 0) ui.count.textContent = tally;
    else if (refused) {
      ui.count.textContent =
        `Not sent: the question is ${plural(over, "character")} over the ${count(MAX_QUESTION)}-character limit. ` +
        "Shorten it, then send.";
    } else ui.count.textContent = `${tally}: ${plural(over, "character")} too many to send`;
    // Screen readers hear the crossings and a refusal, not every keystroke's count.
    if (refused || (over > 0) !== wasOver) ui.countStatus.textContent = over > 0 ? ui.count.textContent : "";
    wasOver = over > 0;
    return over <= 0;
  }

  const motion = () => (matchMedia("(prefers-reduced-motion: reduce)").matches ? "auto" : "smooth");

  // ---------------------------------------------------------------- document panel

  /** Below the side-by-side width the panel covers the page: then it is modal, and the page behind it inert. */
  function syncPanelModality() {
    const overlay = !ui.panel.hidden && !SIDE_BY_SIDE.matches;
    for (const child of document.body.children) if (child !== ui.panel) child.inert = overlay;
    ui.panel.setAttribute("aria-modal", String(overlay));
    if (overlay && !ui.panel.contains(document.activeElement)) ui.panelTitle.focus();
  }

  function showPanel(mode) {
    if (ui.panel.hidden) {
      panelOpener = document.activeElement;
      ui.panel.hidden = false;
      document.body.classList.add("panel-open");
      syncPanelModality();
    }
    ui.panel.dataset.mode = mode;
    ui.documents.setAttribute("aria-expanded", String(mode === "list"));
  }

  function panelLoading(title) {
    ui.panelTitle.textContent = title;
    ui.panelMeta.textContent = "";
    ui.panelBody.replaceChildren(el("p", { class: "panel-status", role: "status" }, "Loading…"));
    ui.panelBody.setAttribute("aria-busy", "true");
  }

  function panelFailed(message) {
    ui.panelBody.setAttribute("aria-busy", "false");
    ui.panelBody.replaceChildren(el("p", { class: "panel-status panel-error", role: "alert" }, message));
  }

  /** Show the panel in `mode` with a loading title; returns the token that later replies must match. */
  function beginPanel(mode, title, url, target = null) {
    const token = ++panelToken;
    showPanel(mode);
    if (url !== undefined) setUrl(url, target);
    ui.panelBack.hidden = mode === "list";
    panelLoading(title);
    ui.panelTitle.focus();
    return token;
  }

  /** Open one document, marking [start, end) as <mark id="cited"> or scrolling to a section anchor. */
  async function openDocument(target, { url } = {}) {
    const { kind = null, quote = null, version = null } = target;
    const token = beginPanel("document", "Document", url, { kind, quote, version });
    let doc;
    try {
      doc = await fetchDocument(target.id, version);
    } catch (error) {
      if (token !== panelToken) return;
      const gone = error.status === 404 && quote !== null;
      panelFailed(gone ? "This document is no longer in the index: it was removed or renamed since this answer."
        : error.message);
      return;
    }
    if (token !== panelToken) return;
    renderDocument(doc, target);
  }

  function renderDocument(doc, target) {
    const chars = doc.chars;
    let { start, end } = target;
    const related = target.kind === "related";
    const valid = Number.isInteger(start) && Number.isInteger(end) && start >= 0 && start < end && end <= chars.length;
    // Never mark a span that is not the quote: the document may have changed since the answer was given.
    const changed = typeof target.quote === "string" && !(valid && sliceChars(chars, start, end) === target.quote);
    if (!valid || changed) start = end = null;

    ui.panelTitle.textContent = doc.title;
    ui.panelMeta.textContent = doc.id;
    const sections = doc.sections.length
      ? doc.sections
      : [{ title: doc.title, start: 0, end: chars.length, anchor: "document-text" }];
    const article = el("article", { class: "doc-article" });
    let cited = null;
    let anchored = null;
    sections.forEach((section, i) => {
      const heading = el("h3", { id: section.anchor, class: "doc-section-title", lang: languageOf(section.title) },
        section.title);
      if (i === 0 && section.title === doc.title) heading.classList.add("visually-hidden");
      let from = clampInt(section.start, 0, chars.length);
      let to = clampInt(section.end, from, chars.length);
      while (from < to && /\s/.test(chars[from])) from++;
      while (to > from && /\s/.test(chars[to - 1])) to--;
      const body = el("div", { class: "doc-text", lang: languageOf(sliceChars(chars, from, to)) });
      const mark = appendMarked(body, chars, from, to, start, end, cited ? { class: "cited-more" } : { id: "cited" });
      cited = cited || mark;
      if (section.anchor === target.section) anchored = heading;
      article.append(el("section", { class: "doc-section" }, heading, body));
    });

    const tools = el("div", { class: "doc-tools" });
    if (cited) {
      const note = related
        ? "This is the closest section to your question, not an answer to it: its nearest passage is highlighted."
        : "The cited passage is highlighted.";
      const jump = el("button", { type: "button", class: "button button-small" },
        related ? "Jump to the passage" : "Jump to the quote");
      jump.addEventListener("click", () => cited.scrollIntoView({ block: "center", behavior: motion() }));
      tools.append(el("p", { class: "doc-tools-note" }, note), jump);
    } else if (changed) {
      const what = related ? "the passage it pointed to" : "the quote";
      tools.append(el("p", { class: "doc-tools-note doc-changed" },
        `This document has changed since this answer: ${what} is no longer at that place, ` +
        "so nothing is highlighted."));
    }
    ui.panelBody.setAttribute("aria-busy", "false");
    ui.panelBody.replaceChildren(...(cited || changed ? [tools] : []), article);
    ui.panelBody.scrollTop = 0;
    if (cited) cited.scrollIntoView({ block: "center" });
    else if (anchored) anchored.scrollIntoView({ block: "start" });
  }

  async function openDocumentList({ url } = {}) {
    const token = beginPanel("list", "Documents", url);
    let data;
    try {
      data = await requestJSON("/documents");
    } catch (error) {
      if (token === panelToken) panelFailed(error.message);
      return;
    }
    if (token !== panelToken) return;
    noteIndexVersion(data.index_version);
    const sectionCount = data.documents.reduce((n, d) => n + d.sections.length, 0);
    ui.panelMeta.textContent = `${data.documents.length} documents · ${sectionCount} sections`;
    const built = new Date(data.built_at);
    const builtText = Number.isNaN(built.getTime())
      ? String(data.built_at)
      : built.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
    const list = el("ul", { class: "doc-list" });
    for (const doc of data.documents) {
      const sections = el("ul", { class: "section-list" });
      for (const s of doc.sections) {
        const href = documentHref(doc.id, { section: s.anchor });
        const link = passageLink({ class: "doc-link section-link", href }, s.title, "section", {}, data.index_version);
        sections.append(el("li", {}, link));
      }
      list.append(el("li", { class: "doc-list-item" },
        el("h3", { class: "doc-list-title" }, doc.title),
        el("p", { class: "doc-list-id" }, doc.id),
        sections));
    }
    ui.panelBody.setAttribute("aria-busy", "false");
    ui.panelBody.replaceChildren(
      el("p", { class: "doc-list-intro" }, "Ask about anything in these documents, or open a section to read it."),
      el("p", { class: "index-info" },
        "Index ", el("code", {}, data.index_version),
        " · built ", el("time", { datetime: data.built_at }, builtText)),
      list,
    );
    ui.panelBody.scrollTop = 0;
  }

  /** Close the panel; focus goes back to what opened it unless `keepFocus` (focus is in use elsewhere). */
  function closePanel({ fromHistory = false, keepFocus = false } = {}) {
    if (ui.panel.hidden) return;
    panelToken++;
    ui.panel.hidden = true;
    document.body.classList.remove("panel-open");
    syncPanelModality();
    ui.documents.setAttribute("aria-expanded", "false");
    if (!fromHistory) {
      if (history.state && history.state.hkaiPanel) history.back();
      else history.replaceState(null, "", "/");
    }
    const back = panelOpener && panelOpener.isConnected && panelOpener !== document.body ? panelOpener : ui.question;
    panelOpener = null;
    if (!keepFocus) back.focus();
  }

  /** At most one history entry per open panel, so closing it is one step back. The entry keeps what the link
   * pointed at (`target`), so Back, Forward and a reload can still check the quote. */
  function setUrl(url, target = null) {
    const state = history.state || {};
    const here = location.pathname + location.search + location.hash;
    if (url === here) history.replaceState({ ...state, target }, "", url);
    else if (state.hkaiPanel) history.replaceState({ hkaiPanel: true, target }, "", url);
    else history.pushState({ hkaiPanel: true, target }, "", url);
  }

  /** Read ?doc=&section=&start=&end= (or ?view=documents) from a URL. */
  function parseTarget(href) {
    const url = new URL(href, location.origin);
    const id = url.searchParams.get("doc");
    if (!id) return url.searchParams.get("view") === "documents" ? { list: true } : null;
    const number = (name) => {
      const value = url.searchParams.get(name) || "";
      return /^\d+$/.test(value) ? Number(value) : null;
    };
    let section = url.searchParams.get("section");
    try {
      section = section || decodeURIComponent(url.hash.slice(1)) || null;
    } catch {
      section = null; // a malformed #fragment
    }
    return { id, section, start: number("start"), end: number("end") };
  }

  function syncFromLocation() {
    const target = parseTarget(location.href);
    const saved = history.state && history.state.target;
    if (!target) closePanel({ fromHistory: true });
    else if (target.list) openDocumentList();
    else openDocument({ ...target, ...(saved || {}) });
  }

  // ---------------------------------------------------------------- events

  ui.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    const question = ui.question.value;
    if (!question.trim()) return;
    if (!updateCount({ refused: true })) {
      ui.question.focus(); // the text stays, to be shortened
      return;
    }
    if (pending) return;
    ui.question.value = "";
    updateCount();
    ask(question);
    ui.question.focus();
  });

  ui.question.addEventListener("input", () => updateCount());

  ui.question.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || event.shiftKey || event.isComposing || event.keyCode === 229) return;
    event.preventDefault();
    ui.composer.requestSubmit();
  });

  document.addEventListener("click", (event) => {
    const example = event.target.closest("button.example");
    if (example) {
      ask(example.dataset.question);
      ui.question.focus(); // the examples go away with the welcome
      return;
    }
    const link = event.target.closest("a.doc-link");
    if (!link || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    const target = parseTarget(link.getAttribute("href"));
    if (!target || target.list) return;
    event.preventDefault();
    openDocument({ ...target, ...linkTargets.get(link) }, { url: link.getAttribute("href") });
  });

  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !event.isComposing && !ui.panel.hidden) {
      event.preventDefault();
      // Typing in the question box beside the panel: close it, but leave the focus (and the typing) where it is.
      const active = document.activeElement;
      const elsewhere = active && active !== document.body && !ui.panel.contains(active);
      closePanel({ keepFocus: elsewhere && SIDE_BY_SIDE.matches });
    }
  });

  ui.panelClose.addEventListener("click", () => closePanel());
  ui.panelBack.addEventListener("click", () => openDocumentList({ url: "/?view=documents" }));
  ui.documents.addEventListener("click", () => {
    if (!ui.panel.hidden && ui.panel.dataset.mode === "list") closePanel();
    else openDocumentList({ url: "/?view=documents" });
  });
  ui.clear.addEventListener("click", () => {
    if (pending) return;
    conversation = [];
    saveConversation();
    renderConversation();
    ui.question.focus();
  });
  window.addEventListener("popstate", syncFromLocation);
  SIDE_BY_SIDE.addEventListener("change", syncPanelModality);

  renderConversation();
  if (parseTarget(location.href)) syncFromLocation();
})();
