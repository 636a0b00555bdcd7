"""DashScopeEmulator on the wire, with raw HTTP: exact SSE framing, headers, keep-alive, encodings.

Protocol doc §2.3 (SSE framing), §1.3 (stream detection by headers, both JSON encodings), §8.2.
"""

from __future__ import annotations

import http.client
import json
import re
from typing import Any

import pytest

from qwen_pg_integrations.testing import DashScopeEmulator, Fault, ScriptedReply

GEN = "/api/v1/services/aigc/text-generation/generation"
EMB = "/api/v1/services/embeddings/text-embedding/text-embedding"
EVENT = re.compile(rb"id:(\d+)\nevent:(result|error)\n:HTTP_STATUS/(\d{3})\ndata:([^\n]*)\n\n")


def post(
    emu: DashScopeEmulator,
    path: str,
    body: bytes,
    headers: dict[str, str] | None = None,
    conn: http.client.HTTPConnection | None = None,
) -> tuple[http.client.HTTPResponse, bytes]:
    conn = conn or http.client.HTTPConnection(emu.host, emu.port, timeout=10)
    all_headers = {"Authorization": f"Bearer {emu.api_key}", "Content-Type": "application/json"}
    all_headers.update(headers or {})
    conn.request("POST", path, body=body, headers=all_headers)
    resp = conn.getresponse()
    return resp, resp.read()


def chat_body(text: str = "hello", **params: Any) -> bytes:
    body = {
        "model": "qwen-plus",
        "input": {"messages": [{"role": "user", "content": text}]},
        "parameters": {"result_format": "message", **params},
    }
    return json.dumps(body).encode()


def events(raw: bytes) -> list[tuple[int, str, int, Any]]:
    found = EVENT.findall(raw)
    assert b"".join(m.group(0) for m in EVENT.finditer(raw)) == raw, "bytes outside events"
    return [(int(i), e.decode(), int(s), json.loads(d)) for i, e, s, d in found]


def test_sse_framing_is_byte_exact(dashscope_emulator: DashScopeEmulator) -> None:
    dashscope_emulator.script(ScriptedReply(text="framing check"))
    resp, raw = post(
        dashscope_emulator, GEN, chat_body(incremental_output=True), {"X-DashScope-SSE": "enable"}
    )
    assert resp.status == 200
    assert resp.getheader("Content-Type") == "text/event-stream;charset=UTF-8"
    assert resp.getheader("Transfer-Encoding") == "chunked"
    parsed = events(raw)
    assert [p[0] for p in parsed] == list(range(1, len(parsed) + 1))
    assert {(p[1], p[2]) for p in parsed} == {("result", 200)}
    assert b"[DONE]" not in raw and b"event: " not in raw
    request_id = resp.getheader("X-Request-Id")
    for _, _, _, data in parsed:
        assert data["request_id"] == request_id
        assert {"input_tokens", "output_tokens", "total_tokens"} <= set(data["usage"])
        message = data["output"]["choices"][0]["message"]
        assert message["role"] == "assistant" and isinstance(message["content"], str)
    reasons = [p[3]["output"]["choices"][0]["finish_reason"] for p in parsed]
    assert reasons == ["null"] * (len(reasons) - 1) + ["stop"]


def test_accept_event_stream_alone_means_streaming(dashscope_emulator: DashScopeEmulator) -> None:
    resp, raw = post(dashscope_emulator, GEN, chat_body(), {"Accept": "text/event-stream"})
    assert resp.getheader("Content-Type", "").startswith("text/event-stream")
    assert events(raw)
    assert dashscope_emulator.last_request.stream


def test_stream_field_in_body_does_not_make_a_stream(dashscope_emulator: DashScopeEmulator) -> None:
    body = json.loads(chat_body())
    body["stream"] = True
    resp, raw = post(dashscope_emulator, GEN, json.dumps(body).encode())
    assert resp.getheader("Content-Type") == "application/json"
    assert json.loads(raw)["output"]["choices"]


