"""Fault injection for :class:`~qwen_pg_integrations.testing.DashScopeEmulator`.

A :class:`Fault` describes one way a call goes wrong. ``emulator.inject(fault, times=n,
endpoint=...)`` queues it; each matching call consumes one use (FIFO). Kinds:

* ``Fault(status=429, code="Throttling.RateQuota")`` -- an error answer (message defaults to the
  service's text for that code). On streaming requests it is sent as the real status with one SSE
  ``event:error`` frame (``sse_error="status"``, the production shape), or HTTP 200 + the frame
  (``"200"``), or a plain JSON body (``"json"``).
* ``Fault(drop=True)`` -- the socket is closed without an answer (``after_chunks=N`` on a stream:
  after N events). Note: dashscope 2.x resends once on a dropped pooled connection, so inject with
  ``times=2`` to make the SDK see the failure.
* ``Fault(latency=0.2)`` -- sleep before answering (the call then succeeds).
* ``Fault(timeout=True)`` -- hang without answering for ``hang_seconds`` (default 30 s, ended early
  when the emulator stops), then close the socket.
* ``Fault(midstream=(500, "InternalError"), after_chunks=2)`` -- on a streaming call, send two
  events then an ``event:error`` frame with ``code`` and ``message`` and end the stream. Mid-stream
  faults match streaming generation calls only.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal

__all__ = ["DEFAULT_MESSAGES", "Fault", "FaultQueue"]

Endpoint = Literal["generation", "embedding", "rerank"]

DEFAULT_MESSAGES: dict[str, str] = {
    "InvalidApiKey": "Invalid API-key provided.",
    "InvalidParameter": (
        "Required parameter(s) missing or invalid, please check the request parameters."
    ),
    "DataInspectionFailed": "Input or output data may contain inappropriate content.",
    "Arrearage": "Access denied, please make sure your account is in good standing.",
    "AccessDenied": "Access denied.",
    "ModelNotFound": "Model not found.",
    "Throttling": "Requests throttling triggered.",
    "Throttling.RateQuota": "Requests rate limit exceeded, please try again later.",
    "Throttling.BurstRate": "Request rate increased too quickly, please try again later.",
    "Throttling.AllocationQuota": "Allocated quota exceeded, please increase your quota limit.",
    "InternalError": (
        "An internal error has occured, please try again later or contact service support."
    ),
    "ModelServingError": "Too many requests. Your requests are being throttled due to capacity.",
    "ModelUnavailable": "Model is unavailable, please try again later.",
}

_CODE_FOR_STATUS = {
    400: "InvalidParameter",
    401: "InvalidApiKey",
    403: "AccessDenied",
    404: "ModelNotFound",
    429: "Throttling.RateQuota",
    500: "InternalError",
    503: "ModelUnavailable",
}


def message_for(code: str) -> str:
    """The service's usual message for ``code`` (a generic text for unknown codes)."""
    return DEFAULT_MESSAGES.get(code, f"Emulated error {code}.")


def code_for(status: int) -> str:
    """A plausible DashScope code for an HTTP status."""
    return _CODE_FOR_STATUS.get(status, "InternalError" if status >= 500 else "InvalidParameter")


@dataclass(frozen=True)
class Fault:
    """One injected failure; see the module docstring for the kinds.

    Attributes:
        status: HTTP status of an error answer (``code``/``message`` default from the status).
        code: DashScope error code, e.g. ``"Throttling.RateQuota"``.
        message: Error message; defaults to the service's text for ``code``.
        latency: Seconds to sleep before answering (combines with the other kinds).
        drop: Close the connection without (or in the middle of) an answer.
        timeout: Hang without answering for ``hang_seconds``.
        hang_seconds: Upper bound of a ``timeout`` hang.
        midstream: ``(status, code)`` or ``(status, code, message)`` of an in-stream error event.
        after_chunks: Events sent before a ``midstream`` error (default 1) or a ``drop``
            (default: none, the drop happens before any answer).
        sse_error: Shape of an error answer to a streaming request: ``"status"`` (real status +
            SSE error frame), ``"200"`` (HTTP 200 + SSE error frame) or ``"json"``.
    """

    status: int | None = None
    code: str | None = None
    message: str | None = None
    latency: float = 0.0
    drop: bool = False
    timeout: bool = False
    hang_seconds: float = 30.0
    midstream: tuple[int, str] | tuple[int, str, str] | None = None
    after_chunks: int | None = None
    sse_error: Literal["status", "200", "json"] = "status"

    def __post_init__(self) -> None:
        if self.status is None and self.code is not None:
            raise ValueError("Fault(code=...) needs status=...; e.g. Fault(status=429, code=...).")
        if self.sse_error not in ("status", "200", "json"):
            raise ValueError('sse_error must be "status", "200" or "json".')
        if self.hang_seconds < 0 or self.latency < 0:
            raise ValueError("latency and hang_seconds must be >= 0.")

    def error(self) -> tuple[int, str, str] | None:
        """``(status, code, message)`` of an error answer, or None."""
        if self.status is None:
            return None
        code = self.code or code_for(self.status)
        return self.status, code, self.message or message_for(code)

    def midstream_error(self) -> tuple[int, str, str] | None:
        """``(status, code, message)`` of the in-stream error event, or None."""
        if self.midstream is None:
            return None
        status, code = self.midstream[0], self.midstream[1]
        message = self.midstream[2] if len(self.midstream) > 2 else message_for(code)
        return status, code, message


@dataclass
class _Entry:
    fault: Fault
    remaining: int
    endpoint: Endpoint | None


class FaultQueue:
    """Thread-safe FIFO of injected faults with use counts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[_Entry] = []

    def add(self, fault: Fault, times: int, endpoint: Endpoint | None) -> None:
        """Queue ``fault`` for the next ``times`` matching calls."""
        if times < 1:
            raise ValueError("times must be >= 1.")
        if endpoint not in (None, "generation", "embedding", "rerank"):
            raise ValueError('endpoint must be None, "generation", "embedding" or "rerank".')
        with self._lock:
            self._entries.append(_Entry(fault, times, endpoint))

    def take(self, endpoint: str, stream: bool) -> Fault | None:
        """Consume one use of the first fault matching this call, if any."""
        with self._lock:
            for entry in self._entries:
                if entry.endpoint is not None and entry.endpoint != endpoint:
                    continue
                if entry.fault.midstream is not None and not (stream and endpoint == "generation"):
                    continue
                entry.remaining -= 1
                if entry.remaining == 0:
                    self._entries.remove(entry)
                return entry.fault
        return None

    def pending(self) -> int:
        """Uses left over all queued faults."""
        with self._lock:
            return sum(e.remaining for e in self._entries)

    def clear(self) -> None:
        """Drop every queued fault."""
        with self._lock:
            self._entries.clear()
