"""DashScopeEmulator default reply policy and schema-valid value generation (no HTTP)."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from qwen_pg_integrations.testing._policy import ChatRequest, default_plan, finalize, string_hint
from qwen_pg_integrations.testing._schema import value_for_schema

SCHEMAS: list[dict[str, Any]] = [
    {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
    {
        "type": "object",
        "properties": {
            "n": {"type": "integer", "minimum": 10, "maximum": 20, "multipleOf": 3},
            "x": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
            "flag": {"type": "boolean"},
            "mode": {"type": "string", "enum": ["fast", "slow"]},
            "when": {"type": "string", "format": "date-time"},
            "short": {"type": "string", "maxLength": 2},
            "long": {"type": "string", "minLength": 30},
            "maybe": {"type": ["null", "integer"]},
        },
        "required": ["n", "x", "flag", "mode"],
        "additionalProperties": False,
    },
    {
        "type": "object",
        "properties": {
            "items": {
                "type": "array",
                "minItems": 2,
                "maxItems": 3,
                "items": {"$ref": "#/$defs/Item"},
            },
            "choice": {"anyOf": [{"type": "null"}, {"type": "string", "const": "c"}]},
            "pair": {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}]},
        },
        "required": ["items"],
        "$defs": {
            "Item": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "qty": {"type": "integer"}},
                "required": ["name", "qty"],
                "additionalProperties": False,
            }
        },
    },
    {
        "allOf": [
            {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
            {"properties": {"b": {"type": "number", "minimum": -5}}, "required": ["b"]},
        ]
    },
]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_generated_values_validate(schema: dict[str, Any]) -> None:
    jsonschema.validate(value_for_schema(schema, "hint"), schema)


def tool(name: str) -> dict[str, Any]:
    params = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    return {"name": name, "parameters": params}


def req(text: str, **kw: Any) -> ChatRequest:
    return ChatRequest(model="qwen-plus", messages=[{"role": "user", "content": text}], **kw)


@pytest.mark.parametrize(
    ("text", "called"),
    [
        ("What's the weather in New York?", "get_current_weather"),
        ("please call get_current_weather", "get_current_weather"),
        ("Tell me a joke", None),
    ],
)
def test_auto_tool_choice_calls_only_an_asked_for_tool(text: str, called: str | None) -> None:
    plan = default_plan(req(text, tools=[tool("get_current_weather"), tool("send_email")]))
    assert [c.name for c in plan.tool_calls] == ([called] if called else [])
    assert plan.finish_reason == ("tool_calls" if called else "stop")


def test_tool_choice_none_never_calls() -> None:
    plan = default_plan(req("weather in Paris?", tools=[tool("get_weather")], tool_choice="none"))
    assert plan.tool_calls == []


def test_parallel_tool_calls_call_every_asked_tool() -> None:
    tools = [tool("get_weather"), tool("get_time")]
    text = "What is the weather and the time in Tokyo?"
    assert len(default_plan(req(text, tools=tools)).tool_calls) == 1
    plan = default_plan(req(text, tools=tools, parallel_tool_calls=True))
    assert [json.loads(c.arguments) for c in plan.tool_calls] == [{"city": "Tokyo"}] * 2


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("What's the weather in New York?", "New York"),
        ('Search for "vector databases" now', "vector databases"),
        ("北京今天天气怎么样", "北京今天天气怎么样"),
        ("查询「杭州」的天气", "杭州"),
    ],
)
def test_string_hint(text: str, hint: str) -> None:
    assert string_hint(text) == hint


def test_rag_answer_quotes_the_best_matching_context_sentence() -> None:
    prompt = (
        "Context:\n[1] Bananas are yellow and sweet.\n[2] PolarDB supports the pgvector extension."
        "\n\nQuestion: Which extension does PolarDB support?"
    )
    plan = default_plan(req(prompt))
    assert plan.content == "Based on the context: PolarDB supports the pgvector extension."


def test_chinese_rag_answer_uses_system_context() -> None:
    request = ChatRequest(
        model="qwen-plus",
        messages=[
            {"role": "system", "content": "参考资料：通义千问由阿里云开发。香蕉是黄色的。"},
            {"role": "user", "content": "通义千问是谁开发的？"},
        ],
    )
    assert default_plan(request).content == "根据上下文：通义千问由阿里云开发。"


def test_no_context_echoes_the_question() -> None:
    assert default_plan(req("hi")).content == "Emulated reply to: hi"


def test_policy_is_deterministic() -> None:
    request = req("What's the weather in Paris?", tools=[tool("get_weather")])
    first, second = default_plan(request), default_plan(request)
    assert first.tool_calls == second.tool_calls


def test_thinking_adds_reasoning_and_reasoning_tokens() -> None:
    plan = finalize(
        default_plan(req("Why is the sky blue?", thinking=True)), req("Why is the sky blue?")
    )
    assert plan.reasoning == "Thinking about: Why is the sky blue?"
    assert plan.usage["output_tokens_details"]["reasoning_tokens"] > 0


@pytest.mark.parametrize(
    "bounds",
    [
        {},
        {"minimum": 3},
        {"maximum": -4},
        {"exclusiveMinimum": 0},
        {"exclusiveMaximum": 0},
        {"minimum": 0, "maximum": 0},
        {"minimum": 1.5, "maximum": 2.5},
        {"minimum": 10, "maximum": 20, "multipleOf": 3},
        {"exclusiveMinimum": 5, "maximum": 6},
        {"minimum": -7.2},
    ],
)
@pytest.mark.parametrize("kind", ["integer", "number"])
def test_numbers_respect_their_bounds(bounds: dict[str, Any], kind: str) -> None:
    schema = {"type": kind, **bounds}
    value = value_for_schema(schema)
    jsonschema.validate(value, schema)
    assert isinstance(value, int) if kind == "integer" else isinstance(value, float)


def test_chinese_request_matches_a_tool_by_its_description() -> None:
    weather = {**tool("get_weather"), "description": "查询城市天气"}
    mail = {**tool("send_mail"), "description": "发送邮件"}
    plan = default_plan(req("北京今天天气怎么样？", tools=[mail, weather]))
    assert [c.name for c in plan.tool_calls] == ["get_weather"]
    assert default_plan(req("你好，请问你是什么模型？", tools=[mail, weather])).tool_calls == []
