"""ChatClient against the emulator: wire parameters, tools, tool_choice, thinking, streams."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from qwen_pg_integrations.dashscope import ChatClient, DashScopeClient, merge_chunks
from qwen_pg_integrations.errors import (
    APIConnectionError,
    APITimeoutError,
    InvalidInputError,
    ServerError,
    ToolCallRequiredError,
)
from qwen_pg_integrations.testing import DashScopeEmulator, Fault, ScriptedReply
from qwen_pg_integrations.types import ChatChunk, ChatMessage, ChatResponse, ToolCall, ToolSpec

HI = [ChatMessage("user", "hi")]
WEATHER = ToolSpec(
    "get_weather",
    "Weather of a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
TIME = ToolSpec(
    "get_time", "Local time", {"type": "object", "properties": {"tz": {"type": "string"}}}
)
CALLS = [
    {"name": "get_weather", "arguments": {"city": "New York  纽约 市"}},
    {"name": "get_time", "arguments": {"tz": "Asia/Shanghai"}},
]


def chat_client(emu: DashScopeEmulator, **kw: Any) -> ChatClient:
    client = DashScopeClient(
        api_key=emu.api_key, base_url=emu.base_url, backoff_base=0.001, backoff_max=0.01, **kw
    )
    return ChatClient("qwen-plus", client=client)


def collect(chat: ChatClient, mode: str, messages: list[ChatMessage], **kw: Any) -> ChatResponse:
    """One answer through one of the four entry points (streams merged with merge_chunks)."""
    if mode == "chat":
        return chat.chat(messages, **kw)
    if mode == "achat":
        return asyncio.run(chat.achat(messages, **kw))
    if mode == "stream":
        return merge_chunks(list(chat.stream(messages, **kw)))

    async def run() -> list[ChatChunk]:
        return [c async for c in chat.astream(messages, **kw)]

    return merge_chunks(asyncio.run(run()))


MODES = ["chat", "achat", "stream", "astream"]


@pytest.mark.parametrize("mode", MODES)
def test_text_answer_usage_finish_reason_and_request_id(
    dashscope_emulator: DashScopeEmulator, mode: str
) -> None:
    dashscope_emulator.script(
        ScriptedReply(text="  Hello,\n world! 你好 ", chunk_size=3, usage={"input_tokens": 7})
    )
    response = collect(chat_client(dashscope_emulator), mode, HI)
    assert response.content == "  Hello,\n world! 你好 "
    assert response.finish_reason == "stop"
    assert response.usage is not None and response.usage.input_tokens == 7
    assert response.usage.total_tokens == 7 + response.usage.output_tokens
    assert response.request_id == dashscope_emulator.requests[-1].request_id
    assert response.model == "qwen-plus"


@pytest.mark.parametrize("mode", MODES)
def test_only_parameters_the_caller_set_are_sent(
    dashscope_emulator: DashScopeEmulator, mode: str
) -> None:
    chat = chat_client(dashscope_emulator)
    collect(chat, mode, HI)
    stream = mode in ("stream", "astream")
    base = {"result_format": "message", **({"incremental_output": True} if stream else {})}
    assert dashscope_emulator.requests[-1].parameters == base
    collect(
        chat, mode, HI, temperature=0.2, top_p=0.9, top_k=20, seed=7, max_tokens=64,
        stop=["END"], repetition_penalty=1.1, presence_penalty=0.5, enable_search=True,
        response_format="text", parallel_tool_calls=None, custom_flag="x",
    )  # fmt: skip
    assert dashscope_emulator.requests[-1].parameters == {
        **base, "temperature": 0.2, "top_p": 0.9, "top_k": 20, "seed": 7, "max_tokens": 64,
        "stop": ["END"], "repetition_penalty": 1.1, "presence_penalty": 0.5,
        "enable_search": True, "response_format": {"type": "text"}, "custom_flag": "x",
    }  # fmt: skip


def test_streams_always_ask_for_incremental_output(dashscope_emulator: DashScopeEmulator) -> None:
    chat = chat_client(dashscope_emulator)
    dashscope_emulator.script(ScriptedReply(text="abcdefgh", chunk_size=2))
    chunks = list(chat.stream(HI, incremental_output=False, result_format="text"))
    assert [c.content for c in chunks if c.content] == ["ab", "cd", "ef", "gh"]
    sent = dashscope_emulator.requests[-1]
    assert sent.stream and sent.parameters["incremental_output"] is True
    assert sent.parameters["result_format"] == "message"
    assert "incremental_to_full/1" not in sent.headers["user-agent"]


def test_usage_is_on_the_final_chunk_only(dashscope_emulator: DashScopeEmulator) -> None:
    dashscope_emulator.script(ScriptedReply(text="abcdefgh", chunk_size=2))
    chunks = list(chat_client(dashscope_emulator).stream(HI))
    assert [c.usage is not None for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert chunks[-1].finish_reason == "stop"


def test_conversation_with_tool_calls_is_sent_as_the_native_api_expects(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    messages = [
        ChatMessage("system", "You are terse."),
        ChatMessage("user", "Weather in Paris?"),
        ChatMessage(
            "assistant",
            "",
            tool_calls=(ToolCall("call_1", "get_weather", '{"city": "Paris"}', 0),),
        ),
        ChatMessage("tool", '{"temp": 21}', tool_call_id="call_1", name="get_weather"),
    ]
    chat_client(dashscope_emulator).chat(messages, tools=[WEATHER])
    sent = dashscope_emulator.requests[-1].body["input"]["messages"]
    assert sent[2] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "index": 0,
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    }
    assert sent[3] == {
        "role": "tool",
        "content": '{"temp": 21}',
        "tool_call_id": "call_1",
        "name": "get_weather",
    }
    assert dashscope_emulator.requests[-1].parameters["tools"] == [WEATHER.to_dashscope()]


def test_tool_message_without_call_id_is_refused(dashscope_emulator: DashScopeEmulator) -> None:
    with pytest.raises(InvalidInputError, match="tool_call_id"):
        chat_client(dashscope_emulator).chat([ChatMessage("tool", "x")])
    with pytest.raises(InvalidInputError, match="empty"):
        chat_client(dashscope_emulator).chat([])
    assert dashscope_emulator.requests == []


@pytest.mark.parametrize("mode", MODES)
def test_parallel_tool_calls_arrive_exact(dashscope_emulator: DashScopeEmulator, mode: str) -> None:
    dashscope_emulator.script(ScriptedReply(tool_calls=CALLS, chunk_size=3))
    response = collect(
        chat_client(dashscope_emulator), mode, HI, tools=[WEATHER, TIME], parallel_tool_calls=True
    )
    assert response.finish_reason == "tool_calls"
    assert [(c.index, c.name) for c in response.tool_calls] == [(0, "get_weather"), (1, "get_time")]
    assert response.tool_calls[0].arguments == '{"city": "New York  纽约 市"}'
    assert json.loads(response.tool_calls[1].arguments) == {"tz": "Asia/Shanghai"}
    assert all(c.id.startswith("call_") for c in response.tool_calls)
    assert len({c.id for c in response.tool_calls}) == 2
    assert dashscope_emulator.requests[-1].parameters["parallel_tool_calls"] is True


def test_streamed_tool_call_chunks_name_each_call_once(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    dashscope_emulator.script(ScriptedReply(tool_calls=CALLS, chunk_size=2))
    chunks = list(chat_client(dashscope_emulator).stream(HI, tools=[WEATHER, TIME]))
    parts = [p for c in chunks for p in c.tool_call_chunks]
    assert [p.name for p in parts if p.name] == ["get_weather", "get_time"]
    assert len([p.id for p in parts if p.id]) == 2
    assert "".join(p.arguments for p in parts if p.index == 0) == '{"city": "New York  纽约 市"}'


@pytest.mark.parametrize(
    ("tool_choice", "tools", "wire"),
    [
        ("auto", [WEATHER, TIME], "auto"),
        ("none", [WEATHER, TIME], "none"),
        ("get_time", [WEATHER, TIME], {"type": "function", "function": {"name": "get_time"}}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            [WEATHER, TIME],
            {"type": "function", "function": {"name": "get_weather"}},
        ),
        ("required", [WEATHER], {"type": "function", "function": {"name": "get_weather"}}),
        ("any", [TIME], {"type": "function", "function": {"name": "get_time"}}),
    ],
)
def test_tool_choice_is_mapped_to_the_native_values(
    dashscope_emulator: DashScopeEmulator, tool_choice: Any, tools: list[ToolSpec], wire: Any
) -> None:
    chat_client(dashscope_emulator).chat(HI, tools=tools, tool_choice=tool_choice)
    assert dashscope_emulator.requests[-1].parameters["tool_choice"] == wire


def test_tool_choice_naming_an_unknown_tool_is_refused(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    chat = chat_client(dashscope_emulator)
    with pytest.raises(InvalidInputError, match="not among the tools"):
        chat.chat(HI, tools=[WEATHER], tool_choice="get_time")
    with pytest.raises(InvalidInputError, match="needs at least one tool"):
        chat.chat(HI, tool_choice="required")
    assert dashscope_emulator.requests == []


@pytest.mark.parametrize("mode", MODES)
def test_required_with_several_tools_reasks_once_when_the_model_answers_in_text(
    dashscope_emulator: DashScopeEmulator, mode: str
) -> None:
    dashscope_emulator.script(
        ScriptedReply(text="I think it is sunny.", usage={"input_tokens": 10, "output_tokens": 5}),
        ScriptedReply(tool_calls=CALLS[:1], usage={"input_tokens": 20, "output_tokens": 3}),
    )
    response = collect(
        chat_client(dashscope_emulator), mode, HI, tools=[WEATHER, TIME], tool_choice="required"
    )
    assert [c.name for c in response.tool_calls] == ["get_weather"]
    first, second = dashscope_emulator.requests
    assert first.parameters["tool_choice"] == second.parameters["tool_choice"] == "auto"
    assert first.body["input"]["messages"] == [{"role": "user", "content": "hi"}]
    system = second.body["input"]["messages"][0]
    assert system["role"] == "system" and "get_weather, get_time" in system["content"]
    assert response.usage is not None and response.usage.input_tokens == 30


def test_required_with_several_tools_needs_no_reask_when_a_tool_is_called(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    dashscope_emulator.script(ScriptedReply(tool_calls=CALLS[1:]))
    response = chat_client(dashscope_emulator).chat(
        [ChatMessage("system", "Be brief."), *HI], tools=[WEATHER, TIME], tool_choice="any"
    )
    assert [c.name for c in response.tool_calls] == ["get_time"]
    assert len(dashscope_emulator.requests) == 1


@pytest.mark.parametrize("mode", MODES)
def test_required_tool_call_that_never_comes_raises(
    dashscope_emulator: DashScopeEmulator, mode: str
) -> None:
    dashscope_emulator.script(ScriptedReply(text="no"), ScriptedReply(text="still no"))
    with pytest.raises(ToolCallRequiredError) as info:
        collect(
            chat_client(dashscope_emulator), mode, [ChatMessage("system", "Be brief."), *HI],
            tools=[WEATHER, TIME], tool_choice="required",
        )  # fmt: skip
    assert info.value.request_id == dashscope_emulator.requests[-1].request_id
    system = dashscope_emulator.requests[-1].body["input"]["messages"][0]["content"]
    assert system.startswith("Be brief.\n\n") and "calling one of the available tools" in system


@pytest.mark.parametrize("mode", ["chat", "achat"])
def test_thinking_in_a_non_streaming_call_streams_internally(
    dashscope_emulator: DashScopeEmulator, mode: str
) -> None:
    dashscope_emulator.script(
        ScriptedReply(
            text="42",
            reasoning="Let me think: 6 × 7 = 42.",
            chunk_size=4,
            usage={"output_tokens_details": {"reasoning_tokens": 9}},  # type: ignore[dict-item]
        )
    )
    response = collect(
        chat_client(dashscope_emulator), mode, HI, enable_thinking=True, thinking_budget=100
    )
    assert response.content == "42"
    assert response.reasoning_content == "Let me think: 6 × 7 = 42."
    sent = dashscope_emulator.requests[-1]
    assert sent.stream and sent.parameters["incremental_output"] is True
    assert sent.parameters["enable_thinking"] is True and sent.parameters["thinking_budget"] == 100
    assert response.usage is not None and response.usage.reasoning_tokens == 9


def test_thinking_only_model_streams_internally(dashscope_emulator: DashScopeEmulator) -> None:
    response = chat_client(dashscope_emulator).chat(HI, model="qwq-plus")
    assert response.reasoning_content and response.model == "qwq-plus"
    assert dashscope_emulator.requests[-1].stream


def test_max_tokens_gives_length_finish_reason(dashscope_emulator: DashScopeEmulator) -> None:
    dashscope_emulator.script(ScriptedReply(text="a long answer that will be cut " * 20))
    response = chat_client(dashscope_emulator).chat(HI, max_tokens=3)
    assert response.finish_reason == "length"


# --- stream retries ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["stream", "astream"])
def test_stream_is_retried_before_its_first_chunk(
    dashscope_emulator: DashScopeEmulator, mode: str
) -> None:
    dashscope_emulator.inject(Fault(status=429, code="Throttling.RateQuota"), times=1)
    dashscope_emulator.inject(Fault(status=503, code="ModelUnavailable", sse_error="200"))
    dashscope_emulator.script(ScriptedReply(text="finally", chunk_size=2))
    response = collect(chat_client(dashscope_emulator), mode, HI)
    assert response.content == "finally"
    assert [r.status for r in dashscope_emulator.requests] == [429, 200, 200]


@pytest.mark.parametrize("mode", ["stream", "astream"])
def test_stream_error_after_a_chunk_is_raised_not_retried(
    dashscope_emulator: DashScopeEmulator, mode: str
) -> None:
    dashscope_emulator.script(ScriptedReply(text="abcdefghij", chunk_size=2))
    dashscope_emulator.inject(Fault(midstream=(500, "InternalError"), after_chunks=2))
    chat = chat_client(dashscope_emulator)
    seen: list[str] = []

    async def consume_async() -> None:
        async for chunk in chat.astream(HI):
            seen.append(chunk.content)

    with pytest.raises(ServerError):
        if mode == "stream":
            for chunk in chat.stream(HI):
                seen.append(chunk.content)
        else:
            asyncio.run(consume_async())
    assert "".join(seen) == "abcd"
    assert len(dashscope_emulator.requests) == 1


def test_internal_stream_is_retried_as_a_whole(dashscope_emulator: DashScopeEmulator) -> None:
    dashscope_emulator.script(ScriptedReply(text="abcdefghij", reasoning="hmm", chunk_size=2))
    dashscope_emulator.inject(Fault(midstream=(500, "InternalError"), after_chunks=2))
    response = chat_client(dashscope_emulator).chat(HI, enable_thinking=True)
    assert response.content  # default policy answered the resend
    assert len(dashscope_emulator.requests) == 2


def test_abandoned_stream_can_be_closed(dashscope_emulator: DashScopeEmulator) -> None:
    dashscope_emulator.script(ScriptedReply(text="x" * 50, chunk_size=1))
    stream = chat_client(dashscope_emulator).stream(HI)
    assert next(iter(stream)).content == "x"
    stream.close()  # type: ignore[attr-defined]
    assert chat_client(dashscope_emulator).chat(HI).content


def test_async_calls_leave_no_unclosed_sessions(dashscope_emulator: DashScopeEmulator) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, contextlib, gc, warnings
        warnings.simplefilter("error")
        from qwen_pg_integrations.dashscope import ChatClient, EmbeddingClient
        from qwen_pg_integrations.types import ChatMessage
        kw = dict(api_key={dashscope_emulator.api_key!r}, base_url={dashscope_emulator.base_url!r})

        async def main():
            chat = ChatClient(**kw)
            await chat.achat([ChatMessage("user", "hi")])
            async for _ in chat.astream([ChatMessage("user", "hi")]):
                pass
            stream = chat.astream([ChatMessage("user", "hi")])
            async with contextlib.aclosing(stream):  # an abandoned stream, closed
                async for _ in stream:
                    break
            async for _ in chat.astream([ChatMessage("user", "hi")]):
                break  # abandoned and left to the garbage collector
            await asyncio.sleep(0.1)
            await EmbeddingClient("text-embedding-v3", **kw).aembed(["a"] * 25)

        asyncio.run(main())
        gc.collect()
        print("done")
        """
    )
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "PYTHONASYNCIODEBUG": "0"}
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "done"
    assert proc.stderr == "", proc.stderr  # no "Unclosed client session", no task errors


@pytest.mark.parametrize("mode", ["stream", "astream"])
def test_connection_dropped_mid_stream_is_a_typed_error_not_retried(
    dashscope_emulator: DashScopeEmulator, mode: str
) -> None:
    dashscope_emulator.script(ScriptedReply(text="abcdefghij", chunk_size=2))
    dashscope_emulator.inject(Fault(drop=True, after_chunks=2))
    with pytest.raises(APIConnectionError):
        collect(chat_client(dashscope_emulator), mode, HI)
    assert len(dashscope_emulator.requests) == 1


@pytest.mark.parametrize("mode", MODES)
def test_per_call_timeout_overrides_the_client_timeout(
    dashscope_emulator: DashScopeEmulator, mode: str
) -> None:
    # times=2: dashscope 2.x async resends once on ClientConnectionError, which includes the
    # sock_read timeout of a stream
    dashscope_emulator.inject(Fault(timeout=True, hang_seconds=3), times=2)
    chat = chat_client(dashscope_emulator, max_retries=0, timeout=60)
    with pytest.raises(APITimeoutError):
        collect(chat, mode, HI, timeout=0.3)
