"""The sub-commands of ``qwen-pg`` (ingest, ask, search, status, demo, sql)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..errors import ConfigurationError
from ..rag import StreamContext, StreamDone, StreamToken
from ._render import chunk_table, ingest_summary, prompt_panel, stdout_console

if TYPE_CHECKING:
    from ..ingest import IngestSummary
    from ..rag.knowledge_base import KnowledgeBase

__all__ = ["DEFAULT_THRESHOLD", "open_knowledge_base", "run", "run_ingest"]

# A relevance score (cosine similarity) under which DashScope text-embedding-v3/v4 chunks are
# rarely on topic. Tune it for your corpus with `qwen-pg search`.
DEFAULT_THRESHOLD = 0.45


def threshold_of(args: argparse.Namespace, default: float = DEFAULT_THRESHOLD) -> float | None:
    """The threshold option: a number, ``None`` (off), or ``"auto"`` -> ``default``."""
    value = args.threshold
    if value == "auto":
        return default
    return None if value is None else float(value)


def open_knowledge_base(
    args: argparse.Namespace,
    *,
    chat: bool = True,
    table: str | None = None,
    api_key: str | None = None,
    base_url: str | None = None,
    threshold: float | None = None,
) -> KnowledgeBase:
    """The knowledge base the global options describe."""
    from ..config import resolve_api_key
    from ..rag.knowledge_base import KnowledgeBase

    resolve_api_key(api_key)  # fail before touching the database when no key is set
    return KnowledgeBase.open(
        args.dsn,
        table_name=table or args.table,
        embedding_model=args.embedding_model,
        dimensions=args.dimensions,
        chat_model=args.chat_model if chat else None,
        api_key=api_key,
        base_url=base_url or args.base_url,
        k=args.k,
        score_threshold=threshold if threshold is not None else threshold_of(args),
        language=args.language,
    )


def run_ingest(
    kb: KnowledgeBase,
    paths: list[str | Path],
    console: Console,
    *,
    index: str = "hnsw",
    chunk_size: int | None = None,
    chunk_overlap: int | None = None,
    prune: bool = False,
) -> IngestSummary:
    """Ingest with a progress bar, make sure the index exists, print the summary."""
    from ..ingest import discover

    files = discover(paths)
    if not files:
        raise ConfigurationError("No txt, md, html or pdf files under the given paths.")
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(f"splitting {len(files)} files", total=None)

        def on_start(total: int) -> None:
            progress.update(task, total=total, description="chunks")

        def on_chunks(path: Path, done: int) -> None:
            progress.update(task, advance=done, description=path.name)

        summary = kb.ingest(
            paths if prune else files,
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
            prune=prune,
            on_start=on_start,
            on_chunks=on_chunks,
        )
        progress.update(task, description=f"{summary.files} files")
    if index != "none":
        name = kb.store.create_index(index)
        console.print(f"vector index: {name} ({index})")
    console.print(ingest_summary(summary))
    return summary


def cmd_ingest(args: argparse.Namespace) -> int:
    console = stdout_console()
    kb = open_knowledge_base(args, chat=False)
    try:
        run_ingest(
            kb,
            list(args.paths),
            console,
            index=args.index,
            chunk_size=args.chunk_size,
            chunk_overlap=args.chunk_overlap,
            prune=args.prune,
        )
    finally:
        kb.close()
    return 0


def stream_answer(
    kb: KnowledgeBase,
    question: str,
    console: Console,
    *,
    show_prompt: bool = False,
    write: Callable[[str], Any] | None = None,
) -> Any:
    """Stream the answer to the terminal, then the sources; return the result."""
    write = write or sys.stdout.write
    result = None
    for event in kb.stream(question):
        if isinstance(event, StreamContext):
            if show_prompt and event.result.messages:
                console.print(prompt_panel(event.result.messages, title="prompt"))
        elif isinstance(event, StreamToken):
            write(event.text)
            sys.stdout.flush()
        elif isinstance(event, StreamDone):
            result = event.result
    write("\n")
    assert result is not None
    if not result.retrieved:
        console.print(
            f"[yellow]table {kb.store.table_name} has no chunks yet: run "
            "`qwen-pg ingest PATH` first.[/]"
        )
    elif result.no_context:
        called = "the model was asked anyway" if result.model_called else "Qwen was not called"
        console.print(
            f"[yellow]no chunk reached the threshold ({kb.config.score_threshold}); {called}.[/]"
        )
    else:
        console.print(
            chunk_table(result.chunks, title="sources", threshold=kb.config.score_threshold)
        )
    return result


def cmd_ask(args: argparse.Namespace) -> int:
    console = stdout_console()
    kb = open_knowledge_base(args)
    try:
        stream_answer(kb, args.question, console, show_prompt=args.show_prompt)
    finally:
        kb.close()
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    console = stdout_console()
    kb = open_knowledge_base(args, chat=False)
    try:
        chunks = kb.search(args.text, k=args.k, mode=args.mode)
    finally:
        kb.close()
    threshold = threshold_of(args) if args.mode == "vector" else None
    used = [c for c in chunks if threshold is None or (c.score or 0) >= threshold]
    console.print(chunk_table(chunks, title=f"{args.mode} search", threshold=threshold, used=used))
    if not chunks:
        console.print("[yellow]no chunks: ingest documents first (qwen-pg ingest PATH).[/]")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from ._status import print_status

    print_status(args, stdout_console())
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args, stdout_console())


def cmd_sql(args: argparse.Namespace) -> int:
    from ._sql import run_sql

    return run_sql(args, stdout_console())


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "ingest": cmd_ingest,
    "ask": cmd_ask,
    "search": cmd_search,
    "status": cmd_status,
    "demo": cmd_demo,
    "sql": cmd_sql,
}


def run(args: argparse.Namespace) -> int:
    """Dispatch to the sub-command."""
    return COMMANDS[args.command](args)
