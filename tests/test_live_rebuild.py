"""Real processes: a server keeps answering while builds are killed with -9 mid-embedding and mid-write,
restarts on the old version, and swaps versions under 20 concurrent clients without a failed request."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from servers import ServeProcess

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TOKEN = "live-rebuild-token-9876543210"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ENV = {
    **os.environ,
    "HF_HUB_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "HKAI_QA_ADMIN_TOKEN": TOKEN,
    "HKAI_QA_RELOAD_INTERVAL": "0.2",
    "HKAI_QA_RATE_LIMIT": "none",  # 20 clients on one address ask far faster than the default allows
}
QUESTION = "How hot should the water be for oolong?"


def _timetable(lines: int) -> str:
    """A long document of distinct sentences, so that embedding it takes a few seconds."""
    parts = ["# Tram timetable survey\n"]
    for block in range(lines // 10):
        parts.append(f"\n## District {block}\n\n")
        parts.append(
            " ".join(
                f"Tram stop {block}-{i} in district {block} saw {block * 37 + i * 11} riders on survey day {i}."
                for i in range(10)
            )
            + "\n"
        )
    return "".join(parts)


class Server(ServeProcess):
    """`hkai-qa serve` in its own process, logging to a file, ready when constructed."""

    def __init__(self, corpus: Path, index: Path, log: Path) -> None:
        super().__init__(corpus, index, log, ENV)
        self.wait_ready(120)

    def version(self) -> str:
        return str(httpx.get(f"{self.url}/health").json()["index_version"])

    def ask(self) -> dict[str, Any]:
        response = httpx.post(f"{self.url}/ask", json={"question": QUESTION}, timeout=30)
        assert response.status_code == 200, response.text
        return dict(response.json())


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hkai_qa", *args], capture_output=True, text=True, env=ENV, timeout=600
    )


@contextmanager
def _build_held_in_its_write(corpus: Path, index: Path) -> Iterator[subprocess.Popen[str]]:
    """`hkai-qa build --force`, held by the failpoint after its data files are written and before the manifest,
    with the index's writer lock held (every vector is cached, so it gets there without the model); killed with
    SIGKILL on the way out."""
    build = _build(corpus, index, "--force", env={"HKAI_QA_FAILPOINT_BEFORE_MANIFEST": "60"})
    with build:
        deadline = time.monotonic() + 120
        while not any((index / "versions" / name / "sentences.npy").exists() for name in _staging(index)):
            assert build.poll() is None and time.monotonic() < deadline, "the build never reached the write"
            time.sleep(0.05)
        try:
            yield build
        finally:
            os.kill(build.pid, signal.SIGKILL)
            build.wait(timeout=30)


def _build(corpus: Path, index: Path, *options: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "hkai_qa", "build", "--corpus", str(corpus), "--index", str(index), *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**ENV, **(env or {})},
    )


def _kill_when(build: subprocess.Popen[str], ready: Any) -> str:
    """Read the build's progress lines; kill -9 it on the first line `ready` accepts."""
    with build:
        assert build.stderr is not None
        for line in build.stderr:
            if ready(line.strip()):
                os.kill(build.pid, signal.SIGKILL)
                build.wait(timeout=30)
                return line.strip()
        build.wait(timeout=30)
    raise AssertionError(f"the build ended before the moment to kill it (exit {build.returncode})")


def _staging(index: Path) -> list[str]:
    return [p.name for p in (index / "versions").iterdir() if p.name.startswith(".staging-")]


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("live")
    corpus, index = root / "corpus", root / "index"
    shutil.copytree(FIXTURES / "tiny-corpus", corpus)
    result = _cli("build", "--corpus", str(corpus), "--index", str(index))
    assert result.returncode == 0, result.stderr
    server = Server(corpus, index, root / "server.log")
    yield {"root": root, "corpus": corpus, "index": index, "server": server}
    server.stop()


def test_kill_9_while_embedding_keeps_the_old_version_serving_and_the_next_build_works(live):
    corpus, index, server = live["corpus"], live["index"], live["server"]
    old = server.version()
    (corpus / "timetable.md").write_text(_timetable(600), encoding="utf-8")
    build = _build(corpus, index)

    def mid_embedding(line: str) -> bool:
        if not line.startswith("embedding "):
            return False
        done, total = (int(n) for n in line.split()[1].split("/"))
        return 0 < done < total

    _kill_when(build, mid_embedding)
    assert build.returncode == -signal.SIGKILL
    assert server.version() == old and server.ask()["index_version"] == old
    assert (index / "CURRENT").read_text().strip() == old

    restarted = Server(corpus, index, live["root"] / "restart-1.log")  # a restart loads the old version
    try:
        assert restarted.version() == old and restarted.ask()["answer"]
    finally:
        restarted.stop()

    result = _cli("build", "--corpus", str(corpus), "--index", str(index))  # the dead build's lock is gone
    assert result.returncode == 0, result.stderr
    assert "1 added" in result.stdout
    new = (index / "CURRENT").read_text().strip()
    assert new != old and server.ask()  # still answering
    deadline = time.monotonic() + 20
    while server.version() != new:
        assert time.monotonic() < deadline, "the server did not pick up the new version"
        time.sleep(0.1)


