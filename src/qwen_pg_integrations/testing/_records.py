"""The request log of the emulator."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RecordedRequest", "RequestLog"]


@dataclass
class RecordedRequest:
    """One HTTP request the emulator received (successful or not).

    Attributes:
        method: HTTP method.
        path: URL path without the query string, e.g. ``/api/v1/services/aigc/...``.
        headers: Request headers with lower-case names (``authorization`` included).
        body: Parsed JSON body (None when absent or not JSON).
        raw: The body bytes as received (ASCII-escaped or raw UTF-8).
        stream: True for a streaming request (SSE header, or ``stream: true`` in compatible mode).
        endpoint: ``"generation"``, ``"embedding"`` or ``"unknown"``.
        model: The ``model`` field of the body, if any.
        protocol: ``"native"`` or ``"openai"`` (compatible mode).
        request_id: The request id the emulator answered with (also the ``X-Request-Id`` header).
        status: HTTP status of the answer (None for dropped / hung calls).
    """

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes
    stream: bool
    endpoint: str
    model: str | None
    protocol: str
    request_id: str
    status: int | None = None
    fault: str | None = field(default=None)

    @property
    def parameters(self) -> dict[str, Any]:
        """``body["parameters"]`` of a native request (``{}`` if absent)."""
        params = self.body.get("parameters") if isinstance(self.body, dict) else None
        return params if isinstance(params, dict) else {}

    @property
    def workspace(self) -> str | None:
        """The ``X-DashScope-WorkSpace`` header, if sent."""
        return self.headers.get("x-dashscope-workspace")


class RequestLog:
    """Thread-safe log of :class:`RecordedRequest`, keeping the newest ``limit`` entries."""

    def __init__(self, limit: int | None = 10_000) -> None:
        self._lock = threading.Lock()
        self._items: deque[RecordedRequest] = deque(maxlen=limit)

    def add(self, record: RecordedRequest) -> None:
        """Append ``record``."""
        with self._lock:
            self._items.append(record)

    def snapshot(self) -> list[RecordedRequest]:
        """A copy of the log, oldest first."""
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        """Forget every request."""
        with self._lock:
            self._items.clear()
