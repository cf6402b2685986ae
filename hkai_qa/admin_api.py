"""Admin HTTP endpoints: upload and delete corpus documents, start and follow rebuild jobs.

All of them need `Authorization: Bearer <HKAI_QA_ADMIN_TOKEN>`, compared in constant time; with no token
configured they answer 403 and say how to turn them on. The token is never logged or echoed.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from hkai_qa.config import Settings
from hkai_qa.corpus import Upload, add_documents, delete_document
from hkai_qa.errors import (
    AdminDisabled,
    InvalidJson,
    InvalidRequest,
    NotReady,
    PayloadTooLarge,
    Unauthorized,
    UnsupportedFormat,
)
from hkai_qa.jobs import Job, RebuildJobs
from hkai_qa.schemas import (
    DeleteResponse,
    ErrorResponse,
    JobList,
    JobOut,
    RebuildRequest,
    StoredDocument,
    UploadResponse,
)

_bearer = HTTPBearer(auto_error=False, description="The server's HKAI_QA_ADMIN_TOKEN.")
_FORM_OVERHEAD = 1_000_000  # multipart boundaries and headers on top of the files themselves


def require_admin(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    """403 when admin is off, 401 when the bearer token is missing or wrong."""
    settings: Settings = request.app.state.settings
    if settings.admin_token is None:
        raise AdminDisabled(
            "admin endpoints are disabled: start the server with HKAI_QA_ADMIN_TOKEN set to enable them"
        )
    if credentials is None:
        raise Unauthorized("this endpoint needs the header `Authorization: Bearer <admin token>`")
    expected = settings.admin_token.get_secret_value().encode("ascii")  # the settings allow ASCII only
    given = credentials.credentials.encode("latin-1", "replace")  # how HTTP headers arrive
    if not hmac.compare_digest(given, expected):
        raise Unauthorized("the admin token is wrong")


_ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or wrong bearer token."},
    403: {"model": ErrorResponse, "description": "Admin endpoints are disabled (no HKAI_QA_ADMIN_TOKEN)."},
}
_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["files"],
                    "properties": {
                        "files": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": ".md, .markdown, .txt, .html, .htm or .pdf files.",
                        },
                        "folder": {"type": "string", "description": "Sub-folder of the corpus, e.g. `reports`."},
                    },
                }
            }
        },
    }
}


def admin_router() -> APIRouter:
    router = APIRouter(dependencies=[Depends(require_admin)], responses=_ADMIN_ERRORS, tags=["admin"])

    @router.post(
        "/documents",
        status_code=201,
        response_model=UploadResponse,
        openapi_extra=_UPLOAD_BODY,
        responses={
            409: {"model": ErrorResponse, "description": "Same id as another file (other extension)."},
            413: {"model": ErrorResponse, "description": "A file is over the size limit."},
            415: {"model": ErrorResponse, "description": "Unsupported file type."},
            422: {"model": ErrorResponse, "description": "Bad name, undecodable, empty or text-less file."},
        },
    )
    async def upload(request: Request) -> UploadResponse:
        """Add files to the corpus folder (all or none); `POST /index/rebuild` then makes them answerable."""
        settings: Settings = request.app.state.settings
        limit = settings.max_upload_bytes * settings.max_upload_files + _FORM_OVERHEAD
        content_type = request.headers.get("content-type", "")
        if not content_type.lower().startswith("multipart/form-data"):
            raise UnsupportedFormat("send the files as multipart/form-data in the field `files`")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"the upload is {int(declared):,} bytes; the limit is {limit:,} bytes per request")
        limited = Request(request.scope, _limited(request.receive, limit))
        parser = _FileLimitedParser(
            request.headers,
            limited.stream(),
            max_files=settings.max_upload_files,
            max_fields=10,
            max_part_size=64_000,
            max_file_bytes=settings.max_upload_bytes,
        )
        try:
            form = await parser.parse()
        except _FileTooLarge as exc:
            raise PayloadTooLarge(exc.message) from None
        except MultiPartException as exc:
            if exc.message.startswith("Too many files"):
                raise PayloadTooLarge(f"at most {settings.max_upload_files} files per upload") from None
            raise InvalidRequest(f"the multipart body is malformed: {exc.message}") from None
        try:
            files = [f for f in form.getlist("files") if isinstance(f, UploadFile)]
            folder = form.get("folder", "")
            if not isinstance(folder, str):
                raise InvalidRequest("`folder` must be a text field")
            uploads = []
            for file in files:
                if file.size is not None and file.size > settings.max_upload_bytes:
                    raise PayloadTooLarge(
                        f"{file.filename} is {file.size:,} bytes; the limit is {settings.max_upload_bytes:,} "
                        "bytes per file"
                    )
                uploads.append(Upload(file.filename or "", await file.read()))
        finally:
            await form.close()
        stored = await run_in_threadpool(
            add_documents, settings.corpus_dir, settings.index_dir, uploads, folder, settings.max_upload_bytes
        )
        return UploadResponse(
            documents=[
                StoredDocument(
                    id=s.document_id, source=s.source, bytes=s.bytes, sections=s.sections, replaced=s.replaced
                )
                for s in stored
            ],
            message=f"stored {len(stored)} file(s) in the corpus; POST /index/rebuild to make them answerable",
        )

    @router.delete(
        "/documents/{document_id:path}",
        response_model=DeleteResponse,
        responses={404: {"model": ErrorResponse, "description": "No such file in the corpus folder."}},
    )
    def delete(
        document_id: Annotated[str, PathParam(description="Document id, e.g. `notes/finance`.")], request: Request
    ) -> DeleteResponse:
        """Remove a document's file from the corpus folder; a rebuild then drops it from answers."""
        settings: Settings = request.app.state.settings
        source = delete_document(settings.corpus_dir, settings.index_dir, document_id)
        return DeleteResponse(
            deleted=document_id,
            source=source,
            message="removed from the corpus; POST /index/rebuild to drop it from answers",
        )

    @router.post(
        "/index/rebuild",
        status_code=202,
        response_model=JobOut,
        responses={
            400: {"model": ErrorResponse, "description": "The body is not JSON."},
            409: {"model": ErrorResponse, "description": "A rebuild, or a `hkai-qa build`, is already running."},
            422: {"model": ErrorResponse, "description": 'JSON, but not a body such as `{"force": true}`.'},
        },
        openapi_extra={
            "requestBody": {
                "required": False,
                "content": {"application/json": {"schema": RebuildRequest.model_json_schema()}},
            }
        },
    )
    async def rebuild(request: Request, response: Response) -> JobOut:
        """Start a rebuild of the corpus folder; returns the job at once. Follow it at `/index/jobs/{id}`."""
        raw = await request.body()  # read after the token check, so strangers learn nothing from parsing
        try:
            body = RebuildRequest.model_validate_json(raw) if raw.strip() else RebuildRequest(force=False)
        except ValidationError as exc:
            if any(e.get("type") == "json_invalid" for e in exc.errors()):  # as /ask answers it: 400
                raise InvalidJson('the request body is not valid JSON (send {"force": true}, or no body)') from None
            problems = "; ".join(str(e.get("msg", "invalid")) for e in exc.errors())
            raise InvalidRequest(f'the body must be JSON such as {{"force": true}}: {problems}') from None
        jobs = _jobs(request)
        job = await run_in_threadpool(jobs.start, body.force)
        response.headers["Location"] = f"/index/jobs/{job.id}"
        return _job_out(job)

    @router.get("/index/jobs", response_model=JobList)
    def list_jobs(request: Request) -> JobList:
        """Recent rebuild jobs, newest first."""
        jobs = _jobs(request)
        return JobList(jobs=[_job_out(job) for job in jobs.all()])

    @router.get(
        "/index/jobs/{job_id}",
        response_model=JobOut,
        responses={404: {"model": ErrorResponse, "description": "No such job."}},
    )
    def get_job(job_id: str, request: Request) -> JobOut:
        """A rebuild job: state, progress, and the summary or the error."""
        jobs = _jobs(request)
        return _job_out(jobs.get(job_id))

    return router


