"""Rerank inside the RAG flow: the LangChain chain, the LlamaIndex query engine and
``qwen-pg ask --rerank``, on real PostgreSQL with the unchanged SDK against the emulator.

More candidates are fetched (``fetch_k``), reranked in one call, and the threshold applies to
the rerank scores; the retrieval score stays in the chunk's metadata."""

from __future__ import annotations

from pathlib import Path

import pytest
from llama_index.core.schema import TextNode

from qwen_pg_integrations.cli import main
from qwen_pg_integrations.dashscope import RerankClient
from qwen_pg_integrations.errors import InvalidInputError
from qwen_pg_integrations.langchain import (
    ChatQwen,
    DashScopeEmbeddings,
    DashScopeRerank,
    PGVectorStore,
    create_rag_chain,
)
from qwen_pg_integrations.llama_index import DashScopeEmbedding, Qwen, create_query_engine
from qwen_pg_integrations.llama_index import PGVectorStore as LlamaStore
from qwen_pg_integrations.rag import RagConfig
from qwen_pg_integrations.testing import DashScopeEmulator

TEXTS = [
    "Qwen is a family of large language models made by Alibaba Cloud.",
    "PolarDB separates compute and storage.",
    "pgvector adds HNSW and IVFFlat vector indexes to PostgreSQL.",
    "The weather in Hangzhou is mild in spring.",
    "HNSW indexes give fast approximate vector search in pgvector.",
    *[f"Unrelated note number {i} about gardening and tea." for i in range(25)],
]
QUESTION = "Which vector indexes does pgvector add to PostgreSQL?"


def _calls(emu: DashScopeEmulator, endpoint: str) -> int:
    return len(emu.requests_for(endpoint))


def test_langchain_chain_reranks_fetch_k_candidates_in_one_call(
    dashscope_emulator: DashScopeEmulator, pg_dsn: str, table_name: str
) -> None:
    store = PGVectorStore(DashScopeEmbeddings(), connection=pg_dsn, table_name=table_name)
    store.add_texts(TEXTS, metadatas=[{"n": i} for i in range(len(TEXTS))])
    dashscope_emulator.clear_requests()
    chain = create_rag_chain(store, ChatQwen(), k=2, rerank=DashScopeRerank(), score_threshold=0.3)
    out = chain.invoke(QUESTION)
    assert [d.metadata["n"] for d in out["context"]] == [2, 4]
    assert _calls(dashscope_emulator, "rerank") == 1  # one extra call per question
    (rerank,) = dashscope_emulator.requests_for("rerank")
    assert len(rerank.body["input"]["documents"]) == 20  # max(4k, 20) candidates
    assert rerank.body["parameters"]["top_n"] == 2
    first = out["context"][0].metadata
    assert first["score"] >= 0.3 and "retrieval_score" in first
    # the threshold is on rerank scores: nothing on topic -> no model call
    gens = _calls(dashscope_emulator, "generation")
    out = chain.invoke("Tell me about quantum chromodynamics lattice simulations")
    assert out["no_context"] and _calls(dashscope_emulator, "generation") == gens


async def test_langchain_chain_async_rerank(
    dashscope_emulator: DashScopeEmulator, pg_dsn: str, table_name: str
) -> None:
    store = PGVectorStore(DashScopeEmbeddings(), connection=pg_dsn, table_name=table_name)
    await store.aadd_texts(TEXTS, metadatas=[{"n": i} for i in range(len(TEXTS))])
    chain = create_rag_chain(store, ChatQwen(), k=2, rerank=True, fetch_k=8)
    out = await chain.ainvoke(QUESTION)
    assert [d.metadata["n"] for d in out["context"]] == [2, 4]
    (rerank,) = dashscope_emulator.requests_for("rerank")
    assert len(rerank.body["input"]["documents"]) == 8


