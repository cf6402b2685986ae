"""Domain errors. Each carries the HTTP status the API answers with; the library never imports FastAPI."""

from __future__ import annotations


class HkaiError(Exception):
    """Base class: a clear message for the user and the status an HTTP client gets."""

    status = 400
    type = "bad_request"
    headers: dict[str, str] | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(HkaiError):
    status = 422
    type = "invalid_request"


class InvalidJson(HkaiError):
    """A request body that is not JSON at all; JSON of the wrong shape is an InvalidRequest (422)."""

    status = 400
    type = "invalid_json"


class CorpusNotFound(HkaiError):
    status = 404
    type = "corpus_not_found"


class EmptyCorpus(HkaiError):
    status = 422
    type = "empty_corpus"


class DocumentNotFound(HkaiError):
    status = 404
    type = "document_not_found"


class IndexNotFound(HkaiError):
    status = 503
    type = "index_not_found"


class IndexInvalid(HkaiError):
    """The index on disk does not match its manifest or the configured model."""

    status = 503
    type = "index_invalid"


class BuildRunning(HkaiError):
    """Another build holds the index folder's lock: one writer at a time."""

    status = 409
    type = "build_running"


class Conflict(HkaiError):
    status = 409
    type = "conflict"


class AdminDisabled(HkaiError):
    """No admin token is configured, so the admin endpoints are off."""

    status = 403
    type = "admin_disabled"


class Unauthorized(HkaiError):
    status = 401
    type = "unauthorized"
    headers = {"WWW-Authenticate": "Bearer"}  # noqa: RUF012  # read-only, shared by every instance


class PayloadTooLarge(HkaiError):
    status = 413
    type = "payload_too_large"


class JobNotFound(HkaiError):
    status = 404
    type = "job_not_found"


class ModelNotFound(HkaiError):
    status = 503
    type = "model_not_found"


class UnsupportedFormat(HkaiError):
    """A file type the document stage does not read."""

    status = 415
    type = "unsupported_format"


class UnreadableDocument(HkaiError):
    """A file of a supported type whose text cannot be read: not decodable, damaged, encrypted or empty."""

    status = 422
    type = "unreadable_document"


class RateLimited(HkaiError):
    """A client asked more often than the configured rate limit; `Retry-After` says when to try again."""

    status = 429
    type = "rate_limited"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after)}


class NotReady(HkaiError):
    """The process is up but the model or the index is still loading."""

    status = 503
    type = "not_ready"
    headers = {"Retry-After": "2"}  # noqa: RUF012  # read-only, shared by every instance


class Overloaded(HkaiError):
    """More questions are waiting for the model than the server will queue; failing fast beats a hang."""

    status = 503
    type = "overloaded"
    headers = {"Retry-After": "1"}  # noqa: RUF012  # read-only, shared by every instance
