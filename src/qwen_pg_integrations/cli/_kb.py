"""What the commands share: the knowledge base the options describe, ingest with progress."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..errors import ConfigurationError
from ._render import ingest_summary

if TYPE_CHECKING:
    from ..ingest import IngestSummary
    from ..rag.knowledge_base import KnowledgeBase

__all__ = [
    "DEFAULT_RERANK_THRESHOLD",
    "DEFAULT_THRESHOLD",
    "open_knowledge_base",
    "run_ingest",
    "threshold_of",
]

# A relevance score (cosine similarity) under which DashScope text-embedding-v3/v4 chunks are
# rarely on topic. Tune it for your corpus with `qwen-pg search`.
DEFAULT_THRESHOLD = 0.45
# With --rerank the threshold applies to rerank scores (a cross-encoder's: off-topic passages
# score near 0); a starting point, tune it for your corpus.
DEFAULT_RERANK_THRESHOLD = 0.2


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
    create: bool = True,
) -> KnowledgeBase:
    """The knowledge base the global options describe (``create=False``: read commands, which
    never create anything)."""
    from ..config import resolve_api_key
    from ..dashscope.compat import uses_compat
    from ..rag.knowledge_base import KnowledgeBase

    dialect = getattr(args, "dialect", None)
    server_url = base_url or args.base_url
    if not uses_compat(server_url, dialect) or dialect == "dashscope":
        resolve_api_key(api_key)  # fail before touching the database when no key is set
    rerank_model = getattr(args, "rerank", None)
    default = DEFAULT_RERANK_THRESHOLD if rerank_model else DEFAULT_THRESHOLD
    return KnowledgeBase.open(
        args.dsn,
        table_name=table or args.table,
        embedding_model=args.embedding_model,
        dimensions=args.dimensions,
        chat_model=args.chat_model if chat else None,
        api_key=api_key,
        base_url=server_url,
        dialect=dialect,
        k=args.k,
        score_threshold=threshold if threshold is not None else threshold_of(args, default),
        language=args.language,
        create_table=create,
        rerank_model=rerank_model,
        fetch_k=getattr(args, "fetch_k", None),
        sparse=bool(getattr(args, "sparse", False)) or getattr(args, "mode", None) == "sparse",
        read_connection=read_dsns(args),
    )


def read_dsns(args: argparse.Namespace) -> list[str] | None:
    """``--read-dsn`` (repeatable), else ``QWEN_PG_READ_DSN`` (comma-separated)."""
    import os

    given = getattr(args, "read_dsn", None)
    if given:
        return list(given)
    env = os.environ.get("QWEN_PG_READ_DSN", "")
    dsns = [d.strip() for d in env.split(",") if d.strip()]
    return dsns or None


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

    unsupported: list[Path] = []
    files = discover(paths, unsupported=unsupported)
    if not files:
        others = f" ({_unsupported(unsupported)})" if unsupported else ""
        raise ConfigurationError(f"No txt, md, html or pdf files under the given paths{others}.")
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
    summary.unsupported = [str(p) for p in unsupported]  # found by this walk of the paths
    console.print(ingest_summary(summary))
    if summary.unsupported:
        console.print(f"[yellow]{_unsupported([Path(p) for p in summary.unsupported])}[/]")
    return summary


def _unsupported(paths: list[Path], shown: int = 10) -> str:
    """``skipped 3 files of unsupported type: a.docx, b.png, c.xlsx (supported: ...)``."""
    from ..ingest import SUPPORTED_SUFFIXES

    names = ", ".join(str(p) for p in paths[:shown])
    more = f" and {len(paths) - shown} more" if len(paths) > shown else ""
    noun = "file" if len(paths) == 1 else "files"
    kinds = " ".join(SUPPORTED_SUFFIXES)
    return f"skipped {len(paths)} {noun} of unsupported type: {names}{more} (supported: {kinds})"
