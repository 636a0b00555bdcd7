"""DashScopeClient: settings, typed errors, retries, and no process-wide SDK state.

Every test runs the unchanged ``dashscope`` SDK against the local emulator.
"""

from __future__ import annotations

import asyncio
import pickle
import socket
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import dashscope
import pytest

from qwen_pg_integrations.dashscope import ChatClient, DashScopeClient, EmbeddingClient
from qwen_pg_integrations.errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    DashScopeError,
    DataInspectionFailed,
    MissingAPIKeyError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)
from qwen_pg_integrations.testing import DashScopeEmulator, Fault, ScriptedReply
from qwen_pg_integrations.types import ChatMessage

HI = [ChatMessage("user", "hi")]
FAST = {"backoff_base": 0.001, "backoff_max": 0.01}


def make(emu: DashScopeEmulator, **kw: Any) -> DashScopeClient:
    params: dict[str, Any] = {"api_key": emu.api_key, "base_url": emu.base_url, **FAST}
    params.update(kw)
    return DashScopeClient(**params)


# The four ways a request reaches DashScope: each must surface the same typed errors.
def chat_sync(c: DashScopeClient) -> Any:
    return ChatClient(client=c).chat(HI)


def chat_async(c: DashScopeClient) -> Any:
    return asyncio.run(ChatClient(client=c).achat(HI))


def embed_sync(c: DashScopeClient) -> Any:
    return EmbeddingClient("text-embedding-v4", client=c).embed(["hello"])


def embed_async(c: DashScopeClient) -> Any:
    return asyncio.run(EmbeddingClient("text-embedding-v4", client=c).aembed(["hello"]))


PATHS: dict[str, Callable[[DashScopeClient], Any]] = {
    "chat_sync": chat_sync,
    "chat_async": chat_async,
    "embed_sync": embed_sync,
    "embed_async": embed_async,
}


# --- settings ---------------------------------------------------------------------------


