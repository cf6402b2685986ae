"""Endpoints for whoever runs the service: /healthz (the process is up), /readyz (it can answer), /metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from hkai_qa.errors import HkaiError, NotReady
from hkai_qa.metrics import Metrics
from hkai_qa.schemas import ErrorResponse, Liveness, Readiness

_NOT_READY: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorResponse, "description": "The model or the index is still loading; see Retry-After."}
}


def operations_router() -> APIRouter:
    """The three operations endpoints; async, so a pool of threads busy with questions never delays them."""
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", response_model=Liveness)
    async def healthz() -> Liveness:
        """200 whenever the process can answer HTTP at all, loaded or not (for a liveness probe)."""
        return Liveness(status="ok")

    @router.get("/readyz", response_model=Readiness, responses=_NOT_READY)
    async def readyz(request: Request) -> Readiness:
        """200 with the index version once the model and index are loaded; 503 until then."""
        service = getattr(request.app.state, "service", None)
        if service is None:
            failed = getattr(request.app.state, "load_error", None)  # why loading gave up, if it did
            raise NotReady(failed or "the model and the index are still loading")
        try:
            version = service.index.version
        except HkaiError as exc:
            raise NotReady(f"no index is loaded yet: {exc.message}") from None
        return Readiness(status="ready", index_version=version)

    @router.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        """Prometheus text format (or OpenMetrics when the scraper asks for it)."""
        registry: Metrics = request.app.state.metrics
        body, content_type = registry.render(request.headers.get("accept"))
        return Response(body, media_type=content_type)

    return router
