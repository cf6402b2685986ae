"""Domain errors. Each carries the HTTP status the API answers with; the library never imports FastAPI."""

from __future__ import annotations


class HkaiError(Exception):
    """Base class: a clear message for the user and the status an HTTP client gets."""

    status = 400
    type = "bad_request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(HkaiError):
    status = 422
    type = "invalid_request"


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
