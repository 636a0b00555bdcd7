"""DashScopeEmulator conformance: native text generation, non-streaming, through the real SDK.

Protocol doc references: §2.1 request, §2.2 response, §4.2 validation messages, §8.2 checklist.
"""

from __future__ import annotations

import json
from typing import Any

import dashscope
import jsonschema
import pytest

from qwen_pg_integrations.testing import DashScopeEmulator, ScriptedReply

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
            },
            "required": ["city"],
        },
    },
}


def call(emu: DashScopeEmulator, **kwargs: Any) -> Any:
    kwargs.setdefault("model", "qwen-plus")
    return dashscope.Generation.call(api_key=emu.api_key, base_address=emu.base_url, **kwargs)


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_text_format_is_the_default_for_qwen_plus(dashscope_emulator: DashScopeEmulator) -> None:
    dashscope_emulator.script(ScriptedReply(text="hello there"))
    resp = call(dashscope_emulator, prompt="hi")
    assert resp.status_code == 200
    assert resp.output.text == "hello there"
    assert resp.output.finish_reason == "stop"
    assert resp.output.choices is None
    assert resp.code == ""
    assert set(resp.usage) >= {"input_tokens", "output_tokens", "total_tokens"}
    assert resp.usage["total_tokens"] == resp.usage["input_tokens"] + resp.usage["output_tokens"]
    assert resp.request_id == dashscope_emulator.last_request.request_id


def test_message_format_has_role_and_content(dashscope_emulator: DashScopeEmulator) -> None:
    dashscope_emulator.script(ScriptedReply(text="hi!"))
    resp = call(dashscope_emulator, messages=user("hello"), result_format="message")
    choice = resp.output.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.content == "hi!"


def test_request_body_follows_the_sdk_layout(dashscope_emulator: DashScopeEmulator) -> None:
    call(dashscope_emulator, messages=user("hello"), result_format="message", top_p=0.8, seed=1)
    rec = dashscope_emulator.last_request
    assert rec.endpoint == "generation" and rec.protocol == "native" and not rec.stream
    assert rec.model == "qwen-plus"
    assert rec.body["input"]["messages"] == user("hello")
    assert rec.parameters["top_p"] == 0.8
    assert "stream" not in rec.body
    assert rec.headers["authorization"] == f"Bearer {dashscope_emulator.api_key}"


def test_unknown_parameters_are_ignored(dashscope_emulator: DashScopeEmulator) -> None:
    resp = call(dashscope_emulator, prompt="hello", kwargs={}, some_future_flag=True)
    assert resp.status_code == 200
    assert dashscope_emulator.last_request.parameters["kwargs"] == {}


def test_wrong_api_key_gets_401_invalid_api_key(dashscope_emulator: DashScopeEmulator) -> None:
    resp = dashscope.Generation.call(
        model="qwen-plus", prompt="hi", api_key="sk-wrong", base_address=dashscope_emulator.base_url
    )
    assert resp.status_code == 401
    assert resp.code == "InvalidApiKey"
    assert resp.message == "Invalid API-key provided."
    assert dashscope_emulator.last_request.status == 401


def test_scripted_error_is_returned_with_its_status(dashscope_emulator: DashScopeEmulator) -> None:
    dashscope_emulator.script(
        ScriptedReply(error=(400, "DataInspectionFailed", "Input data may contain inappropriate."))
    )
    resp = call(dashscope_emulator, prompt="hi")
    assert (resp.status_code, resp.code) == (400, "DataInspectionFailed")
    assert resp.message == "Input data may contain inappropriate."
    assert resp.output is None


