"""DashScopeEmulator conformance: native SSE streaming via the real SDK (protocol doc §2.3-2.6)."""

from __future__ import annotations

import itertools
import json
from typing import Any

import dashscope

from qwen_pg_integrations.testing import DashScopeEmulator, ScriptedReply

TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def stream(emu: DashScopeEmulator, **kwargs: Any) -> list[Any]:
    kwargs.setdefault("model", "qwen-plus")
    kwargs.setdefault("messages", [{"role": "user", "content": "hello"}])
    chunks = dashscope.Generation.call(
        api_key=emu.api_key, base_address=emu.base_url, stream=True, **kwargs
    )
    return list(chunks)


def messages_of(chunks: list[Any]) -> list[Any]:
    return [c.output.choices[0].message for c in chunks]


def test_incremental_stream_sends_deltas(dashscope_emulator: DashScopeEmulator) -> None:
    dashscope_emulator.script(ScriptedReply(text="The quick brown fox"))
    chunks = stream(dashscope_emulator, result_format="message", incremental_output=True)
    assert all(c.status_code == 200 for c in chunks)
    pieces = [m.content for m in messages_of(chunks)]
    assert "".join(pieces) == "The quick brown fox"
    assert len(chunks) > 3
    reasons = [c.output.choices[0].finish_reason for c in chunks]
    assert reasons[:-1] == ["null"] * (len(chunks) - 1)
    assert reasons[-1] == "stop"
    assert pieces[-1] == ""
    assert dashscope_emulator.last_request.stream
    assert dashscope_emulator.last_request.headers["x-dashscope-sse"] == "enable"


def test_usage_is_on_every_event_and_grows(dashscope_emulator: DashScopeEmulator) -> None:
    dashscope_emulator.script(ScriptedReply(text="one two three four five six seven"))
    chunks = stream(dashscope_emulator, result_format="message", incremental_output=True)
    outputs = [c.usage["output_tokens"] for c in chunks]
    assert all(c.usage["input_tokens"] > 0 for c in chunks)
    assert outputs == sorted(outputs)
    assert outputs[-1] == 7
    ids = {c.request_id for c in chunks}
    assert ids == {dashscope_emulator.last_request.request_id}


