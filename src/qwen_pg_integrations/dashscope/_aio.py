"""aiohttp plumbing: sessions and the native-protocol POST the SDK has no async API for.

The legacy SDK has no async text-embedding call (protocol notes §5), so :func:`post_json` speaks
the same wire protocol as ``TextEmbedding.call`` (same path, headers and JSON body) and returns
the same dict shape as the SDK's ``DashScopeAPIResponse`` (``status_code``, ``request_id``,
``code``, ``message``, ``output``, ``usage``), so one parser serves the sync and async paths.
"""

from __future__ import annotations

import inspect
import json
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any

import aiohttp

__all__ = ["build_headers", "open_session", "post_json", "sdk_accepts_session"]

_SSE = "text/event-stream"


@lru_cache(maxsize=1)
def sdk_accepts_session() -> bool:
    """Whether the installed SDK takes ``session=`` per call (2.x does, 1.22.2 does not).

    On 1.22.2 an unknown keyword would be sent inside ``parameters`` instead.
    """
    from dashscope.api_entities.http_request import HttpRequest

    return "session" in inspect.signature(HttpRequest.__init__).parameters


@lru_cache(maxsize=1)
def _ssl_context() -> ssl.SSLContext:
    try:
        import certifi

        return ssl.create_default_context(cafile=certifi.where())
    except ImportError:  # pragma: no cover - certifi comes with requests
        return ssl.create_default_context()


@asynccontextmanager
async def open_session(limit: int = 100) -> AsyncIterator[aiohttp.ClientSession]:
    """A session for one operation (one chat call, one stream, one batch of embeddings).

    Closed when the operation ends, so no session outlives its event loop (no "Unclosed
    client session" warnings, nothing process-wide). ``trust_env`` honours HTTP(S)_PROXY and
    NO_PROXY like the SDK does.
    """
    connector = aiohttp.TCPConnector(limit=max(1, limit), ssl=_ssl_context())
    session = aiohttp.ClientSession(connector=connector, trust_env=True)
    try:
        yield session
    finally:
        await session.close()


def build_headers(api_key: str, workspace: str | None, *, module: str) -> dict[str, str]:
    """The headers the installed ``dashscope`` sends on a non-streaming POST (protocol §1.3).

    Built by the SDK's own ``HttpRequest`` (user-agent, Accept, Content-Type, data-inspection
    switch: they differ between 1.22.2 and 2.x), plus the 2.x ``x-dashscope-sdk-*`` headers.
    """
    from dashscope.api_entities.http_request import HttpRequest
    from dashscope.common import utils as sdk_utils

    request: Any = HttpRequest(url="", api_key=api_key, http_method="POST", stream=False)
    headers: dict[str, str] = dict(request.headers)
    get_sdk_headers = getattr(sdk_utils, "get_sdk_headers", None)  # 2.x only
    if get_sdk_headers is not None:
        headers.update(get_sdk_headers(module=module))
    if workspace:
        headers["X-DashScope-WorkSpace"] = workspace
    return headers


async def post_json(
    session: aiohttp.ClientSession,
    url: str,
    *,
    headers: dict[str, str],
    body: dict[str, Any],
    timeout: float,
) -> dict[str, Any]:
    """POST ``body`` and return the answer as an SDK-shaped response dict (never raises on 4xx/5xx).

    Transport failures raise aiohttp / asyncio exceptions, mapped by the caller.
    """
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    async with session.post(
        url, data=data, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)
    ) as response:
        raw = await response.read()
        header_request_id = response.headers.get("x-request-id", "")
        content_type = response.content_type or ""
        status = response.status
    text = raw.decode("utf-8", "replace")
    if status == 200:
        payload = json.loads(text)
        return {
            "status_code": 200,
            "request_id": payload.get("request_id") or header_request_id,
            "code": "",
            "message": "",
            "output": payload.get("output"),
            "usage": payload.get("usage"),
        }
    error: dict[str, Any] = {}
    if "json" in content_type:
        try:
            error = json.loads(text)
        except json.JSONDecodeError:
            error = {}
    elif _SSE in content_type:
        for line in text.splitlines():
            if line.startswith("data:"):
                try:
                    error = json.loads(line[len("data:") :].strip())
                except json.JSONDecodeError:
                    error = {}
                break
    if not isinstance(error, dict):
        error = {}
    return {
        "status_code": status,
        "request_id": error.get("request_id") or header_request_id,
        "code": error.get("code") or ("Unknown" if not error else ""),
        "message": error.get("message") or error.get("msg") or (text[:500] if not error else ""),
        "output": None,
        "usage": None,
    }
