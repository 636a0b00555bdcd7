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


def dialect_of(path: str) -> str:
    """``dashscope`` (compatible mode), ``vllm`` or ``ollama``, from the route."""
    for name in ("vllm", "ollama"):
        if path.startswith(f"/{name}/"):
            return name
    return "dashscope"


def _self_hosted_thinking(dialect: str, body: dict[str, Any]) -> bool:
    """vLLM: ``chat_template_kwargs.enable_thinking``; Ollama: ``reasoning_effort``. Both think
    in whole answers too (no stream needed); a root ``enable_thinking`` means nothing to them."""
    if dialect == "vllm":
        kwargs = body.get("chat_template_kwargs")
        return isinstance(kwargs, dict) and kwargs.get("enable_thinking") is True
    effort = body.get("reasoning_effort")
    if effort is not None and effort not in ("none", "low", "medium", "high"):
        raise invalid(f"invalid reasoning_effort {effort!r}", algo=False)
    return effort in ("low", "medium", "high")


def _chat_request(
    body: dict[str, Any], stream: bool, dialect: str = "dashscope", tool_calling: bool = True
) -> ChatRequest:
    if dialect != "dashscope" and body.get("tools") and not tool_calling:
        # vLLM started without --enable-auto-tool-choice / --tool-call-parser
        raise ApiError(
            400,
            "BadRequestError",
            '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to '
            "be set",
        )
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
    if dialect == "dashscope":
        thinking = thinking_enabled(model, {**params, "incremental_output": True}, stream)
    else:
        thinking = _self_hosted_thinking(dialect, params)
    return ChatRequest(
        model=model,
        messages=flat,
        tools=tools,
        tool_choice=choice,
        parallel_tool_calls=params.get("parallel_tool_calls") is True,
        response_format=fmt if isinstance(fmt, dict) else None,
        thinking=thinking,
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
    cached = plan.usage.get("prompt_tokens_details")  # context-cache hits (protocol doc 6)
    if cached:
        usage["prompt_tokens_details"] = dict(cached)
    return usage


def _reasoning_key(dialect: str) -> str:
    # vLLM >= 0.11 and Ollama name it "reasoning"; DashScope "reasoning_content"
    return "reasoning_content" if dialect == "dashscope" else "reasoning"


def _completion(plan: Plan, req: ChatRequest, rid: str, dialect: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": plan.content}
    if plan.reasoning:
        message[_reasoning_key(dialect)] = plan.reasoning
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


def _chunks(
    plan: Plan, req: ChatRequest, rid: str, size: int, usage: bool, dialect: str
) -> list[Any]:
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
            out.append(chunk({"content": None, _reasoning_key(dialect): piece.text}))
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
    dialect = dialect_of(rec.path)
    req = _chat_request(body, rec.stream, dialect, getattr(emu, "vllm_tool_calling", True))
    plan: Plan = emu._plan(req)
    if not rec.stream:
        handler.send_json(200, _completion(plan, req, rec.request_id, dialect))
        return
    options = body.get("stream_options") or {}
    include = isinstance(options, dict) and options.get("include_usage") is True
    size = plan.chunk_size or emu.chunk_size
    events = _chunks(plan, req, rec.request_id, size, include, dialect)
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


SELF_HOSTED_DIMENSION = 1024  # Qwen3-Embedding-0.6B's size


def _self_hosted_embedding_args(dialect: str, body: dict[str, Any]) -> tuple[list[str], int]:
    """Any model name; vLLM honours ``dimensions`` (Matryoshka), Ollama ignores it."""
    raw = body.get("input")
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise invalid("input must be a string or a list of strings", algo=False)
    dims = body.get("dimensions")
    if dialect == "vllm" and dims is not None:
        if isinstance(dims, bool) or not isinstance(dims, int) or not 1 <= dims <= 1024:
            raise invalid(f"dimensions must be in 1..{SELF_HOSTED_DIMENSION}", algo=False)
        return texts, dims
    return texts, SELF_HOSTED_DIMENSION


def _answer_embeddings(handler: Responder, body: dict[str, Any]) -> None:
    dialect = dialect_of(handler.record.path)
    if dialect != "dashscope":
        texts, dimension = _self_hosted_embedding_args(dialect, body)
        name = str(body.get("model") or "")
    else:
        spec = resolve_spec(body.get("model"))
        texts = check_texts(spec, body.get("input"))
        dimension = resolve_dimension(spec, body.get("dimensions"), "dimensions")
        name = spec.name
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
            "model": name,
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
