"""Wire helpers: the API error exception, JSON encoding and the native SSE framing.

Native SSE event (protocol doc §2.3), exactly::

    id:1
    event:result
    :HTTP_STATUS/200
    data:{"output":...}   <- one line of JSON
    <blank line>

Errors use ``event:error`` and ``:HTTP_STATUS/<status>`` with
``data:{"code","message","request_id"}``.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["ApiError", "Dropped", "dumps", "native_error_body", "openai_error", "sse_event"]

ALGO = "<400> InternalError.Algo.InvalidParameter: "


class ApiError(Exception):
    """An error answer of the emulated service: HTTP status, DashScope code, message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class Dropped(Exception):
    """The fault asked to end the connection without an answer."""


_COMPAT_CODES = {
    "InvalidApiKey": ("invalid_api_key", "invalid_request_error"),
    "Throttling.AllocationQuota": ("insufficient_quota", "insufficient_quota"),
    "DataInspectionFailed": ("data_inspection_failed", "data_inspection_failed"),
    "InternalError": ("internal_error", "internal_error"),
}


def openai_error(err: ApiError, request_id: str) -> dict[str, Any]:
    """The OpenAI-shaped error body of compatible mode."""
    code, kind = _COMPAT_CODES.get(err.code, (err.code, err.code))
    message = err.message
    if err.code == "InvalidApiKey":
        message = "Incorrect API key provided. "
    return {
        "error": {"message": message, "type": kind, "param": None, "code": code},
        "request_id": request_id,
    }


def invalid(message: str, algo: bool = True) -> ApiError:
    """A 400 ``InvalidParameter`` error, with the service's algo prefix by default."""
    return ApiError(400, "InvalidParameter", (ALGO if algo else "") + message)


def dumps(obj: Any) -> bytes:
    """Compact one-line UTF-8 JSON (non-ASCII kept raw, as the service sends it)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def native_error_body(code: str, message: str, request_id: str) -> dict[str, str]:
    """The native error body ``{"request_id", "code", "message"}`` (§4.1)."""
    return {"request_id": request_id, "code": code, "message": message}


def sse_event(event_id: int, payload: Any, status: int = 200, event: str = "result") -> bytes:
    """One native SSE event, framed byte-exactly as the service does."""
    head = f"id:{event_id}\nevent:{event}\n:HTTP_STATUS/{status}\ndata:".encode()
    return head + dumps(payload) + b"\n\n"
