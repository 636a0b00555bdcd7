"""Turning what the DashScope SDK hands back into the typed errors of :mod:`..errors`.

The legacy SDK API does not raise for HTTP or service errors: it returns a response whose
``status_code`` is not 200 (protocol notes §4.3). Network failures raise ``requests`` or
``aiohttp`` exceptions, and some client-side checks raise ``dashscope.common.error`` exceptions.
All three become one :class:`~qwen_pg_integrations.errors.QwenPGError` subclass here.

Responses are read with plain ``dict`` access only: dashscope 1.22.2 response objects raise
``KeyError`` (not ``AttributeError``) from ``getattr``/``hasattr`` on a missing attribute.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import aiohttp
import requests
from dashscope.common import error as sdk_error

from ..errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    DashScopeError,
    InvalidInputError,
    MissingAPIKeyError,
    QwenPGError,
    error_class_for,
    error_from_response,
)

__all__ = ["check_response", "response_status", "translate_exception"]


def response_status(response: Mapping[str, Any]) -> int:
    """The HTTP status of an SDK response (``HTTPStatus`` or int), 0 when absent."""
    status = response.get("status_code")
    try:
        return int(status) if status is not None else 0
    except (TypeError, ValueError):
        return 0


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list):
        return " ".join(str(v) for v in value if v)
    return str(value)


def check_response(response: Mapping[str, Any], *, base_url: str | None = None) -> None:
    """Raise the typed error for a non-200 SDK response; return quietly on success.

    In-stream errors arrive with ``status_code`` 400 whatever the service meant; the
    error ``code`` decides the class (``error_class_for`` prefers the code).
    """
    status = response_status(response)
    if status == 200:
        return
    code = _text(response.get("code"))
    message = _text(response.get("message"))
    request_id = _text(response.get("request_id"))
    if request_id is None:
        headers = response.get("headers")
        if isinstance(headers, Mapping):
            request_id = _text(headers.get("x-request-id") or headers.get("X-Request-Id"))
    reported: int | None = status or None
    by_code = error_class_for(None, code)
    if status == 400 and by_code is not DashScopeError and not issubclass(by_code, BadRequestError):
        # the SDK says 400 for every in-stream error; the code tells the real kind, and the
        # real status is unknown (the service's ":HTTP_STATUS/NNN" line is dropped by the SDK)
        reported = None
    error = error_from_response(reported, code, message, request_id)
    if isinstance(error, AuthenticationError) and base_url:
        error.args = (f"{error.args[0]} Endpoint used: {base_url}",)
    raise error


def _scrub(text: str, secret: str | None) -> str:
    if secret and secret in text:
        text = text.replace(secret, "***")
    return text


def _describe(exc: BaseException, secret: str | None) -> str:
    detail = _scrub(str(exc), secret).strip()
    name = type(exc).__name__
    return f"{name}: {detail}" if detail else name


def _is_read_timeout(exc: requests.exceptions.ConnectionError) -> bool:
    # requests turns a read timeout while streaming the body into ConnectionError(ReadTimeoutError)
    from urllib3.exceptions import ReadTimeoutError

    return any(isinstance(arg, ReadTimeoutError) for arg in exc.args)


def translate_exception(
    exc: BaseException, *, secret: str | None = None, base_url: str | None = None
) -> QwenPGError | None:
    """The typed error for an exception raised while calling DashScope.

    Returns ``None`` for exceptions that are not about DashScope (programming errors), so
    that the caller re-raises them unchanged.

    Args:
        exc: the exception raised by the SDK, requests or aiohttp.
        secret: the API key, removed from any message just in case.
        base_url: the endpoint, named in connection error messages.
    """
    if isinstance(exc, QwenPGError):
        return exc
    where = f" (base_url={base_url})" if base_url else ""
    detail = _describe(exc, secret)
    # --- client-side checks of the SDK (raised before any HTTP) -------------------------
    if isinstance(exc, sdk_error.AuthenticationError):
        return MissingAPIKeyError()
    if isinstance(exc, sdk_error.ModelRequired):
        return ConfigurationError(f"No model name was given: pass model=... ({detail}).")
    if isinstance(exc, (sdk_error.InputRequired, sdk_error.InvalidInput)):
        return InvalidInputError(f"Nothing to send: give at least one message or text ({detail}).")
    # --- timeouts (check before connection errors: ConnectTimeout is both) --------------
    if isinstance(exc, requests.exceptions.ConnectionError) and _is_read_timeout(exc):
        return APITimeoutError(
            f"DashScope did not answer in time{where}: {detail}. {APITimeoutError.hint}"
        )
    if isinstance(exc, (requests.exceptions.Timeout, asyncio.TimeoutError, TimeoutError)):
        return APITimeoutError(
            f"DashScope did not answer in time{where}: {detail}. {APITimeoutError.hint}"
        )
    # --- dropped or refused connections ------------------------------------------------
    if isinstance(
        exc,
        (
            requests.exceptions.ConnectionError,
            requests.exceptions.ChunkedEncodingError,
            aiohttp.ClientConnectionError,
            aiohttp.ClientPayloadError,
            ConnectionError,
        ),
    ):
        return APIConnectionError(
            f"The connection to DashScope failed{where}: {detail}. {APIConnectionError.hint}"
        )
    # --- an answer that is not the DashScope protocol (wrong base_url, proxy page) ------
    if isinstance(
        exc, (json.JSONDecodeError, requests.exceptions.JSONDecodeError, aiohttp.ContentTypeError)
    ):
        return DashScopeError(
            f"The answer{where} is not DashScope JSON ({detail}); check that base_url ends with "
            "/api/v1 of a DashScope region or emulator."
        )
    return None
