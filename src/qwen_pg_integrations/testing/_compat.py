"""OpenAI-compatible mode (``/compatible-mode/v1``): placeholder until implemented."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._wire import ApiError

if TYPE_CHECKING:
    from ._server import _Handler
    from .emulator import DashScopeEmulator
    from .faults import Fault


def openai_error(err: ApiError, request_id: str) -> dict[str, Any]:
    """The OpenAI-shaped error body."""
    return {
        "error": {"message": err.message, "type": err.code, "param": None, "code": err.code},
        "request_id": request_id,
    }


def answer_compat(
    emu: DashScopeEmulator, handler: _Handler, body: Any, fault: Fault | None
) -> None:
    """Not implemented yet."""
    raise ApiError(404, "NotFound", "compatible mode is not emulated yet")
