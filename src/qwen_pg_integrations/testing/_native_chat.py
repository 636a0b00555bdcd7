"""Native text generation: request validation and response rendering (protocol doc §2, §8.2).

Choices the documentation leaves open (all documented in the emulator's module docstring):
``result_format`` defaults to ``"text"`` except for QwQ / Qwen3 open-source / qwen3-max /
qwen-long, and is forced to ``"message"`` when tools are offered or thinking is on;
``incremental_output`` defaults to false (true when thinking); any model name is accepted.
Thinking is on by default for thinking-only models (QwQ, ``*-thinking-*``) and open-source Qwen3
(``qwen3-32b``, ``qwen3-235b-a22b``...), so a non-streaming call to those without
``enable_thinking=False`` gets the documented 400 (thinking-only: "only support stream mode").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..dashscope.models import CHAT_MODELS, chat_model_spec
from ._policy import ChatRequest, Plan, text_of
from ._stream import pieces
from ._text import PrefixCounter, count_tokens
from ._wire import ApiError, invalid

__all__ = ["NativeChat", "parse_native_chat", "render_body", "render_events"]

_MESSAGE_DEFAULT = re.compile(r"^(qwq|qwen3-max|qwen-long|qwen3-\d|qwen3-coder|qwen-vl)")
_OPEN_QWEN3 = re.compile(r"^qwen3-\d+(?:\.\d+)?b(?:-a\d+b)?$")
_ROLES = {"system", "user", "assistant", "tool"}


@dataclass
class NativeChat:
    """A validated native generation request."""

    req: ChatRequest
    message_format: bool
    incremental: bool
    stream: bool


def _number(params: dict[str, Any], key: str) -> float | None:
    value = params.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid(f"{key} must be a number.")
    return float(value)


def check_ranges(params: dict[str, Any], max_output: int) -> None:
    temperature = _number(params, "temperature")
    if temperature is not None and not 0.0 <= temperature < 2.0:
        raise invalid("Temperature should be in [0.0, 2.0)")
    top_p = _number(params, "top_p")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise invalid("Range of top_p should be (0.0, 1.0]")
    n = _number(params, "n")
    if n is not None and not 1 <= n <= 4:
        raise invalid("Range of n should be [1, 4]")
    max_tokens = _number(params, "max_tokens")
    if max_tokens is not None and not 1 <= max_tokens <= max_output:
        raise invalid(f"Range of max_tokens should be [1, {max_output}]")
    presence = _number(params, "presence_penalty")
    if presence is not None and not -2.0 <= presence <= 2.0:
        raise invalid("Range of presence_penalty should be [-2.0, 2.0]")
    repetition = _number(params, "repetition_penalty")
    if repetition is not None and repetition <= 0:
        raise invalid("repetition_penalty should be greater than 0.0")


def _messages(inp: dict[str, Any]) -> list[dict[str, Any]]:
    messages = inp.get("messages")
    prompt = inp.get("prompt")
    if messages is not None and not isinstance(messages, list):
        raise invalid("Required body invalid, please check the request body format.", algo=False)
    result: list[dict[str, Any]] = []
    for turn in inp.get("history") or []:
        if isinstance(turn, dict):
            result.append({"role": "user", "content": str(turn.get("user", ""))})
            result.append({"role": "assistant", "content": str(turn.get("bot", ""))})
    result.extend(m for m in messages or [] if isinstance(m, dict))
    if isinstance(prompt, str) and prompt:
        result.append({"role": "user", "content": prompt})
    if not result:
        raise invalid('Either "prompt" or "messages" must exist and cannot both be none', False)
    check_messages(result)
    return result


def check_messages(messages: list[dict[str, Any]]) -> None:
    open_calls = False
    for message in messages:
        role = message.get("role")
        if role not in _ROLES:
            raise invalid(f"Role must be in [user, assistant, system, tool], got {role!r}.")
        content = message.get("content")
        if content is not None and not isinstance(content, str):
            raise invalid("input content must be a string.", algo=False)
        if role == "tool" and not open_calls:
            raise invalid(
                'messages with role "tool" must be a response to a preceeding message with '
                '"tool_calls"'
            )
        open_calls = (role == "assistant" and bool(message.get("tool_calls"))) or (
            role == "tool" and open_calls
        )


def check_input_length(model: str, messages: list[dict[str, Any]]) -> None:
    """400 ``Range of input length should be [1, N]`` above the model's context window."""
    limit = chat_model_spec(model).context_window
    if sum(count_tokens(text_of(m)) for m in messages) > limit:
        raise invalid(f"Range of input length should be [1, {limit}]")


