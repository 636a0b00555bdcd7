"""Cutting a reply plan into streamed pieces (shared by the native and compatible renderers).

Text is cut every ``chunk_size`` characters (default 4), so tool-call arguments arrive in several
fragments that split words ("New York") and CJK strings. Reasoning comes first, then content, then
each tool call in order; the first piece of a call carries its id and name.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ._policy import Plan

__all__ = ["Piece", "chunks", "pieces"]


@dataclass(frozen=True)
class Piece:
    """One streamed delta: ``kind`` is ``reasoning``, ``content`` or ``tool``."""

    kind: str
    text: str
    index: int = 0  # tool-call index
    first: bool = False  # first fragment of a tool call


def chunks(text: str, size: int) -> list[str]:
    """``text`` cut into pieces of ``size`` characters."""
    return [text[i : i + size] for i in range(0, len(text), size)]


def pieces(plan: Plan, size: int) -> Iterator[Piece]:
    """Every delta of ``plan`` in stream order."""
    for part in chunks(plan.reasoning, size):
        yield Piece("reasoning", part)
    for part in chunks(plan.content, size):
        yield Piece("content", part)
    for index, call in enumerate(plan.tool_calls):
        parts = chunks(call.arguments, size) or [""]
        for n, part in enumerate(parts):
            yield Piece("tool", part, index=index, first=n == 0)
