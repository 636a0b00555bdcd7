"""Translation between LangChain messages and the core's framework-free types.

Only translation lives here: what DashScope accepts (which fields are sent back, how tool
choices map, how streams merge) is decided by the core.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, cast

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import invalid_tool_call, tool_call_chunk
from langchain_core.messages.tool import tool_call as make_tool_call
from langchain_core.utils.function_calling import convert_to_openai_tool

from .. import types as core
from ..errors import InvalidInputError

__all__ = [
    "chunk_to_message_chunk",
    "final_chunk",
    "has_delta",
    "message_to_core",
    "messages_to_core",
    "response_to_message",
    "tool_to_spec",
    "usage_to_metadata",
]

_ROLES: dict[str, core.Role] = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "ai": "assistant",
    "tool": "tool",
    "function": "tool",
}


def _text_of(content: str | list[str | dict[str, Any]], *, role: str) -> str:
    """The text of a message's content; non-text blocks are refused, never silently dropped."""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
            continue
        kind = block.get("type")
        if kind == "text":
            parts.append(str(block.get("text", "")))
        elif kind in {"tool_use", "tool_call", "reasoning", "thinking"}:
            # Tool calls travel in AIMessage.tool_calls; reasoning in additional_kwargs.
            continue
        else:
            raise InvalidInputError(
                f"A {role} message has a {kind!r} content block; ChatQwen uses DashScope's "
                "text-generation endpoint, which takes text only. Send text, or use a "
                "Qwen-VL / Omni model through the multimodal endpoint."
            )
    return "".join(parts)


def _json_text(content: str | list[str | dict[str, Any]]) -> str:
    """Tool results: text blocks joined; any other structure as JSON (DashScope wants a string)."""
    if isinstance(content, str):
        return content
    if all(isinstance(b, str) or b.get("type") == "text" for b in content):
        return _text_of(content, role="tool")
    return json.dumps(content, ensure_ascii=False)


def message_to_core(message: BaseMessage) -> core.ChatMessage:
    """One LangChain message as a core :class:`~qwen_pg_integrations.types.ChatMessage`."""
    if isinstance(message, SystemMessage):
        return core.ChatMessage(role="system", content=_text_of(message.content, role="system"))
    if isinstance(message, HumanMessage):
        # DashScope's native API has no per-message speaker name for users: it is not sent.
        return core.ChatMessage(role="user", content=_text_of(message.content, role="user"))
    if isinstance(message, AIMessage):
        calls = tuple(
            core.ToolCall(
                id=tc.get("id") or f"call_{i}",
                name=tc["name"],
                arguments=json.dumps(tc["args"], ensure_ascii=False),
                index=i,
            )
            for i, tc in enumerate(message.tool_calls)
        )
        reasoning = message.additional_kwargs.get("reasoning_content")
        return core.ChatMessage(
            role="assistant",
            content=_text_of(message.content, role="assistant"),
            tool_calls=calls,
            reasoning_content=reasoning if isinstance(reasoning, str) and reasoning else None,
        )
    if isinstance(message, ToolMessage):
        return core.ChatMessage(
            role="tool",
            content=_json_text(message.content),
            tool_call_id=message.tool_call_id,
            name=message.name,
        )
    if isinstance(message, FunctionMessage):
        return core.ChatMessage(role="tool", content=_json_text(message.content), name=message.name)
    if isinstance(message, ChatMessage):
        role = _ROLES.get(message.role)
        if role is None:
            raise InvalidInputError(
                f"Unknown message role {message.role!r}; use one of system, user, assistant, tool."
            )
        return core.ChatMessage(role=role, content=_text_of(message.content, role=role))
    raise InvalidInputError(f"ChatQwen cannot send a {type(message).__name__}.")


def messages_to_core(messages: Sequence[BaseMessage]) -> list[core.ChatMessage]:
    """A LangChain conversation as core messages."""
    return [message_to_core(m) for m in messages]


