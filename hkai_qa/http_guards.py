"""Guards around every request: body size limit, rate limit per client, CORS allow-list, and their wiring.

`install_guards` adds them with request ids, the access log and metrics, outermost first:
request id -> access log and metrics -> CORS -> body limit -> rate limit -> the app. So a 413 or a 429
carries its request id, is logged and counted, and a browser allowed by CORS can read it.
"""

from __future__ import annotations

import math
import time

import limits
from fastapi import FastAPI
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hkai_qa.access_log import AccessLog
from hkai_qa.config import Settings
from hkai_qa.errors import HkaiError, PayloadTooLarge, RateLimited
from hkai_qa.metrics import Metrics
from hkai_qa.operations_api import operations_router
from hkai_qa.request_ids import HEADER, RequestIds, error_response

RATE_LIMITED_PATHS = frozenset({"/ask", "/search"})  # the routes that run the model


def install_guards(app: FastAPI, settings: Settings) -> None:
    """Add /healthz, /readyz, /metrics and the request middlewares; call it last in `create_app`.

    Last, because each middleware added goes outside those added before: these must wrap all others,
    so that even a 500 from an unexpected error carries the request id.
    """
    app.state.metrics = Metrics(app.state)
    app.include_router(operations_router())
    if settings.rate_limit is not None:
        app.add_middleware(RateLimit, limit=settings.rate_limit)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "Authorization", HEADER],
            expose_headers=[HEADER],
            max_age=600,
        )
    app.add_middleware(AccessLog, metrics=app.state.metrics)
    app.add_middleware(RequestIds)


class BodyTooLarge(HTTPException):
    """Raised from `receive` once a body passes the limit, to stop the app reading; `BodyLimit` answers."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is over the limit of {limit:,} bytes")


class BodyLimit:
    """Pure ASGI middleware: refuses request bodies over `max_bytes`, counting the bytes actually received.

    A Content-Length over the limit is refused before anything is read; a body without one (chunked) is
    cut off at the limit. The upload endpoint is left to its own, larger limits (admin_api.py).
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["method"] == "POST" and scope["path"] == "/documents"):
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            refusal = PayloadTooLarge(f"the request body is {int(declared):,} bytes; the limit is {self.max_bytes:,}")
            await _refuse(refusal, scope, receive, send)
            return
        received, started, refused = 0, False, False
        refusal = PayloadTooLarge(f"the request body is over the limit of {self.max_bytes:,} bytes")

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        # Whatever the app makes of the exception (FastAPI's body parsing, or a task group wrapping it),
        # a body over the limit is answered with the 413, in place of the app's own response.
        async def send_or_refuse(message: Message) -> None:
            nonlocal started, refused
            if received > self.max_bytes and not started:
                if not refused:
                    refused = True
                    await _refuse(refusal, scope, receive, send)
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, send_or_refuse)
        except Exception:
            if received <= self.max_bytes or started:
                raise
            if not refused:
                await _refuse(refusal, scope, receive, send)


class RateLimit:
    """Pure ASGI middleware: at most `limit` (a `limits` string) questions and searches per client address.

    The address is the connection's (ASGI `client`): X-Forwarded-For counts only when uvicorn is told to
    trust the proxy that sends it (setting trusted_proxies), or anyone could pick a fresh address per request.
    """

    def __init__(self, app: ASGIApp, limit: str) -> None:
        self.app = app
        self.item = limits.parse(limit)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in RATE_LIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        key = client[0] if client else "unknown"
        if not self.limiter.hit(self.item, key):
            reset = self.limiter.get_window_stats(self.item, key).reset_time
            wait = max(1, math.ceil(reset - time.time()))
            refusal = RateLimited(
                f"too many questions and searches from your address (at most {self.item}); try again in {wait} s",
                retry_after=wait,
            )
            await _refuse(refusal, scope, receive, send)
            return
        await self.app(scope, receive, send)


async def _refuse(error: HkaiError, scope: Scope, receive: Receive, send: Send) -> None:
    await error_response(error.status, error.type, error.message, error.headers)(scope, receive, send)
