"""Translation between LlamaIndex chat types and the core's framework-free types.

Tool calls travel as ``ToolCallBlock`` blocks whose ``tool_kwargs`` hold the model's raw JSON
string, so the arguments go back to DashScope byte for byte (spaces, CJK) on the next turn.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from llama_index.core.base.llms.types import ChatMessage as LIChatMessage
from llama_index.core.base.llms.types import (
    ChatResponse as LIChatResponse,
)
from llama_index.core.base.llms.types import (
    ContentBlock,
    MessageRole,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
)
from llama_index.core.llms.llm import ToolSelection
from llama_index.core.llms.utils import parse_partial_json

from ..dashscope import merge_chunks
from ..errors import InvalidInputError
from ..types import (
    ChatChunk,
    ChatMessage,
    ChatResponse,
    Role,
    ToolCall,
    ToolCallChunk,
    ToolSpec,
)

__all__ = [
    "StreamMerger",
    "to_core_messages",
    "to_core_tools",
    "to_li_response",
    "tool_selections",
]

_ROLES: dict[str, Role] = {
    MessageRole.SYSTEM.value: "system",
    MessageRole.DEVELOPER.value: "system",
    MessageRole.USER.value: "user",
    MessageRole.ASSISTANT.value: "assistant",
    MessageRole.MODEL.value: "assistant",
    MessageRole.CHATBOT.value: "assistant",
    MessageRole.TOOL.value: "tool",
    MessageRole.FUNCTION.value: "tool",
}


def _arguments_text(kwargs: Mapping[str, Any] | str) -> str:
    if isinstance(kwargs, str):
        return kwargs
    return json.dumps(kwargs, ensure_ascii=False)


def _text_of(message: LIChatMessage) -> str:
    parts: list[str] = []
    for block in message.blocks:
        if isinstance(block, TextBlock):
            parts.append(block.text)
        elif isinstance(block, (ToolCallBlock, ThinkingBlock)):
            continue
        else:
            raise InvalidInputError(
                f"Qwen text models take text only, got a {type(block).__name__} in a "
                f"{message.role.value} message; describe the content in text or use a "
                "vision-language model."
            )
    return "\n".join(parts)


def _tool_calls_of(message: LIChatMessage) -> tuple[ToolCall, ...]:
    calls: list[ToolCall] = []
    for block in message.blocks:
        if isinstance(block, ToolCallBlock):
            calls.append(
                ToolCall(
                    id=block.tool_call_id or f"call_{len(calls)}",
                    name=block.tool_name,
                    arguments=_arguments_text(block.tool_kwargs),
                    index=len(calls),
                )
            )
    if calls:
        return tuple(calls)
    # OpenAI-style dicts, as other LlamaIndex integrations keep them in additional_kwargs.
    for raw in message.additional_kwargs.get("tool_calls") or ():
        if isinstance(raw, ToolSelection):
            calls.append(
                ToolCall(raw.tool_id, raw.tool_name, _arguments_text(raw.tool_kwargs), len(calls))
            )
            continue
        function = raw.get("function") or {}
        calls.append(
            ToolCall(
                id=str(raw.get("id") or f"call_{len(calls)}"),
                name=str(function.get("name", "")),
                arguments=_arguments_text(function.get("arguments") or "{}"),
                index=len(calls),
            )
        )
    return tuple(calls)


def to_core_messages(messages: Sequence[LIChatMessage]) -> list[ChatMessage]:
    """LlamaIndex messages to core messages (raises ``InvalidInputError`` on non-text blocks)."""
    out: list[ChatMessage] = []
    for message in messages:
        role = _ROLES.get(message.role.value)
        if role is None:
            raise InvalidInputError(f"Unsupported message role {message.role.value!r}.")
        extra = message.additional_kwargs
        if role == "tool":
            tool_call_id = extra.get("tool_call_id")
            if not tool_call_id:
                raise InvalidInputError(
                    "A tool message needs additional_kwargs['tool_call_id'] (the id of the "
                    "assistant's tool call it answers)."
                )
            out.append(
                ChatMessage(
                    role="tool",
                    content=_text_of(message),
                    tool_call_id=str(tool_call_id),
                    name=extra.get("name"),
                )
            )
        elif role == "assistant":
            out.append(
                ChatMessage(
                    role="assistant",
                    content=_text_of(message),
                    tool_calls=_tool_calls_of(message),
                )
            )
        else:
            out.append(ChatMessage(role=role, content=_text_of(message)))
    return out


_LI_ROLES = {
    "system": MessageRole.SYSTEM,
    "user": MessageRole.USER,
    "assistant": MessageRole.ASSISTANT,
    "tool": MessageRole.TOOL,
}


def to_li_messages(messages: Sequence[ChatMessage]) -> list[LIChatMessage]:
    """Core text messages (e.g. prompts the RAG core built) to LlamaIndex messages."""
    return [LIChatMessage(role=_LI_ROLES[m.role], content=m.content) for m in messages]


def to_core_history(messages: Sequence[LIChatMessage] | None) -> list[ChatMessage]:
    """The user and assistant turns of a chat history, as plain core text messages."""
    turns = [m for m in messages or () if _ROLES.get(m.role.value) in ("user", "assistant")]
    return [ChatMessage(role=m.role, content=m.content) for m in to_core_messages(turns)]


def to_core_tools(tools: Sequence[Any]) -> list[ToolSpec]:
    """LlamaIndex tools (``BaseTool``), OpenAI-style dicts or ``ToolSpec`` to core specs."""
    specs: list[ToolSpec] = []
    for tool in tools:
        if isinstance(tool, ToolSpec):
            specs.append(tool)
            continue
        if isinstance(tool, Mapping):
            function = tool.get("function", tool)
        else:
            function = tool.metadata.to_openai_tool(skip_length_check=True)["function"]
        specs.append(
            ToolSpec(
                name=function["name"],
                description=function.get("description") or "",
                parameters=function.get("parameters") or {"type": "object", "properties": {}},
            )
        )
    return specs


def to_li_response(
    response: ChatResponse, *, delta: str | None = None, thinking_delta: str | None = None
) -> LIChatResponse:
    """A core response (complete or merged so far) as a LlamaIndex ``ChatResponse``.

    ``raw["usage"]`` carries DashScope's token counts (LlamaIndex's token counter reads them);
    ``additional_kwargs["thinking_delta"]`` the new reasoning text of a streamed chunk (what
    ``FunctionAgent`` puts on its ``AgentStream`` events).
    """
    blocks: list[ContentBlock] = []
    if response.reasoning_content:
        blocks.append(ThinkingBlock(content=response.reasoning_content))
    blocks.append(TextBlock(text=response.content))
    blocks.extend(
        ToolCallBlock(tool_call_id=call.id, tool_name=call.name, tool_kwargs=call.arguments)
        for call in response.tool_calls
    )
    usage = response.usage
    raw: dict[str, Any] = {
        "model": response.model,
        "finish_reason": response.finish_reason,
        "request_id": response.request_id,
        "usage": None
        if usage is None
        else {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "total_tokens": usage.total_tokens,
        },
    }
    extra: dict[str, Any] = {}
    if thinking_delta:
        extra["thinking_delta"] = thinking_delta
    if usage is not None:
        extra.update(
            prompt_tokens=usage.input_tokens,
            completion_tokens=usage.output_tokens,
            total_tokens=usage.total_tokens,
        )
    return LIChatResponse(
        message=LIChatMessage(role=MessageRole.ASSISTANT, blocks=blocks),
        delta=delta,
        raw=raw,
        additional_kwargs=extra,
    )


class StreamMerger:
    """Turns the core's streamed deltas into LlamaIndex responses holding everything so far.

    LlamaIndex expects every streamed ``ChatResponse`` to carry the whole message up to that
    point (``FunctionAgent`` reads tool calls from each one). The core's ``merge_chunks`` does
    the merging; the running result is folded back into one chunk so each step costs the new
    delta, not the whole stream again.
    """

    def __init__(self) -> None:
        self._merged: ChatChunk | None = None

    def add(self, chunk: ChatChunk) -> LIChatResponse:
        """The response with ``chunk`` merged in (``delta`` is the chunk's new text)."""
        merged = merge_chunks([self._merged, chunk] if self._merged else [chunk])
        self._merged = ChatChunk(
            content=merged.content,
            reasoning_content=merged.reasoning_content or "",
            tool_call_chunks=tuple(
                ToolCallChunk(c.index, c.id or None, c.name or None, c.arguments)
                for c in merged.tool_calls
            ),
            finish_reason=merged.finish_reason,
            usage=merged.usage,
            request_id=merged.request_id,
            model=merged.model or None,
        )
        return to_li_response(merged, delta=chunk.content, thinking_delta=chunk.reasoning_content)


def _finished(response: LIChatResponse) -> bool:
    raw = response.raw
    return not isinstance(raw, Mapping) or raw.get("finish_reason") is not None


def tool_selections(
    response: LIChatResponse, *, error_on_no_tool_call: bool
) -> list[ToolSelection]:
    """The tool calls of a response as ``ToolSelection`` objects.

    On a streamed response that is not finished yet the arguments are a JSON prefix, parsed
    leniently (what an agent shows while the call is still arriving). On a finished response
    they must be complete JSON: malformed arguments raise instead of calling a tool with
    half of them.
    """
    finished = _finished(response)
    selections: list[ToolSelection] = []
    for block in response.message.blocks:
        if not isinstance(block, ToolCallBlock):
            continue
        kwargs: Any = block.tool_kwargs
        if isinstance(kwargs, str):
            kwargs = _parse_arguments(block.tool_name, kwargs, finished)
        selections.append(
            ToolSelection(
                tool_id=block.tool_call_id or "",
                tool_name=block.tool_name,
                tool_kwargs=kwargs,
            )
        )
    if not selections and error_on_no_tool_call:
        raise InvalidInputError(
            "Expected the model to call a tool but it answered in text; pass "
            "tool_required=True or error_on_no_tool_call=False."
        )
    return selections


def _parse_arguments(tool: str, text: str, finished: bool) -> dict[str, Any]:
    if not text.strip():
        return {}
    if not finished:
        try:
            return parse_partial_json(text)
        except (ValueError, TypeError):
            return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(
            f"Qwen returned arguments for tool {tool!r} that are not valid JSON ({exc}): "
            f"{text[:200]!r}. Retry, or lower the temperature."
        ) from None
    if not isinstance(value, dict):
        raise InvalidInputError(
            f"Qwen returned arguments for tool {tool!r} that are not a JSON object: {text[:200]!r}."
        )
    return value
