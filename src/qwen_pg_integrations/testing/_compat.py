"""OpenAI-compatible mode: ``/compatible-mode/v1/chat/completions`` and ``/embeddings`` (§6).

Shapes follow the protocol doc: ``chat.completion`` / ``chat.completion.chunk`` objects, deltas
with JSON ``null`` finish reasons, usage in a last ``choices: []`` chunk only when
``stream_options.include_usage`` is true, then ``data: [DONE]``; embeddings as ``{"data": [...],
"object": "list"}`` with ``float`` or ``base64`` (little-endian float32) encoding; OpenAI-shaped
errors. The same validation, scripts, faults and default policy as the native API apply
(``tool_choice: "required"`` is treated like a named choice of the first asked-for tool, else the
first tool). A mid-stream fault sends ``data: {"error": {...}}`` and ends the stream.
"""

from __future__ import annotations

import base64
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from ._embed import embed_texts
from ._native_chat import (
    check_input_length,
    check_messages,
    check_ranges,
    thinking_enabled,
    tool_specs,
)
from ._native_embed import check_texts, resolve_dimension, resolve_spec
from ._policy import ChatRequest, Plan, text_of
from ._stream import pieces
from ._text import count_tokens
from ._wire import ApiError, Dropped, dumps, invalid, openai_error

if TYPE_CHECKING:
    from ._roles import Backend, Responder
    from .faults import Fault

__all__ = ["answer_compat"]


def _chat_request(body: dict[str, Any], stream: bool) -> ChatRequest:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("you must provide a model parameter", algo=False)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid('Either "prompt" or "messages" must exist and cannot both be none', False)
    flat = [dict(m, content=text_of(m)) if isinstance(m, dict) else {} for m in messages]
    check_messages(flat)
    check_input_length(model, flat)
    params = dict(body)
    if params.get("max_tokens") is None and params.get("max_completion_tokens") is not None:
        params["max_tokens"] = params["max_completion_tokens"]
    from ..dashscope.models import chat_model_spec

    check_ranges(params, chat_model_spec(model).max_output_tokens)
    tools = tool_specs(params)
    choice = params.get("tool_choice")
    if choice == "required" and tools:
        choice = {"type": "function", "function": {"name": tools[0]["name"]}}
    stop = params.get("stop")
    fmt = params.get("response_format")
    is_json = isinstance(fmt, dict) and fmt.get("type") == "json_object"
    if is_json and not any("json" in m["content"].lower() for m in flat if m):
        raise invalid(
            "'messages' must contain the word 'json' in some form, to use 'response_format' "
            "of type 'json_object'."
        )
    budget = params.get("thinking_budget")
    return ChatRequest(
        model=model,
        messages=flat,
        tools=tools,
        tool_choice=choice,
        parallel_tool_calls=params.get("parallel_tool_calls") is True,
        response_format=fmt if isinstance(fmt, dict) else None,
        thinking=thinking_enabled(model, {**params, "incremental_output": True}, stream),
        max_tokens=int(params["max_tokens"]) if params.get("max_tokens") is not None else None,
        thinking_budget=budget if isinstance(budget, int) else None,
        stop=[stop] if isinstance(stop, str) else [s for s in stop or [] if isinstance(s, str)],
    )


def _usage(plan: Plan) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": plan.usage["input_tokens"],
        "completion_tokens": plan.usage["output_tokens"],
        "total_tokens": plan.usage["total_tokens"],
    }
    details = plan.usage.get("output_tokens_details")
    if details:
        usage["completion_tokens_details"] = dict(details)
    return usage


def _completion(plan: Plan, req: ChatRequest, rid: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": plan.content}
    if plan.reasoning:
        message["reasoning_content"] = plan.reasoning
    if plan.tool_calls:
        message["tool_calls"] = [
            {
                "index": i,
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments},
            }
            for i, c in enumerate(plan.tool_calls)
        ]
    return {
        "id": f"chatcmpl-{rid}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": req.model,
        "choices": [
            {"index": 0, "message": message, "finish_reason": plan.finish_reason, "logprobs": None}
        ],
        "usage": _usage(plan),
        "system_fingerprint": None,
    }


