"""Admin over real HTTP: tokens, uploads and their limits, deletes, rebuild jobs, live reload of new versions."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from hkai_qa.api import create_app
from hkai_qa.building import build_index
from hkai_qa.config import Settings
from hkai_qa.corpus import corpus_lock, delete_document
from hkai_qa.service import QAService
from hkai_qa.versions import VERSIONS, build_lock, current_version, publish

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TOKEN = "test-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BEES = (
    b"# Lantau bee survey\n\n## Findings\n\n"
    b"The 2025 Lantau bee survey counted 4,312 hives across 17 villages.\n\n"
    b"Most hives were kept by retired farmers near Tai O.\n"
)
BEE_QUESTION = "How many hives did the Lantau bee survey count?"


@pytest.fixture(scope="module")
def admin(tmp_path_factory, embedder, start_server) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("admin")
    corpus = root / "corpus"
    shutil.copytree(FIXTURES / "tiny-corpus", corpus)
    settings = Settings(
        corpus_dir=corpus,
        index_dir=root / "index",
        admin_token=TOKEN,
        max_upload_bytes=4096,
        reload_interval=0.2,
    )
    build_index(corpus, settings.index_dir, embedder)
    url = start_server(create_app(settings, QAService(settings, embedder)))
    return {"url": url, "corpus": corpus, "index": settings.index_dir, "embedder": embedder}


def _tree(folder: Path) -> dict[str, bytes | None]:
    """Every file with its bytes and every folder (None)."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*"))
    }


def _wait(url: str, job: dict[str, Any]) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while job["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
        job = httpx.get(f"{url}/index/jobs/{job['id']}", headers=AUTH).json()
    return job


def _rebuild(url: str, **body: Any) -> dict[str, Any]:
    response = httpx.post(f"{url}/index/rebuild", headers=AUTH, json=body or None)
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/index/jobs/{response.json()['id']}"
    return _wait(url, response.json())


def _upload(url: str, *files: tuple[str, bytes], folder: str | None = None, headers=AUTH) -> httpx.Response:
    data = {"folder": folder} if folder is not None else None
    return httpx.post(f"{url}/documents", headers=headers, files=[("files", f) for f in files], data=data)


def test_admin_endpoints_are_off_without_a_configured_token(server_url):
    for response in (
        httpx.post(f"{server_url}/index/rebuild", headers=AUTH),
        httpx.delete(f"{server_url}/documents/notes/finance", headers=AUTH),
        _upload(server_url, ("a.md", b"# A\n\nText here.\n")),
    ):
        assert response.status_code == 403
        error = response.json()["error"]
        assert error["type"] == "admin_disabled" and "HKAI_QA_ADMIN_TOKEN" in error["message"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token-0123456789"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": ""},
    ],
)
def test_missing_or_wrong_token_is_401_and_never_echoed(admin, headers):
    before = _tree(admin["corpus"])
    for response in (
        httpx.post(f"{admin['url']}/index/rebuild", headers=headers),
        httpx.get(f"{admin['url']}/index/jobs", headers=headers),
        _upload(admin["url"], ("x.md", b"# X\n\nSome text.\n"), headers=headers),
        httpx.delete(f"{admin['url']}/documents/harbour-lab", headers=headers),
    ):
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"]["type"] == "unauthorized"
        assert TOKEN not in response.text
    assert _tree(admin["corpus"]) == before