def tool_to_spec(tool: Any, *, strict: bool | None = None) -> core.ToolSpec:
    """A LangChain tool (BaseTool, function, pydantic model, dict schema) as a core ToolSpec."""
    fn = convert_to_openai_tool(tool, strict=strict)["function"]
    return core.ToolSpec(
        name=fn["name"],
        description=fn.get("description", ""),
        parameters=fn.get("parameters") or {"type": "object", "properties": {}},
    )


def usage_to_metadata(usage: core.Usage) -> UsageMetadata:
    """Core usage as LangChain ``usage_metadata`` (reasoning and cache details when known)."""
    # cast: mypy reads the NotRequired detail keys of UsageMetadata as required.
    meta = cast(
        UsageMetadata,
        {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "total_tokens": usage.total_tokens or usage.input_tokens + usage.output_tokens,
        },
    )
    if usage.cached_tokens is not None:
        meta["input_token_details"] = {"cache_read": usage.cached_tokens}
    if usage.reasoning_tokens is not None:
        meta["output_token_details"] = {"reasoning": usage.reasoning_tokens}
    return meta


def _response_metadata(
    model: str | None, finish_reason: str | None, request_id: str | None
) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    if model:
        meta["model_name"] = model
    if finish_reason:
        meta["finish_reason"] = finish_reason
    if request_id:
        meta["request_id"] = request_id
    return meta


def response_to_message(
    response: core.ChatResponse, *, requested_model: str | None = None
) -> AIMessage:
    """The core answer as an ``AIMessage``; ``requested_model`` names it if DashScope did not."""
    tool_calls = []
    invalid = []
    for call in response.tool_calls:
        try:
            args = json.loads(call.arguments) if call.arguments.strip() else {}
        except json.JSONDecodeError as exc:
            invalid.append(
                invalid_tool_call(
                    name=call.name, args=call.arguments, id=call.id, error=f"invalid JSON: {exc}"
                )
            )
            continue
        if not isinstance(args, dict):
            invalid.append(
                invalid_tool_call(
                    name=call.name, args=call.arguments, id=call.id, error="arguments not an object"
                )
            )
            continue
        tool_calls.append(make_tool_call(name=call.name, args=args, id=call.id))
    additional: dict[str, Any] = {}
    if response.reasoning_content:
        additional["reasoning_content"] = response.reasoning_content
    return AIMessage(
        content=response.content,
        additional_kwargs=additional,
        tool_calls=tool_calls,
        invalid_tool_calls=invalid,
        usage_metadata=usage_to_metadata(response.usage) if response.usage else None,
        response_metadata=_response_metadata(
            response.model or requested_model, response.finish_reason, response.request_id
        ),
    )


def chunk_to_message_chunk(chunk: core.ChatChunk) -> AIMessageChunk:
    """The deltas of one streamed core increment (text, reasoning, tool-call fragments).

    Usage and response metadata are left out: LangChain adds chunks together, so they travel on
    one final chunk only (:func:`final_chunk`), or counts would be summed and names concatenated.
    """
    additional: dict[str, Any] = {}
    if chunk.reasoning_content:
        additional["reasoning_content"] = chunk.reasoning_content
    return AIMessageChunk(
        content=chunk.content,
        additional_kwargs=additional,
        tool_call_chunks=[
            tool_call_chunk(
                name=tc.name or None, args=tc.arguments, id=tc.id or None, index=tc.index
            )
            for tc in chunk.tool_call_chunks
        ],
    )


def has_delta(chunk: core.ChatChunk) -> bool:
    """Whether a core increment carries any text, reasoning or tool-call fragment."""
    return bool(chunk.content or chunk.reasoning_content or chunk.tool_call_chunks)


def final_chunk(
    *,
    usage: core.Usage | None,
    model: str | None,
    finish_reason: str | None,
    request_id: str | None,
) -> AIMessageChunk:
    """The closing chunk of a stream: usage and response metadata, once."""
    return AIMessageChunk(
        content="",
        usage_metadata=usage_to_metadata(usage) if usage else None,
        response_metadata=_response_metadata(model, finish_reason, request_id),
        chunk_position="last",
    )
