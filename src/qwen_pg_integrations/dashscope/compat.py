"""Qwen over OpenAI-compatible servers: DashScope's compatible mode, vLLM, Ollama.

The same core types as the native clients (:class:`~qwen_pg_integrations.types.ChatResponse`,
``ChatChunk``, ``EmbeddingResult``) and the same retry policy, over the official ``openai``
package (``pip install 'qwen-pg-integrations[openai]'``; its own retries are off, ours apply).
What differs between servers -- the *dialect* -- is handled here, once:

=============  ==========================================  =====================================
dialect        thinking switch (``enable_thinking=``)      reasoning read from
=============  ==========================================  =====================================
``dashscope``  body root ``enable_thinking``,               ``reasoning_content``
               ``thinking_budget`` (thinking needs a
               stream: a whole answer is streamed and
               merged)
``vllm``       ``chat_template_kwargs.enable_thinking``    ``reasoning`` (vLLM >= 0.11), else
                                                           ``reasoning_content``
``ollama``     ``reasoning_effort``: ``"none"`` off,       ``reasoning``
               ``"medium"`` on
``openai``     not sent (a generic server)                 either field
=============  ==========================================  =====================================

:func:`detect_dialect` picks one from the URL (``/compatible-mode/`` -> ``dashscope``, port
11434 -> ``ollama``, else ``vllm``); pass ``dialect=`` to say it.

Servers without tool calling (vLLM started without ``--enable-auto-tool-choice``) answer a
request with tools with 400: the error says which flags to add. Embedding servers without
``dimensions`` (Ollama): asking for a dimension is refused up front, and a server that returns
another size than asked is an error, never a silently different vector.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import SecretStr

from ..config import resolve_api_key
from ..errors import (
    APIConnectionError,
    APITimeoutError,
    BadRequestError,
    ConfigurationError,
    DashScopeError,
    ToolCallRequiredError,
    error_from_response,
)
from ..types import (
    ChatChunk,
    ChatMessage,
    ChatResponse,
    EmbeddingResult,
    ToolCall,
    ToolCallChunk,
    ToolSpec,
    Usage,
)
from ._messages import messages_to_dashscope, plan_tool_choice, tools_to_dashscope
from ._retry import RetryPolicy
from ._stream import merge_chunks
from .embeddings import check_texts

__all__ = [
    "DIALECTS",
    "CompatChatClient",
    "CompatEmbeddingClient",
    "Dialect",
    "chat_client",
    "detect_dialect",
    "embedding_client",
    "uses_compat",
]

Dialect = Literal["dashscope", "vllm", "ollama", "openai"]
DIALECTS: tuple[str, ...] = ("dashscope", "vllm", "ollama", "openai")

# sent as the OpenAI SDK's own arguments; anything else goes into the body (extra_body)
_STANDARD = frozenset(
    {
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "response_format",
        "parallel_tool_calls",
        "n",
        "logprobs",
        "top_logprobs",
        "user",
    }
)
_THINKING = ("enable_thinking", "thinking_budget")
_TOOLS_HINT = (
    " The server has no tool calling enabled: start vLLM with --enable-auto-tool-choice "
    "--tool-call-parser hermes (qwen3_coder / qwen3_xml for Qwen3-Coder and Qwen3.5+), or call "
    "without tools."
)


def detect_dialect(base_url: str) -> Dialect:
    """The dialect a base URL most likely speaks (see the module table)."""
    url = urlparse(base_url)
    if "/compatible-mode/" in (url.path + "/") or (url.hostname or "").startswith("dashscope"):
        return "dashscope"
    if url.port == 11434 or "ollama" in (url.hostname or ""):
        return "ollama"
    return "vllm"


def uses_compat(base_url: str | None, dialect: str | None) -> bool:
    """Whether an adapter given ``base_url`` / ``dialect`` talks to an OpenAI-compatible server:
    a dialect other than ``"native"``, or a URL that is not DashScope's native ``.../api/v1``
    (nor a region name)."""
    if dialect is not None:
        return dialect != "native"
    if not base_url or "://" not in base_url:
        return False
    return not urlparse(base_url).path.rstrip("/").endswith("/api/v1")


def chat_client(
    model: str,
    *,
    base_url: str | None,
    dialect: str | None,
    api_key: str | SecretStr | None,
    key_given: bool,
    workspace: str | None = None,
    max_retries: int = 3,
    timeout: float | None = None,
) -> Any:
    """The core chat client an adapter's settings call for: the native
    :class:`~qwen_pg_integrations.dashscope.ChatClient`, or :class:`CompatChatClient` for an
    OpenAI-compatible ``base_url`` / ``dialect`` (see :func:`uses_compat`). A self-hosted server
    gets only a key given explicitly (``key_given``), never ``DASHSCOPE_API_KEY``."""
    from .chat import ChatClient

    if not uses_compat(base_url, dialect):
        kwargs: dict[str, Any] = {"api_key": api_key, "base_url": base_url,
                                  "workspace": workspace, "max_retries": max_retries}  # fmt: skip
        if timeout is not None:
            kwargs["timeout"] = timeout
        return ChatClient(model=model, **kwargs)
    wire = _compat_dialect(base_url or "", dialect)
    return CompatChatClient(
        model,
        base_url=base_url or "",
        api_key=api_key if key_given or wire == "dashscope" else None,
        dialect=wire,
        max_retries=max_retries,
        timeout=timeout or 60.0,
    )


def embedding_client(
    model: str,
    *,
    base_url: str | None,
    dialect: str | None,
    api_key: str | SecretStr | None,
    key_given: bool,
    dimensions: int | None = None,
    batch_size: int | None = None,
    max_retries: int = 3,
    timeout: float = 60.0,
    **native: Any,
) -> Any:
    """The core embedding client for an adapter's settings (as :func:`chat_client`);
    ``native`` are the native client's own options (``max_concurrency``, ``workspace``,
    ``output_type``)."""
    from .embeddings import EmbeddingClient

    if not uses_compat(base_url, dialect):
        return EmbeddingClient(
            model,
            dimensions=dimensions,
            batch_size=batch_size,
            api_key=api_key,
            base_url=base_url,
            max_retries=max_retries,
            timeout=timeout,
            **native,
        )
    if native.get("output_type", "dense") != "dense":
        raise ConfigurationError(
            "sparse weights come only from DashScope's native API: leave base_url/dialect out "
            "(native) for output_type='dense&sparse'."
        )
    wire = _compat_dialect(base_url or "", dialect)
    return CompatEmbeddingClient(
        model,
        base_url=base_url or "",
        api_key=api_key if key_given or wire == "dashscope" else None,
        dialect=wire,
        dimensions=dimensions,
        batch_size=batch_size,
        max_retries=max_retries,
        timeout=timeout,
    )


def _compat_dialect(base_url: str, dialect: str | None) -> Dialect:
    if not base_url or "://" not in base_url:
        raise ConfigurationError(
            f"dialect={dialect!r} needs the server's OpenAI base URL as base_url (e.g. "
            "http://localhost:8000/v1 for vLLM, http://localhost:11434/v1 for Ollama)."
        )
    return _check_dialect(None if dialect in (None, "native") else dialect, base_url)


def _check_dialect(dialect: str | None, base_url: str) -> Dialect:
    if dialect is None:
        return detect_dialect(base_url)
    if dialect not in DIALECTS:
        raise ConfigurationError(f"dialect must be one of {', '.join(DIALECTS)}, got {dialect!r}")
    return dialect  # type: ignore[return-value]


def _openai() -> Any:
    try:
        import openai
    except ImportError:
        raise ConfigurationError(
            "OpenAI-compatible servers are reached through the openai package: pip install "
            "'qwen-pg-integrations[openai]'."
        ) from None
    return openai


class _Connection:
    """Base URL, key, timeouts and retries of one OpenAI-compatible server, and its errors."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | SecretStr | None,
        dialect: str | None,
        max_retries: int,
        timeout: float,
    ) -> None:
        if not base_url or not isinstance(base_url, str):
            raise ConfigurationError("base_url is required for an OpenAI-compatible server")
        self.openai = _openai()
        self.base_url = base_url.rstrip("/")
        self.dialect: Dialect = _check_dialect(dialect, self.base_url)
        key = resolve_api_key(api_key, required=False) if self.dialect == "dashscope" else None
        if key is None and isinstance(api_key, (str, SecretStr)):
            key = api_key if isinstance(api_key, SecretStr) else SecretStr(api_key)
        self._key = key
        self.timeout = float(timeout)
        self.retry = RetryPolicy(max_retries=max_retries)
        self._sync: Any = None

    def __repr__(self) -> str:
        key = "SecretStr('**********')" if self._key is not None else "None"
        return f"(base_url={self.base_url!r}, dialect={self.dialect!r}, api_key={key})"

    def _kwargs(self) -> dict[str, Any]:
        # self-hosted servers take any key (Ollama's SDK clients must send one)
        key = self._key.get_secret_value() if self._key is not None else "EMPTY"
        return {"base_url": self.base_url, "api_key": key, "max_retries": 0,
                "timeout": self.timeout}  # fmt: skip

    def sync_client(self) -> Any:
        if self._sync is None:
            self._sync = self.openai.OpenAI(**self._kwargs())
        return self._sync

    def async_client(self) -> Any:
        """A fresh async client (closed by the caller): nothing outlives its event loop."""
        return self.openai.AsyncOpenAI(**self._kwargs())

    def error(self, err: BaseException, tools: bool = False) -> DashScopeError:
        """The package's typed error for an ``openai`` exception (keys never included)."""
        o = self.openai
        if isinstance(err, o.APITimeoutError):
            return APITimeoutError(f"{self.base_url} did not answer within {self.timeout:g} s")
        if isinstance(err, o.APIConnectionError):
            return APIConnectionError(f"cannot reach {self.base_url}: {type(err).__name__}")
        if isinstance(err, o.APIStatusError):
            body = err.body if isinstance(err.body, Mapping) else {}
            inner = body.get("error") if isinstance(body.get("error"), Mapping) else body
            code = inner.get("code") if isinstance(inner, Mapping) else None
            message = inner.get("message") if isinstance(inner, Mapping) else None
            message = str(message or err.message)
            if tools and err.status_code == 400 and "tool" in message.lower():
                message += _TOOLS_HINT
            rid = body.get("request_id") or err.response.headers.get("x-request-id")
            typed = error_from_response(err.status_code, str(code) if code else None, message, rid)
            if self.dialect == "dashscope":
                return typed
            # a self-hosted server: say which one answered, not "DashScope"
            return type(typed)(
                f"{self.dialect} server at {self.base_url} answered {err.status_code}: "
                f"{message}. {typed.hint}",
                status_code=err.status_code,
                code=typed.code,
                request_id=typed.request_id,
                service_message=message,
            )
        # an answer the openai package could not read (not OpenAI-shaped)
        return BadRequestError(
            f"{self.base_url} sent an answer that is not an OpenAI-compatible response "
            f"({type(err).__name__}): check that base_url is the server's OpenAI base (ending "
            "in /v1, e.g. http://localhost:8000/v1); DashScope's native API ends in /api/v1."
        )