def test_upload_rebuild_answer_then_delete_rebuild_no_answer(admin):
    url = admin["url"]
    assert BEES[:20].decode() not in str(httpx.post(f"{url}/ask", json={"question": BEE_QUESTION}).json())
    response = _upload(url, ("lantau-bees.md", BEES), folder="field-notes")
    assert response.status_code == 201, response.text
    stored = response.json()["documents"]
    assert stored == [
        {
            "id": "field-notes/lantau-bees",
            "source": "field-notes/lantau-bees.md",
            "bytes": len(BEES),
            "sections": 1,
            "replaced": False,
        }
    ]
    assert (admin["corpus"] / "field-notes" / "lantau-bees.md").read_bytes() == BEES

    job = _rebuild(url)
    assert job["state"] == "succeeded", job
    summary = job["summary"]
    assert summary["added"] == ["field-notes/lantau-bees"] and summary["unchanged"] == 2 and summary["published"]
    assert job["index_version"] == httpx.get(f"{url}/health").json()["index_version"]
    body = httpx.post(f"{url}/ask", json={"question": BEE_QUESTION}).json()
    assert body["index_version"] == job["index_version"]
    assert "4,312 hives" in body["answer"]
    assert body["citations"][0]["document_id"] == "field-notes/lantau-bees"
    assert body["citations"][0]["section"] == "Findings"

    response = httpx.delete(f"{url}/documents/field-notes/lantau-bees", headers=AUTH)
    assert response.status_code == 200 and response.json()["source"] == "field-notes/lantau-bees.md"
    assert not (admin["corpus"] / "field-notes").exists()  # its folder held nothing else
    assert httpx.delete(f"{url}/documents/field-notes/lantau-bees", headers=AUTH).status_code == 404
    job = _rebuild(url)
    assert job["state"] == "succeeded" and job["summary"]["removed"] == ["field-notes/lantau-bees"]
    body = httpx.post(f"{url}/ask", json={"question": BEE_QUESTION}).json()
    assert all(c["document_id"] != "field-notes/lantau-bees" for c in body["citations"])
    assert "4,312" not in (body["answer"] or "")
    assert httpx.get(f"{url}/documents/field-notes/lantau-bees").status_code == 404


def test_a_rebuild_with_no_changes_reports_it_and_keeps_the_version(admin):
    version = httpx.get(f"{admin['url']}/health").json()["index_version"]
    job = _rebuild(admin["url"])
    assert job["state"] == "succeeded" and job["summary"]["published"] is False
    assert job["summary"]["embedded"] == 0 and job["index_version"] == version
    jobs = httpx.get(f"{admin['url']}/index/jobs", headers=AUTH).json()["jobs"]
    assert jobs[0]["id"] == job["id"]


SCANNED = (FIXTURES / "formats" / "scanned.pdf").read_bytes()


@pytest.mark.parametrize(
    ("files", "folder", "status", "kind", "says"),
    [
        ([("big.txt", b"Words and more words. " * 300)], None, 413, "payload_too_large", "limit"),
        ([("report.docx", b"PK\x03\x04 binary")], None, 415, "unsupported_format", ".pdf"),
        ([("latin.txt", "Café in Sai Kung.".encode("latin-1"))], None, 422, "unreadable_document", "UTF-8"),
        ([("empty.md", b"")], None, 422, "unreadable_document", "empty"),
        ([("scan.pdf", SCANNED)], None, 422, "unreadable_document", "no text layer"),
        ([("sources.md", "資料來源：https://x.hk/\n".encode())], None, 422, "unreadable_document", "source lines"),
        ([("fake.pdf", b"%PDF-1.4 this is not really a pdf")], None, 422, "unreadable_document", "PDF"),
        ([("ok.md", b"# Ok\n\nFine text.\n")], "../outside", 422, "invalid_request", "inside the corpus"),
        ([("ok.md", b"# Ok\n\nFine text.\n")], "/etc", 422, "invalid_request", "relative"),
        ([(".hidden.md", b"# Ok\n\nFine text.\n")], None, 422, "invalid_request", "file name"),
        ([("ok.md", b"# Ok\n\nFine text.\n"), ("bad.txt", b"\xff\xfe\x81")], None, 422, "unreadable_document", "bad"),
        ([("ok.md", b"# Ok\n\nFine.\n"), ("ok.md", b"# Ok\n\nFine.\n")], None, 422, "invalid_request", "twice"),
        ([("harbour-lab.md", b"# Clash\n\nSame id as harbour-lab.txt.\n")], None, 409, "conflict", "harbour-lab.txt"),
        ([("dup.md", b"# A\n\nText a.\n"), ("dup.txt", b"Text b.\n")], None, 422, "invalid_request", "both"),
        ([("é" * 100 + ".md", b"# Long\n\nA long name.\n")], None, 422, "invalid_request", "bytes"),
        ([("ok.md", b"# Ok\n\nFine text.\n")], "x" * 300, 422, "invalid_request", "bytes"),
        ([("ok.md", b"# Ok\n\nFine text.\n")], "/".join("d" * 9), 422, "invalid_request", "levels deep"),
        ([("ok.md", b"# Ok\n\nFine text.\n")], "harbour-lab.txt", 422, "invalid_request", "could not be written"),
        ([("ok.md", b"# Ok\n\nFine text.\n")], "notes.", 422, "invalid_request", "may not end in a dot"),
        ([("ok.md", b"# Ok\n\nFine text.\n")], "reports/2025./q1", 422, "invalid_request", "end in a dot"),
        ([("ok.md", b"# Ok\n\nFine text.\n")], "notes /x", 422, "invalid_request", "with a space"),
        ([("ok.md", b"# Ok\n\nFine text.\n")], "x/ notes", 422, "invalid_request", "with a space"),
        ([("ok.md", b"# Ok\n\nFine text.\n")], "x/notes\u3000/y", 422, "invalid_request", "with a space"),
        ([("notes.", b"# Ok\n\nFine text.\n")], None, 422, "invalid_request", "file name"),
        ([("guides", b"# Ok\n\nFine text.\n")], None, 415, "unsupported_format", "supported"),
        ([("evil\u202etxt.md", b"# Ok\n\nFine text.\n")], None, 422, "invalid_request", "file name"),
        ([(f"f{i}.md", b"# F\n\nText.\n") for i in range(21)], None, 413, "payload_too_large", "at most 20"),
    ],
)
def test_bad_uploads_are_refused_with_a_reason_and_write_nothing(admin, files, folder, status, kind, says):
    before = _tree(admin["corpus"])
    outside = sorted(p.name for p in admin["corpus"].parent.iterdir())
    response = _upload(admin["url"], *files, folder=folder)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == kind and says in error["message"]
    assert _tree(admin["corpus"]) == before
    assert sorted(p.name for p in admin["corpus"].parent.iterdir()) == outside


