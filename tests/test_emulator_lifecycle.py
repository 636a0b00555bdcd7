"""DashScopeEmulator lifecycle, pytest fixtures and argument validation."""

from __future__ import annotations

import os

import dashscope
import pytest

from qwen_pg_integrations.dashscope import ChatClient, EmbeddingClient
from qwen_pg_integrations.testing import DashScopeEmulator, ScriptedReply
from qwen_pg_integrations.types import ChatMessage


def test_fixture_points_the_environment_at_the_emulator(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    assert os.environ["DASHSCOPE_API_KEY"] == dashscope_emulator.api_key
    assert os.environ["DASHSCOPE_HTTP_BASE_URL"] == dashscope_emulator.base_url
    assert "127.0.0.1" in os.environ["NO_PROXY"].split(",")
    assert dashscope_emulator.base_url == f"http://127.0.0.1:{dashscope_emulator.port}/api/v1"


def test_clients_built_without_arguments_use_the_fixture(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    dashscope_emulator.script(ScriptedReply(text="from the environment"))
    answer = ChatClient("qwen-plus").chat([ChatMessage(role="user", content="hi")])
    assert answer.content == "from the environment"
    vectors = EmbeddingClient("text-embedding-v4").embed_documents(["a", "b"])
    assert vectors == dashscope_emulator.embed(["a", "b"])


def test_session_fixture_is_shared(dashscope_emulator_session: DashScopeEmulator) -> None:
    dashscope_emulator_session.reset()
    resp = dashscope.TextEmbedding.call(
        model="text-embedding-v1",
        input="x",
        api_key=dashscope_emulator_session.api_key,
        base_address=dashscope_emulator_session.base_url,
    )
    assert resp.status_code == 200


def test_start_stop_are_idempotent_and_free_the_port() -> None:
    emu = DashScopeEmulator()
    with pytest.raises(RuntimeError):
        _ = emu.port
    assert "stopped" in repr(emu)
    emu.start()
    emu.start()
    port = emu.port
    assert str(port) in repr(emu)
    emu.stop()
    emu.stop()
    with DashScopeEmulator(port=port) as again:  # the port is released
        assert again.port == port


def test_two_emulators_are_independent() -> None:
    with DashScopeEmulator(api_key="k1") as a, DashScopeEmulator(api_key="k2") as b:
        a.script(ScriptedReply(text="from a"))
        resp = dashscope.Generation.call(
            model="qwen-plus", prompt="hi", api_key="k2", base_address=b.base_url
        )
        assert resp.output.text != "from a"
        assert a.pending_scripts == 1 and len(b.requests) == 1 and a.requests == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tool_calls": [{"arguments": {}}]},
        {"tool_calls": [{"name": "f", "arguments": "{not json"}]},
        {"tool_calls": [{"name": "f", "arguments": 3}]},
        {"chunk_size": 0},
    ],
)
def test_invalid_scripts_fail_early(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ScriptedReply(**kwargs)  # type: ignore[arg-type]


def test_last_request_without_requests_raises() -> None:
    with DashScopeEmulator() as emu, pytest.raises(LookupError):
        _ = emu.last_request


def test_standalone_server_prints_its_base_url_and_answers() -> None:
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "qwen_pg_integrations.testing", "--api-key", "sk-cli"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("DASHSCOPE_HTTP_BASE_URL=http://127.0.0.1:")
        base_url = line.split("=", 1)[1]
        resp = dashscope.TextEmbedding.call(
            model="text-embedding-v4", input="x", api_key="sk-cli", base_address=base_url
        )
        assert resp.status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_request_log_keeps_the_newest_entries() -> None:
    with DashScopeEmulator(log_limit=3) as emu:
        for i in range(5):
            dashscope.Generation.call(
                model="qwen-plus", prompt=f"p{i}", api_key=emu.api_key, base_address=emu.base_url
            )
        assert [r.body["input"]["prompt"] for r in emu.requests] == ["p2", "p3", "p4"]
