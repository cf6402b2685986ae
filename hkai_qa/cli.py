"""hkai-qa build | ask | serve: the command line, with one-line errors and non-zero exits."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from hkai_qa.config import Settings
from hkai_qa.errors import HkaiError

app = typer.Typer(
    help="Ask questions about Hong Kong's AI ecosystem; answers are verbatim, cited spans of the documents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

CorpusOption = Annotated[Path | None, typer.Option("--corpus", help="Folder of documents [default: corpus/].")]
IndexOption = Annotated[Path | None, typer.Option("--index", help="Index folder [default: index/].")]


def _settings(**overrides: Any) -> Settings:
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


@app.command()
def build(corpus: CorpusOption = None, index: IndexOption = None) -> None:
    """Read the corpus, embed it and publish a new index version."""
    from hkai_qa.embedding import Embedder
    from hkai_qa.index import build_index

    settings = _settings(corpus_dir=corpus, index_dir=index)
    summary = build_index(
        settings.corpus_dir,
        settings.index_dir,
        Embedder(settings.model),
        settings.chunk_tokens,
        report=lambda line: typer.echo(line, err=True),
    )
    typer.echo(
        f"built index {summary.version} in {settings.index_dir}: {summary.documents} documents, "
        f"{summary.sections} sections, {summary.chunks} chunks, {summary.sentences} sentences "
        f"in {summary.seconds:.1f} s"
    )


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question to answer.")],
    index: IndexOption = None,
    top_k: Annotated[int, typer.Option("--top-k", help="Citations to return (1-20).")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full answer as JSON.")] = False,
) -> None:
    """Answer one question from the index."""
    from hkai_qa.service import QAService

    service = QAService(_settings(index_dir=index))
    answer, took = service.ask(question, top_k)
    if as_json:
        payload = {
            "question": answer.question,
            "answer": answer.text,
            "confidence": answer.confidence,
            "citations": [asdict(c) for c in answer.citations],
            "related": [asdict(c) for c in answer.related],
            "index_version": service.index.version,
            "took_ms": round(took, 2),
        }
        typer.echo(json.dumps(payload, ensure_ascii=False, indent=2))
        return
    if answer.text is None:
        typer.echo("The documents don't cover this.")
        for related in answer.related:
            typer.echo(f"  closest: {related.document_title} > {related.section}")
        return
    typer.echo(answer.text)
    typer.echo(f"(confidence {answer.confidence:.2f})")
    for number, citation in enumerate(answer.citations, 1):
        typer.echo(f"  [{number}] {citation.document_id} > {citation.section} [{citation.start}:{citation.end}]")


@app.command()
def serve(
    index: IndexOption = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on [default: 127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [default: 8000].")] = None,
) -> None:
    """Serve the API and the chat page."""
    import uvicorn

    from hkai_qa.api import create_app

    settings = _settings(index_dir=index, host=host, port=port)
    application = create_app(settings)
    typer.echo(f"serving index {application.state.service.index.version} at http://{settings.host}:{settings.port}")
    uvicorn.run(application, host=settings.host, port=settings.port, log_level="info")


def main() -> None:
    """Entry point: domain errors become one line on stderr and exit status 1."""
    try:
        app()
    except HkaiError as error:
        typer.echo(f"error: {error.message}", err=True)
        sys.exit(1)
