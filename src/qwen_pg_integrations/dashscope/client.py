"""The DashScope connection: key, endpoint, workspace, timeouts, retries, error mapping.

Everything is passed to the official SDK per call (``api_key=``, ``base_address=``,
``workspace=``, ``request_timeout=``); ``dashscope.api_key`` and ``dashscope.base_http_api_url``
are never read or written, so clients with different keys or regions work side by side in one
process, in threads and in one event loop.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import aiohttp
import dashscope
from pydantic import SecretStr

from ..config import resolve_api_key, resolve_base_url
from ..errors import MissingAPIKeyError
from . import _aio
from ._errors import check_response, translate_exception
from ._retry import RetryPolicy

__all__ = ["DashScopeClient"]

EMBEDDING_PATH = "services/embeddings/text-embedding/text-embedding"
RERANK_PATH = "services/rerank/text-rerank/text-rerank"
DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 3

# The SDK's own annotations differ between 1.22.2 and 2.x; its results are read as mappings.
_Generation: Any = dashscope.Generation
_AioGeneration: Any = dashscope.AioGeneration
_TextEmbedding: Any = dashscope.TextEmbedding
_TextReRank: Any = dashscope.TextReRank


class DashScopeClient:
    """Per-instance DashScope settings shared by :class:`EmbeddingClient` and :class:`ChatClient`.

    Args:
        api_key: the key; else ``DASHSCOPE_API_KEY`` (read now, not at import). Kept as a
            ``SecretStr``: it never appears in ``repr``, ``str``, logs or exceptions.
        base_url: region endpoint ending in ``/api/v1`` (or a region name such as
            ``"ap-southeast-1"``, or a local emulator); else ``DASHSCOPE_HTTP_BASE_URL``,
            else Beijing.
        workspace: Model Studio workspace id (sent as ``X-DashScope-WorkSpace``).
        max_retries: resends on 429, 5xx, timeouts and dropped connections (0 disables;
            ``None``: 3).
        timeout: seconds per request (for streams: the idle time between chunks; ``None``: 60).
        backoff_base: first retry delay in seconds (doubles each retry, with jitter).
        backoff_max: cap of one retry delay in seconds.

    Example:
        >>> client = DashScopeClient(api_key="sk-...", base_url="ap-southeast-1")
        >>> client
        DashScopeClient(base_url='https://dashscope-intl.aliyuncs.com/api/v1', ...)
    """

    def __init__(
        self,
        api_key: str | SecretStr | None = None,
        base_url: str | None = None,
        workspace: str | None = None,
        max_retries: int | None = 3,
        timeout: float | None = 60.0,
        *,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
    ) -> None:
        timeout = DEFAULT_TIMEOUT if timeout is None else timeout
        max_retries = DEFAULT_MAX_RETRIES if max_retries is None else max_retries
        if timeout <= 0:
            raise ValueError("timeout must be > 0 seconds")
        self._api_key = resolve_api_key(api_key, required=False)
        self.base_url = resolve_base_url(base_url)
        self.workspace = workspace or None
        self.timeout = float(timeout)
        self.retry = RetryPolicy(
            max_retries=max_retries, backoff_base=backoff_base, backoff_max=backoff_max
        )

    # --- settings -------------------------------------------------------------------------

    @property
    def api_key(self) -> SecretStr | None:
        """The key as a ``SecretStr`` (``None`` if none was configured)."""
        return self._api_key

    @property
    def max_retries(self) -> int:
        return self.retry.max_retries

    def __repr__(self) -> str:
        key = "SecretStr('**********')" if self._api_key is not None else "None"
        return (
            f"{type(self).__name__}(base_url={self.base_url!r}, workspace={self.workspace!r}, "
            f"max_retries={self.max_retries}, timeout={self.timeout}, api_key={key})"
        )

    __str__ = __repr__

    def _secret(self) -> str:
        if self._api_key is None:
            raise MissingAPIKeyError()
        return self._api_key.get_secret_value()

    def sdk_kwargs(self, timeout: float | None = None) -> dict[str, Any]:
        """Keyword arguments that route one SDK call to this client's key, region and workspace."""
        kwargs: dict[str, Any] = {
            "api_key": self._secret(),
            "base_address": self.base_url,
            "request_timeout": timeout or self.timeout,
        }
        if self.workspace:
            kwargs["workspace"] = self.workspace
        return kwargs

    @contextmanager
    def _typed_errors(self) -> Iterator[None]:
        """Re-raise SDK, requests and aiohttp exceptions as typed errors (key scrubbed)."""
        try:
            yield
        except Exception as exc:
            secret = self._api_key.get_secret_value() if self._api_key is not None else None
            mapped = translate_exception(exc, secret=secret, base_url=self.base_url)
            if mapped is None or mapped is exc:
                raise
            raise mapped from exc

    def _check(self, response: Mapping[str, Any]) -> None:
        check_response(response, base_url=self.base_url)

    # --- text generation: one attempt each; callers wrap them in self.retry ---------------

    def generation(
        self,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        parameters: Mapping[str, Any],
        *,
        timeout: float | None = None,
    ) -> Mapping[str, Any]:
        """One non-streaming ``Generation.call``; raises the typed error on failure."""
        return self._sdk_call(
            _Generation, parameters, timeout, model=model, messages=list(messages)
        )

    def generation_stream(
        self,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        parameters: Mapping[str, Any],
        *,
        timeout: float | None = None,
    ) -> Generator[Mapping[str, Any], None, None]:
        """One streaming ``Generation.call``: raw SDK responses, each checked (typed errors)."""
        responses: Any = None
        with self._typed_errors():
            try:
                kwargs = {**parameters, **self.sdk_kwargs(timeout), "stream": True}
                responses = _Generation.call(model=model, messages=list(messages), **kwargs)
                for response in responses:
                    self._check(response)
                    yield response
            finally:
                close = getattr(responses, "close", None)
                if close is not None:
                    close()

    async def ageneration(
        self,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        parameters: Mapping[str, Any],
        *,
        timeout: float | None = None,
    ) -> Mapping[str, Any]:
        """One non-streaming ``AioGeneration.call`` on a session closed when it returns."""
        with self._typed_errors():
            kwargs = {**parameters, **self.sdk_kwargs(timeout)}
            async with _sdk_session() as session_kwargs:
                response: Mapping[str, Any] = await _AioGeneration.call(
                    model=model, messages=list(messages), **session_kwargs, **kwargs
                )
            self._check(response)
        return response

    async def ageneration_stream(
        self,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        parameters: Mapping[str, Any],
        *,
        timeout: float | None = None,
    ) -> AsyncGenerator[Mapping[str, Any], None]:
        """One streaming ``AioGeneration.call``: raw SDK responses, each checked."""
        with self._typed_errors():
            kwargs = {**parameters, **self.sdk_kwargs(timeout), "stream": True}
            async with _sdk_session() as session_kwargs:
                responses = await _AioGeneration.call(
                    model=model, messages=list(messages), **session_kwargs, **kwargs
                )
                try:
                    async for response in responses:
                        self._check(response)
                        yield response
                finally:
                    await responses.aclose()

    # --- text embedding -------------------------------------------------------------------

    def _sdk_call(self, api: Any, parameters: Mapping[str, Any], timeout: float | None,
                  **fields: Any) -> Mapping[str, Any]:  # fmt: skip
        """One non-streaming SDK ``api.call`` routed to this client; checked (typed errors:
        the SDK itself returns a response with ``output=None`` on HTTP errors)."""
        with self._typed_errors():
            kwargs = {**parameters, **self.sdk_kwargs(timeout)}
            response: Mapping[str, Any] = api.call(**fields, **kwargs)
            self._check(response)
        return response

    async def _apost(
        self,
        session: aiohttp.ClientSession,
        path: str,
        module: str,
        body: dict[str, Any],
        timeout: float | None,
    ) -> Mapping[str, Any]:
        """The same request as the SDK sends for ``path``, with aiohttp on ``session``."""
        url = self.base_url.replace("{workspace_id}", self.workspace or "")
        url = f"{url.rstrip('/')}/{path}"
        with self._typed_errors():
            headers = _aio.build_headers(self._secret(), self.workspace, module=module)
            response = await _aio.post_json(
                session, url, headers=headers, body=body, timeout=timeout or self.timeout
            )
            self._check(response)
        return response

    def text_embedding(
        self,
        model: str,
        texts: Sequence[str],
        parameters: Mapping[str, Any],
        *,
        timeout: float | None = None,
    ) -> Mapping[str, Any]:
        """One ``TextEmbedding.call`` (sync SDK); raises the typed error on failure."""
        return self._sdk_call(_TextEmbedding, parameters, timeout, model=model, input=list(texts))

    async def atext_embedding(
        self,
        session: aiohttp.ClientSession,
        model: str,
        texts: Sequence[str],
        parameters: Mapping[str, Any],
        *,
        timeout: float | None = None,
    ) -> Mapping[str, Any]:
        """The same request as :meth:`text_embedding`, sent with aiohttp on ``session``."""
        body = {"model": model, "input": {"texts": list(texts)}, "parameters": dict(parameters)}
        return await self._apost(session, EMBEDDING_PATH, "embeddings", body, timeout)

    # --- text rerank ----------------------------------------------------------------------

    def text_rerank(
        self,
        model: str,
        query: str,
        documents: Sequence[str],
        parameters: Mapping[str, Any],
        *,
        timeout: float | None = None,
    ) -> Mapping[str, Any]:
        """One ``TextReRank.call`` (sync SDK); raises the typed error on failure."""
        return self._sdk_call(
            _TextReRank, parameters, timeout, model=model, query=query, documents=list(documents)
        )

    async def atext_rerank(
        self,
        session: aiohttp.ClientSession,
        model: str,
        query: str,
        documents: Sequence[str],
        parameters: Mapping[str, Any],
        *,
        timeout: float | None = None,
    ) -> Mapping[str, Any]:
        """The same request as :meth:`text_rerank`, sent with aiohttp on ``session``."""
        body = {
            "model": model,
            "input": {"query": query, "documents": list(documents)},
            "parameters": dict(parameters),
        }
        return await self._apost(session, RERANK_PATH, "rerank", body, timeout)


@asynccontextmanager
async def _sdk_session() -> AsyncIterator[dict[str, Any]]:
    """``session=`` for one AioGeneration call: our own, closed after it (2.x); none on 1.22.2.

    2.x would otherwise use a process-wide per-loop session nobody closes ("Unclosed client
    session" at loop end); 1.22.2 opens and closes a session per call by itself and has no
    ``session`` argument (it would be sent as a request parameter).
    """
    if not _aio.sdk_accepts_session():
        yield {}
        return
    async with _aio.open_session() as session:
        yield {"session": session}
