"""Request ids: one per request, in the `X-Request-ID` response header, every error body and every log line.

A client's own id is kept when it is short and plain, so a caller can follow one request through its
logs and ours; anything else (long, or with characters that could forge log lines) gets a fresh id.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from contextvars import ContextVar

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "X-Request-ID"
_SAFE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_current: ContextVar[str | None] = ContextVar("hkai_qa_request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request being handled, or None outside a request."""
    return _current.get()


def choose_request_id(incoming: str | None) -> str:
    """The client's id when it is at most 64 characters of A-Z a-z 0-9 . _ -, else a new uuid4 hex."""
    if incoming is not None and _SAFE_ID.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex


def error_response(status: int, kind: str, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The one error shape: {"error": {"type", "message", "request_id"}}, with the id in the header too."""
    request_id = current_request_id() or uuid.uuid4().hex
    response = JSONResponse(
        status_code=status, content={"error": {"type": kind, "message": message, "request_id": request_id}}
    )
    response.headers.update(headers or {})
    response.headers[HEADER] = request_id
    return response


class RequestIds:
    """Pure ASGI middleware: sets the request id for everything inside and stamps it on the response.

    The id stays set after the app returns or raises: Starlette's 500 handler runs outside all user
    middleware, in the same task, and reads it from there (each request runs in a task of its own).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = choose_request_id(Headers(scope=scope).get(HEADER))
        _current.set(request_id)
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[HEADER] = request_id
            await send(message)

        await self.app(scope, receive, send_with_id)