def test_cumulative_stream_when_incremental_output_is_unset(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    dashscope_emulator.script(ScriptedReply(text="abcdefghij"))
    chunks = stream(dashscope_emulator, result_format="message")
    assert "incremental_output" not in dashscope_emulator.last_request.parameters
    contents = [m.content for m in messages_of(chunks)]
    assert contents == ["abcd", "abcdefgh", "abcdefghij", "abcdefghij"]


def test_sdk2_rewrites_explicit_false_to_incremental_and_merges(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    dashscope_emulator.script(ScriptedReply(text="abcdefghij"))
    chunks = stream(dashscope_emulator, result_format="message", incremental_output=False)
    assert dashscope_emulator.last_request.parameters["incremental_output"] is True
    assert messages_of(chunks)[-1].content == "abcdefghij"


def test_text_format_stream(dashscope_emulator: DashScopeEmulator) -> None:
    dashscope_emulator.script(ScriptedReply(text="plain text stream"))
    chunks = stream(dashscope_emulator, prompt="x", messages=None, incremental_output=True)
    assert "".join(c.output.text for c in chunks) == "plain text stream"
    assert chunks[-1].output.finish_reason == "stop"
    assert chunks[0].output.finish_reason == "null"


def test_chunk_size_is_configurable(dashscope_emulator: DashScopeEmulator) -> None:
    dashscope_emulator.script(ScriptedReply(text="abcdef", chunk_size=1))
    chunks = stream(dashscope_emulator, result_format="message", incremental_output=True)
    assert [m.content for m in messages_of(chunks)] == ["a", "b", "c", "d", "e", "f", ""]


def test_incremental_tool_call_fragments_keep_their_index(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    dashscope_emulator.script(
        ScriptedReply(
            tool_calls=[
                {"name": "get_weather", "arguments": {"city": "New York"}},
                {"name": "get_weather", "arguments": {"city": "北京市海淀区"}},
            ]
        )
    )
    chunks = stream(
        dashscope_emulator, tools=[TOOL], result_format="message", incremental_output=True
    )
    fragments: dict[int, list[dict[str, Any]]] = {0: [], 1: []}
    for message in messages_of(chunks[:-1]):
        assert message.content == ""
        for tool_call in message.tool_calls:
            fragments[tool_call["index"]].append(tool_call)
    assert chunks[-1].output.choices[0].finish_reason == "tool_calls"
    for index, city in ((0, "New York"), (1, "北京市海淀区")):
        parts = fragments[index]
        assert len(parts) >= 3
        assert parts[0]["id"].startswith("call_")
        assert parts[0]["function"]["name"] == "get_weather"
        args = [p["function"]["arguments"] for p in parts]
        assert json.loads("".join(args)) == {"city": city}
        assert city not in args[0] and not any(city in a for a in args)  # split inside it


def test_cumulative_tool_call_stream_repeats_the_call(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    dashscope_emulator.script(
        ScriptedReply(tool_calls=[{"name": "get_weather", "arguments": '{"city": "Paris"}'}])
    )
    chunks = stream(dashscope_emulator, tools=[TOOL], result_format="message")
    arguments = [m.tool_calls[0]["function"]["arguments"] for m in messages_of(chunks)]
    names = {m.tool_calls[0]["function"]["name"] for m in messages_of(chunks)}
    assert names == {"get_weather"}
    assert all(b.startswith(a) for a, b in itertools.pairwise(arguments))
    assert arguments[-1] == '{"city": "Paris"}'


def test_default_policy_calls_an_asked_for_tool_in_a_stream(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    chunks = stream(
        dashscope_emulator,
        messages=[{"role": "user", "content": "What's the weather in New York?"}],
        tools=[TOOL],
        result_format="message",
        incremental_output=True,
    )
    args = "".join(
        tc["function"]["arguments"] for m in messages_of(chunks) for tc in m.get("tool_calls") or []
    )
    assert json.loads(args) == {"city": "New York"}


def test_thinking_streams_reasoning_first(dashscope_emulator: DashScopeEmulator) -> None:
    dashscope_emulator.script(ScriptedReply(text="42", reasoning="Let me think hard"))
    chunks = stream(
        dashscope_emulator, enable_thinking=True, result_format="message", incremental_output=True
    )
    kinds = []
    for message in messages_of(chunks[:-1]):
        kinds.append("r" if message.reasoning_content else "c")
        if message.reasoning_content:
            assert message.content == ""
    assert kinds == sorted(kinds, reverse=True)  # all reasoning pieces before content pieces
    reasoning = "".join(m.reasoning_content or "" for m in messages_of(chunks))
    assert reasoning == "Let me think hard"
    assert "".join(m.content for m in messages_of(chunks)) == "42"
    assert chunks[-1].usage["output_tokens_details"]["reasoning_tokens"] == 4


def test_default_thinking_reasoning_for_a_thinking_only_model(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    chunks = stream(dashscope_emulator, model="qwq-plus", incremental_output=True)
    reasoning = "".join(m.reasoning_content or "" for m in messages_of(chunks))
    assert reasoning.startswith("Thinking about:")


def test_max_tokens_in_a_stream_ends_with_length(dashscope_emulator: DashScopeEmulator) -> None:
    dashscope_emulator.script(ScriptedReply(text="one two three four five"))
    chunks = stream(
        dashscope_emulator, max_tokens=2, result_format="message", incremental_output=True
    )
    assert "".join(m.content for m in messages_of(chunks)) == "one two"
    assert chunks[-1].output.choices[0].finish_reason == "length"


def test_stream_401_is_one_chunk_with_the_real_status(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    chunks = list(
        dashscope.Generation.call(
            model="qwen-plus",
            prompt="hi",
            stream=True,
            api_key="bad",
            base_address=dashscope_emulator.base_url,
        )
    )
    assert [(c.status_code, c.code) for c in chunks] == [(401, "InvalidApiKey")]


async def test_aio_stream_incremental(dashscope_emulator: DashScopeEmulator) -> None:
    dashscope_emulator.script(ScriptedReply(text="async stream text"))
    try:
        gen = await dashscope.AioGeneration.call(
            model="qwen-plus",
            messages=[{"role": "user", "content": "hi"}],
            result_format="message",
            incremental_output=True,
            stream=True,
            api_key=dashscope_emulator.api_key,
            base_address=dashscope_emulator.base_url,
        )
        pieces = [c.output.choices[0].message.content async for c in gen]
    finally:
        await dashscope.close_shared_aio_session()
    assert "".join(pieces) == "async stream text"