class _FileTooLarge(MultiPartException):
    pass


class _FileLimitedParser(MultiPartParser):
    """Starlette's multipart parser, stopping as soon as one file passes `max_file_bytes`."""

    def __init__(self, *args: Any, max_file_bytes: int, **options: Any) -> None:
        super().__init__(*args, **options)
        self.max_file_bytes = max_file_bytes
        self._file_bytes = 0

    def on_part_begin(self) -> None:
        super().on_part_begin()
        self._file_bytes = 0

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._current_part.file is not None:
            self._file_bytes += end - start
            if self._file_bytes > self.max_file_bytes:
                name = self._current_part.file.filename or "a file"
                raise _FileTooLarge(f"{name} is over the limit of {self.max_file_bytes:,} bytes per file")
        super().on_part_data(data, start, end)


def _job_out(job: Job) -> JobOut:
    return JobOut.model_validate(job.as_json())


Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]


def _limited(receive: Receive, limit: int) -> Receive:
    """`receive` that fails with 413 once the body passes `limit` bytes (chunked bodies included)."""
    received = 0

    async def counted() -> MutableMapping[str, Any]:
        nonlocal received
        message = await receive()
        if message.get("type") == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise PayloadTooLarge(f"the upload is over the limit of {limit:,} bytes per request")
        return message

    return counted


def _jobs(request: Request) -> RebuildJobs:
    """The app's rebuild jobs; NotReady (503) until the service has loaded."""
    jobs: RebuildJobs | None = request.app.state.jobs
    if jobs is None:
        raise NotReady("the model and the index are still loading; try again in a moment")
    return jobs
