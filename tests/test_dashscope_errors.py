"""Error mapping of SDK results and transport exceptions (no network needed)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
import requests
from dashscope.common import error as sdk_error
from urllib3.exceptions import ReadTimeoutError

from qwen_pg_integrations.dashscope._errors import check_response, translate_exception
from qwen_pg_integrations.dashscope._stream import ChunkNormalizer, response_to_chat
from qwen_pg_integrations.errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    ConfigurationError,
    DashScopeError,
    InvalidInputError,
    MissingAPIKeyError,
    RateLimitError,
    ServerError,
)


class LegacyResponse(dict[str, Any]):
    """Behaves like dashscope 1.22.2's DictMixin: a missing attribute raises KeyError."""

    def __getattr__(self, attr: str) -> Any:
        return self[attr]


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (requests.exceptions.ConnectionError("refused"), APIConnectionError),
        (requests.exceptions.ChunkedEncodingError("IncompleteRead"), APIConnectionError),
        (requests.exceptions.ReadTimeout("read timed out"), APITimeoutError),
        (requests.exceptions.ConnectTimeout("connect timed out"), APITimeoutError),
        (
            requests.exceptions.ConnectionError(ReadTimeoutError(None, "/", "Read timed out.")),
            APITimeoutError,
        ),
        (aiohttp.ServerDisconnectedError(), APIConnectionError),
        (aiohttp.ClientPayloadError("Response payload is not completed"), APIConnectionError),
        (aiohttp.ClientConnectionError("reset"), APIConnectionError),
        (aiohttp.ServerTimeoutError("sock_read"), APITimeoutError),
        (asyncio.TimeoutError(), APITimeoutError),
        (ConnectionResetError("reset by peer"), APIConnectionError),
        (sdk_error.AuthenticationError("No api key provided."), MissingAPIKeyError),
        (sdk_error.InputRequired("prompt or messages is required!"), InvalidInputError),
        (sdk_error.ModelRequired("Model is required!"), ConfigurationError),
        (json.JSONDecodeError("Expecting value", "<html>", 0), DashScopeError),
    ],
    ids=lambda x: type(x).__name__ if isinstance(x, BaseException) else x.__name__,
)
def test_exceptions_become_typed_errors(exc: BaseException, expected: type[Exception]) -> None:
    mapped = translate_exception(exc, base_url="http://127.0.0.1:1/api/v1")
    assert type(mapped) is expected
    assert str(mapped)


def test_programming_errors_are_not_translated() -> None:
    assert translate_exception(ValueError("bug")) is None
    assert translate_exception(KeyError("bug")) is None


def test_secret_is_scrubbed_from_exception_text() -> None:
    exc = requests.exceptions.ConnectionError("failed with header Bearer sk-secret-1")
    mapped = translate_exception(exc, secret="sk-secret-1")
    assert mapped is not None and "sk-secret-1" not in str(mapped)


def test_check_response_reads_legacy_responses_with_dict_access_only() -> None:
    ok = LegacyResponse(status_code=200, request_id="r", code="", message="", output={}, usage={})
    check_response(ok)  # no AttributeError/KeyError on missing 'headers'
    bad = LegacyResponse(status_code=429, request_id="r9", code="Throttling", message="slow down")
    with pytest.raises(RateLimitError) as info:
        check_response(bad)
    assert (info.value.status_code, info.value.code, info.value.request_id) == (
        429,
        "Throttling",
        "r9",
    )


def test_request_id_falls_back_to_the_response_header() -> None:
    response = {"status_code": 500, "code": "InternalError", "headers": {"x-request-id": "hdr-1"}}
    with pytest.raises(ServerError) as info:
        check_response(response)
    assert info.value.request_id == "hdr-1"


def test_unknown_error_code_on_unknown_status_is_the_base_class() -> None:
    with pytest.raises(DashScopeError) as info:
        check_response({"status_code": 418, "code": "Teapot", "message": "short and stout"})
    assert info.value.status_code == 418
    with pytest.raises(AuthenticationError, match="region"):
        check_response({"status_code": 401, "code": "InvalidApiKey"}, base_url="http://x/api/v1")


def test_legacy_generation_response_is_parsed_without_getattr() -> None:
    message = LegacyResponse(role="assistant", content="hi")
    choice = LegacyResponse(finish_reason="stop", message=message)
    raw = LegacyResponse(
        status_code=200,
        request_id="r",
        code="",
        message="",
        output=LegacyResponse(text=None, finish_reason=None, choices=[choice]),
        usage=LegacyResponse(input_tokens=1, output_tokens=1),
    )
    assert response_to_chat(raw, "qwen-plus").content == "hi"
    chunk = ChunkNormalizer("qwen-plus").feed(raw)
    assert chunk is not None and chunk.content == "hi" and chunk.finish_reason == "stop"
