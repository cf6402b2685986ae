"""The command line through its real entry point: build, ask, serve another corpus, clear errors."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from hkai_qa.config import Settings
from hkai_qa.service import QAService

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "tiny-corpus"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hkai_qa", *args], capture_output=True, text=True, env=ENV, cwd=cwd, timeout=300
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    index_dir = tmp_path_factory.mktemp("cli-index")
    result = _cli("build", "--corpus", str(FIXTURE), "--index", str(index_dir))
    assert result.returncode == 0, result.stderr
    assert "2 documents" in result.stdout
    return index_dir


def test_ask_json_answers_from_the_other_corpus(built: Path):
    result = _cli("ask", "How hot should the water be for oolong?", "--index", str(built), "--json")
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert "90 degrees Celsius" in body["answer"]
    assert body["citations"][0]["document_id"] == "guides/tea"
    assert body["citations"][0]["section"] == "Water"


def test_ask_plain_prints_answer_and_citation(built: Path):
    result = _cli("ask", "How much money did the Tide Foundation give the lab?", "--index", str(built))
    assert result.returncode == 0, result.stderr
    assert "HK$12 million" in result.stdout
    assert "harbour-lab > Funding" in result.stdout


def test_ask_off_topic_says_not_covered(built: Path):
    result = _cli("ask", "Who won the 2018 World Cup?", "--index", str(built))
    assert result.returncode == 0
    assert "don't cover" in result.stdout


def test_undecodable_question_is_one_line_error(built: Path):
    result = subprocess.run(
        [sys.executable, "-m", "hkai_qa", "ask", b"\xed\xa0\x80 lamppost", "--index", str(built)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: the question is not valid Unicode text (it holds a lone surrogate)"
    ]


@pytest.mark.parametrize(
    ("question", "message"),
    [
        ("When was the lab\x07 opened?", "error: question: control character U+0007 is not allowed"),
        ("When was the lab \x1b[31mopened?", "error: question: control character U+001B is not allowed"),
        ("When was the lab\u202e opened?", "error: question: bidirectional control U+202E is not allowed"),
    ],
)
def test_a_question_the_http_api_refuses_is_refused_by_the_cli_too(built: Path, question: str, message: str):
    result = _cli("ask", question, "--index", str(built))
    assert result.returncode == 1
    assert result.stderr.strip().startswith(message) and len(result.stderr.strip().splitlines()) == 1


def test_serve_serves_the_index_it_is_given(built: Path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "hkai_qa", "serve", "--index", str(built), "--port", str(port)],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not come up"
            assert server.poll() is None, "server exited"
            time.sleep(0.3)
        body = httpx.post(f"{url}/ask", json={"question": "How long is the first oolong infusion?"}, timeout=30).json()
        assert "45 seconds" in body["answer"]
        assert {d["id"] for d in httpx.get(f"{url}/documents").json()["documents"]} == {"guides/tea", "harbour-lab"}
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("build", "--corpus", "{tmp}/missing", "--index", "{tmp}/i"), "corpus folder not found"),
        (("build", "--corpus", "{tmp}", "--index", "{tmp}/i"), "no documents"),
        (("ask", "anything", "--index", "{tmp}/none"), "no index in"),
        (("serve", "--index", "{tmp}/none"), "no index in"),
        (("serve", "--index", "{tmp}", "--port", "99999"), "invalid setting: port"),
        (("ask", "anything", "--index", "/etc/passwd"), "no index in"),
        (("versions", "--index", "{tmp}/none"), "no index in"),
        (("versions", "--index", "{tmp}"), "no index in"),  # a folder, but nothing built in it
    ],
)
def test_errors_are_one_line_and_exit_non_zero(tmp_path: Path, args: tuple[str, ...], message: str):
    result = _cli(*(a.format(tmp=tmp_path) for a in args))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert errors == [lines[-1]] and message in lines[-1]  # progress lines may come first, the error last
    assert "Traceback" not in result.stderr


RECORD = (
    b'{"id": "t1", "question": "How hot should the water be?", "answerable": true, "document_id": "guides/tea", '
    b'"section": "Water", "gold": "90 degrees Celsius", "kind": "direct", "split": "tune"}\n'
)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (RECORD + b"[1,2]\n", "{file}:2: a question must be a JSON object, not a list"),
        (b"\xff\xfe{}\n", "{file}:1: not UTF-8 text"),
        (b'{"id": "x", "question": 5}\n', "{file}:1: `question` must be a non-empty string, not a number"),
        (
            RECORD.replace(b'"90 degrees Celsius"', b"5"),
            "{file}:1: `gold` must be a non-empty string for an answerable question, not a number",
        ),
        (b'{"id": "x", "question": "Why?"}\n', "{file}:1: `answerable` is missing: it must be true or false"),
        (b"", "no questions in {file}"),
    ],
)
def test_eval_refuses_a_bad_question_file_in_one_line(tmp_path: Path, built: Path, content: bytes, message: str):
    questions = tmp_path / "questions.jsonl"
    questions.write_bytes(content)
    result = _cli("eval", "--questions", str(questions), "--index", str(built))
    assert result.returncode == 1, result.stdout
    assert result.stderr.splitlines() == [f"error: {message.format(file=questions)}"]
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("variable", "value", "command", "example"),
    [
        ("HKAI_QA_CORS_ORIGINS", "https://example.org", ("ask", "anything"), '["https://example.org"]'),
        ("HKAI_QA_TRUSTED_PROXIES", "10.0.0.1", ("serve",), '["10.0.0.1"]'),
    ],
)
def test_a_list_setting_given_as_plain_text_is_one_line_naming_it(
    tmp_path: Path, variable: str, value: str, command: tuple[str, ...], example: str
):
    token = "do-not-print-this-token-0123"
    result = subprocess.run(
        [sys.executable, "-m", "hkai_qa", *command, "--index", str(tmp_path)],
        capture_output=True,
        text=True,
        env={**ENV, variable: value, "HKAI_QA_ADMIN_TOKEN": token},
        timeout=300,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"error: invalid setting {variable}: expected a JSON list, e.g. {variable}='{example}'"
    ]
    assert token not in result.stderr + result.stdout


def test_module_entry_point_shows_help():
    result = _cli("--help")
    assert result.returncode == 0
    for command in ("build", "ask", "serve", "eval", "versions", "rollback"):
        assert command in result.stdout


def test_build_versions_and_rollback_from_the_command_line(tmp_path: Path):
    index = tmp_path / "index"
    first = _cli("build", "--corpus", str(FIXTURE), "--index", str(index))
    assert first.returncode == 0, first.stderr
    assert "2 documents (2 added, 0 changed, 0 removed, 0 unchanged)" in first.stdout
    assert "reading" in first.stderr and "embedding" in first.stderr  # plain progress lines off a terminal
    again = _cli("build", "--corpus", str(FIXTURE), "--index", str(index))
    assert again.returncode == 0 and "is up to date" in again.stdout and "nothing embedded" in again.stdout
    forced = _cli("build", "--corpus", str(FIXTURE), "--index", str(index), "--force")
    assert forced.returncode == 0 and "embedded 0 texts" in forced.stdout

    listed = _cli("versions", "--index", str(index)).stdout.splitlines()
    assert len(listed) == 2 and listed[0].startswith("* ") and listed[1].startswith("  ")
    newest, older = listed[0].split()[1], listed[1].split()[0]
    assert "2 documents" in listed[0]
    rolled = _cli("rollback", "--index", str(index))
    assert rolled.returncode == 0 and f"now serving index {older}" in rolled.stdout and newest in rolled.stdout
    assert (index / "CURRENT").read_text().strip() == older
    bad = _cli("rollback", "no-such-version", "--index", str(index))
    assert bad.returncode == 1 and bad.stderr.startswith("error: index version 'no-such-version' does not exist")
    assert (index / "CURRENT").read_text().strip() == older


def test_build_on_a_terminal_shows_a_progress_bar(tmp_path: Path):
    import pty

    parent, child = pty.openpty()
    build = subprocess.Popen(
        [sys.executable, "-m", "hkai_qa", "build", "--corpus", str(FIXTURE), "--index", str(tmp_path / "i")],
        stdout=subprocess.PIPE,
        stderr=child,
        env={**ENV, "COLUMNS": "100"},
        text=True,
    )
    os.close(child)
    shown = b""
    try:
        while True:  # drain the terminal while the build draws on it, or it blocks on a full buffer
            try:
                data = os.read(parent, 65536)
            except OSError:  # EIO: the build has exited and closed its end
                break
            if not data:
                break
            shown += data
        out, _ = build.communicate(timeout=300)
    finally:
        os.close(parent)
        if build.poll() is None:
            build.kill()
            build.wait()
    assert build.returncode == 0 and "built index" in out
    text = shown.decode("utf-8", "replace")
    assert "embedding" in text and "━" in text  # rich's bar, drawn on the terminal
    assert "embedding 0/" not in text  # not the plain lines


# Chinese questions against the session index of the real corpus (built with the multilingual model).
HKSTP_ZH = "香港科技園幾時成立？"
HKSTP_SENTENCE = "The Hong Kong Science and Technology Parks Corporation (HKSTP) was formed on 7 May 2001."
HKSTP_SOURCE = "notes/rise-of-hong-kong-ai > ASTRI and Hong Kong Science Park"
OFF_TOPIC_ZH = "2018年世界盃冠軍是誰？"


def _cli_bytes(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """The CLI's exit code and output, decoded strictly as UTF-8 (as a terminal or a pipe reader would)."""
    result = subprocess.run([sys.executable, "-m", "hkai_qa", *args], capture_output=True, env=env or ENV, timeout=300)
    return result.returncode, result.stdout.decode("utf-8"), result.stderr.decode("utf-8", "replace")


