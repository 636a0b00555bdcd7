"""The sub-commands of ``qwen-pg`` (ingest, ask, search, status, demo, sql)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rich.console import Console

from ..errors import InvalidInputError
from ..rag import StreamContext, StreamDone, StreamToken
from ._kb import open_knowledge_base, run_ingest, threshold_of
from ._render import chunk_table, prompt_panel, stdout_console

if TYPE_CHECKING:
    from ..rag.knowledge_base import KnowledgeBase

__all__ = ["run"]


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
    kb = open_knowledge_base(args, create=False)
    try:
        stream_answer(kb, args.question, console, show_prompt=args.show_prompt)
    finally:
        kb.close()
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    console = stdout_console()
    if not args.text.strip():
        raise InvalidInputError("the search text is empty: give the words to search for.")
    kb = open_knowledge_base(args, chat=False, create=False)
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


def cmd_index(args: argparse.Namespace) -> int:
    from ._index import run_index

    return run_index(args, stdout_console())


def cmd_sql(args: argparse.Namespace) -> int:
    from ._sql import run_sql

    return run_sql(args, stdout_console())


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "ingest": cmd_ingest,
    "ask": cmd_ask,
    "search": cmd_search,
    "status": cmd_status,
    "demo": cmd_demo,
    "index": cmd_index,
    "sql": cmd_sql,
}


def run(args: argparse.Namespace) -> int:
    """Dispatch to the sub-command."""
    return COMMANDS[args.command](args)
