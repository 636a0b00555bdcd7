"""What the emulator's layers need of each other, as protocols (no import of the layers).

``emulator.py`` (the public class) sits on ``_server.py`` (HTTP) and the endpoint modules
(``_compat.py``, ``_native_*``); those call back into the emulator and the request handler only
through the shapes below, so imports run one way.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ._policy import ChatRequest, Plan
    from ._records import RecordedRequest, RequestLog
    from .faults import Fault, FaultQueue

__all__ = ["Backend", "Responder"]


class Responder(Protocol):
    """The request handler, as the endpoint code writes answers through it."""

    record: RecordedRequest

    def send_json(self, status: int, payload: Any) -> None:
        """A JSON answer."""

    def start_sse(self, status: int = 200) -> None:
        """SSE response headers."""

    def write_chunk(self, data: bytes) -> None:
        """One HTTP chunk."""

    def end_chunks(self) -> None:
        """The terminating chunk."""


class Backend(Protocol):
    """The emulator, as the HTTP server and the endpoint code see it."""

    @property
    def api_key(self) -> str: ...

    @property
    def latency(self) -> float: ...

    @property
    def stream_delay(self) -> float: ...

    @property
    def chunk_size(self) -> int: ...

    @property
    def sse_error(self) -> str: ...

    @property
    def _log(self) -> RequestLog: ...

    @property
    def _faults(self) -> FaultQueue: ...

    @property
    def _stopping(self) -> threading.Event: ...

    @property
    def _internal_errors(self) -> list[str]: ...

    def _enter(self) -> bool:
        """Admit one call (``False``: over ``max_in_flight``)."""

    def _leave(self) -> None:
        """A call is done."""

    def _answer(self, handler: Any, body: Any, fault: Fault | None) -> None:
        """Answer one authenticated call."""

    def _plan(self, req: ChatRequest) -> Plan:
        """The reply plan of a chat request (scripted or default)."""