def test_kill_9_while_writing_the_index_keeps_the_old_version(live):
    corpus, index, server = live["corpus"], live["index"], live["server"]
    old = server.version()
    # The kill lands inside the write every time.
    with _build_held_in_its_write(corpus, index):
        pass
    [left] = _staging(index)
    assert not (index / "versions" / left / "manifest.json").exists()
    assert (index / "CURRENT").read_text().strip() == old
    assert server.version() == old and server.ask()["index_version"] == old

    restarted = Server(corpus, index, live["root"] / "restart-2.log")
    try:
        assert restarted.version() == old
    finally:
        restarted.stop()
    result = _cli("build", "--corpus", str(corpus), "--index", str(index), "--force")
    assert result.returncode == 0, result.stderr
    assert not _staging(index)  # the leftovers of the killed build are cleared
    assert "embedded 0 texts" in result.stdout


def test_twenty_clients_during_an_http_rebuild_see_only_old_or_new_versions(live):
    url, server = live["server"].url, live["server"]
    old = (live["index"] / "CURRENT").read_text().strip()
    deadline = time.monotonic() + 20
    while server.version() != old:  # the previous test's last build may still be loading in the server
        assert time.monotonic() < deadline, "the server did not pick up the current version"
        time.sleep(0.1)
    statuses: list[int] = []
    versions: set[str] = set()
    stop = threading.Event()
    lock = threading.Lock()

    def client(number: int) -> None:
        with httpx.Client(timeout=60) as http:
            while not stop.is_set():
                response = http.post(f"{url}/ask", json={"question": f"{QUESTION} ({number})"})
                with lock:
                    statuses.append(response.status_code)
                    if response.status_code == 200:
                        versions.add(response.json()["index_version"])

    threads = [threading.Thread(target=client, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        notes = b"# Ferry notes\n\n## Night ferries\n\nThe night ferry to Cheung Chau leaves Central at 00:30.\n"
        upload = httpx.post(f"{url}/documents", headers=AUTH, files=[("files", ("ferries.md", notes))], timeout=60)
        assert upload.status_code == 201, upload.text
        job = httpx.post(f"{url}/index/rebuild", headers=AUTH, timeout=60).json()
        deadline = time.monotonic() + 300
        while job["state"] in ("queued", "running"):
            assert time.monotonic() < deadline, job
            time.sleep(0.2)
            job = httpx.get(f"{url}/index/jobs/{job['id']}", headers=AUTH, timeout=60).json()
        time.sleep(1.0)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
    assert job["state"] == "succeeded", job
    new = job["index_version"]
    assert statuses and set(statuses) == {200}
    assert versions == {old, new}


def test_an_http_rebuild_while_the_cli_builds_is_409_and_starts_no_job(live):
    corpus, index, url = live["corpus"], live["index"], live["server"].url
    jobs = httpx.get(f"{url}/index/jobs", headers=AUTH).json()["jobs"]
    with _build_held_in_its_write(corpus, index):
        response = httpx.post(f"{url}/index/rebuild", headers=AUTH, timeout=60)
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error["type"] == "build_running" and "another build is running" in error["message"]
    assert httpx.get(f"{url}/index/jobs", headers=AUTH).json()["jobs"] == jobs  # no job that could only fail
    started = httpx.post(f"{url}/index/rebuild", headers=AUTH, timeout=60)  # the killed build's lock died with it
    assert started.status_code == 202, started.text
    job = started.json()
    deadline = time.monotonic() + 300
    while job["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
        job = httpx.get(f"{url}/index/jobs/{job['id']}", headers=AUTH, timeout=60).json()
    assert job["state"] == "succeeded", job
    assert not _staging(index)  # and it cleared what the killed build left


def test_the_admin_token_never_reaches_the_logs(live):
    httpx.post(f"{live['server'].url}/index/rebuild", headers={"Authorization": "Bearer not-the-token-at-all"})
    logs = "".join(p.read_text(errors="replace") for p in live["root"].glob("*.log"))
    assert "/index/rebuild" in logs  # the access log is there to look at
    assert TOKEN not in logs and "not-the-token-at-all" not in logs