def test_ask_chinese_prints_the_english_sentence_and_its_citation(settings: Settings, service: QAService):
    code, out, err = _cli_bytes("ask", HKSTP_ZH, "--index", str(settings.index_dir))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == HKSTP_SENTENCE
    assert re.fullmatch(r"\(confidence 0\.\d\d\)", lines[1])
    cited = re.fullmatch(rf"  \[1\] {re.escape(HKSTP_SOURCE)} \[(\d+):(\d+)\]", lines[2])
    assert cited, out
    text = service.document("notes/rise-of-hong-kong-ai").text
    assert text[int(cited.group(1)) : int(cited.group(2))] == HKSTP_SENTENCE


def test_ask_off_topic_chinese_says_not_covered_with_closest_sections(settings: Settings):
    code, out, err = _cli_bytes("ask", OFF_TOPIC_ZH, "--index", str(settings.index_dir))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "The documents don't cover this."
    assert len(lines) >= 2 and all(re.fullmatch(r"  closest: .+ > .+", line) for line in lines[1:]), out


@pytest.mark.parametrize("locale", ["C.UTF-8", "C"])  # also a bare C locale, as in a minimal container
def test_ask_json_keeps_the_chinese_question(settings: Settings, service: QAService, locale: str):
    env = {**ENV, "LC_ALL": locale, "LANG": locale}
    code, out, err = _cli_bytes("ask", f" {HKSTP_ZH}\n", "--index", str(settings.index_dir), "--json", env=env)
    assert code == 0, err
    body = json.loads(out)
    assert body["question"] == HKSTP_ZH  # trimmed, otherwise exactly as asked
    assert body["answer"] == HKSTP_SENTENCE
    first = body["citations"][0]
    assert f"{first['document_id']} > {first['section']}" == HKSTP_SOURCE
    assert first["quote"] == HKSTP_SENTENCE
    assert service.document(first["document_id"]).text[first["start"] : first["end"]] == HKSTP_SENTENCE
    start, end = body["highlight"]
    assert body["answer"][start:end] == "7 May 2001"


def test_eval_fit_says_which_models_it_could_not_fit_instead_of_failing(built: Path):
    """Five folds choose a threshold, so a model needs at least five right and five wrong tune answers; the
    tiny question file has three tune questions, too few for any."""
    questions = FIXTURE.parent / "tiny-questions.jsonl"
    result = _cli("eval", "--questions", str(questions), "--index", str(built), "--fit", "--json")
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["fitted_calibration"].startswith("not fitted: ")
    assert "fitted_same_script_calibration" not in body  # no Chinese question was asked
