"""One log line per request (logger `hkai_qa.access`), JSON log lines for `hkai-qa serve`, and route templates.

An access line holds the request id, method, route template, status, latency, client address and the
served index version. It never holds headers (the admin token travels in Authorization), query strings
or bodies: questions are the users' words, so operators follow a request by its id, not its text.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import UTC, datetime
from typing import Any

from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hkai_qa.metrics import Metrics
from hkai_qa.request_ids import current_request_id

log = logging.getLogger("hkai_qa.access")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Attributes every LogRecord has; anything else on a record came from `extra=` and belongs in the JSON
_RECORD_FIELDS = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the request id if any, and `extra=` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = current_request_id()
        if request_id is not None:
            entry["request_id"] = request_id
        entry.update((key, value) for key, value in vars(record).items() if key not in _RECORD_FIELDS)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        # ASCII escapes keep each record on one line even for U+2028 and other line separators
        return json.dumps(entry, default=str)


def configure_logging(log_format: str) -> None:
    """Send all logs to stderr as JSON lines or plain text; our own loggers at INFO, libraries at WARNING."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("hkai_qa").setLevel(logging.INFO)  # requests, version swaps, refused versions, rebuild jobs
    logging.getLogger("uvicorn.error").setLevel(logging.INFO)  # where it listens, startup and shutdown
    # Python warnings (a library's DependencyWarning, printed when one thread imports while another has the
    # warning filters swapped out) become records too, so every line on stderr stays one JSON object.
    logging.captureWarnings(True)


def route_template(scope: Scope) -> str:
    """The matched route's template, such as /documents/{document_id:path}; "unmatched" when none matches.

    Requests refused before routing (413, 429) are matched here, so they count under their route too.
    """
    route = scope.get("route")
    if route is None:
        partial = None
        for candidate in getattr(scope.get("app"), "routes", ()):
            match, _ = candidate.matches(scope)
            if match is Match.FULL:
                route = candidate
                break
            if match is Match.PARTIAL and partial is None:
                partial = candidate
        route = route or partial
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else "unmatched"


class AccessLog:
    """Pure ASGI middleware: logs each request once it is answered and times it into the metrics."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: int | None = None

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            # An exception before the response started becomes Starlette's 500, answered outside us
            self._record(scope, status or 500, time.perf_counter() - started)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        route = route_template(scope)
        self.metrics.observe_request(route, status, seconds)
        client = scope.get("client")
        fields = {
            "request_id": current_request_id(),  # on the record itself, for handlers that format it later
            "method": scope["method"],
            "route": route,
            "status": status,
            "latency_ms": round(seconds * 1000, 2),
            "client": client[0] if client else None,
            "index_version": _served_version(scope),
        }
        log.info("%s %s %s %.1f ms", scope["method"], route, status, seconds * 1000, extra=fields)


def _served_version(scope: Scope) -> str | None:
    service = getattr(getattr(scope.get("app"), "state", None), "service", None)
    if service is None:  # the model and index load in the background for the first seconds
        return None
    try:
        return str(service.index.version)
    except Exception:  # whatever the service's state, the access line must still be written
        return None
