"""Qwen on OpenAI-compatible servers: DashScope's compatible mode, vLLM and Ollama dialects,
through the official ``openai`` package against the emulator's routes for each.

The adapters keep what they do on the native API (streaming, async, tool calls, structured
output, usage, typed errors, retries); the dialect decides how thinking is switched and where the
reasoning is read; a vLLM without tool calling and an Ollama without ``dimensions`` say so.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.messages import AIMessageChunk
from pydantic import BaseModel

from qwen_pg_integrations.dashscope.compat import (
    CompatChatClient,
    CompatEmbeddingClient,
    detect_dialect,
    uses_compat,
)
from qwen_pg_integrations.errors import (
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    InvalidInputError,
    NotFoundError,
    ServerError,
)
from qwen_pg_integrations.langchain import ChatQwen, DashScopeEmbeddings
from qwen_pg_integrations.llama_index import DashScopeEmbedding, Qwen
from qwen_pg_integrations.testing import DashScopeEmulator, Fault

DIALECTS = ["dashscope", "vllm", "ollama"]
MODELS = {"dashscope": "qwen-plus", "vllm": "Qwen/Qwen3-8B", "ollama": "qwen3:8b"}


def _url(emu: DashScopeEmulator, dialect: str) -> str:
    return {
        "dashscope": emu.compat_base_url,
        "vllm": emu.vllm_base_url,
        "ollama": emu.ollama_base_url,
    }[dialect]


def _chat(emu: DashScopeEmulator, dialect: str, **kw: Any) -> ChatQwen:
    return ChatQwen(model=MODELS[dialect], base_url=_url(emu, dialect), dialect=dialect, **kw)


def test_dialect_detection() -> None:
    assert detect_dialect("https://dashscope.aliyuncs.com/compatible-mode/v1") == "dashscope"
    assert detect_dialect("http://localhost:11434/v1") == "ollama"
    assert detect_dialect("http://gpu-box:8000/v1") == "vllm"
    assert not uses_compat("https://dashscope.aliyuncs.com/api/v1", None)  # native
    assert not uses_compat("beijing", None) and not uses_compat(None, None)
    assert uses_compat("http://gpu-box:8000/v1", None)
    assert uses_compat("http://127.0.0.1:1/api/v1", "vllm")
    assert not uses_compat("http://gpu-box:8000/v1", "native")


@pytest.mark.parametrize("dialect", DIALECTS)
def test_invoke_stream_async_and_usage(dashscope_emulator: DashScopeEmulator, dialect: str) -> None:
    llm = _chat(dashscope_emulator, dialect)
    msg = llm.invoke("Hello there")
    assert "Hello there" in str(msg.content)
    assert msg.usage_metadata and msg.usage_metadata["total_tokens"] > 0
    chunks = list(llm.stream("Stream this please"))
    assert len(chunks) > 2 and all(isinstance(c, AIMessageChunk) for c in chunks)
    full = chunks[0]
    for c in chunks[1:]:
        full = full + c  # type: ignore[assignment]
    assert "Stream this please" in str(full.content)
    assert full.usage_metadata and full.usage_metadata["output_tokens"] > 0  # include_usage
    body = dashscope_emulator.requests_for("generation")[-1].body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    amsg = asyncio.run(llm.ainvoke("Async hello"))
    assert "Async hello" in str(amsg.content)


@pytest.mark.parametrize(
    ("dialect", "wire"),
    [
        ("dashscope", {"enable_thinking": True}),
        ("vllm", {"chat_template_kwargs": {"enable_thinking": True}}),
        ("ollama", {"reasoning_effort": "medium"}),
    ],
)
def test_thinking_is_switched_in_the_servers_dialect(
    dashscope_emulator: DashScopeEmulator, dialect: str, wire: dict[str, Any]
) -> None:
    llm = _chat(dashscope_emulator, dialect, enable_thinking=True)
    msg = llm.invoke("Why is the sky blue?")
    body = dashscope_emulator.requests_for("generation")[-1].body
    for key, value in wire.items():
        assert body[key] == value
    others = {"enable_thinking", "chat_template_kwargs", "reasoning_effort"} - set(wire)
    assert not others & set(body)  # nothing of another dialect
    # reasoning read from reasoning_content (DashScope) or reasoning (vLLM, Ollama)
    assert msg.additional_kwargs.get("reasoning_content")
    off = _chat(dashscope_emulator, dialect, enable_thinking=False)
    assert not off.invoke("Why is the sky blue?").additional_kwargs.get("reasoning_content")


@pytest.mark.parametrize("dialect", DIALECTS)
def test_parallel_tool_calls_streamed_exactly(
    dashscope_emulator: DashScopeEmulator, dialect: str
) -> None:
    from qwen_pg_integrations.testing import ScriptedReply

    def get_weather(city: str) -> str:
        """Weather of a city."""
        return "sunny"

    calls = [
        {"name": "get_weather", "arguments": {"city": "Hangzhou"}},
        {"name": "get_weather", "arguments": {"city": "Beijing"}},
    ]
    dashscope_emulator.script(ScriptedReply(tool_calls=calls), ScriptedReply(tool_calls=calls))
    llm = _chat(dashscope_emulator, dialect).bind_tools([get_weather])
    msg = llm.invoke("Weather in Hangzhou and Beijing?")
    assert [c["args"] for c in msg.tool_calls] == [{"city": "Hangzhou"}, {"city": "Beijing"}]
    full: Any = None
    for chunk in llm.stream("Weather in Hangzhou and Beijing?"):
        full = chunk if full is None else full + chunk
    assert [c["args"] for c in full.tool_calls] == [{"city": "Hangzhou"}, {"city": "Beijing"}]
    assert len({c["id"] for c in full.tool_calls}) == 2


@pytest.mark.parametrize("dialect", DIALECTS)
def test_structured_output(dashscope_emulator: DashScopeEmulator, dialect: str) -> None:
    class City(BaseModel):
        name: str
        population: int

    out = (
        _chat(dashscope_emulator, dialect)
        .with_structured_output(City)
        .invoke("Name a city and its population.")
    )
    assert isinstance(out, City)


def test_vllm_without_tool_calling_says_which_flags(dashscope_emulator: DashScopeEmulator) -> None:
    dashscope_emulator.vllm_tool_calling = False

    def lookup(q: str) -> str:
        """Look something up."""
        return q

    llm = _chat(dashscope_emulator, "vllm").bind_tools([lookup])
    with pytest.raises(BadRequestError, match="--enable-auto-tool-choice") as info:
        llm.invoke("look up pgvector")
    assert info.value.status_code == 400
    assert "hello" in str(_chat(dashscope_emulator, "vllm").invoke("hello").content).lower()


def test_typed_errors_and_retries(dashscope_emulator: DashScopeEmulator) -> None:
    bad = ChatQwen(model="qwen-plus", base_url=dashscope_emulator.compat_base_url, api_key="sk-no")
    with pytest.raises(AuthenticationError):
        bad.invoke("hi")
    dashscope_emulator.inject(Fault(status=503), times=2, endpoint="generation")
    ok = _chat(dashscope_emulator, "vllm", max_retries=3)
    assert ok.invoke("after two 503s").content
    dashscope_emulator.inject(Fault(status=503), times=5, endpoint="generation")
    with pytest.raises(ServerError, match=r"vllm server at .* answered 503") as info:
        _chat(dashscope_emulator, "vllm", max_retries=1).invoke("gives up")
    assert info.value.status_code == 503
    # a base URL that is no OpenAI endpoint: typed, and it names the server
    wrong = ChatQwen(model="Qwen/Qwen3-8B", base_url=dashscope_emulator.url + "/nothing/v1")
    with pytest.raises(NotFoundError, match="/nothing/v1 answered 404"):
        wrong.invoke("hi")
    with pytest.raises(InvalidInputError, match="empty"):
        DashScopeEmbeddings(model="m", base_url=dashscope_emulator.vllm_base_url).embed_documents(
            ["ok", "  "]
        )


def test_the_dashscope_key_never_goes_to_a_self_hosted_server(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    _chat(dashscope_emulator, "vllm").invoke("hi")  # DASHSCOPE_API_KEY is set by the fixture
    auth = dashscope_emulator.requests_for("generation")[-1].headers.get("authorization")
    assert auth == "Bearer EMPTY"
    _chat(dashscope_emulator, "vllm", api_key="sk-vllm-own").invoke("hi")
    auth = dashscope_emulator.requests_for("generation")[-1].headers.get("authorization")
    assert auth == "Bearer sk-vllm-own"
    assert "sk-vllm-own" not in repr(_chat(dashscope_emulator, "vllm", api_key="sk-vllm-own"))


def test_embeddings_on_each_server(dashscope_emulator: DashScopeEmulator) -> None:
    emu = dashscope_emulator
    ds = DashScopeEmbeddings(
        model="text-embedding-v4", base_url=emu.compat_base_url, dimensions=512
    )
    assert len(ds.embed_query("pgvector")) == 512
    vllm = DashScopeEmbeddings(
        model="Qwen/Qwen3-Embedding-0.6B", base_url=emu.vllm_base_url, dimensions=256
    )
    vecs = vllm.embed_documents([f"text {i}" for i in range(150)])  # 3 requests of 64
    assert len(vecs) == 150 and {len(v) for v in vecs} == {256}
    assert len(emu.requests_for("embedding")) == 1 + 3
    with pytest.raises(ConfigurationError, match="takes no dimensions"):
        DashScopeEmbeddings(
            model="qwen3-embedding", base_url=emu.ollama_base_url, dialect="ollama", dimensions=256
        )
    ollama = DashScopeEmbeddings(model="qwen3-embedding", base_url=emu.ollama_base_url,
                                 dialect="ollama")  # fmt: skip
    assert len(ollama.embed_query("x")) == 1024 and ollama.embedding_dimensions == 1024
    assert len(asyncio.run(vllm.aembed_documents(["a", "b"]))) == 2
    with pytest.raises(ConfigurationError, match="native API"):
        DashScopeEmbeddings(base_url=emu.vllm_base_url, output_type="dense&sparse")


def test_a_server_that_ignores_dimensions_is_an_error(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    # an Ollama server reached as a generic OpenAI server: dimensions sent, ignored by it
    client = CompatEmbeddingClient(
        "qwen3-embedding", base_url=dashscope_emulator.ollama_base_url, dialect="openai",
        dimensions=256,
    )  # fmt: skip
    with pytest.raises(BadRequestError, match="ignored dimensions=256"):
        client.embed(["x"])


def test_llama_index_qwen_and_embedding_on_vllm(dashscope_emulator: DashScopeEmulator) -> None:
    from llama_index.core.llms import ChatMessage

    llm = Qwen(model="Qwen/Qwen3-8B", base_url=dashscope_emulator.vllm_base_url)
    assert isinstance(llm.client, CompatChatClient)
    assert "hi" in llm.chat([ChatMessage(role="user", content="hi")]).message.content.lower()
    text = "".join(r.delta or "" for r in llm.stream_complete("stream me"))
    assert "stream me" in text
    emb = DashScopeEmbedding(
        model_name="Qwen/Qwen3-Embedding-0.6B", base_url=dashscope_emulator.vllm_base_url
    )
    assert len(emb.get_query_embedding("q")) == 1024


def test_rag_chain_and_cli_on_a_self_hosted_server(
    dashscope_emulator: DashScopeEmulator,
    pg_dsn: str,
    table_name: str,
    tmp_path: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from qwen_pg_integrations.cli import main
    from qwen_pg_integrations.langchain import PGVectorStore, create_rag_chain

    url = dashscope_emulator.vllm_base_url
    emb = DashScopeEmbeddings(model="Qwen/Qwen3-Embedding-0.6B", base_url=url)
    store = PGVectorStore(emb, connection=pg_dsn, table_name=table_name)
    try:
        store.add_texts(["PolarDB read-only nodes share the primary's storage.", "Tea is green."])
        chain = create_rag_chain(store, ChatQwen(model="Qwen/Qwen3-8B", base_url=url), k=1,
                                 score_threshold=None)  # fmt: skip
        out = chain.invoke("What do PolarDB read-only nodes share?")
        assert out["context"][0].page_content.startswith("PolarDB") and out["answer"]
        paths = {r.path for r in dashscope_emulator.requests}
        assert paths <= {"/vllm/v1/embeddings", "/vllm/v1/chat/completions"}
    finally:
        store.store.drop()
    # the CLI: no DashScope key needed for a self-hosted server
    monkeypatch.delenv("DASHSCOPE_API_KEY")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("PolarDB scales reads with read-only nodes.", encoding="utf-8")
    base = ["--dsn", pg_dsn, "--table", table_name + "_cli", "--base-url", url,
            "--embedding-model", "Qwen/Qwen3-Embedding-0.6B", "--chat-model", "Qwen/Qwen3-8B",
            "--threshold", "none"]  # fmt: skip
    try:
        assert main([*base, "ingest", str(docs), "--index", "none"]) == 0
        assert main([*base, "ask", "How does PolarDB scale reads?"]) == 0
        out = capsys.readouterr().out
        assert "a.md" in out
        asks = [r for r in dashscope_emulator.requests if r.path == "/vllm/v1/chat/completions"]
        assert asks and asks[-1].headers.get("authorization") == "Bearer EMPTY"
    finally:
        from qwen_pg_integrations.pg import PGStore

        PGStore(pg_dsn, table_name=table_name + "_cli").drop()