# --- chat ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _ChatRequest:
    args: dict[str, Any]
    model: str
    thinking: bool
    tools: bool


def _reasoning(obj: Any) -> str:
    """``reasoning_content`` (DashScope, older vLLM) or ``reasoning`` (vLLM, Ollama)."""
    extra = getattr(obj, "model_extra", None) or {}
    for name in ("reasoning_content", "reasoning"):
        value = getattr(obj, name, None) or extra.get(name)
        if isinstance(value, str) and value:
            return value
    return ""


def _usage(u: Any) -> Usage | None:
    if u is None:
        return None
    details = getattr(u, "completion_tokens_details", None)
    cached = getattr(getattr(u, "prompt_tokens_details", None), "cached_tokens", None)
    return Usage(
        input_tokens=int(u.prompt_tokens or 0),
        output_tokens=int(u.completion_tokens or 0),
        total_tokens=int(u.total_tokens or 0),
        reasoning_tokens=getattr(details, "reasoning_tokens", None),
        cached_tokens=cached,
    )


def _request_id(obj: Any) -> str | None:
    rid = getattr(obj, "id", None)
    return str(rid) if rid else None


class CompatChatClient:
    """Chat over an OpenAI-compatible ``/chat/completions`` (same methods and results as
    :class:`~qwen_pg_integrations.dashscope.ChatClient`: ``chat``, ``stream``, ``achat``,
    ``astream``).

    Args:
        model: the server's model name (``qwen-plus``, ``Qwen/Qwen3-8B``, ``qwen3:8b``...).
        base_url: the server's OpenAI base (``http://localhost:8000/v1``,
            ``http://localhost:11434/v1``, DashScope's ``.../compatible-mode/v1``).
        api_key: the server's key (DashScope: default ``DASHSCOPE_API_KEY``; self-hosted
            servers usually need none).
        dialect: ``"dashscope"``, ``"vllm"``, ``"ollama"``, ``"openai"``; default from the URL.
        max_retries, timeout: as for the native client.
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str,
        api_key: str | SecretStr | None = None,
        dialect: str | None = None,
        max_retries: int = 3,
        timeout: float = 60.0,
    ) -> None:
        if not model:
            raise ConfigurationError("model must be a non-empty model name")
        self.model = model
        self.conn = _Connection(
            base_url, api_key=api_key, dialect=dialect, max_retries=max_retries, timeout=timeout
        )

    @property
    def dialect(self) -> Dialect:
        return self.conn.dialect

    def __repr__(self) -> str:
        return f"CompatChatClient(model={self.model!r}{self.conn!r})"

    # --- request ------------------------------------------------------------------------

    def _prepare(
        self,
        messages: Sequence[ChatMessage],
        model: str | None,
        tools: Sequence[ToolSpec | Mapping[str, Any]] | None,
        tool_choice: Any,
        params: Mapping[str, Any],
    ) -> _ChatRequest:
        model = model or self.model
        params = {k: v for k, v in params.items() if v is not None}
        timeout = params.pop("timeout", None)
        for forced in ("stream", "stream_options", "messages", "model", "incremental_output",
                       "result_format"):  # fmt: skip
            params.pop(forced, None)
        wire_messages = [_wire_message(m) for m in messages_to_dashscope(messages)]
        args: dict[str, Any] = {"model": model, "messages": wire_messages}
        extra: dict[str, Any] = {}
        wire_tools = tools_to_dashscope(tools or ())
        if wire_tools:
            args["tools"] = wire_tools
            if tool_choice in ("required", "any") or tool_choice is True:
                args["tool_choice"] = "required"
            else:
                plan = plan_tool_choice(tool_choice, wire_tools)
                if plan.wire is not None:
                    args["tool_choice"] = plan.wire
        elif tool_choice not in (None, "auto", "none", False):
            plan_tool_choice(tool_choice, wire_tools)  # raises: nothing to choose from
        if isinstance(params.get("response_format"), str):
            params["response_format"] = {"type": params["response_format"]}
        enable = params.pop("enable_thinking", None)
        budget = params.pop("thinking_budget", None)
        thinking = enable is True
        if self.dialect == "dashscope":
            if enable is not None:
                extra["enable_thinking"] = bool(enable)
            if budget is not None:
                extra["thinking_budget"] = int(budget)
        elif self.dialect == "vllm" and enable is not None:
            extra["chat_template_kwargs"] = {"enable_thinking": bool(enable)}
        elif self.dialect == "ollama" and enable is not None:
            args["reasoning_effort"] = "medium" if enable else "none"
        for key, value in params.items():
            (args if key in _STANDARD else extra)[key] = value
        if extra:
            args["extra_body"] = extra
        if timeout is not None:
            args["timeout"] = float(timeout)
        # DashScope refuses thinking without a stream; the others answer either way
        return _ChatRequest(args, model, thinking and self.dialect == "dashscope", bool(wire_tools))

    # --- parsing ------------------------------------------------------------------------

    def _response(self, raw: Any, model: str) -> ChatResponse:
        if not raw.choices:
            raise BadRequestError(f"{self.conn.base_url} answered without a choice")
        choice = raw.choices[0]
        message = choice.message
        calls = tuple(
            ToolCall(
                id=c.id or "", name=c.function.name, arguments=c.function.arguments or "", index=i
            )
            for i, c in enumerate(message.tool_calls or ())
        )
        return ChatResponse(
            content=message.content or "",
            model=raw.model or model,
            finish_reason=choice.finish_reason,
            tool_calls=calls,
            reasoning_content=_reasoning(message) or None,
            usage=_usage(raw.usage),
            request_id=_request_id(raw),
        )

    def _chunk(self, raw: Any) -> ChatChunk | None:
        usage = _usage(getattr(raw, "usage", None))
        if not raw.choices:
            if usage is None:
                return None
            return ChatChunk(usage=usage, request_id=_request_id(raw), model=raw.model)
        choice = raw.choices[0]
        delta = choice.delta
        calls = tuple(
            ToolCallChunk(
                index=c.index,
                id=c.id or None,
                name=(c.function.name if c.function else None) or None,
                arguments=(c.function.arguments if c.function else None) or "",
            )
            for c in delta.tool_calls or ()
        )
        chunk = ChatChunk(
            content=delta.content or "",
            reasoning_content=_reasoning(delta),
            tool_call_chunks=calls,
            finish_reason=choice.finish_reason,
            usage=usage,
            request_id=_request_id(raw),
            model=raw.model,
        )
        empty = not (chunk.content or chunk.reasoning_content or calls or chunk.finish_reason)
        return None if empty and usage is None else chunk

    # --- sync ---------------------------------------------------------------------------

    def _stream_once(self, req: _ChatRequest) -> Iterator[ChatChunk]:
        client = self.conn.sync_client()
        args = {**req.args, "stream": True, "stream_options": {"include_usage": True}}
        try:
            stream = client.chat.completions.create(**args)
            with stream:
                for raw in stream:
                    chunk = self._chunk(raw)
                    if chunk is not None:
                        yield chunk
        except self.conn.openai.OpenAIError as err:
            raise self.conn.error(err, req.tools) from None

    def _chat_once(self, req: _ChatRequest) -> ChatResponse:
        if req.thinking:
            return self.conn.retry.call(lambda: merge_chunks(self._stream_once(req), req.model))

        def once() -> ChatResponse:
            try:
                raw = self.conn.sync_client().chat.completions.create(**req.args)
            except self.conn.openai.OpenAIError as err:
                raise self.conn.error(err, req.tools) from None
            return self._response(raw, req.model)

        return self.conn.retry.call(once)

    def chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str | None = None,
        tools: Sequence[ToolSpec | Mapping[str, Any]] | None = None,
        tool_choice: Any = None,
        **params: Any,
    ) -> ChatResponse:
        """One complete answer (arguments as for the native ``ChatClient.chat``;
        ``tool_choice="required"`` is sent as the OpenAI ``"required"``)."""
        req = self._prepare(messages, model, tools, tool_choice, params)
        return _required(self._chat_once(req), req)

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str | None = None,
        tools: Sequence[ToolSpec | Mapping[str, Any]] | None = None,
        tool_choice: Any = None,
        **params: Any,
    ) -> Iterator[ChatChunk]:
        """Deltas; usage on the last chunk (``stream_options.include_usage``) when the server
        sends it."""
        req = self._prepare(messages, model, tools, tool_choice, params)
        return self.conn.retry.stream(lambda: self._stream_once(req))

    # --- async --------------------------------------------------------------------------

    async def _astream_once(self, req: _ChatRequest) -> AsyncIterator[ChatChunk]:
        args = {**req.args, "stream": True, "stream_options": {"include_usage": True}}
        client = self.conn.async_client()
        try:
            stream = await client.chat.completions.create(**args)
            async with stream:
                async for raw in stream:
                    chunk = self._chunk(raw)
                    if chunk is not None:
                        yield chunk
        except self.conn.openai.OpenAIError as err:
            raise self.conn.error(err, req.tools) from None
        finally:
            await client.close()

    async def _achat_once(self, req: _ChatRequest) -> ChatResponse:
        if req.thinking:

            async def collect() -> ChatResponse:
                return merge_chunks([c async for c in self._astream_once(req)], req.model)

            return await self.conn.retry.acall(collect)

        async def once() -> ChatResponse:
            client = self.conn.async_client()
            try:
                raw = await client.chat.completions.create(**req.args)
            except self.conn.openai.OpenAIError as err:
                raise self.conn.error(err, req.tools) from None
            finally:
                await client.close()
            return self._response(raw, req.model)

        return await self.conn.retry.acall(once)

    async def achat(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str | None = None,
        tools: Sequence[ToolSpec | Mapping[str, Any]] | None = None,
        tool_choice: Any = None,
        **params: Any,
    ) -> ChatResponse:
        """Async :meth:`chat`."""
        req = self._prepare(messages, model, tools, tool_choice, params)
        return _required(await self._achat_once(req), req)

    def astream(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str | None = None,
        tools: Sequence[ToolSpec | Mapping[str, Any]] | None = None,
        tool_choice: Any = None,
        **params: Any,
    ) -> AsyncIterator[ChatChunk]:
        """Async :meth:`stream`."""
        req = self._prepare(messages, model, tools, tool_choice, params)
        return self.conn.retry.astream(lambda: self._astream_once(req))


def _required(response: ChatResponse, req: _ChatRequest) -> ChatResponse:
    if req.args.get("tool_choice") == "required" and not response.tool_calls:
        raise ToolCallRequiredError(
            request_id=response.request_id,
            service_message="tool_choice required a tool call; the model answered in text",
        )
    return response


def _wire_message(m: dict[str, Any]) -> dict[str, Any]:
    """A native-shaped message as OpenAI servers take it (no DashScope-only keys)."""
    out = {k: v for k, v in m.items() if k not in ("reasoning_content", "partial")}
    for call in out.get("tool_calls") or ():
        if isinstance(call, dict):
            call.pop("index", None)
            fn = call.get("function")
            if isinstance(fn, dict) and not isinstance(fn.get("arguments"), str):
                fn["arguments"] = json.dumps(fn.get("arguments") or {}, ensure_ascii=False)
    return out


# --- embeddings ------------------------------------------------------------------------------


class CompatEmbeddingClient:
    """Dense embeddings over an OpenAI-compatible ``/embeddings`` (the methods of the native
    :class:`~qwen_pg_integrations.dashscope.EmbeddingClient` stores and adapters use).

    Args:
        model: the server's embedding model (``text-embedding-v4``, ``Qwen/Qwen3-Embedding-0.6B``).
        base_url, api_key, dialect, max_retries, timeout: as for :class:`CompatChatClient`.
        dimensions: the output size to ask for (``None``: the model's). Refused for Ollama,
            whose OpenAI endpoint has no ``dimensions``.
        batch_size: texts per request (DashScope: at most 10; default 10 there, 64 elsewhere).
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str,
        api_key: str | SecretStr | None = None,
        dialect: str | None = None,
        dimensions: int | None = None,
        batch_size: int | None = None,
        max_retries: int = 3,
        timeout: float = 60.0,
    ) -> None:
        if not model:
            raise ConfigurationError("model must be a non-empty model name")
        self._model = model
        self.conn = _Connection(
            base_url, api_key=api_key, dialect=dialect, max_retries=max_retries, timeout=timeout
        )
        if dimensions is not None and self.conn.dialect == "ollama":
            raise ConfigurationError(
                "Ollama's OpenAI-compatible /embeddings takes no dimensions: leave dimensions "
                "out (the vectors have the model's own size) or serve the model with vLLM."
            )
        if dimensions is not None and (isinstance(dimensions, bool) or dimensions < 1):
            raise ConfigurationError(f"dimensions must be a positive integer, got {dimensions!r}")
        limit = 10 if self.conn.dialect == "dashscope" else 2048
        self.batch_size = batch_size or (10 if self.conn.dialect == "dashscope" else 64)
        if not 1 <= self.batch_size <= limit:
            raise ConfigurationError(f"batch_size must be in 1..{limit}, got {self.batch_size}")
        self._asked = dimensions
        self._dimensions: int | None = dimensions
        self.output_type = "dense"
        self.total_tokens = 0

    @property
    def model(self) -> str:
        return self._model

    @property
    def has_sparse(self) -> bool:
        """Always ``False``: sparse weights exist only in DashScope's native API."""
        return False

    @property
    def dimensions(self) -> int:
        """The vector size (asked for, else learned from the first answer; 0 before)."""
        return self._dimensions or 0

    def __repr__(self) -> str:
        return f"CompatEmbeddingClient(model={self.model!r}{self.conn!r})"

    def _args(self, batch: Sequence[str]) -> dict[str, Any]:
        args: dict[str, Any] = {"model": self.model, "input": list(batch),
                                "encoding_format": "float"}  # fmt: skip
        if self._asked is not None:
            args["dimensions"] = self._asked
        return args

    def _take(self, raw: Any, n: int, vectors: list[list[float]]) -> None:
        got = sorted(raw.data, key=lambda d: d.index)
        if len(got) != n:
            raise BadRequestError(f"{self.conn.base_url} returned {len(got)} vectors for {n} texts")
        for item in got:
            vec = [float(x) for x in item.embedding]
            if self._asked is not None and len(vec) != self._asked:
                raise BadRequestError(
                    f"{self.conn.base_url} ignored dimensions={self._asked} and returned "
                    f"{len(vec)}: the server or model has no variable output size; leave "
                    "dimensions out."
                )
            if self._dimensions is None:
                self._dimensions = len(vec)
            vectors.append(vec)
        usage = getattr(raw, "usage", None)
        self.total_tokens += int(getattr(usage, "total_tokens", 0) or 0)

    def embed(self, texts: Sequence[str], text_type: str = "document") -> EmbeddingResult:
        """Vectors of ``texts`` in input order (``text_type`` is accepted for the native
        client's signature; OpenAI-compatible servers have no query / document switch)."""
        check_texts(texts)
        vectors: list[list[float]] = []
        client = self.conn.sync_client()
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start : start + self.batch_size]

            def once(batch: Sequence[str] = batch) -> Any:
                try:
                    return client.embeddings.create(**self._args(batch))
                except self.conn.openai.OpenAIError as err:
                    raise self.conn.error(err) from None

            self._take(self.conn.retry.call(once), len(batch), vectors)
        return EmbeddingResult(vectors, self.model, self.dimensions, self.total_tokens)

    async def aembed(self, texts: Sequence[str], text_type: str = "document") -> EmbeddingResult:
        """Async :meth:`embed`."""
        check_texts(texts)
        vectors: list[list[float]] = []
        client = self.conn.async_client()
        try:
            for start in range(0, len(texts), self.batch_size):
                batch = texts[start : start + self.batch_size]

                async def once(batch: Sequence[str] = batch) -> Any:
                    try:
                        return await client.embeddings.create(**self._args(batch))
                    except self.conn.openai.OpenAIError as err:
                        raise self.conn.error(err) from None

                self._take(await self.conn.retry.acall(once), len(batch), vectors)
        finally:
            await client.close()
        return EmbeddingResult(vectors, self.model, self.dimensions, self.total_tokens)

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return self.embed(texts).vectors if texts else []

    def embed_query(self, text: str) -> list[float]:
        return self.embed([text], "query").vectors[0]

    async def aembed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return (await self.aembed(texts)).vectors if texts else []

    async def aembed_query(self, text: str) -> list[float]:
        return (await self.aembed([text], "query")).vectors[0]

    def embed_sparse(self, texts: Sequence[str], text_type: str = "document") -> Any:
        raise ConfigurationError(
            "sparse weights come only from DashScope's native API (text-embedding-v3/v4 with "
            "output_type='dense&sparse'), not from OpenAI-compatible servers."
        )

    aembed_sparse = embed_sparse
