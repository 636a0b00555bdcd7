"""ChatQwen behaviour beyond the standard suite: structured output on the wire, batches,
typed errors, message translation."""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain_core.messages import (
    AIMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from pydantic import BaseModel, Field

from qwen_pg_integrations.errors import (
    AuthenticationError,
    BadRequestError,
    DataInspectionFailed,
    InvalidInputError,
    ServerError,
)
from qwen_pg_integrations.langchain import ChatQwen
from qwen_pg_integrations.langchain._convert import message_to_core, response_to_message
from qwen_pg_integrations.testing import DashScopeEmulator, Fault, ScriptedReply
from qwen_pg_integrations.types import ChatResponse, ToolCall


class City(BaseModel):
    """A city and its country."""

    name: str = Field(description="city name")
    country: str = Field(description="country name")


def _last_params(emu: DashScopeEmulator) -> dict[str, object]:
    return [r for r in emu.requests if r.endpoint == "generation"][-1].parameters


def test_structured_default_is_json_schema_on_capable_models(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    result = ChatQwen(model="qwen-plus").with_structured_output(City).invoke("Hangzhou?")
    assert isinstance(result, City)
    fmt = _last_params(dashscope_emulator)["response_format"]
    assert isinstance(fmt, dict)
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["name"] == "City"
    assert set(fmt["json_schema"]["schema"]["properties"]) == {"name", "country"}
    assert "tools" not in _last_params(dashscope_emulator)


def test_structured_default_is_function_calling_elsewhere(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    result = ChatQwen(model="qwen-max").with_structured_output(City).invoke("Hangzhou?")
    assert isinstance(result, City)
    params = _last_params(dashscope_emulator)
    assert params["tool_choice"] == {"type": "function", "function": {"name": "City"}}
    assert "response_format" not in params
    assert "enable_thinking" not in params  # qwen-max has no thinking mode to switch off


def test_structured_json_mode_sends_json_object(dashscope_emulator: DashScopeEmulator) -> None:
    dashscope_emulator.script(ScriptedReply(text='{"name": "杭州", "country": "中国"}'))
    result = ChatQwen().with_structured_output(City, method="json_mode").invoke("json please")
    assert result == City(name="杭州", country="中国")
    assert _last_params(dashscope_emulator)["response_format"] == {"type": "json_object"}


def test_structured_include_raw_keeps_the_message_and_the_error(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    dashscope_emulator.script(ScriptedReply(text="not json at all"))
    out = (
        ChatQwen()
        .with_structured_output(City, method="json_mode", include_raw=True)
        .invoke("json please")
    )
    assert isinstance(out, dict)
    assert isinstance(out["raw"], AIMessage)
    assert out["parsed"] is None
    assert out["parsing_error"] is not None
    ok = ChatQwen().with_structured_output(City, include_raw=True).invoke("Hangzhou?")
    assert isinstance(ok, dict)
    assert isinstance(ok["parsed"], City)
    assert ok["parsing_error"] is None


def test_structured_dict_schema_gives_dicts(dashscope_emulator: DashScopeEmulator) -> None:
    schema = City.model_json_schema()
    out = ChatQwen(model="qwen-max").with_structured_output(schema).invoke("Hangzhou?")
    assert isinstance(out, dict)
    assert set(out) == {"name", "country"}


def test_batch_and_abatch_answer_each_input(dashscope_emulator: DashScopeEmulator) -> None:
    llm = ChatQwen()
    answers = llm.batch(["first question", "second question"])
    assert [a.content for a in answers] == [
        "Emulated reply to: first question",
        "Emulated reply to: second question",
    ]


async def test_abatch(dashscope_emulator: DashScopeEmulator) -> None:
    answers = await ChatQwen().abatch(["one", "two", "three"])
    assert sorted(str(a.content) for a in answers) == [
        "Emulated reply to: one",
        "Emulated reply to: three",
        "Emulated reply to: two",
    ]


def test_content_inspection_error_is_typed_and_not_retried(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    dashscope_emulator.script(
        ScriptedReply(error=(400, "DataInspectionFailed", "Input data may contain inappropriate."))
    )
    with pytest.raises(DataInspectionFailed) as info:
        ChatQwen(max_retries=3).invoke("something")
    assert info.value.request_id
    assert len(dashscope_emulator.requests) == 1


def test_wrong_key_is_authentication_error_without_the_key(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    with pytest.raises(AuthenticationError) as info:
        ChatQwen(api_key="sk-not-this-one-789").invoke("hello")
    assert "sk-not-this-one-789" not in str(info.value)


def test_midstream_error_raises_typed_after_the_first_tokens(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    dashscope_emulator.inject(Fault(midstream=(500, "InternalError"), after_chunks=2))
    seen = []
    with pytest.raises(ServerError) as info:
        for chunk in ChatQwen().stream("Tell me about pgvector and PostgreSQL."):
            seen.append(chunk.content)
    assert seen  # the caller saw the first tokens; a stream is not retried after them
    assert info.value.code == "InternalError"
    assert len(dashscope_emulator.requests) == 1


def test_bad_tool_choice_name_is_refused(dashscope_emulator: DashScopeEmulator) -> None:
    def lookup(city: str) -> str:
        """Look a city up."""
        return city

    with pytest.raises(InvalidInputError, match="not_a_tool"):
        ChatQwen().bind_tools([lookup], tool_choice="not_a_tool").invoke("hi")
    assert dashscope_emulator.requests == []


def test_tool_round_trip_sends_ids_and_results(dashscope_emulator: DashScopeEmulator) -> None:
    history = [
        SystemMessage("You are terse."),
        HumanMessage("Weather in 上海?"),
        AIMessage(
            "",
            tool_calls=[{"name": "get_weather", "args": {"city": "上海"}, "id": "call_1"}],
        ),
        ToolMessage("多云, 18°C", tool_call_id="call_1", name="get_weather"),
    ]

    def get_weather(city: str) -> str:
        """Weather of a city."""
        return city

    msg = ChatQwen().bind_tools([get_weather]).invoke(history)
    assert msg.content == "According to the tool result: 多云, 18°C"
    sent = [r for r in dashscope_emulator.requests][-1].body["input"]["messages"]
    assert sent[2]["tool_calls"][0]["id"] == "call_1"
    assert json.loads(sent[2]["tool_calls"][0]["function"]["arguments"]) == {"city": "上海"}
    assert "上海" in sent[2]["tool_calls"][0]["function"]["arguments"]  # not \\u-escaped
    assert sent[3] == {
        "role": "tool",
        "content": "多云, 18°C",
        "tool_call_id": "call_1",
        "name": "get_weather",
    }


def test_image_content_is_refused_with_a_clear_message() -> None:
    msg = HumanMessage(
        content=[
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        ]
    )
    with pytest.raises(InvalidInputError, match="text only"):
        message_to_core(msg)


def test_invalid_tool_arguments_become_invalid_tool_calls() -> None:
    response = ChatResponse(
        content="",
        model="qwen-plus",
        tool_calls=(
            ToolCall(id="a", name="f", arguments='{"x": 1}'),
            ToolCall(id="b", name="g", arguments='{"x": '),
            ToolCall(id="c", name="h", arguments=""),
        ),
    )
    msg = response_to_message(response)
    assert [(c["name"], c["args"]) for c in msg.tool_calls] == [("f", {"x": 1}), ("h", {})]
    assert [c["name"] for c in msg.invalid_tool_calls] == ["g"]


def test_text_list_content_is_joined() -> None:
    core = message_to_core(
        HumanMessage(content=[{"type": "text", "text": "a "}, {"type": "text", "text": "b"}])
    )
    assert (core.role, core.content) == ("user", "a b")


def test_bad_request_is_typed(dashscope_emulator: DashScopeEmulator) -> None:
    with pytest.raises(BadRequestError):
        ChatQwen(temperature=5.0).invoke("hello")


def test_streaming_true_makes_invoke_stream(dashscope_emulator: DashScopeEmulator) -> None:
    msg = ChatQwen(streaming=True).invoke("hello")
    assert msg.content == "Emulated reply to: hello"
    assert msg.usage_metadata is not None
    assert dashscope_emulator.requests[-1].stream is True
    ChatQwen().invoke("hello")
    assert dashscope_emulator.requests[-1].stream is False


def test_structured_function_calling_streams_complete_objects(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    dashscope_emulator.script(
        ScriptedReply(
            tool_calls=[{"name": "City", "arguments": {"name": "New York", "country": "USA"}}],
            chunk_size=2,
        )
    )
    structured = ChatQwen(model="qwen-max").with_structured_output(City, method="function_calling")
    parsed = list(structured.stream("Where is New York?"))
    assert parsed
    assert parsed[-1] == City(name="New York", country="USA")
    assert all(isinstance(p, City) for p in parsed)
    assert dashscope_emulator.requests[-1].stream is True


def test_key_not_in_callbacks_or_tracing_params(dashscope_emulator: DashScopeEmulator) -> None:
    from langchain_core.callbacks import BaseCallbackHandler

    seen: list[str] = []

    class Recorder(BaseCallbackHandler):
        def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
            seen.append(repr(serialized) + repr(kwargs))

    ChatQwen().invoke("hi", config={"callbacks": [Recorder()]})
    assert seen
    assert dashscope_emulator.api_key not in "".join(seen)