def test_llama_index_query_engine_reranks(
    dashscope_emulator: DashScopeEmulator, pg_dsn: str, table_name: str
) -> None:
    store = LlamaStore(connection=pg_dsn, table_name=table_name, embed_model=DashScopeEmbedding())
    store.add([_node(t, i) for i, t in enumerate(TEXTS)])
    engine = create_query_engine(
        store, Qwen(), embed_model=DashScopeEmbedding(), similarity_top_k=2, rerank=True
    )
    response = engine.query(QUESTION)
    assert [n.node.metadata["n"] for n in response.source_nodes] == [2, 4]
    (rerank,) = dashscope_emulator.requests_for("rerank")
    assert len(rerank.body["input"]["documents"]) == 20


def _node(text: str, i: int) -> TextNode:
    node = TextNode(text=text, metadata={"n": i})
    node.embedding = DashScopeEmbedding().get_text_embedding(text)
    return node


def test_rag_config_checks() -> None:
    with pytest.raises(InvalidInputError, match="fetch_k"):
        RagConfig(k=5, fetch_k=3)
    with pytest.raises(InvalidInputError, match="reranker must be"):
        RagConfig(reranker="qwen3-rerank")
    cfg = RagConfig(k=3, reranker=RerankClient(api_key="sk-test"))
    assert cfg.retrieve_k == 20 and RagConfig(k=3).retrieve_k == 3


def test_cli_ask_with_rerank(
    dashscope_emulator: DashScopeEmulator,
    pg_dsn: str,
    table_name: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for i, text in enumerate(TEXTS):
        (docs / f"d{i}.md").write_text(text, encoding="utf-8")
    base = ("--dsn", pg_dsn, "--table", table_name)
    assert main([*base, "ingest", str(docs)]) == 0
    capsys.readouterr()
    dashscope_emulator.clear_requests()
    code = main([*base, "ask", QUESTION, "--rerank", "--fetch-k", "10", "-k", "2"])
    out = capsys.readouterr().out
    assert code == 0
    answer, _, sources = out.partition("sources")
    assert "pgvector adds HNSW and IVFFlat vector indexes" in answer
    assert "d2.md" in sources
    (rerank,) = dashscope_emulator.requests_for("rerank")
    assert rerank.body["model"] == "qwen3-rerank"
    assert len(rerank.body["input"]["documents"]) == 10
    code = main([*base, "ask", QUESTION, "--rerank", "gte-rerank-v2"])
    capsys.readouterr()
    assert dashscope_emulator.requests_for("rerank")[-1].body["model"] == "gte-rerank-v2"


def test_search_tools_rerank(
    dashscope_emulator: DashScopeEmulator, pg_dsn: str, table_name: str
) -> None:
    from qwen_pg_integrations.langchain.tools import create_search_tool as lc_tool
    from qwen_pg_integrations.llama_index.tools import create_search_tool as li_tool

    store = PGVectorStore(DashScopeEmbeddings(), connection=pg_dsn, table_name=table_name)
    store.add_texts(TEXTS, metadatas=[{"n": i} for i in range(len(TEXTS))])
    dashscope_emulator.clear_requests()
    tool = lc_tool(store, k=2, rerank=True, score_threshold=0.3)
    message = tool.invoke(
        {"type": "tool_call", "id": "c1", "name": tool.name, "args": {"query": QUESTION}}
    )
    assert [d.metadata["n"] for d in message.artifact] == [2, 4]
    assert len(dashscope_emulator.requests_for("rerank")) == 1

    llama = LlamaStore(connection=pg_dsn, table_name=table_name, embed_model=DashScopeEmbedding())
    ftool = li_tool(llama, similarity_top_k=1, embed_model=DashScopeEmbedding(), rerank=True)
    text = ftool.call(query=QUESTION).content
    assert "pgvector adds HNSW and IVFFlat" in text and "gardening" not in text
    assert len(dashscope_emulator.requests_for("rerank")) == 2