def test_scripted_reply_for_another_model_is_not_consumed(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    dashscope_emulator.script(ScriptedReply(text="max only", model="qwen-max"))
    assert call(dashscope_emulator, prompt="hi").output.text != "max only"
    assert call(dashscope_emulator, prompt="hi", model="qwen-max").output.text == "max only"
    assert dashscope_emulator.pending_scripts == 0


def test_scripted_tool_call_non_stream(dashscope_emulator: DashScopeEmulator) -> None:
    dashscope_emulator.script(
        ScriptedReply(tool_calls=[{"name": "get_weather", "arguments": {"city": "New York"}}])
    )
    resp = call(
        dashscope_emulator, messages=user("weather?"), tools=[WEATHER_TOOL], result_format="message"
    )
    choice = resp.output.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == ""
    (tool_call,) = choice.message.tool_calls
    assert tool_call["index"] == 0
    assert tool_call["type"] == "function"
    assert tool_call["id"].startswith("call_")
    assert tool_call["function"]["name"] == "get_weather"
    assert json.loads(tool_call["function"]["arguments"]) == {"city": "New York"}


def test_named_tool_choice_gets_schema_valid_arguments(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    resp = call(
        dashscope_emulator,
        messages=user("Plan my trip to New York please"),
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        result_format="message",
    )
    (tool_call,) = resp.output.choices[0].message.tool_calls
    args = json.loads(tool_call["function"]["arguments"])
    jsonschema.validate(args, WEATHER_TOOL["function"]["parameters"])  # type: ignore[index]
    assert args["city"] == "New York"


def test_tool_choice_naming_an_absent_tool_is_rejected(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    resp = call(
        dashscope_emulator,
        messages=user("hi"),
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "nope"}},
        result_format="message",
    )
    assert (resp.status_code, resp.code) == (400, "InvalidParameter")


def test_tool_result_message_is_answered_in_text(dashscope_emulator: DashScopeEmulator) -> None:
    messages = [
        *user("What's the weather in Paris?"),
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "content": "Sunny, 21 C", "tool_call_id": "call_1", "name": "get_weather"},
    ]
    resp = call(
        dashscope_emulator, messages=messages, tools=[WEATHER_TOOL], result_format="message"
    )
    message = resp.output.choices[0].message
    assert resp.output.choices[0].finish_reason == "stop"
    assert "Sunny, 21 C" in message.content
    assert not message.get("tool_calls")


def test_tool_message_without_preceding_tool_calls_is_rejected(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    messages = [*user("hi"), {"role": "tool", "content": "x", "tool_call_id": "c"}]
    resp = call(dashscope_emulator, messages=messages, result_format="message")
    assert resp.status_code == 400
    assert 'must be a response to a preceeding message with "tool_calls"' in resp.message


def test_enable_thinking_on_a_non_stream_call_is_a_documented_400(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    resp = call(dashscope_emulator, messages=user("hi"), enable_thinking=True)
    assert (resp.status_code, resp.code) == (400, "InvalidParameter")
    assert "parameter.enable_thinking must be set to false for non-streaming calls" in resp.message


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"temperature": 2.0}, "Temperature should be in [0.0, 2.0)"),
        ({"temperature": -0.1}, "Temperature should be in [0.0, 2.0)"),
        ({"top_p": 0.0}, "Range of top_p should be (0.0, 1.0]"),
        ({"n": 5}, "Range of n should be [1, 4]"),
        ({"max_tokens": 0}, "Range of max_tokens should be [1, "),
    ],
)
def test_parameter_ranges_are_validated(
    dashscope_emulator: DashScopeEmulator, params: dict[str, Any], expected: str
) -> None:
    resp = call(dashscope_emulator, prompt="hi", **params)
    assert (resp.status_code, resp.code) == (400, "InvalidParameter")
    assert expected in resp.message


def test_max_tokens_truncates_and_reports_length(dashscope_emulator: DashScopeEmulator) -> None:
    dashscope_emulator.script(ScriptedReply(text="one two three four five six"))
    resp = call(dashscope_emulator, prompt="count", max_tokens=3)
    assert resp.output.text == "one two three"
    assert resp.output.finish_reason == "length"
    assert resp.usage["output_tokens"] == 3


def test_stop_sequence_cuts_the_answer(dashscope_emulator: DashScopeEmulator) -> None:
    dashscope_emulator.script(ScriptedReply(text="alpha beta END gamma"))
    resp = call(dashscope_emulator, prompt="x", stop=["END"])
    assert resp.output.text == "alpha beta "
    assert resp.output.finish_reason == "stop"


