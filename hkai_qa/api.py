"""create_app(settings) -> FastAPI: /ask, /search, /documents, /health, the admin endpoints and the chat page."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import swagger_ui_bundle
from fastapi import Depends, FastAPI, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hkai_qa.admin_api import admin_router
from hkai_qa.config import Settings
from hkai_qa.errors import HkaiError, NotReady
from hkai_qa.http_guards import install_guards
from hkai_qa.jobs import RebuildJobs
from hkai_qa.reloading import IndexWatcher
from hkai_qa.request_ids import error_response
from hkai_qa.schemas import (
    AskRequest,
    AskResponse,
    DocumentList,
    DocumentOut,
    DocumentSummary,
    ErrorResponse,
    Health,
    SearchHit,
    SearchRequest,
    SearchResponse,
    SectionOut,
)
from hkai_qa.service import QAService
from hkai_qa.types import Document

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Malformed JSON."},
    422: {"model": ErrorResponse, "description": "A field is missing or out of range."},
}
_NOT_READY: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorResponse, "description": "Still loading (see Retry-After), or the index cannot be loaded."},
}
_BUSY_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    413: {"model": ErrorResponse, "description": "The request body is larger than the limit (64 KB by default)."},
    429: {"model": ErrorResponse, "description": "Too many requests from this client (see Retry-After)."},
    503: {
        "model": ErrorResponse,
        "description": "Still loading, or too many questions waiting for the model (see Retry-After).",
    },
}
log = logging.getLogger("hkai_qa.api")


async def get_service(request: Request) -> QAService:
    """The loaded service of the app handling this request; NotReady (503) while it is still loading.

    async so that FastAPI calls it on the event loop instead of sending it to a thread per request."""
    service: QAService | None = request.app.state.service
    if service is None:
        failed: str | None = request.app.state.load_error
        raise NotReady(failed or "the model and the index are still loading; try again in a moment")
    return service


ServiceDep = Annotated[QAService, Depends(get_service)]


def create_app(settings: Settings, service: QAService | None = None) -> FastAPI:
    """Build the app around a loaded `service`, or one that loads in the background once serving starts.

    Loading in the background lets the process answer /healthz at once and /readyz (503) until the model
    and the index are in memory. While it runs, a watcher picks up versions a build (CLI or HTTP) publishes.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loader = threading.Thread(target=_load, args=(app, settings), name="hkai-qa-loader", daemon=True)
        if app.state.service is None:
            loader.start()
        else:
            _serve(app, app.state.service)
        try:
            yield
        finally:
            if loader.is_alive():
                loader.join()
            if app.state.watcher is not None:
                app.state.watcher.stop()
            if service is None and app.state.service is not None:
                app.state.service.close()  # only what this app loaded; a caller's service stays theirs

    app = FastAPI(
        title="hkai-qa",
        summary="Answers about Hong Kong's AI ecosystem, lifted verbatim from cited documents.",
        version="0.1.0",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.service = None
    app.state.jobs = None
    app.state.watcher = None
    app.state.load_error = None
    if service is not None:
        app.state.service = service
        app.state.jobs = RebuildJobs(service)

    @app.post("/ask", response_model=AskResponse, responses=_BUSY_ERRORS, tags=["questions"])
    async def ask(body: AskRequest, qa: ServiceDep, request: Request) -> AskResponse:
        """Answer a question with a verbatim span and its citations, or `answer: null`."""
        snapshot = qa.snapshot()
        answer, took, _ = await qa.ask_async(body.question, body.top_k, snapshot)
        request.app.state.metrics.record_answer(answer.text is not None)
        return AskResponse.from_answer(answer, snapshot.index.version, took)

    @app.post("/search", response_model=SearchResponse, responses=_BUSY_ERRORS, tags=["questions"])
    async def search(body: SearchRequest, qa: ServiceDep) -> SearchResponse:
        """Ranked passages for a query (hybrid dense + keyword search)."""
        snapshot = qa.snapshot()
        passages, took = await qa.search_async(body.query, body.top_k, snapshot)
        hits = [
            SearchHit(
                document_id=p.hit.chunk.document_id,
                document_title=p.document_title,
                section=p.section,
                text=p.text,
                start=p.hit.chunk.start,
                end=p.hit.chunk.end,
                score=round(p.hit.score, 4),
            )
            for p in passages
        ]
        return SearchResponse(
            query=body.query.strip(), hits=hits, index_version=snapshot.index.version, took_ms=round(took, 2)
        )

    @app.get("/documents", response_model=DocumentList, responses=_NOT_READY, tags=["documents"])
    def documents(qa: ServiceDep) -> DocumentList:
        """Every document the bot knows, with its sections."""
        index = qa.index
        return DocumentList(
            documents=[_summary(d) for d in index.documents.values()],
            index_version=index.version,
            built_at=index.manifest["built_at"],
        )

    @app.get(
        "/documents/{document_id:path}",
        response_model=DocumentOut,
        responses={404: {"model": ErrorResponse, "description": "No such document."}, **_NOT_READY},
        tags=["documents"],
    )
    def document(
        document_id: Annotated[str, PathParam(description="Document id, e.g. `notes/finance`.")], qa: ServiceDep
    ) -> DocumentOut:
        """One document's full text and sections; ids may contain `/` (e.g. `notes/finance`)."""
        snapshot = qa.snapshot()  # the document and its version from the same index, even during a reload
        found = qa.document(document_id, snapshot)
        return DocumentOut(**_summary(found).model_dump(), text=found.text, index_version=snapshot.index.version)

    @app.get("/health", response_model=Health, responses=_NOT_READY, tags=["service"])
    async def health(qa: ServiceDep) -> Health:
        """Answers once the model and index are loaded (on the event loop: no thread hop, so it stays quick
        while the model is busy)."""
        index = qa.index
        manifest = index.manifest
        return Health(
            status="ok",
            index_version=index.version,
            built_at=manifest["built_at"],
            model=manifest["model"]["name"],
            **manifest["counts"],
        )

    app.include_router(admin_router())
    _add_pages(app, settings)
    _add_error_handlers(app)
    install_guards(app, settings)  # last: its middlewares (request ids, limits, logs, metrics) wrap the rest
    app.add_middleware(SecurityHeaders)  # outermost: 413s and 429s from the guards get the headers too
    return app


def _load(app: FastAPI, settings: Settings) -> None:
    """Load the model and the index (in a thread, so the server answers /healthz meanwhile)."""
    try:
        qa = QAService(settings)
    except HkaiError as exc:
        app.state.load_error = exc.message
        log.error("cannot serve: %s", exc.message)
        return
    except Exception as exc:  # keep the process answering /healthz and /readyz with the reason
        app.state.load_error = f"loading failed: {exc.__class__.__name__}"
        log.exception("cannot serve: loading the model or the index failed")
        return
    _serve(app, qa)
    log.info("ready: serving index version %s (%s backend)", qa.index.version, qa.embedder.backend)


def _serve(app: FastAPI, qa: QAService) -> None:
    """Make `qa` the app's service and start watching its index folder for new versions."""
    app.state.jobs = app.state.jobs or RebuildJobs(qa)
    app.state.service = qa
    watcher = IndexWatcher(qa, qa.settings.reload_interval)
    watcher.start()
    app.state.watcher = watcher


def _summary(document: Document) -> DocumentSummary:
    sections = [SectionOut(title=s.title, start=s.start, end=s.end, anchor=s.anchor) for s in document.sections]
    return DocumentSummary(id=document.id, title=document.title, sections=sections)


def _add_pages(app: FastAPI, settings: Settings) -> None:
    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")
    app.mount("/docs-static", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="docs-static")
    # The page counts a question's characters against the limit this server applies (HKAI_QA_MAX_QUESTION_CHARS).
    html = (WEB_DIR / "index.html").read_text(encoding="utf-8")
    html = html.replace('data-max-question="1000"', f'data-max-question="{settings.max_question_chars}"', 1)

    @app.get("/", include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(html)

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse((WEB_DIR / "docs.html").read_text(encoding="utf-8"))


class SecurityHeaders:
    """Adds the page's security headers to every response; plain ASGI, so no extra task per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).update(SECURITY_HEADERS)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _error(status: int, kind: str, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return error_response(status, kind, message, headers)  # carries the request id in body and header


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HkaiError)
    async def domain_error(_: Request, exc: HkaiError) -> JSONResponse:
        return _error(exc.status, exc.type, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return _error(400, "invalid_json", "the request body is not valid JSON")
        return _error(422, "invalid_request", "; ".join(_describe(e) for e in errors) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # the body could not be parsed (bad UTF-8, nesting, huge numbers)
            return _error(400, "invalid_json", "the request body is not valid JSON")
        kind = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(exc.status_code)
        return _error(exc.status_code, kind or "http_error", str(exc.detail), exc.headers)

    # Starlette runs this one outside all middleware, so the request id comes from its context variable
    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(500, "internal_error", "something went wrong on our side; the error was logged")


def _describe(error: Any) -> str:
    field = ".".join(str(part) for part in error.get("loc", ()) if part != "body") or "body"
    if error.get("type") == "missing":
        return f"{field} is required"
    return f"{field}: {error.get('msg', 'invalid value')}"
