"""SDK generation responses -> :class:`ChatResponse` / :class:`ChatChunk`, and chunk merging.

Responses are read with ``dict`` access only (dashscope 1.22.2 objects raise ``KeyError`` from
``getattr``). Streams are always requested with ``incremental_output=true``, so every event
carries only new text; this module turns events into clean deltas:

* ``content`` and ``reasoning_content`` pieces are passed on verbatim (no stripping: spaces,
  newlines and CJK text stay intact);
* tool calls are keyed by ``index``; a call's ``id`` and ``name`` are emitted once, on its first
  chunk, whether the service sends them once or repeats them on every fragment, so adapters that
  concatenate fragments (LangChain) never produce ``"get_weatherget_weather"``; a *different* id
  arriving under an already used index starts a new call (parallel calls sent under one index);
* usage is cumulative on every event; it is attached once, to the final chunk.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from ..types import ChatChunk, ChatResponse, ToolCall, ToolCallChunk, Usage

__all__ = ["ChunkNormalizer", "merge_chunks", "parse_usage", "response_to_chat"]


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def parse_usage(raw: Any) -> Usage | None:
    """``usage`` of a response (input/output/total + reasoning and cached tokens when given)."""
    if not isinstance(raw, Mapping) or not raw:
        return None
    inp = _int(raw.get("input_tokens")) or 0
    out = _int(raw.get("output_tokens")) or 0
    total = _int(raw.get("total_tokens"))
    out_details = raw.get("output_tokens_details")
    in_details = raw.get("prompt_tokens_details")
    reasoning = (
        _int(out_details.get("reasoning_tokens")) if isinstance(out_details, Mapping) else None
    )
    cached = _int(in_details.get("cached_tokens")) if isinstance(in_details, Mapping) else None
    return Usage(
        input_tokens=inp,
        output_tokens=out,
        total_tokens=total if total is not None else inp + out,
        reasoning_tokens=reasoning,
        cached_tokens=cached,
    )


def _finish(value: Any) -> str | None:
    if not value or value == "null":
        return None
    return str(value)


def _arguments(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _first_choice(response: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """(choice, message) of the first choice; empty mappings when absent."""
    output = response.get("output")
    if not isinstance(output, Mapping):
        return {}, {}
    choices = output.get("choices")
    if isinstance(choices, list) and choices:
        choice = choices[0] if isinstance(choices[0], Mapping) else {}
        message = choice.get("message")
        return choice, message if isinstance(message, Mapping) else {}
    # result_format="text" fallback (never requested by this package, accepted anyway)
    text = output.get("text")
    return {"finish_reason": output.get("finish_reason")}, {"content": text or ""}


def _index(raw: Mapping[str, Any], position: int) -> int:
    index = _int(raw.get("index"))
    return position if index is None else index


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def response_to_chat(response: Mapping[str, Any], model: str) -> ChatResponse:
    """A non-streamed generation response as a :class:`ChatResponse`."""
    choice, message = _first_choice(response)
    calls = []
    raw_calls = message.get("tool_calls")
    for position, raw in enumerate(raw_calls if isinstance(raw_calls, list) else []):
        function = raw.get("function") or {}
        calls.append(
            ToolCall(
                id=_text(raw.get("id")),
                name=_text(function.get("name")),
                arguments=_arguments(function.get("arguments")),
                index=_index(raw, position),
            )
        )
    reasoning = _text(message.get("reasoning_content"))
    return ChatResponse(
        content=_text(message.get("content")),
        model=model,
        finish_reason=_finish(choice.get("finish_reason")),
        tool_calls=tuple(calls),
        reasoning_content=reasoning or None,
        usage=parse_usage(response.get("usage")),
        request_id=_text(response.get("request_id")) or None,
    )


def _delta(new: str | None, emitted: str) -> str | None:
    """The part of ``new`` not yet emitted (handles once, repeated and cumulative values)."""
    if not new:
        return None
    if not emitted:
        return new
    if new == emitted:
        return None
    if new.startswith(emitted):
        return new[len(emitted) :]
    return new  # a genuine fragment


class ChunkNormalizer:
    """Turns the raw events of one stream into :class:`ChatChunk` deltas (one per event)."""

    def __init__(self, model: str) -> None:
        self.model = model
        self._wire_to_out: dict[int, int] = {}
        self._ids: dict[int, str] = {}
        self._names: dict[int, str] = {}
        self._next_index = 0
        self._usage: Usage | None = None
        self._request_id: str | None = None
        self._finished = False

    def _out_index(self, wire_index: int, call_id: str | None) -> int:
        out = self._wire_to_out.get(wire_index)
        if out is None or (call_id and self._ids.get(out) and self._ids[out] != call_id):
            out = self._next_index
            self._next_index += 1
            self._wire_to_out[wire_index] = out
        return out

    def _tool_chunks(self, raw_calls: Any) -> tuple[ToolCallChunk, ...]:
        chunks = []
        for position, raw in enumerate(raw_calls if isinstance(raw_calls, list) else []):
            if not isinstance(raw, Mapping):
                continue
            wire = _index(raw, position)
            call_id = _text(raw.get("id")) or None
            function = raw.get("function") or {}
            out = self._out_index(wire, call_id)
            id_delta = None
            if call_id and not self._ids.get(out):
                self._ids[out] = id_delta = call_id
            name_delta = _delta(_text(function.get("name")) or None, self._names.get(out, ""))
            if name_delta:
                self._names[out] = self._names.get(out, "") + name_delta
            args = _arguments(function.get("arguments"))
            if id_delta or name_delta or args:
                chunks.append(
                    ToolCallChunk(index=out, id=id_delta, name=name_delta, arguments=args)
                )
        return tuple(chunks)

    def feed(self, response: Mapping[str, Any]) -> ChatChunk | None:
        """The delta of one event, or ``None`` when it carries nothing new."""
        choice, message = _first_choice(response)
        request_id = _text(response.get("request_id")) or None
        self._request_id = self._request_id or request_id
        usage = parse_usage(response.get("usage"))
        if usage is not None:
            self._usage = usage
        finish = _finish(choice.get("finish_reason"))
        content = _text(message.get("content"))
        reasoning = _text(message.get("reasoning_content"))
        tools = self._tool_chunks(message.get("tool_calls"))
        if finish:
            self._finished = True
        if not (content or reasoning or tools or finish):
            return None
        return ChatChunk(
            content=content,
            reasoning_content=reasoning,
            tool_call_chunks=tools,
            finish_reason=finish,
            usage=self._usage if finish else None,
            request_id=request_id or self._request_id,
            model=self.model,
        )

    def close(self) -> ChatChunk | None:
        """A last chunk carrying usage if the stream ended without a finish reason."""
        if self._finished or self._usage is None:
            return None
        self._finished = True
        return ChatChunk(usage=self._usage, request_id=self._request_id, model=self.model)


def merge_chunks(chunks: Iterable[ChatChunk], model: str | None = None) -> ChatResponse:
    """Merge streamed deltas into one :class:`ChatResponse`.

    Text is concatenated exactly; tool-call fragments are merged by ``index`` (arguments
    concatenated byte for byte, ``id``/``name`` taken once even if repeated); the last finish
    reason and usage win.
    """
    content: list[str] = []
    reasoning: list[str] = []
    ids: dict[int, str] = {}
    names: dict[int, str] = {}
    args: dict[int, list[str]] = {}
    finish: str | None = None
    usage: Usage | None = None
    request_id: str | None = None
    seen_model = model
    for chunk in chunks:
        content.append(chunk.content)
        reasoning.append(chunk.reasoning_content)
        for part in chunk.tool_call_chunks:
            args.setdefault(part.index, [])
            if part.id and not ids.get(part.index):
                ids[part.index] = part.id
            name_delta = _delta(part.name, names.get(part.index, ""))
            if name_delta:
                names[part.index] = names.get(part.index, "") + name_delta
            args[part.index].append(part.arguments)
        finish = chunk.finish_reason or finish
        usage = chunk.usage or usage
        request_id = request_id or chunk.request_id
        seen_model = seen_model or chunk.model
    calls = tuple(
        ToolCall(id=ids.get(i, ""), name=names.get(i, ""), arguments="".join(args[i]), index=i)
        for i in sorted(args)
    )
    text_reasoning = "".join(reasoning)
    return ChatResponse(
        content="".join(content),
        model=seen_model or "",
        finish_reason=finish,
        tool_calls=calls,
        reasoning_content=text_reasoning or None,
        usage=usage,
        request_id=request_id,
    )