def tool_specs(params: dict[str, Any]) -> list[dict[str, Any]]:
    tools = params.get("tools") or []
    if not isinstance(tools, list):
        raise invalid("tools must be a list.")
    specs = []
    for tool in tools:
        spec = tool.get("function", tool) if isinstance(tool, dict) else None
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise invalid("Each tool needs a function with a name.")
        specs.append(spec)
    return specs


def thinking_enabled(model: str, params: dict[str, Any], stream: bool) -> bool:
    spec = chat_model_spec(model)
    enable = params.get("enable_thinking")
    if enable is None and _OPEN_QWEN3.match(model) and not stream:
        enable = True  # open-source Qwen3 thinks by default: non-stream calls must turn it off
    if enable is True and not stream:
        raise invalid("parameter.enable_thinking must be set to false for non-streaming calls")
    if enable is True and model in CHAT_MODELS and not spec.thinking:
        raise ApiError(
            400,
            "InvalidParameter.NotSupportEnableThinking",
            f"The model {model} does not support enable_thinking.",
        )
    if spec.thinking_only and not stream:
        raise invalid(
            "This model only support stream mode, please enable the stream parameter to access "
            "the model.",
            algo=False,
        )
    default = spec.thinking_only or _OPEN_QWEN3.match(model) is not None
    thinking = enable is True or (default and enable is not False)
    if thinking and params.get("incremental_output") is False:
        raise invalid(
            'The incremental_output parameter must be "true" when enable_thinking is true'
        )
    return thinking


def parse_native_chat(body: Any, stream: bool) -> NativeChat:
    """Validate a native generation body; raises :class:`ApiError` like the service."""
    if not isinstance(body, dict):
        raise invalid("Required body invalid, please check the request body format.", algo=False)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "BadRequest.EmptyModel", 'Required parameter "model" missing.')
    inp = body.get("input")
    if not isinstance(inp, dict):
        raise ApiError(
            400, "BadRequest.EmptyInput", "Required input parameter missing from request."
        )
    params = body.get("parameters") or {}
    if not isinstance(params, dict):
        raise ApiError(400, "BadRequest.EmptyParameters", "parameters must be an object.")
    messages = _messages(inp)
    check_input_length(model, messages)
    check_ranges(params, chat_model_spec(model).max_output_tokens)
    tools = tool_specs(params)
    choice = params.get("tool_choice")
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        if name not in {t["name"] for t in tools}:
            raise invalid(f"tool_choice names function {name!r}, which is not in tools.")
    fmt = params.get("response_format")
    is_json = isinstance(fmt, dict) and fmt.get("type") == "json_object"
    if is_json and not any("json" in text_of(m).lower() for m in messages):
        raise invalid(
            "'messages' must contain the word 'json' in some form, to use 'response_format' "
            "of type 'json_object'."
        )
    thinking = thinking_enabled(model, params, stream)
    stop = params.get("stop")
    stops = [stop] if isinstance(stop, str) else [s for s in stop or [] if isinstance(s, str)]
    budget = params.get("thinking_budget")
    req = ChatRequest(
        model=model,
        messages=messages,
        tools=tools,
        tool_choice=choice,
        parallel_tool_calls=params.get("parallel_tool_calls") is True,
        response_format=fmt if isinstance(fmt, dict) else None,
        thinking=thinking,
        max_tokens=int(params["max_tokens"]) if params.get("max_tokens") is not None else None,
        thinking_budget=budget if isinstance(budget, int) else None,
        stop=stops,
    )
    result_format = params.get("result_format")
    if result_format is None:
        result_format = "message" if _MESSAGE_DEFAULT.match(model) else "text"
    message_format = result_format == "message" or bool(tools) or thinking
    incremental = params.get("incremental_output")
    return NativeChat(req, message_format, incremental is True or thinking, stream)


