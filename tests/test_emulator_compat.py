"""DashScopeEmulator OpenAI-compatible mode (protocol doc §6), checked with raw httpx."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import numpy as np
import pytest

from qwen_pg_integrations.testing import DashScopeEmulator, Fault, ScriptedReply

TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture
def client(dashscope_emulator: DashScopeEmulator) -> Any:
    headers = {"Authorization": f"Bearer {dashscope_emulator.api_key}"}
    with httpx.Client(base_url=dashscope_emulator.compat_base_url, headers=headers) as c:
        yield c


def sse(client: httpx.Client, body: dict[str, Any]) -> list[Any]:
    with client.stream("POST", "/chat/completions", json={**body, "stream": True}) as resp:
        assert resp.status_code == 200
        lines = [line for line in resp.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines)
    return [line[6:] if line == "data: [DONE]" else json.loads(line[6:]) for line in lines]


def test_chat_completion_shape(client: httpx.Client, dashscope_emulator: DashScopeEmulator) -> None:
    dashscope_emulator.script(ScriptedReply(text="compat hello"))
    body = {"model": "qwen-plus", "messages": [{"role": "user", "content": "hi"}]}
    data = client.post("/chat/completions", json=body).json()
    assert data["object"] == "chat.completion" and data["id"].startswith("chatcmpl-")
    assert data["choices"][0]["message"] == {"role": "assistant", "content": "compat hello"}
    assert data["choices"][0]["finish_reason"] == "stop"
    assert set(data["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}
    assert dashscope_emulator.last_request.protocol == "openai"


def test_stream_deltas_usage_chunk_and_done(
    client: httpx.Client, dashscope_emulator: DashScopeEmulator
) -> None:
    dashscope_emulator.script(ScriptedReply(text="streamed compat"))
    events = sse(
        client,
        {
            "model": "qwen-plus",
            "messages": [{"role": "user", "content": "hi"}],
            "stream_options": {"include_usage": True},
        },
    )
    assert events[-1] == "[DONE]"
    usage_chunk = events[-2]
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["completion_tokens"] > 0
    chunks = events[:-2]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == "streamed compat"
    assert [c["choices"][0]["finish_reason"] for c in chunks][-2:] == [None, "stop"]


def test_stream_tool_call_deltas(client: httpx.Client) -> None:
    events = sse(
        client,
        {
            "model": "qwen-plus",
            "tools": [TOOL],
            "messages": [{"role": "user", "content": "What's the weather in New York?"}],
        },
    )
    calls = [tc for e in events[:-1] for tc in e["choices"][0]["delta"].get("tool_calls") or []]
    assert calls[0]["id"].startswith("call_") and calls[0]["function"]["name"] == "get_weather"
    assert {c["index"] for c in calls} == {0}
    assert json.loads("".join(c["function"]["arguments"] for c in calls)) == {"city": "New York"}
    assert events[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert "usage" not in events[-2]


def test_required_tool_choice_calls_a_tool(client: httpx.Client) -> None:
    body = {
        "model": "qwen-plus",
        "tools": [TOOL],
        "tool_choice": "required",
        "messages": [{"role": "user", "content": "hello"}],
    }
    message = client.post("/chat/completions", json=body).json()["choices"][0]["message"]
    assert message["tool_calls"][0]["function"]["name"] == "get_weather"


def test_embeddings_float_and_base64_agree(client: httpx.Client) -> None:
    body = {"model": "text-embedding-v4", "input": ["a", "b"], "dimensions": 256}
    floats = client.post("/embeddings", json=body).json()
    b64 = client.post("/embeddings", json={**body, "encoding_format": "base64"}).json()
    assert floats["object"] == "list" and floats["model"] == "text-embedding-v4"
    assert [d["index"] for d in floats["data"]] == [0, 1]
    decoded = np.frombuffer(base64.b64decode(b64["data"][1]["embedding"]), dtype="<f4")
    assert decoded.shape == (256,)
    assert np.allclose(decoded, floats["data"][1]["embedding"], atol=1e-6)


def test_embeddings_batch_limit_is_openai_shaped(client: httpx.Client) -> None:
    resp = client.post("/embeddings", json={"model": "text-embedding-v3", "input": ["x"] * 11})
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["code"] == "InvalidParameter"
    assert "should not be larger than 10" in error["message"]


def test_401_is_openai_shaped(dashscope_emulator: DashScopeEmulator) -> None:
    resp = httpx.post(dashscope_emulator.compat_base_url + "/embeddings", json={"input": "a"})
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "invalid_api_key"


def test_429_fault_is_openai_shaped(
    client: httpx.Client, dashscope_emulator: DashScopeEmulator
) -> None:
    dashscope_emulator.inject(Fault(status=429, code="Throttling.RateQuota"))
    body = {"model": "qwen-plus", "messages": [{"role": "user", "content": "hi"}]}
    resp = client.post("/chat/completions", json=body)
    assert resp.status_code == 429
    assert resp.json()["error"]["code"] == "Throttling.RateQuota"


def test_midstream_error_chunk(client: httpx.Client, dashscope_emulator: DashScopeEmulator) -> None:
    dashscope_emulator.inject(Fault(midstream=(500, "InternalError"), after_chunks=2))
    events = sse(client, {"model": "qwen-plus", "messages": [{"role": "user", "content": "hi"}]})
    assert len(events) == 3
    assert events[-1]["error"]["code"] == "internal_error"