def test_not_multipart_is_415_and_no_files_is_422(admin):
    response = httpx.post(f"{admin['url']}/documents", headers=AUTH, json={"files": ["a.md"]})
    assert response.status_code == 415 and "multipart/form-data" in response.json()["error"]["message"]
    response = httpx.post(f"{admin['url']}/documents", headers=AUTH, files={"other": ("a.md", b"x")})
    assert response.status_code == 422 and "no files" in response.json()["error"]["message"]


def test_a_path_in_the_file_name_is_dropped_and_the_file_stays_inside(admin):
    response = _upload(admin["url"], ("../../escape.md", b"# Escape\n\nThis file tried to leave.\n"))
    assert response.status_code == 201, response.text
    assert response.json()["documents"][0]["source"] == "escape.md"
    assert (admin["corpus"] / "escape.md").is_file()
    assert not (admin["corpus"].parent / "escape.md").exists()
    assert httpx.delete(f"{admin['url']}/documents/escape", headers=AUTH).status_code == 200


def test_a_rebuild_while_another_process_builds_is_409_at_once_and_starts_no_job(admin):
    version = httpx.get(f"{admin['url']}/health").json()["index_version"]
    jobs = httpx.get(f"{admin['url']}/index/jobs", headers=AUTH).json()["jobs"]
    with build_lock(admin["index"]):  # as if `hkai-qa build` were running on the same index folder
        response = httpx.post(f"{admin['url']}/index/rebuild", headers=AUTH, json={"force": True})
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error["type"] == "build_running" and "another build is running" in error["message"]
    assert httpx.get(f"{admin['url']}/index/jobs", headers=AUTH).json()["jobs"] == jobs
    assert httpx.get(f"{admin['url']}/health").json()["index_version"] == version
    assert _rebuild(admin["url"])["state"] == "succeeded"  # the lock is free again: the next one runs
    assert httpx.get(f"{admin['url']}/index/jobs/no-such-job", headers=AUTH).status_code == 404


def test_a_rebuild_that_fails_says_why_which_version_serves_and_changes_nothing(tmp_path, embedder, start_server):
    corpus = tmp_path / "corpus"
    shutil.copytree(FIXTURES / "tiny-corpus", corpus)
    settings = Settings(corpus_dir=corpus, index_dir=tmp_path / "index", admin_token=TOKEN, reload_interval=0)
    version = build_index(corpus, settings.index_dir, embedder).version
    url = start_server(create_app(settings, QAService(settings, embedder)))
    shutil.rmtree(corpus)  # the folder the server rebuilds from is gone
    job = _rebuild(url, force=True)
    assert job["state"] == "failed" and job["progress"]["stage"] == "failed" and job["finished_at"]
    assert job["error"]["type"] == "corpus_not_found" and str(corpus) in job["error"]["message"]
    assert job["index_version"] == version  # what a client is served now: the version from before
    assert httpx.get(f"{url}/health").json()["index_version"] == version
    assert current_version(settings.index_dir) == version