def test_json_object_requires_the_word_json(dashscope_emulator: DashScopeEmulator) -> None:
    resp = call(dashscope_emulator, messages=user("hi"), response_format={"type": "json_object"})
    assert resp.status_code == 400
    assert "must contain the word 'json'" in resp.message
    ok = call(
        dashscope_emulator,
        messages=user("Reply in JSON: what is pgvector?"),
        response_format={"type": "json_object"},
        result_format="message",
    )
    assert isinstance(json.loads(ok.output.choices[0].message.content), dict)


def test_json_schema_answer_is_valid_against_the_schema(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    schema = {
        "type": "object",
        "properties": {
            "title": {"type": "string", "minLength": 3},
            "year": {"type": "integer", "minimum": 1900},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
            "rating": {"type": "number", "exclusiveMinimum": 0, "maximum": 5},
            "kind": {"enum": ["book", "film"]},
        },
        "required": ["title", "year", "tags"],
        "additionalProperties": False,
    }
    resp = call(
        dashscope_emulator,
        messages=user("Describe a film."),
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
        result_format="message",
    )
    jsonschema.validate(json.loads(resp.output.choices[0].message.content), schema)


def test_prompt_with_history_is_accepted(dashscope_emulator: DashScopeEmulator) -> None:
    resp = call(dashscope_emulator, prompt="and now?", history=[{"user": "hi", "bot": "hello"}])
    assert resp.status_code == 200
    assert dashscope_emulator.last_request.body["input"]["history"][0]["bot"] == "hello"


def test_non_string_content_is_rejected_on_the_text_endpoint(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    resp = call(dashscope_emulator, messages=[{"role": "user", "content": [{"text": "hi"}]}])
    assert resp.status_code == 400
    assert resp.message == "input content must be a string."


def test_workspace_and_custom_headers_are_recorded(dashscope_emulator: DashScopeEmulator) -> None:
    call(dashscope_emulator, prompt="hi", workspace="ws-123", headers={"X-Custom": "yes"})
    rec = dashscope_emulator.last_request
    assert rec.workspace == "ws-123"
    assert rec.headers["x-custom"] == "yes"


async def test_aio_generation_non_stream_and_401(dashscope_emulator: DashScopeEmulator) -> None:
    dashscope_emulator.script(ScriptedReply(text="async hello"))
    kw = {"api_key": dashscope_emulator.api_key, "base_address": dashscope_emulator.base_url}
    try:
        resp = await dashscope.AioGeneration.call(model="qwen-plus", prompt="hi", **kw)
        assert resp.status_code == 200 and resp.output.text == "async hello"
        bad = await dashscope.AioGeneration.call(
            model="qwen-plus", prompt="hi", api_key="nope", base_address=kw["base_address"]
        )
        assert (bad.status_code, bad.code) == (401, "InvalidApiKey")
    finally:
        await dashscope.close_shared_aio_session()


def test_open_source_qwen3_thinks_by_default_so_non_stream_needs_it_off(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    resp = call(dashscope_emulator, model="qwen3-32b", messages=user("hi"))
    assert resp.status_code == 400
    assert "enable_thinking must be set to false" in resp.message
    ok = call(dashscope_emulator, model="qwen3-32b", messages=user("hi"), enable_thinking=False)
    assert ok.status_code == 200
    assert "reasoning_content" not in ok.output.choices[0].message


def test_thinking_only_model_rejects_non_stream_calls(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    resp = call(dashscope_emulator, model="qwq-plus", messages=user("hi"))
    assert resp.status_code == 400
    assert "only support stream mode" in resp.message


def test_enable_thinking_on_a_model_without_thinking(dashscope_emulator: DashScopeEmulator) -> None:
    chunks = list(
        dashscope.Generation.call(
            model="qwen-max",
            prompt="hi",
            stream=True,
            enable_thinking=True,
            api_key=dashscope_emulator.api_key,
            base_address=dashscope_emulator.base_url,
        )
    )
    assert [(c.status_code, c.code) for c in chunks] == [
        (400, "InvalidParameter.NotSupportEnableThinking")
    ]


def test_input_longer_than_the_context_window_is_rejected(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    resp = call(dashscope_emulator, model="qwen-max", prompt="word " * 33_000)
    assert resp.status_code == 400
    assert "Range of input length should be [1, 32768]" in resp.message