def test_settings_come_from_arguments_then_environment(
    dashscope_emulator: DashScopeEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from_env = DashScopeClient()
    assert from_env.base_url == dashscope_emulator.base_url
    assert from_env.api_key is not None
    assert from_env.api_key.get_secret_value() == dashscope_emulator.api_key
    explicit = DashScopeClient(api_key="sk-other", base_url="ap-southeast-1", workspace="ws-1")
    assert explicit.base_url == "https://dashscope-intl.aliyuncs.com/api/v1"
    assert explicit.api_key is not None and explicit.api_key.get_secret_value() == "sk-other"
    monkeypatch.delenv("DASHSCOPE_HTTP_BASE_URL")
    assert DashScopeClient().base_url == "https://dashscope.aliyuncs.com/api/v1"


def test_missing_key_raises_before_any_request(
    dashscope_emulator: DashScopeEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DASHSCOPE_API_KEY")
    client = DashScopeClient(base_url=dashscope_emulator.base_url)
    with pytest.raises(MissingAPIKeyError, match="DASHSCOPE_API_KEY"):
        ChatClient(client=client).chat(HI)
    with pytest.raises(MissingAPIKeyError):
        asyncio.run(EmbeddingClient(client=client).aembed(["x"]))
    assert dashscope_emulator.requests == []


def test_key_never_in_repr_str_or_errors(dashscope_emulator: DashScopeEmulator) -> None:
    secret = "sk-very-secret-0123456789"
    client = DashScopeClient(api_key=secret, base_url=dashscope_emulator.base_url, max_retries=0)
    for text in (
        repr(client),
        str(client),
        repr(ChatClient(client=client)),
        repr(EmbeddingClient(client=client)),
    ):
        assert secret not in text
    for call in PATHS.values():
        with pytest.raises(AuthenticationError) as info:
            call(client)
        assert secret not in str(info.value)
        assert secret not in repr(info.value)
        assert secret not in str(info.value.__cause__ or "")


def test_sdk_globals_are_never_touched(dashscope_emulator: DashScopeEmulator) -> None:
    key_before, url_before = dashscope.api_key, dashscope.base_http_api_url
    client = make(dashscope_emulator)
    chat_sync(client)
    embed_sync(client)
    chat_async(client)
    embed_async(client)
    assert dashscope.api_key == key_before
    assert dashscope.base_http_api_url == url_before


def test_workspace_is_sent_as_header(dashscope_emulator: DashScopeEmulator) -> None:
    client = make(dashscope_emulator, workspace="ws-42")
    for call in PATHS.values():
        call(client)
    assert [r.workspace for r in dashscope_emulator.requests] == ["ws-42"] * 4


# --- typed errors -----------------------------------------------------------------------

ERROR_CASES = [
    (Fault(status=400, code="InvalidParameter"), BadRequestError),
    (Fault(status=400, code="DataInspectionFailed"), DataInspectionFailed),
    (Fault(status=401, code="InvalidApiKey"), AuthenticationError),
    (Fault(status=403, code="AccessDenied"), PermissionDeniedError),
    (Fault(status=404, code="ModelNotFound"), NotFoundError),
    (Fault(status=429, code="Throttling.RateQuota"), RateLimitError),
    (Fault(status=500, code="InternalError"), ServerError),
    (Fault(status=503, code="ModelUnavailable"), ServerError),
]


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize(("fault", "expected"), ERROR_CASES, ids=lambda x: getattr(x, "code", ""))
def test_service_errors_become_typed_errors_with_status_code_and_request_id(
    dashscope_emulator: DashScopeEmulator, path: str, fault: Fault, expected: type[DashScopeError]
) -> None:
    dashscope_emulator.inject(fault, times=10)
    with pytest.raises(expected) as info:
        PATHS[path](make(dashscope_emulator, max_retries=0))
    err = info.value
    assert type(err) is expected
    assert err.status_code == fault.status
    assert err.code == fault.code
    assert err.request_id == dashscope_emulator.requests[-1].request_id
    assert len(dashscope_emulator.requests) == 1
    assert pickle.loads(pickle.dumps(err)).request_id == err.request_id


@pytest.mark.parametrize("path", list(PATHS))
def test_wrong_key_is_authentication_error_that_names_the_region(
    dashscope_emulator: DashScopeEmulator, path: str
) -> None:
    client = make(dashscope_emulator, api_key="sk-wrong")
    with pytest.raises(AuthenticationError) as info:
        PATHS[path](client)
    message = str(info.value)
    assert "region" in message and dashscope_emulator.base_url in message
    assert info.value.status_code == 401 and info.value.code == "InvalidApiKey"
    assert len(dashscope_emulator.requests) == 1  # 401 is not retried


@pytest.mark.parametrize("path", list(PATHS))
def test_dropped_connection_without_retries_is_connection_error(
    dashscope_emulator: DashScopeEmulator, path: str
) -> None:
    dashscope_emulator.inject(Fault(drop=True), times=5)
    with pytest.raises(APIConnectionError) as info:
        PATHS[path](make(dashscope_emulator, max_retries=0))
    assert not isinstance(info.value, APITimeoutError)


@pytest.mark.parametrize("path", list(PATHS))
def test_no_answer_in_time_is_timeout_error(
    dashscope_emulator: DashScopeEmulator, path: str
) -> None:
    dashscope_emulator.inject(Fault(timeout=True, hang_seconds=3), times=5)
    with pytest.raises(APITimeoutError, match="timeout"):
        PATHS[path](make(dashscope_emulator, max_retries=0, timeout=0.3))


@pytest.mark.parametrize("path", list(PATHS))
def test_refused_connection_is_connection_error(path: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = DashScopeClient(
        api_key="sk-x", base_url=f"http://127.0.0.1:{port}/api/v1", max_retries=0
    )
    with pytest.raises(APIConnectionError, match=f"127.0.0.1:{port}"):
        PATHS[path](client)


def test_in_stream_error_reported_as_400_keeps_its_real_class(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    chat = ChatClient(client=make(dashscope_emulator, max_retries=0))
    dashscope_emulator.script(ScriptedReply(text="a fairly long answer", chunk_size=2))
    dashscope_emulator.inject(Fault(midstream=(500, "InternalError"), after_chunks=2))
    with pytest.raises(ServerError) as info:
        list(chat.stream(HI))
    assert info.value.code == "InternalError"
    assert info.value.status_code is None  # the SDK's "400" would be wrong; the real one is lost
    # pre-stream error sent as HTTP 200 + SSE error frame: the SDK says 400, the code says 429
    dashscope_emulator.inject(Fault(status=429, code="Throttling.RateQuota", sse_error="200"))
    with pytest.raises(RateLimitError):
        list(chat.stream(HI))
    # a genuine in-stream 400 keeps its status
    dashscope_emulator.inject(Fault(status=400, code="DataInspectionFailed", sse_error="200"))
    with pytest.raises(DataInspectionFailed) as bad:
        list(chat.stream(HI))
    assert bad.value.status_code == 400


def test_scripted_content_inspection_error(dashscope_emulator: DashScopeEmulator) -> None:
    dashscope_emulator.script(
        ScriptedReply(
            error=(400, "DataInspectionFailed", "Input data may contain inappropriate content.")
        )
    )
    with pytest.raises(DataInspectionFailed, match="rephrase"):
        ChatClient(client=make(dashscope_emulator)).chat(HI)
    assert len(dashscope_emulator.requests) == 1


# --- retries ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", list(PATHS))
def test_two_429_then_success_takes_three_requests(
    dashscope_emulator: DashScopeEmulator, path: str
) -> None:
    dashscope_emulator.inject(Fault(status=429, code="Throttling.RateQuota"), times=2)
    PATHS[path](make(dashscope_emulator))
    assert [r.status for r in dashscope_emulator.requests] == [429, 429, 200]


@pytest.mark.parametrize("path", list(PATHS))
def test_400_is_not_retried(dashscope_emulator: DashScopeEmulator, path: str) -> None:
    dashscope_emulator.inject(Fault(status=400, code="InvalidParameter"), times=3)
    with pytest.raises(BadRequestError):
        PATHS[path](make(dashscope_emulator, max_retries=5))
    assert len(dashscope_emulator.requests) == 1


@pytest.mark.parametrize("path", list(PATHS))
def test_503_is_retried(dashscope_emulator: DashScopeEmulator, path: str) -> None:
    dashscope_emulator.inject(Fault(status=503, code="ModelUnavailable"), times=1)
    PATHS[path](make(dashscope_emulator))
    assert [r.status for r in dashscope_emulator.requests] == [503, 200]


@pytest.mark.parametrize("path", list(PATHS))
def test_dropped_connection_is_retried(dashscope_emulator: DashScopeEmulator, path: str) -> None:
    # times=2: dashscope 2.x itself resends once on a dropped pooled connection
    dashscope_emulator.inject(Fault(drop=True), times=2)
    PATHS[path](make(dashscope_emulator))
    statuses = [r.status for r in dashscope_emulator.requests]
    assert statuses[-1] == 200 and statuses.count(None) == 2


@pytest.mark.parametrize("path", list(PATHS))
def test_timeout_is_retried(dashscope_emulator: DashScopeEmulator, path: str) -> None:
    dashscope_emulator.inject(Fault(timeout=True, hang_seconds=3), times=1)
    PATHS[path](make(dashscope_emulator, timeout=0.3))
    assert [r.status for r in dashscope_emulator.requests][-1] == 200
    assert len(dashscope_emulator.requests) == 2


@pytest.mark.parametrize("path", list(PATHS))
def test_retries_off_raises_rate_limit_after_one_request(
    dashscope_emulator: DashScopeEmulator, path: str
) -> None:
    dashscope_emulator.inject(Fault(status=429, code="Throttling.RateQuota"), times=3)
    with pytest.raises(RateLimitError, match="throttled"):
        PATHS[path](make(dashscope_emulator, max_retries=0))
    assert len(dashscope_emulator.requests) == 1


def test_retries_exhausted_raise_the_last_typed_error(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    dashscope_emulator.inject(Fault(status=500, code="InternalError"), times=10)
    with pytest.raises(ServerError):
        chat_sync(make(dashscope_emulator, max_retries=2))
    assert len(dashscope_emulator.requests) == 3


# --- two clients side by side -----------------------------------------------------------


def test_two_clients_with_different_keys_and_endpoints_side_by_side() -> None:
    with DashScopeEmulator(api_key="sk-a") as a, DashScopeEmulator(api_key="sk-b") as b:
        ca = DashScopeClient(api_key="sk-a", base_url=a.base_url)
        cb = DashScopeClient(api_key="sk-b", base_url=b.base_url)
        for _ in range(2):  # interleaved, sync and async
            chat_sync(ca)
            chat_sync(cb)
            embed_async(cb)
            embed_async(ca)
            embed_sync(ca)
            chat_async(cb)
        errors: list[BaseException] = []

        def worker(client: DashScopeClient) -> None:
            try:
                for _ in range(3):
                    embed_sync(client)
                    chat_sync(client)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(c,)) for c in (ca, cb, ca, cb)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []

        async def both() -> None:
            await asyncio.gather(
                ChatClient(client=ca).achat(HI),
                EmbeddingClient(client=cb).aembed(["x", "y"]),
                ChatClient(client=cb).achat(HI),
                EmbeddingClient(client=ca).aembed(["z"]),
            )

        asyncio.run(both())
        for emu, key in ((a, "sk-a"), (b, "sk-b")):
            assert {r.status for r in emu.requests} == {200}
            assert {r.headers["authorization"] for r in emu.requests} == {f"Bearer {key}"}
        assert len(a.requests) == len(b.requests) == 6 + 12 + 2


async def _ticks_during(coro: Awaitable[Any], interval: float = 0.01) -> tuple[Any, int]:
    ticks = 0
    done = False

    async def ticker() -> None:
        nonlocal ticks
        while not done:
            await asyncio.sleep(interval)
            ticks += 1

    task = asyncio.ensure_future(ticker())
    try:
        result = await coro
    finally:
        done = True
        await task
    return result, ticks


async def test_async_chat_does_not_block_the_event_loop(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    dashscope_emulator.latency = 0.3
    chat = ChatClient(client=make(dashscope_emulator))
    response, ticks = await _ticks_during(chat.achat(HI))
    assert response.content
    assert ticks >= 5  # ~30 expected; a blocked loop gives 0-1


def test_none_means_default_timeout_and_retries() -> None:
    client = DashScopeClient(api_key="sk-x", timeout=None, max_retries=None)
    assert (client.timeout, client.max_retries) == (60.0, 3)
    with pytest.raises(ValueError, match="timeout"):
        DashScopeClient(api_key="sk-x", timeout=0)
    with pytest.raises(ValueError, match="max_retries"):
        DashScopeClient(api_key="sk-x", max_retries=-1)
