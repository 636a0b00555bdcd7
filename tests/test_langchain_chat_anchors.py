"""ChatQwen against the emulator: the anchors' known defects are absent (issue 8).

One ``test_*_defect_absent`` per defect named in the issue (ChatTongyi, langchain-qwq, and all
three Qwen wrappers), each shown on the wire through the emulator's request log.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langchain_core.tools import tool
from pydantic import BaseModel, Field

from qwen_pg_integrations.dashscope import CHAT_MODELS, DEFAULT_CHAT_MODEL
from qwen_pg_integrations.errors import APITimeoutError, RateLimitError
from qwen_pg_integrations.langchain import ChatQwen
from qwen_pg_integrations.testing import DashScopeEmulator, Fault, ScriptedReply


@tool
def get_weather(city: str) -> str:
    """The current weather in a city."""
    return f"Sunny in {city}"


@tool
def get_time(city: str) -> str:
    """The local time in a city."""
    return f"Noon in {city}"


def _merge(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    full = chunks[0]
    for chunk in chunks[1:]:
        full = full + chunk
    return full


def _generation_requests(emu: DashScopeEmulator) -> list[Any]:
    return [r for r in emu.requests if r.endpoint == "generation"]


# --- streaming without a flag (ChatTongyi) -----------------------------------------------


def test_chattongyi_no_stream_without_streaming_flag_defect_absent(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    """ChatTongyi streams on langchain-core 1.x only if built with streaming=True."""
    llm = ChatQwen()
    assert "streaming" not in llm.model_fields_set
    chunks = list(llm.stream("Tell me about pgvector and PostgreSQL indexes."))
    text_chunks = [c for c in chunks if c.content]
    assert len(text_chunks) > 3
    (req,) = _generation_requests(dashscope_emulator)
    assert req.stream is True
    assert req.parameters["incremental_output"] is True


async def test_chattongyi_no_astream_events_tokens_defect_absent(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    llm = ChatQwen()
    tokens = [
        event["data"]["chunk"].content
        async for event in llm.astream_events("Tell me about pgvector.", version="v2")
        if event["event"] == "on_chat_model_stream"
    ]
    assert len([t for t in tokens if t]) > 3
    assert "".join(tokens).startswith("Emulated reply to")
    assert all(r.stream for r in _generation_requests(dashscope_emulator))


async def test_astream_streams_without_flag(dashscope_emulator: DashScopeEmulator) -> None:
    chunks = [c async for c in ChatQwen().astream("Tell me about pgvector and PostgreSQL.")]
    assert len([c for c in chunks if c.content]) > 3
    assert _generation_requests(dashscope_emulator)[0].stream is True


# --- parameters reach the API (ChatTongyi drops most of them) ----------------------------


def test_chattongyi_drops_constructor_params_defect_absent(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    llm = ChatQwen(
        temperature=0.3,
        max_tokens=64,
        top_p=0.9,
        top_k=20,
        seed=7,
        stop=["END"],
        repetition_penalty=1.1,
        presence_penalty=0.5,
        enable_search=True,
        thinking_budget=128,
        response_format={"type": "text"},
    )
    llm.invoke("hello")
    params = _generation_requests(dashscope_emulator)[-1].parameters
    expected = {
        "temperature": 0.3,
        "max_tokens": 64,
        "top_p": 0.9,
        "top_k": 20,
        "seed": 7,
        "stop": ["END"],
        "repetition_penalty": 1.1,
        "presence_penalty": 0.5,
        "enable_search": True,
        "thinking_budget": 128,
        "response_format": {"type": "text"},
    }
    assert {k: params.get(k) for k in expected} == expected


def test_enable_thinking_reaches_the_api_and_reasoning_is_kept(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    dashscope_emulator.script(ScriptedReply(text="42", reasoning="6 times 7 is 42."))
    msg = ChatQwen(enable_thinking=True, thinking_budget=50).invoke("What is 6 x 7?")
    req = _generation_requests(dashscope_emulator)[-1]
    assert req.parameters["enable_thinking"] is True
    assert req.parameters["thinking_budget"] == 50
    assert msg.content == "42"
    assert msg.additional_kwargs["reasoning_content"] == "6 times 7 is 42."


def test_unset_parameters_are_not_sent(dashscope_emulator: DashScopeEmulator) -> None:
    ChatQwen().invoke("hello")
    params = _generation_requests(dashscope_emulator)[-1].parameters
    assert set(params) <= {"result_format", "incremental_output"}


def test_per_call_overrides_including_model(dashscope_emulator: DashScopeEmulator) -> None:
    llm = ChatQwen(temperature=0.3, max_tokens=64)
    msg = llm.invoke("hello", model="qwen-max", temperature=0.9, stop=["x"])
    req = _generation_requests(dashscope_emulator)[-1]
    assert req.model == "qwen-max"
    assert req.parameters["temperature"] == 0.9
    assert req.parameters["max_tokens"] == 64
    assert req.parameters["stop"] == ["x"]
    assert msg.response_metadata["model_name"] == "qwen-max"
    # the instance is unchanged by the override
    llm.invoke("again")
    req = _generation_requests(dashscope_emulator)[-1]
    assert (req.model, req.parameters["temperature"]) == ("qwen-plus", 0.3)


def test_timeout_reaches_the_call(dashscope_emulator: DashScopeEmulator) -> None:
    dashscope_emulator.inject(Fault(timeout=True, hang_seconds=10), times=1)
    llm = ChatQwen(timeout=0.5, max_retries=0)
    start = time.perf_counter()
    with pytest.raises(APITimeoutError):
        llm.invoke("hello")
    assert time.perf_counter() - start < 5


def test_default_model_is_current(dashscope_emulator: DashScopeEmulator) -> None:
    msg = ChatQwen().invoke("hello")
    assert DEFAULT_CHAT_MODEL in CHAT_MODELS
    assert _generation_requests(dashscope_emulator)[-1].model == DEFAULT_CHAT_MODEL
    assert msg.response_metadata["model_name"] == DEFAULT_CHAT_MODEL


# --- 429: retried, then a typed error (ChatTongyi: KeyError 'request') -------------------


def test_chattongyi_keyerror_request_on_429_defect_absent(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    dashscope_emulator.inject(
        Fault(status=429, code="Throttling.RateQuota"), times=10, endpoint="generation"
    )
    with pytest.raises(RateLimitError) as info:
        ChatQwen(max_retries=2).invoke("hello")
    assert info.value.code == "Throttling.RateQuota"
    assert info.value.request_id
    assert len(_generation_requests(dashscope_emulator)) == 3


def test_429_then_success_is_retried_transparently(dashscope_emulator: DashScopeEmulator) -> None:
    dashscope_emulator.inject(Fault(status=429, code="Throttling.RateQuota"), times=1)
    dashscope_emulator.script(ScriptedReply(text="after the retry"))
    chunks = list(ChatQwen(max_retries=2).stream("hello"))
    assert "".join(str(c.content) for c in chunks) == "after the retry"
    assert len(_generation_requests(dashscope_emulator)) == 2


# --- tool_choice mapped honestly (langchain-qwq turns required into auto) ----------------


@pytest.mark.parametrize("choice", ["required", "any", True])
def test_qwq_required_becomes_auto_defect_absent_one_tool(
    dashscope_emulator: DashScopeEmulator, choice: Any
) -> None:
    """With one tool, "required" is sent as that tool's name, never as "auto"."""
    msg = ChatQwen().bind_tools([get_weather], tool_choice=choice).invoke("Hi there")
    req = _generation_requests(dashscope_emulator)[-1]
    assert req.parameters["tool_choice"] == {
        "type": "function",
        "function": {"name": "get_weather"},
    }
    assert [c["name"] for c in msg.tool_calls] == ["get_weather"]