def _served(url: str, version: str, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if httpx.get(f"{url}/health").json()["index_version"] == version:
            return True
        time.sleep(0.1)
    return False


def test_a_version_published_by_another_process_is_picked_up_and_a_corrupt_one_refused(admin):
    url, index = admin["url"], admin["index"]
    good = build_index(admin["corpus"], index, admin["embedder"], force=True).version
    assert _served(url, good)

    corrupt = "29990101T000000000000Z-corrupt"
    shutil.copytree(index / VERSIONS / good, index / VERSIONS / corrupt)
    manifest_path = index / VERSIONS / corrupt / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["version"] = corrupt  # whole in every way but one: a swap would show in /health
    manifest_path.write_text(json.dumps(manifest))
    (index / VERSIONS / corrupt / "chunks.faiss").write_bytes(b"truncated")
    publish(index, corrupt)
    time.sleep(1.0)  # five watcher rounds
    assert httpx.get(f"{url}/health").json()["index_version"] == good
    response = httpx.post(f"{url}/ask", json={"question": "How hot should the water be for oolong?"})
    assert response.status_code == 200 and response.json()["index_version"] == good
    publish(index, good)
    shutil.rmtree(index / VERSIONS / corrupt)


def test_html_and_pdf_uploads_are_answered_with_page_citations_that_slice_the_stored_text(admin):
    url = admin["url"]
    files = [
        ("report.pdf", (FIXTURES / "formats" / "report.pdf").read_bytes()),
        ("article.html", (FIXTURES / "formats" / "article.html").read_bytes()),
    ]
    response = _upload(url, *files, folder="formats")
    assert response.status_code == 201, response.text
    with corpus_lock(admin["index"]):  # as if an upload were being written: the job waits to read
        first = httpx.post(f"{url}/index/rebuild", headers=AUTH).json()
        second = httpx.post(f"{url}/index/rebuild", headers=AUTH)
        assert second.status_code == 409 and first["id"] in second.json()["error"]["message"]
        time.sleep(0.3)
        assert httpx.get(f"{url}/index/jobs/{first['id']}", headers=AUTH).json()["state"] == "running"
    job = _wait(url, first)
    assert job["state"] == "succeeded" and set(job["summary"]["added"]) == {"formats/report", "formats/article"}

    body = httpx.post(f"{url}/ask", json={"question": "When was the Kowloon Robotics Consortium founded?"}).json()
    assert "2019" in body["answer"]
    citation = body["citations"][0]
    assert citation["document_id"] == "formats/report" and citation["section"] == "Page 2 – History"
    assert body["answer"].startswith("The Kowloon Robotics Consortium")  # not the heading line above it
    document = httpx.get(f"{url}/documents/formats/report").json()
    assert document["text"][citation["start"] : citation["end"]] == citation["quote"]
    assert [s["title"] for s in document["sections"]] == ["Page 1 – Overview", "Page 2 – History", "Page 3 – Outlook"]
    page = httpx.get(f"{url}/documents/formats/article").json()
    assert page["title"] == "Harbourline Robotics Week draws record crowds" and len(page["sections"]) > 1
    assert "COOKIE-SENTINEL" not in page["text"] and "FOOTER-SENTINEL" not in page["text"]

    for document_id in ("formats/report", "formats/article"):
        assert httpx.delete(f"{url}/documents/{document_id}", headers=AUTH).status_code == 200
    assert _rebuild(url)["state"] == "succeeded"


def test_a_rollback_from_the_command_line_is_served_without_a_restart(admin):
    from hkai_qa.index import rollback

    url, index = admin["url"], admin["index"]
    newest = build_index(admin["corpus"], index, admin["embedder"], force=True).version
    assert _served(url, newest)
    previous = rollback(index, "all-MiniLM-L6-v2")
    assert previous != newest and _served(url, previous)
    publish(index, newest)
    assert _served(url, newest)


def test_a_chunked_upload_without_a_length_is_cut_off_at_the_limit_and_writes_nothing(admin):
    before = _tree(admin["corpus"])
    boundary = "hkai-boundary"

    def body():  # no Content-Length: the limit must hold on the bytes actually received
        yield f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="huge.txt"\r\n\r\n'.encode()
        for _ in range(200):
            yield b"Enormous text. " * 1000
        yield f"\r\n--{boundary}--\r\n".encode()

    response = httpx.post(
        f"{admin['url']}/documents",
        headers={**AUTH, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        content=body(),
    )
    assert response.status_code == 413 and "over the limit" in response.json()["error"]["message"]
    assert _tree(admin["corpus"]) == before


def test_delete_never_follows_a_symlinked_folder_out_of_the_corpus(admin, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.md").write_text("# Secret\n\nNot part of the corpus.\n", encoding="utf-8")
    link = admin["corpus"] / "ext"
    link.symlink_to(outside, target_is_directory=True)
    try:
        response = httpx.delete(f"{admin['url']}/documents/ext/secret", headers=AUTH)
        assert response.status_code == 404, response.text
        assert (outside / "secret.md").is_file()
    finally:
        link.unlink()


@pytest.mark.parametrize(
    "document_id", ["guides/", "guides//tea", "%2E/harbour-lab", "guides/%2E%2E/harbour-lab", "x" * 300]
)
def test_delete_refuses_ids_that_are_not_exactly_a_document_id(admin, document_id):
    before = _tree(admin["corpus"])
    response = httpx.delete(f"{admin['url']}/documents/{document_id}", headers=AUTH)
    assert response.status_code in (404, 422), response.text
    assert _tree(admin["corpus"]) == before


def test_malformed_multipart_is_a_clear_422_not_a_json_error(admin):
    response = httpx.post(
        f"{admin['url']}/documents", headers={**AUTH, "Content-Type": "multipart/form-data"}, content=b"--x\r\n"
    )
    assert response.status_code == 422 and "multipart" in response.json()["error"]["message"]


def test_rebuild_checks_the_token_before_the_body_and_then_the_body(admin):
    jobs = httpx.get(f"{admin['url']}/index/jobs", headers=AUTH).json()["jobs"]
    response = httpx.post(
        f"{admin['url']}/index/rebuild", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 401
    for malformed in (b"{not json", b"\xff\xfe", b'{"force": tru'):
        response = httpx.post(f"{admin['url']}/index/rebuild", content=malformed, headers=AUTH)
        asked = httpx.post(
            f"{admin['url']}/ask", content=malformed, headers={"Content-Type": "application/json"}
        )  # the same mistake elsewhere in the API: the same answer
        assert response.status_code == asked.status_code == 400, response.text
        error = response.json()["error"]
        assert set(error) == set(asked.json()["error"]) == {"type", "message", "request_id"}
        assert error["type"] == asked.json()["error"]["type"] == "invalid_json"
        assert "not valid JSON" in error["message"] and '{"force": true}' in error["message"]
    for wrong in ({"force": "yes"}, [True], {"force": True, "extra": 1}):  # JSON, but not this body: 422
        response = httpx.post(f"{admin['url']}/index/rebuild", json=wrong, headers=AUTH)
        assert response.status_code == 422 and response.json()["error"]["type"] == "invalid_request"
    assert httpx.get(f"{admin['url']}/index/jobs", headers=AUTH).json()["jobs"] == jobs


def test_delete_removes_a_hand_placed_file_whose_name_an_upload_would_refuse(admin):
    odd = admin["corpus"] / "minutes: 2024?.txt"
    odd.write_text("The minutes of the 2024 meeting.\n", encoding="utf-8")
    response = httpx.delete(f"{admin['url']}/documents/minutes%3A%202024%3F", headers=AUTH)
    assert response.status_code == 200, response.text
    assert not odd.exists()


def test_delete_removes_the_folders_it_empties_and_only_those(tmp_path):
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    (corpus / "reports" / "2025").mkdir(parents=True)
    index.mkdir()
    (corpus / "reports" / "2025" / "q1.md").write_text("# Q1\n\nThe first quarter report text.\n", encoding="utf-8")
    (corpus / "reports" / "annual.md").write_text("# Annual\n\nThe annual report text here.\n", encoding="utf-8")
    assert delete_document(corpus, index, "reports/2025/q1") == "reports/2025/q1.md"
    assert not (corpus / "reports" / "2025").exists() and (corpus / "reports" / "annual.md").is_file()
    assert delete_document(corpus, index, "reports/annual") == "reports/annual.md"
    assert not (corpus / "reports").exists() and corpus.is_dir()  # the corpus folder itself always stays