def _calls(plan: Plan) -> list[dict[str, Any]]:
    return [
        {
            "index": i,
            "id": c.id,
            "type": "function",
            "function": {"name": c.name, "arguments": c.arguments},
        }
        for i, c in enumerate(plan.tool_calls)
    ]


def _output(
    nc: NativeChat, content: str, reasoning: str, calls: list[dict[str, Any]], finish: str
) -> dict[str, Any]:
    if not nc.message_format:
        return {"text": content, "finish_reason": finish}
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if nc.req.thinking or reasoning:
        message["reasoning_content"] = reasoning
    if calls:
        message["tool_calls"] = calls
    return {"choices": [{"finish_reason": finish, "message": message}]}


def render_body(plan: Plan, nc: NativeChat, request_id: str) -> dict[str, Any]:
    """The non-streaming success body (§2.2)."""
    output = _output(nc, plan.content, plan.reasoning, _calls(plan), plan.finish_reason)
    return {"output": output, "usage": plan.usage, "request_id": request_id}


def _usage(plan: Plan, output_tokens: int, reasoning_tokens: int) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "input_tokens": plan.usage["input_tokens"],
        "output_tokens": output_tokens,
        "total_tokens": plan.usage["input_tokens"] + output_tokens,
    }
    if plan.reasoning:
        usage["output_tokens_details"] = {"reasoning_tokens": reasoning_tokens}
    return usage


def render_events(plan: Plan, nc: NativeChat, request_id: str, size: int) -> list[dict[str, Any]]:
    """The SSE payloads of a streamed reply (§2.3): deltas or cumulative, then the final event."""
    events: list[dict[str, Any]] = []
    content = reasoning = ""
    calls: list[dict[str, Any]] = []
    full = _calls(plan)
    texts = [plan.reasoning, plan.content, *(c.arguments for c in plan.tool_calls)]
    counters = [PrefixCounter(t) for t in texts]
    name_tokens = [count_tokens(c.name) for c in plan.tool_calls]
    for piece in pieces(plan, size):
        delta_calls: list[dict[str, Any]] = []
        if piece.kind == "reasoning":
            reasoning += piece.text
        elif piece.kind == "content":
            content += piece.text
        elif piece.first:
            call = full[piece.index]
            calls.append({**call, "function": {"name": call["function"]["name"], "arguments": ""}})
            delta_calls = [{**calls[-1], "function": dict(calls[-1]["function"])}]
        else:
            delta_calls = [{"index": piece.index, "id": "", "type": "function", "function": {}}]
        if piece.kind == "tool":
            calls[-1]["function"]["arguments"] += piece.text
            delta_calls[0]["function"]["arguments"] = piece.text
        if nc.incremental:
            out = _output(
                nc,
                piece.text if piece.kind == "content" else "",
                piece.text if piece.kind == "reasoning" else "",
                delta_calls,
                "null",
            )
        else:
            snapshot = [{**c, "function": dict(c["function"])} for c in calls]
            out = _output(nc, content, reasoning, snapshot, "null")
        reasoning_used = counters[0].count(len(reasoning))
        used = reasoning_used + counters[1].count(len(content))
        used += sum(
            name_tokens[i] + counters[2 + i].count(len(c["function"]["arguments"]))
            for i, c in enumerate(calls)
        )
        usage = _usage(plan, used, reasoning_used)
        events.append({"output": out, "usage": usage, "request_id": request_id})
    if nc.incremental:
        last = _output(nc, "", "", [], plan.finish_reason)
    else:
        last = _output(nc, plan.content, plan.reasoning, full, plan.finish_reason)
    events.append({"output": last, "usage": plan.usage, "request_id": request_id})
    return events