def test_qwq_required_becomes_auto_defect_absent_several_tools(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    """With several tools DashScope has no "required": the core's documented emulation asks
    again with an instruction when the model answers in text, and raises if it still does."""
    from qwen_pg_integrations.errors import ToolCallRequiredError

    bound = ChatQwen().bind_tools([get_weather, get_time], tool_choice="required")
    dashscope_emulator.script(
        ScriptedReply(text="Hello!"),
        ScriptedReply(tool_calls=[{"name": "get_time", "arguments": {"city": "Paris"}}]),
    )
    msg = bound.invoke("Hi there")
    assert [c["name"] for c in msg.tool_calls] == ["get_time"]
    reqs = _generation_requests(dashscope_emulator)
    assert len(reqs) == 2
    assert "get_weather, get_time" in json.dumps(reqs[1].body["input"]["messages"])
    dashscope_emulator.script(ScriptedReply(text="no"), ScriptedReply(text="still no"))
    with pytest.raises(ToolCallRequiredError):
        bound.invoke("Hi there")


@pytest.mark.parametrize(
    ("choice", "wire"),
    [
        ("auto", "auto"),
        ("none", "none"),
        ("get_time", {"type": "function", "function": {"name": "get_time"}}),
        (
            {"type": "function", "function": {"name": "get_time"}},
            {"type": "function", "function": {"name": "get_time"}},
        ),
    ],
)
def test_tool_choice_auto_none_named_reach_the_api(
    dashscope_emulator: DashScopeEmulator, choice: Any, wire: Any
) -> None:
    ChatQwen().bind_tools([get_weather, get_time], tool_choice=choice).invoke("Hi")
    assert _generation_requests(dashscope_emulator)[-1].parameters["tool_choice"] == wire


# --- streamed tool calls merge to the exact arguments (all three wrappers) ---------------


@pytest.mark.parametrize(
    "args",
    [
        {"city": "New York"},
        {"city": "北京市朝阳区", "note": "明天会下雨吗？"},
        {"city": "San Francisco, CA", "note": "a \"quoted\" word, {braces} and 'apostrophes'"},
    ],
    ids=["new-york", "cjk", "punctuation"],
)
@pytest.mark.parametrize("chunk_size", [1, 3])
def test_streamed_tool_call_arguments_exact_defect_absent(
    dashscope_emulator: DashScopeEmulator, args: dict[str, str], chunk_size: int
) -> None:
    dashscope_emulator.script(
        ScriptedReply(
            tool_calls=[{"name": "get_weather", "arguments": args}], chunk_size=chunk_size
        )
    )
    chunks = list(ChatQwen().bind_tools([get_weather]).stream("weather?"))
    fragments = [tc for c in chunks for tc in c.tool_call_chunks]
    assert len(fragments) > 2  # it really streamed in pieces
    assert all(f["index"] == 0 for f in fragments)
    full = _merge(chunks)
    assert len(full.tool_calls) == 1
    assert full.tool_calls[0]["name"] == "get_weather"
    assert full.tool_calls[0]["args"] == args


async def test_parallel_streamed_tool_calls_stay_apart_defect_absent(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    """ChatTongyi merges parallel streamed calls into 'get_weatherget_weather'."""
    dashscope_emulator.script(
        ScriptedReply(
            tool_calls=[
                {"name": "get_weather", "arguments": {"city": "New York"}},
                {"name": "get_weather", "arguments": {"city": "上海"}},
                {"name": "get_time", "arguments": {"city": "Paris"}},
            ],
            chunk_size=2,
        )
    )
    bound = ChatQwen().bind_tools([get_weather, get_time], parallel_tool_calls=True)
    chunks = [c async for c in bound.astream("weather in New York and 上海, time in Paris")]
    full = _merge(chunks)
    assert [(c["name"], c["args"]) for c in full.tool_calls] == [
        ("get_weather", {"city": "New York"}),
        ("get_weather", {"city": "上海"}),
        ("get_time", {"city": "Paris"}),
    ]
    assert len({c["id"] for c in full.tool_calls}) == 3
    assert _generation_requests(dashscope_emulator)[-1].parameters["parallel_tool_calls"] is True


# --- structured output does not mutate the instance (langchain-qwq) ----------------------


class Joke(BaseModel):
    """A joke."""

    setup: str = Field(description="question to set up a joke")
    punchline: str = Field(description="answer to resolve the joke")


@pytest.mark.parametrize("method", ["json_schema", "function_calling", "json_mode"])
def test_qwq_structured_output_switches_thinking_off_for_good_defect_absent(
    dashscope_emulator: DashScopeEmulator, method: str
) -> None:
    llm = ChatQwen(model="qwen-plus", enable_thinking=True)
    if method == "json_mode":
        dashscope_emulator.script(ScriptedReply(text='{"setup": "Why?", "punchline": "Because."}'))
    structured = llm.with_structured_output(Joke, method=method)  # type: ignore[arg-type]
    assert isinstance(structured.invoke("Tell me a joke as json"), Joke)
    assert _generation_requests(dashscope_emulator)[-1].parameters["enable_thinking"] is False
    # the shared instance still thinks
    assert llm.enable_thinking is True
    reply = llm.invoke("And now think.")
    assert _generation_requests(dashscope_emulator)[-1].parameters["enable_thinking"] is True
    assert reply.additional_kwargs.get("reasoning_content")


# --- usage_metadata (ChatTongyi never fills it) -------------------------------------------


def test_chattongyi_no_usage_metadata_defect_absent(dashscope_emulator: DashScopeEmulator) -> None:
    usage = {
        "input_tokens": 30,
        "output_tokens": 12,
        "total_tokens": 42,
        "output_tokens_details": {"reasoning_tokens": 5},
        "prompt_tokens_details": {"cached_tokens": 8},
    }
    dashscope_emulator.script(ScriptedReply(text="an answer", usage=usage))
    msg = ChatQwen().invoke("hello")
    expected = {
        "input_tokens": 30,
        "output_tokens": 12,
        "total_tokens": 42,
        "input_token_details": {"cache_read": 8},
        "output_token_details": {"reasoning": 5},
    }
    assert msg.usage_metadata == expected

    dashscope_emulator.script(ScriptedReply(text="an answer in pieces", usage=usage))
    chunks = list(ChatQwen().stream("hello"))
    with_usage = [c for c in chunks if c.usage_metadata]
    assert len(with_usage) == 1  # LangChain sums chunk usage: exactly one chunk carries it
    assert _merge(chunks).usage_metadata == expected


def test_response_metadata_on_invoke_and_stream(dashscope_emulator: DashScopeEmulator) -> None:
    msg = ChatQwen(max_tokens=2).invoke("Tell me a long story about databases")
    req_id = _generation_requests(dashscope_emulator)[-1].request_id
    assert msg.response_metadata["model_name"] == "qwen-plus"
    assert msg.response_metadata["finish_reason"] == "length"
    assert msg.response_metadata["request_id"] == req_id
    full = _merge(list(ChatQwen().stream("hello")))
    req_id = _generation_requests(dashscope_emulator)[-1].request_id
    assert full.response_metadata["model_name"] == "qwen-plus"
    assert full.response_metadata["finish_reason"] == "stop"
    assert full.response_metadata["request_id"] == req_id


# --- reasoning content kept, streamed, and handed back ------------------------------------


def test_reasoning_streams_and_the_next_turn_accepts_it(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    dashscope_emulator.script(ScriptedReply(text="Paris.", reasoning="France's capital is Paris."))
    llm = ChatQwen(enable_thinking=True)
    chunks = list(llm.stream("Capital of France?"))
    reasoning_chunks = [c for c in chunks if c.additional_kwargs.get("reasoning_content")]
    assert len(reasoning_chunks) > 1
    first = _merge(chunks)
    assert first.content == "Paris."
    assert first.additional_kwargs["reasoning_content"] == "France's capital is Paris."
    history = [HumanMessage("Capital of France?"), first, HumanMessage("And Italy?")]
    answer = llm.invoke(history)
    assert isinstance(answer, AIMessage)
    sent = _generation_requests(dashscope_emulator)[-1].body["input"]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[1]["content"] == "Paris."  # the answer, not the reasoning, is the content