def test_midstream_error_frame_has_code_and_message(dashscope_emulator: DashScopeEmulator) -> None:
    dashscope_emulator.inject(Fault(midstream=(500, "InternalError"), after_chunks=1))
    _, raw = post(dashscope_emulator, GEN, chat_body(), {"X-DashScope-SSE": "enable"})
    parsed = events(raw)
    assert [(p[0], p[1], p[2]) for p in parsed] == [(1, "result", 200), (2, "error", 500)]
    assert set(parsed[-1][3]) == {"code", "message", "request_id"}


def test_pre_stream_error_is_real_status_plus_one_error_frame(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    resp, raw = post(
        dashscope_emulator, GEN, chat_body(), {"X-DashScope-SSE": "enable", "Authorization": "x"}
    )
    assert resp.status == 401
    ((event_id, kind, status, data),) = events(raw)
    assert (event_id, kind, status) == (1, "error", 401)
    assert data["code"] == "InvalidApiKey" and data["message"] == "Invalid API-key provided."


def test_json_answers_have_content_length_and_keep_alive(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    conn = http.client.HTTPConnection(dashscope_emulator.host, dashscope_emulator.port, timeout=10)
    for _ in range(3):
        resp, raw = post(dashscope_emulator, GEN, chat_body(), conn=conn)
        assert resp.status == 200
        assert resp.getheader("Content-Type") == "application/json"
        assert int(resp.getheader("Content-Length", "-1")) == len(raw)
        assert json.loads(raw)["request_id"] == resp.getheader("X-Request-Id")
    # the SSE answer ends with the zero chunk, so the same connection still works afterwards
    post(dashscope_emulator, GEN, chat_body(), {"X-DashScope-SSE": "enable"}, conn=conn)
    emb_body = b'{"model":"text-embedding-v4","input":{"texts":["a"]}}'
    resp, _ = post(dashscope_emulator, EMB, emb_body, conn=conn)
    assert resp.status == 200
    conn.close()


@pytest.mark.parametrize("ensure_ascii", [True, False])
def test_ascii_escaped_and_raw_utf8_bodies_are_equal(
    dashscope_emulator: DashScopeEmulator, ensure_ascii: bool
) -> None:
    body = {"model": "text-embedding-v4", "input": {"texts": ["通义千问 café"]}}
    raw = json.dumps(body, ensure_ascii=ensure_ascii).encode("utf-8")
    resp, data = post(dashscope_emulator, EMB, raw)
    assert resp.status == 200
    assert dashscope_emulator.last_request.body == body
    assert dashscope_emulator.last_request.raw == raw
    expected = dashscope_emulator.embed(["通义千问 café"])[0]
    assert json.loads(data)["output"]["embeddings"][0]["embedding"] == expected


def test_malformed_json_is_a_400(dashscope_emulator: DashScopeEmulator) -> None:
    resp, raw = post(dashscope_emulator, GEN, b"{not json")
    assert resp.status == 400
    assert json.loads(raw)["code"] == "InvalidParameter"


def test_unknown_path_is_404_json(dashscope_emulator: DashScopeEmulator) -> None:
    resp, raw = post(dashscope_emulator, "/api/v1/services/nope", b"{}")
    assert resp.status == 404
    assert set(json.loads(raw)) == {"code", "message", "request_id"}


def test_missing_key_is_401(dashscope_emulator: DashScopeEmulator) -> None:
    conn = http.client.HTTPConnection(dashscope_emulator.host, dashscope_emulator.port, timeout=10)
    conn.request("POST", EMB, body=b"{}", headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 401
    assert json.loads(resp.read())["code"] == "InvalidApiKey"


def test_chunked_request_body_is_accepted(dashscope_emulator: DashScopeEmulator) -> None:
    conn = http.client.HTTPConnection(dashscope_emulator.host, dashscope_emulator.port, timeout=10)
    body = [b'{"model":"text-embedding-v1",', b'"input":{"texts":["chunked"]}}']
    conn.request(
        "POST",
        EMB,
        body=iter(body),
        encode_chunked=True,
        headers={"Authorization": f"Bearer {dashscope_emulator.api_key}"},
    )
    resp = conn.getresponse()
    assert resp.status == 200
    assert len(json.loads(resp.read())["output"]["embeddings"][0]["embedding"]) == 1536
