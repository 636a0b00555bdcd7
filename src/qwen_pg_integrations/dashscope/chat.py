"""Qwen chat over DashScope's native text-generation API (``Generation`` / ``AioGeneration``).

Wire choices, the same for every call:

* ``result_format="message"`` always; streams always send ``incremental_output=true`` so every
  chunk is a true delta on dashscope 1.22.2 and 2.x alike (2.x would otherwise rewrite
  ``incremental_output=false`` and merge client-side).
* Only the parameters the caller set are sent (``None`` means unset): no hidden defaults.
* ``enable_thinking=True`` (and always-thinking models such as QwQ) need a stream on the service
  side; a non-streaming :meth:`ChatClient.chat` then streams internally and returns the merged
  answer (its reasoning in ``ChatResponse.reasoning_content``).

``tool_choice``: the native API knows ``"auto"``, ``"none"`` and a named function.
``"required"`` / ``"any"`` with one tool names that tool. With several tools there is no native
way to demand *some* call, so it is emulated, never silently downgraded:

1. the request is sent with ``tool_choice="auto"``; if the model calls a tool, that answer is
   returned;
2. otherwise it is asked once more with an instruction added to the system message ("answer by
   calling one of the tools: a, b, c"); usage of both calls is summed in the result;
3. if it still answers in text, :class:`~qwen_pg_integrations.errors.ToolCallRequiredError` is
   raised (with the request id). For :meth:`ChatClient.stream` this case is buffered: the answer
   arrives as one chunk once a tool call is certain.

Retries (429, 5xx, timeouts, dropped connections) follow the client's policy; a stream is only
retried before its first chunk was yielded. Internally streamed calls (thinking) are retried as a
whole, since nothing reached the caller yet.

Async calls use one aiohttp session per call (per stream), closed when the call or stream ends, so
nothing outlives its event loop and no "Unclosed client session" warning appears. A stream given up
half-way is closed by the garbage collector; to release its connection at once, close it:
``async with contextlib.aclosing(chat.astream(msgs)) as s: ...``.

Example:
    >>> chat = ChatClient("qwen-plus")
    >>> chat.chat([ChatMessage("user", "Hi")]).content  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

from ..errors import ToolCallRequiredError
from ..types import ChatChunk, ChatMessage, ChatResponse, ToolCallChunk, ToolSpec
from ._messages import messages_to_dashscope, plan_tool_choice, tools_to_dashscope
from ._stream import ChunkNormalizer, merge_chunks, response_to_chat
from .client import DashScopeClient
from .models import DEFAULT_CHAT_MODEL, ChatModelSpec, chat_model_spec

__all__ = ["ChatClient", "merge_chunks"]

# set by this module on every call; a caller's value would change the wire semantics
_FORCED = ("result_format", "incremental_output", "stream")
# SDK routing arguments owned by DashScopeClient; refused as chat parameters
_RESERVED = ("api_key", "base_address", "workspace", "request_timeout", "session", "messages")

REQUIRE_TOOL_INSTRUCTION = (
    "You must answer this turn by calling one of the available tools ({names}); "
    "do not answer in plain text."
)


@dataclasses.dataclass(frozen=True)
class _Request:
    model: str
    messages: list[dict[str, Any]]
    parameters: dict[str, Any]
    timeout: float | None
    tool_names: tuple[str, ...]
    require_call: bool
    thinking: bool

    def reinforced(self) -> _Request:
        """The same request with the require-a-tool instruction in the system message."""
        note = REQUIRE_TOOL_INSTRUCTION.format(names=", ".join(self.tool_names))
        messages = [dict(m) for m in self.messages]
        if messages and messages[0].get("role") == "system":
            messages[0]["content"] = f"{messages[0].get('content') or ''}\n\n{note}".lstrip()
        else:
            messages.insert(0, {"role": "system", "content": note})
        return dataclasses.replace(self, messages=messages)


def _response_as_chunk(response: ChatResponse) -> ChatChunk:
    return ChatChunk(
        content=response.content,
        reasoning_content=response.reasoning_content or "",
        tool_call_chunks=tuple(
            ToolCallChunk(
                index=c.index, id=c.id or None, name=c.name or None, arguments=c.arguments
            )
            for c in response.tool_calls
        ),
        finish_reason=response.finish_reason,
        usage=response.usage,
        request_id=response.request_id,
        model=response.model,
    )


def _with_usage_of(first: ChatResponse, second: ChatResponse) -> ChatResponse:
    if first.usage is None or second.usage is None:
        return second
    return dataclasses.replace(second, usage=first.usage + second.usage)


def _required_failed(response: ChatResponse) -> ToolCallRequiredError:
    return ToolCallRequiredError(
        request_id=response.request_id,
        service_message="tool_choice required a tool call; the model answered in text twice",
    )


class ChatClient:
    """Chat with a Qwen model: sync/async, whole answers or streamed deltas, tool calls.

    Args:
        model: default model of the calls (``"qwen-plus"``); each call may override it.
        client: a :class:`DashScopeClient`; built from ``client_kwargs`` when ``None``
            (``api_key``, ``base_url``, ``workspace``, ``max_retries``, ``timeout``, ...).
    """

    def __init__(
        self,
        model: str = DEFAULT_CHAT_MODEL,
        *,
        client: DashScopeClient | None = None,
        **client_kwargs: Any,
    ) -> None:
        if not model:
            raise ValueError("model must be a non-empty model name")
        self.model = model
        self.client = client if client is not None else DashScopeClient(**client_kwargs)

    @property
    def spec(self) -> ChatModelSpec:
        return chat_model_spec(self.model)

    def __repr__(self) -> str:
        return f"ChatClient(model={self.model!r}, client={self.client!r})"

    # --- request preparation (shared by all four entry points) ---------------------------

    def _prepare(
        self,
        messages: Sequence[ChatMessage],
        model: str | None,
        tools: Sequence[ToolSpec | Mapping[str, Any]] | None,
        tool_choice: Any,
        params: Mapping[str, Any],
    ) -> _Request:
        model = model or self.model
        parameters = {k: v for k, v in params.items() if v is not None}
        timeout = parameters.pop("timeout", None)
        for key in _FORCED:
            parameters.pop(key, None)
        reserved = [k for k in _RESERVED if k in parameters]
        if reserved:
            raise TypeError(
                f"{', '.join(reserved)} cannot be chat parameters; configure DashScopeClient."
            )
        parameters["result_format"] = "message"
        if isinstance(parameters.get("response_format"), str):
            parameters["response_format"] = {"type": parameters["response_format"]}
        wire_tools = tools_to_dashscope(tools or ())
        if wire_tools:
            parameters["tools"] = wire_tools
        plan = plan_tool_choice(tool_choice, wire_tools)
        if plan.wire is not None:
            parameters["tool_choice"] = plan.wire
        spec = chat_model_spec(model)
        thinking = parameters.get("enable_thinking") is True or (
            spec.thinking_only and parameters.get("enable_thinking") is not False
        )
        return _Request(
            model=model,
            messages=messages_to_dashscope(messages),
            parameters=parameters,
            timeout=float(timeout) if timeout is not None else None,
            tool_names=tuple(t["function"]["name"] for t in wire_tools),
            require_call=plan.require_call,
            thinking=thinking,
        )

    # --- sync -----------------------------------------------------------------------------

    def _stream_once(self, req: _Request) -> Iterator[ChatChunk]:
        normalizer = ChunkNormalizer(req.model)
        params = {**req.parameters, "incremental_output": True}
        for raw in self.client.generation_stream(
            req.model, req.messages, params, timeout=req.timeout
        ):
            chunk = normalizer.feed(raw)
            if chunk is not None:
                yield chunk
        tail = normalizer.close()
        if tail is not None:
            yield tail

    def _chat_once(self, req: _Request) -> ChatResponse:
        retry = self.client.retry
        if req.thinking:
            return retry.call(lambda: merge_chunks(self._stream_once(req), req.model))
        raw = retry.call(
            lambda: self.client.generation(
                req.model, req.messages, req.parameters, timeout=req.timeout
            )
        )
        return response_to_chat(raw, req.model)

    def _chat(self, req: _Request) -> ChatResponse:
        first = self._chat_once(req)
        if not req.require_call or first.tool_calls:
            return first
        second = _with_usage_of(first, self._chat_once(req.reinforced()))
        if not second.tool_calls:
            raise _required_failed(second)
        return second

    def chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str | None = None,
        tools: Sequence[ToolSpec | Mapping[str, Any]] | None = None,
        tool_choice: Any = None,
        **params: Any,
    ) -> ChatResponse:
        """One complete answer.

        Args:
            messages: the conversation (system/user/assistant/tool messages).
            model: overrides the client's model for this call.
            tools: functions the model may call.
            tool_choice: ``"auto"``, ``"none"``, ``"required"``/``"any"``, a tool name, or
                ``{"type": "function", "function": {"name": ...}}`` (see the module notes).
            **params: DashScope parameters (temperature, top_p, top_k, seed, max_tokens, stop,
                enable_search, response_format, enable_thinking, thinking_budget,
                parallel_tool_calls, ...) sent as given; ``timeout`` (seconds) for this call.

        Raises:
            DashScopeError: typed service/transport errors, after retries where they help.
            ToolCallRequiredError: a required tool call did not happen (see the module notes).
        """
        return self._chat(self._prepare(messages, model, tools, tool_choice, params))

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str | None = None,
        tools: Sequence[ToolSpec | Mapping[str, Any]] | None = None,
        tool_choice: Any = None,
        **params: Any,
    ) -> Iterator[ChatChunk]:
        """Stream the answer as deltas (same arguments as :meth:`chat`).

        Tool-call fragments carry their ``index``; ``id`` and ``name`` come once per call.
        Usage is on the final chunk. Input errors are raised here, before iteration starts.
        """
        req = self._prepare(messages, model, tools, tool_choice, params)
        if req.require_call:
            return iter((_response_as_chunk(self._chat(req)),))
        return self.client.retry.stream(lambda: self._stream_once(req))

    # --- async ----------------------------------------------------------------------------

    async def _astream_once(self, req: _Request) -> AsyncIterator[ChatChunk]:
        normalizer = ChunkNormalizer(req.model)
        params = {**req.parameters, "incremental_output": True}
        raws = self.client.ageneration_stream(req.model, req.messages, params, timeout=req.timeout)
        try:
            async for raw in raws:
                chunk = normalizer.feed(raw)
                if chunk is not None:
                    yield chunk
        finally:
            await raws.aclose()
        tail = normalizer.close()
        if tail is not None:
            yield tail

    async def _acollect(self, req: _Request) -> ChatResponse:
        chunks = [chunk async for chunk in self._astream_once(req)]
        return merge_chunks(chunks, req.model)

    async def _achat_once(self, req: _Request) -> ChatResponse:
        retry = self.client.retry
        if req.thinking:
            return await retry.acall(lambda: self._acollect(req))
        raw = await retry.acall(
            lambda: self.client.ageneration(
                req.model, req.messages, req.parameters, timeout=req.timeout
            )
        )
        return response_to_chat(raw, req.model)

    async def _achat(self, req: _Request) -> ChatResponse:
        first = await self._achat_once(req)
        if not req.require_call or first.tool_calls:
            return first
        second = _with_usage_of(first, await self._achat_once(req.reinforced()))
        if not second.tool_calls:
            raise _required_failed(second)
        return second

    async def achat(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str | None = None,
        tools: Sequence[ToolSpec | Mapping[str, Any]] | None = None,
        tool_choice: Any = None,
        **params: Any,
    ) -> ChatResponse:
        """Async :meth:`chat` (aiohttp through ``AioGeneration``; never blocks the loop)."""
        return await self._achat(self._prepare(messages, model, tools, tool_choice, params))

    def astream(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str | None = None,
        tools: Sequence[ToolSpec | Mapping[str, Any]] | None = None,
        tool_choice: Any = None,
        **params: Any,
    ) -> AsyncIterator[ChatChunk]:
        """Async :meth:`stream`: ``async for chunk in chat.astream(messages): ...``."""
        req = self._prepare(messages, model, tools, tool_choice, params)
        if req.require_call:
            return self._abuffered(req)
        return self.client.retry.astream(lambda: self._astream_once(req))

    async def _abuffered(self, req: _Request) -> AsyncIterator[ChatChunk]:
        yield _response_as_chunk(await self._achat(req))
