"""Core chat types -> DashScope native request fields (messages, tools, tool_choice)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidInputError
from ..types import ChatMessage, ToolSpec

__all__ = ["ToolChoicePlan", "messages_to_dashscope", "plan_tool_choice", "tools_to_dashscope"]

_ROLES = ("system", "user", "assistant", "tool")


def message_to_dashscope(message: ChatMessage) -> dict[str, Any]:
    """One message as the native API takes it.

    ``content`` is always a string: dashscope 1.22.2 cannot build a message without it, and
    the service expects ``""`` next to ``tool_calls``.
    """
    if message.role not in _ROLES:
        raise InvalidInputError(f"Unknown message role {message.role!r}; use one of {_ROLES}.")
    out: dict[str, Any] = {"role": message.role, "content": message.content or ""}
    if message.tool_calls:
        out["tool_calls"] = [
            {
                "index": call.index,
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments or "{}"},
            }
            for call in message.tool_calls
        ]
    if message.role == "tool":
        if not message.tool_call_id:
            raise InvalidInputError(
                "A tool message needs tool_call_id: the id of the assistant tool call it answers."
            )
        out["tool_call_id"] = message.tool_call_id
    if message.name and message.role in ("tool", "user", "assistant"):
        out["name"] = message.name
    return out


def messages_to_dashscope(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """All messages; raises :class:`InvalidInputError` for an empty conversation."""
    if not messages:
        raise InvalidInputError("messages is empty: give at least one user message.")
    return [message_to_dashscope(m) for m in messages]


def tools_to_dashscope(tools: Sequence[ToolSpec | Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Tool specs (core :class:`ToolSpec` or OpenAI-style dicts) as DashScope takes them."""
    out: list[dict[str, Any]] = []
    for tool in tools:
        if isinstance(tool, ToolSpec):
            out.append(tool.to_dashscope())
        elif isinstance(tool, Mapping) and "function" in tool:
            out.append({"type": "function", **dict(tool)})
        elif isinstance(tool, Mapping) and "name" in tool:
            out.append(
                {
                    "type": "function",
                    "function": {
                        "name": tool["name"],
                        "description": tool.get("description", ""),
                        "parameters": tool.get("parameters")
                        or {"type": "object", "properties": {}},
                    },
                }
            )
        else:
            raise InvalidInputError(f"Cannot use {tool!r} as a tool: give a ToolSpec or a dict.")
    return out


def _tool_name(tool: Mapping[str, Any]) -> str:
    return str(tool["function"]["name"])


@dataclass(frozen=True)
class ToolChoicePlan:
    """What to send for the caller's ``tool_choice``.

    Attributes:
        wire: the ``tool_choice`` parameter to send (``None``: send none).
        require_call: the caller demanded a tool call among several tools, which the native API
            cannot express; the chat client emulates it (see :mod:`.chat`).
    """

    wire: str | dict[str, Any] | None
    require_call: bool = False


def _named(name: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name}}


def plan_tool_choice(tool_choice: Any, tools: Sequence[Mapping[str, Any]]) -> ToolChoicePlan:
    """Map ``tool_choice`` to DashScope's ``"auto" | "none" | {"type":"function",...}``.

    ``"required"`` / ``"any"`` / ``True``: with one tool, the tool is named; with several,
    ``"auto"`` is sent and :attr:`ToolChoicePlan.require_call` tells the caller to enforce it.
    """
    if tool_choice is None:
        return ToolChoicePlan(None)
    names = [_tool_name(t) for t in tools]
    if not names:
        if tool_choice in ("auto", "none") or tool_choice is False:
            return ToolChoicePlan(None)  # nothing to choose from: sending it could only fail
        raise InvalidInputError(f"tool_choice={tool_choice!r} needs at least one tool.")
    if tool_choice in ("auto", "none"):
        return ToolChoicePlan(str(tool_choice))
    if tool_choice is False:
        return ToolChoicePlan("none")
    if tool_choice in ("required", "any") or tool_choice is True:
        if len(names) == 1:
            return ToolChoicePlan(_named(names[0]))
        return ToolChoicePlan("auto", require_call=True)
    if isinstance(tool_choice, str):
        name = tool_choice
    elif isinstance(tool_choice, Mapping):
        function = tool_choice.get("function")
        named = function.get("name") if isinstance(function, Mapping) else tool_choice.get("name")
        if not isinstance(named, str):
            raise InvalidInputError(f"tool_choice {tool_choice!r} names no function.")
        name = named
    else:
        raise InvalidInputError(
            f"tool_choice must be 'auto', 'none', 'required', 'any', a tool name or "
            f"{{'type': 'function', 'function': {{'name': ...}}}}, not {tool_choice!r}."
        )
    if name not in names:
        raise InvalidInputError(
            f"tool_choice names {name!r}, which is not among the tools {names}."
        )
    return ToolChoicePlan(_named(name))
