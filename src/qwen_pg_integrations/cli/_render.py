"""Terminal output of the CLI (rich): chunk tables, prompts, ingest summaries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ..rag import RetrievedChunk, source_label

if TYPE_CHECKING:
    from ..ingest import IngestSummary
    from ..types import ChatMessage

__all__ = ["chunk_table", "excerpt", "ingest_summary", "prompt_panel"]


def excerpt(text: str, width: int = 110) -> str:
    """The text on one line, cut to ``width`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def chunk_table(
    chunks: Sequence[RetrievedChunk],
    *,
    title: str,
    threshold: float | None = None,
    used: Sequence[RetrievedChunk] | None = None,
) -> Table:
    """Ranked chunks: rank, score, source, excerpt; rows below the threshold are dimmed."""
    used_ids = {id(c) for c in used} if used is not None else None
    table = Table(title=title, title_justify="left", show_lines=False, expand=False)
    table.add_column("#", justify="right", style="bold")
    table.add_column("score", justify="right")
    table.add_column("source", style="cyan", no_wrap=True)
    table.add_column("text", overflow="fold")
    for n, chunk in enumerate(chunks, start=1):
        score = "-" if chunk.score is None else f"{chunk.score:.3f}"
        dim = used_ids is not None and id(chunk) not in used_ids
        if dim and threshold is not None:
            score += " <"
        style = "dim" if dim else None
        table.add_row(str(n), score, source_label(chunk), excerpt(chunk.content), style=style)
    if threshold is not None:
        table.caption = f"threshold {threshold:.2f}; rows marked < are below it and not used"
    return table


def prompt_panel(messages: Sequence[ChatMessage], *, title: str) -> Panel:
    """The exact messages of a prompt, role by role."""
    text = Text()
    for i, message in enumerate(messages):
        if i:
            text.append("\n\n")
        text.append(f"[{message.role}]\n", style="bold magenta")
        text.append(message.content)
    return Panel(text, title=title, title_align="left", border_style="magenta")


def ingest_summary(summary: IngestSummary) -> Table:
    """One row: files, chunks, new, skipped, deleted, time."""
    table = Table(title="ingest summary", title_justify="left")
    for name in ("files", "chunks", "new", "skipped", "deleted", "time"):
        table.add_column(name, justify="right")
    table.add_row(
        str(summary.files),
        str(summary.chunks),
        str(summary.new),
        str(summary.skipped),
        str(summary.deleted),
        f"{summary.seconds:.1f} s",
    )
    return table


def stdout_console() -> Console:
    """The console for results (stdout)."""
    return Console(highlight=False)
