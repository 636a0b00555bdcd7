"""Stream normalisation and merge_chunks on SDK-shaped events (shapes of protocol notes §2.3).

These cover wire shapes the emulator does not produce on purpose: ids/names repeated on every
fragment, parallel calls sent under one index, events without usage, text-format output.
"""

from __future__ import annotations

from typing import Any

from qwen_pg_integrations.dashscope import merge_chunks
from qwen_pg_integrations.dashscope._stream import ChunkNormalizer, parse_usage, response_to_chat
from qwen_pg_integrations.types import ChatChunk, ToolCallChunk, Usage


def event(
    content: str = "",
    *,
    calls: list[dict[str, Any]] | None = None,
    reasoning: str | None = None,
    finish: str = "null",
    usage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls is not None:
        message["tool_calls"] = calls
    if reasoning is not None:
        message["reasoning_content"] = reasoning
    return {
        "status_code": 200,
        "request_id": "req-1",
        "code": "",
        "message": "",
        "output": {"choices": [{"finish_reason": finish, "message": message}]},
        "usage": usage or {"input_tokens": 5, "output_tokens": 1, "total_tokens": 6},
    }


def call(
    index: int, args: str, *, id: str | None = None, name: str | None = None
) -> dict[str, Any]:
    fn: dict[str, Any] = {"arguments": args}
    if name is not None:
        fn["name"] = name
    out: dict[str, Any] = {"index": index, "type": "function", "function": fn}
    if id is not None:
        out["id"] = id
    return out


def run(events: list[dict[str, Any]]) -> list[ChatChunk]:
    normalizer = ChunkNormalizer("qwen-plus")
    chunks = [c for c in (normalizer.feed(e) for e in events) if c is not None]
    tail = normalizer.close()
    return chunks + ([tail] if tail else [])


def test_text_deltas_are_passed_verbatim() -> None:
    pieces = ["  Hello", ", ", "世界", "\n", " end "]
    chunks = run([event(p) for p in pieces] + [event("", finish="stop")])
    assert [c.content for c in chunks[:-1]] == pieces
    assert merge_chunks(chunks).content == "".join(pieces)


def test_names_and_ids_repeated_on_every_fragment_are_emitted_once() -> None:
    events = [
        event(calls=[call(0, '{"city": ', id="call_a", name="get_weather")]),
        event(calls=[call(0, '"New York ', id="call_a", name="get_weather")]),
        event(calls=[call(0, '纽约"}', id="call_a", name="get_weather")]),
        event(finish="tool_calls"),
    ]
    chunks = run(events)
    parts = [p for c in chunks for p in c.tool_call_chunks]
    assert [p.name for p in parts] == ["get_weather", None, None]
    assert [p.id for p in parts] == ["call_a", None, None]
    merged = merge_chunks(chunks)
    assert merged.tool_calls[0].name == "get_weather"
    assert merged.tool_calls[0].id == "call_a"
    assert merged.tool_calls[0].arguments == '{"city": "New York 纽约"}'
    assert merged.finish_reason == "tool_calls"


def test_name_and_id_sent_once_with_empty_later_fragments() -> None:
    events = [
        event(calls=[call(0, "", id="call_x", name="lookup")]),
        event(calls=[call(0, '{"q": "a b', id="", name="")]),
        event(calls=[call(0, ' c"}', id="")]),
        event(finish="tool_calls"),
    ]
    merged = merge_chunks(run(events))
    assert [(c.id, c.name, c.arguments) for c in merged.tool_calls] == [
        ("call_x", "lookup", '{"q": "a b c"}')
    ]


def test_parallel_calls_under_one_index_with_distinct_ids_stay_separate() -> None:
    events = [
        event(calls=[call(0, '{"city": "Paris"}', id="call_1", name="get_weather")]),
        event(calls=[call(0, '{"city": "Rome"}', id="call_2", name="get_weather")]),
        event(finish="tool_calls"),
    ]
    merged = merge_chunks(run(events))
    assert [(c.index, c.id, c.arguments) for c in merged.tool_calls] == [
        (0, "call_1", '{"city": "Paris"}'),
        (1, "call_2", '{"city": "Rome"}'),
    ]
    assert [c.name for c in merged.tool_calls] == ["get_weather", "get_weather"]


def test_interleaved_parallel_calls_merge_by_index() -> None:
    events = [
        event(calls=[call(0, '{"a"', id="c0", name="f"), call(1, '{"b"', id="c1", name="g")]),
        event(calls=[call(1, ": 2}"), call(0, ": 1}")]),
        event(finish="tool_calls"),
    ]
    merged = merge_chunks(run(events))
    assert [(c.name, c.arguments) for c in merged.tool_calls] == [
        ("f", '{"a": 1}'),
        ("g", '{"b": 2}'),
    ]


def test_reasoning_then_content_and_usage_details() -> None:
    usage = {
        "input_tokens": 10,
        "output_tokens": 8,
        "total_tokens": 18,
        "output_tokens_details": {"reasoning_tokens": 5},
        "prompt_tokens_details": {"cached_tokens": 4},
    }
    events = [
        event(reasoning="Let me "),
        event(reasoning="think."),
        event("Answer"),
        event("", finish="stop", usage=usage),
    ]
    chunks = run(events)
    merged = merge_chunks(chunks)
    assert merged.reasoning_content == "Let me think."
    assert merged.content == "Answer"
    assert merged.usage == Usage(10, 8, 18, reasoning_tokens=5, cached_tokens=4)
    assert [c.usage is not None for c in chunks] == [False, False, False, True]


def test_stream_ending_without_finish_reason_still_reports_usage() -> None:
    chunks = run([event("a"), event("b")])
    assert chunks[-1].usage is not None and chunks[-1].content == ""
    assert merge_chunks(chunks).usage == Usage(5, 1, 6)


def test_events_with_nothing_new_are_skipped() -> None:
    assert run([event(""), event("", calls=[])]) == [ChatChunk(
        usage=Usage(5, 1, 6), request_id="req-1", model="qwen-plus"
    )]  # fmt: skip


def test_merge_chunks_handles_hand_made_chunks_with_repeated_names() -> None:
    chunks = [
        ChatChunk(tool_call_chunks=(ToolCallChunk(0, "id1", "search", '{"q": '),)),
        ChatChunk(tool_call_chunks=(ToolCallChunk(0, "id1", "search", '"  x  "}'),)),
        ChatChunk(finish_reason="tool_calls", usage=Usage(1, 2, 3), request_id="r"),
    ]
    merged = merge_chunks(chunks, model="qwen-max")
    assert merged.tool_calls[0].name == "search" and merged.tool_calls[0].id == "id1"
    assert merged.tool_calls[0].arguments == '{"q": "  x  "}'
    assert merged.model == "qwen-max" and merged.request_id == "r"


def test_non_stream_response_with_dict_arguments_and_missing_fields() -> None:
    raw = {
        "status_code": 200,
        "request_id": "r2",
        "output": {
            "choices": [
                {
                    "finish_reason": "tool_calls",
                    "message": {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {"id": "c", "function": {"name": "f", "arguments": {"k": "中"}}}
                        ],
                    },
                }
            ]
        },
        "usage": {"input_tokens": 3, "output_tokens": 4},
    }
    response = response_to_chat(raw, "qwen-plus")
    assert response.content == ""
    assert response.tool_calls[0].arguments == '{"k": "中"}'
    assert response.tool_calls[0].index == 0
    assert response.usage == Usage(3, 4, 7)


def test_text_result_format_is_understood() -> None:
    raw = {"status_code": 200, "output": {"text": "plain", "finish_reason": "stop"}, "usage": {}}
    response = response_to_chat(raw, "qwen-turbo")
    assert (response.content, response.finish_reason, response.usage) == ("plain", "stop", None)
    assert parse_usage(None) is None
