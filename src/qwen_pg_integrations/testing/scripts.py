"""Scripted chat replies for :class:`~qwen_pg_integrations.testing.DashScopeEmulator`.

``emulator.script(ScriptedReply(...))`` queues a reply; each generation call (native or
OpenAI-compatible) takes the first queued reply whose ``model`` is unset or equals the request's
model (FIFO). When nothing matches, the default policy of :mod:`._policy` answers.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["ScriptQueue", "ScriptedReply"]


@dataclass(frozen=True)
class ScriptedReply:
    """One canned answer of the emulator.

    Attributes:
        text: Assistant content (``""`` when omitted).
        tool_calls: Tool calls, each ``{"name": ..., "arguments": dict | JSON str}`` and an
            optional ``"id"``. The finish reason becomes ``"tool_calls"``.
        reasoning: ``reasoning_content`` streamed before the content (thinking models).
        error: ``(status, code)`` or ``(status, code, message)``: answer with this error instead.
        finish_reason: Overrides the computed finish reason (``stop``/``length``/``tool_calls``).
        usage: Keys overriding the computed usage (``input_tokens``, ``output_tokens``, ...).
        chunk_size: Characters per streamed piece for this reply (default: the emulator's).
        model: Only a request for this model takes this reply.

    Example:
        >>> call = {"name": "get_weather", "arguments": {"city": "Paris"}}
        >>> reply = ScriptedReply(tool_calls=[call])
    """

    text: str | None = None
    tool_calls: Sequence[Mapping[str, Any]] | None = None
    reasoning: str | None = None
    error: tuple[int, str] | tuple[int, str, str] | None = None
    finish_reason: str | None = None
    usage: Mapping[str, int] | None = None
    chunk_size: int | None = None
    model: str | None = None

    def __post_init__(self) -> None:
        for call in self.tool_calls or ():
            if not isinstance(call, Mapping) or not isinstance(call.get("name"), str):
                raise ValueError("each tool call needs a 'name' string (and 'arguments').")
            args = call.get("arguments", {})
            if isinstance(args, str):
                json.loads(args)  # fail early on a scripted typo
            elif not isinstance(args, Mapping):
                raise ValueError("tool call 'arguments' must be a dict or a JSON string.")
        if self.chunk_size is not None and self.chunk_size < 1:
            raise ValueError("chunk_size must be >= 1.")


class ScriptQueue:
    """Thread-safe FIFO of :class:`ScriptedReply`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._replies: list[ScriptedReply] = []

    def add(self, reply: ScriptedReply) -> None:
        """Queue ``reply``."""
        with self._lock:
            self._replies.append(reply)

    def take(self, model: str) -> ScriptedReply | None:
        """Remove and return the first reply for ``model``, or None."""
        with self._lock:
            for i, reply in enumerate(self._replies):
                if reply.model is None or reply.model == model:
                    return self._replies.pop(i)
        return None

    def __len__(self) -> int:
        with self._lock:
            return len(self._replies)

    def clear(self) -> None:
        """Drop every queued reply."""
        with self._lock:
            self._replies.clear()