def _chunks(plan: Plan, req: ChatRequest, rid: str, size: int, usage: bool) -> list[Any]:
    base = {
        "id": f"chatcmpl-{rid}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": req.model,
        "system_fingerprint": None,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return {**base, "choices": [choice]}

    out: list[Any] = [chunk({"role": "assistant", "content": ""})]
    for piece in pieces(plan, size):
        if piece.kind == "reasoning":
            out.append(chunk({"content": None, "reasoning_content": piece.text}))
        elif piece.kind == "content":
            out.append(chunk({"content": piece.text}))
        else:
            call: dict[str, Any] = {"index": piece.index, "function": {"arguments": piece.text}}
            if piece.first:
                planned = plan.tool_calls[piece.index]
                call.update(id=planned.id, type="function")
                call["function"]["name"] = planned.name
            out.append(chunk({"content": None, "tool_calls": [call]}))
    out.append(chunk({}, plan.finish_reason))
    if usage:
        out.append({**base, "choices": [], "usage": _usage(plan)})
    return out


def _answer_chat(
    emu: Backend, handler: Responder, body: dict[str, Any], fault: Fault | None
) -> None:
    rec = handler.record
    req = _chat_request(body, rec.stream)
    plan: Plan = emu._plan(req)
    if not rec.stream:
        handler.send_json(200, _completion(plan, req, rec.request_id))
        return
    options = body.get("stream_options") or {}
    include = isinstance(options, dict) and options.get("include_usage") is True
    events = _chunks(plan, req, rec.request_id, plan.chunk_size or emu.chunk_size, include)
    midstream = fault.midstream_error() if fault is not None else None
    limit = len(events)
    if fault is not None and (midstream is not None or fault.drop):
        limit = fault.after_chunks if fault.after_chunks is not None else 1
    handler.start_sse(200)
    for n, event in enumerate(events[:limit]):
        if emu.stream_delay and n:
            time.sleep(emu.stream_delay)
        handler.write_chunk(b"data: " + dumps(event) + b"\n\n")
    if midstream is not None:
        err = openai_error(ApiError(*midstream), rec.request_id)
        handler.write_chunk(b"data: " + dumps(err) + b"\n\n")
    elif fault is not None and fault.drop:
        raise Dropped
    else:
        handler.write_chunk(b"data: [DONE]\n\n")
    handler.end_chunks()


def _answer_embeddings(handler: Responder, body: dict[str, Any]) -> None:
    spec = resolve_spec(body.get("model"))
    texts = check_texts(spec, body.get("input"))
    dimension = resolve_dimension(spec, body.get("dimensions"), "dimensions")
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise invalid(f"encoding_format should be float or base64, got {encoding!r}.")
    data = []
    for i, vec in enumerate(embed_texts(texts, dimension)):
        value: Any = vec
        if encoding == "base64":
            value = base64.b64encode(np.asarray(vec, dtype="<f4").tobytes()).decode("ascii")
        data.append({"embedding": value, "index": i, "object": "embedding"})
    tokens = sum(count_tokens(t) for t in texts)
    handler.send_json(
        200,
        {
            "data": data,
            "model": spec.name,
            "object": "list",
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            "id": handler.record.request_id,
        },
    )


def answer_compat(emu: Backend, handler: Responder, body: Any, fault: Fault | None) -> None:
    """Answer a compatible-mode call (raises :class:`ApiError` for error answers)."""
    if not isinstance(body, dict):
        raise invalid("Required body invalid, please check the request body format.", algo=False)
    if handler.record.endpoint == "embedding":
        _answer_embeddings(handler, body)
    else:
        _answer_chat(emu, handler, body, fault)
