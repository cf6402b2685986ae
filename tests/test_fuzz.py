"""Property-based fuzzing of the HTTP API from its own OpenAPI schema (schemathesis), against a real server
on loopback: no 5xx, every status documented, every response matching its declared schema and content type,
and schema-invalid requests rejected with a 4xx.

Every operation in the schema is fuzzed: the public ones, and the admin ones with admin off (they must answer
a documented 403). A bounded, derandomized run: at most MAX_EXAMPLES requests per operation and mode.

One check is off, `positive_data_acceptance` (a schema-valid request must succeed): a question or query with
no letter or digit (such as "" or " ") is valid to the schema yet rightly refused with 422, and the longest
question is a setting (max_question_chars) that a static schema cannot state.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis import Case, GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from hkai_qa.api import create_app
from hkai_qa.config import Settings
from hkai_qa.service import QAService

MAX_EXAMPLES = 50
PUBLIC = [
    ("POST", "/ask"),
    ("POST", "/search"),
    ("GET", "/documents"),
    ("GET", "/documents/{document_id}"),
    ("GET", "/health"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
]
ADMIN = [
    ("POST", "/documents"),
    ("DELETE", "/documents/{document_id}"),
    ("POST", "/index/rebuild"),
    ("GET", "/index/jobs"),
    ("GET", "/index/jobs/{job_id}"),
]
# Operations with a request body: only these have inputs a negative example can break (a path parameter
# is any string, and the rest take no input at all).
WITH_BODY = [("POST", "/ask"), ("POST", "/search"), ("POST", "/documents"), ("POST", "/index/rebuild")]


@pytest.fixture(scope="module")
def api(
    settings: Settings, service: QAService, start_server: Callable[[FastAPI], str]
) -> tuple[str, schemathesis.BaseSchema]:
    """A real server with admin off and no rate limit (the fuzzer asks far faster than a person), and the
    schema it publishes."""
    quiet = settings.model_copy(update={"rate_limit": None, "admin_token": None})
    url = start_server(create_app(quiet, service))
    return url, schemathesis.openapi.from_url(f"{url}/openapi.json")


def test_every_operation_in_the_schema_is_fuzzed(api: tuple[str, schemathesis.BaseSchema]):
    _, schema = api
    published = {(r.ok().method.upper(), r.ok().path) for r in schema.get_all_operations()}
    assert published == set(PUBLIC) | set(ADMIN)


@pytest.mark.parametrize(
    ("method", "path", "mode"),
    [(m, p, GenerationMode.POSITIVE) for m, p in PUBLIC + ADMIN]
    + [(m, p, GenerationMode.NEGATIVE) for m, p in WITH_BODY],
    ids=lambda value: value.value if isinstance(value, GenerationMode) else str(value),
)
def test_fuzz(api: tuple[str, schemathesis.BaseSchema], method: str, path: str, mode: GenerationMode):
    url, schema = api
    operation = schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis_settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    def fuzz(case: Case) -> None:
        case.call_and_validate(base_url=url, excluded_checks=[positive_data_acceptance], timeout=30)

    fuzz()
