"""create_query_engine on the LlamaIndex PGVectorStore (real PostgreSQL) and Qwen (emulator)."""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.core import VectorStoreIndex
from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.base.response.schema import (
    AsyncStreamingResponse,
    Response,
    StreamingResponse,
)
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import ExactMatchFilter, MetadataFilters

from qwen_pg_integrations.langchain import DashScopeEmbeddings
from qwen_pg_integrations.langchain import PGVectorStore as LCStore
from qwen_pg_integrations.llama_index import DashScopeEmbedding, PGVectorStore, Qwen
from qwen_pg_integrations.llama_index.query_engine import create_query_engine
from qwen_pg_integrations.rag import NO_CONTEXT_ANSWERS
from qwen_pg_integrations.testing import DashScopeEmulator, ScriptedReply

TEXTS = {
    "pgvector.md": "pgvector supports HNSW and IVFFlat indexes.",
    "polardb.md": "PolarDB separates compute and storage.",
    "qwen_zh.md": "通义千问是阿里云研发的大语言模型。",
}


@pytest.fixture
def index(dashscope_emulator: DashScopeEmulator, pg_dsn: str, table_name: str) -> VectorStoreIndex:
    store = PGVectorStore(connection=pg_dsn, table_name=table_name, embed_dim=1024)
    nodes = [TextNode(text=t, metadata={"source": s}) for s, t in TEXTS.items()]
    built = VectorStoreIndex.from_vector_store(store, embed_model=DashScopeEmbedding())
    built.insert_nodes(nodes)
    dashscope_emulator.clear_requests()
    return built


def _generations(emu: DashScopeEmulator) -> list[Any]:
    return [r for r in emu.requests if r.endpoint == "generation"]


def test_query_answers_with_source_nodes_and_scores(
    index: VectorStoreIndex, dashscope_emulator: DashScopeEmulator
) -> None:
    engine = create_query_engine(index, Qwen(), similarity_top_k=2, similarity_cutoff=0.5)
    response = engine.query("Which indexes does pgvector support?")
    assert isinstance(response, Response)
    assert str(response) == "Based on the context: pgvector supports HNSW and IVFFlat indexes."
    top = response.source_nodes[0]
    assert top.node.metadata["source"] == "pgvector.md" and top.score is not None
    assert top.score >= 0.2
    assert response.metadata is not None and response.metadata["no_context"] is False
    sent = _generations(dashscope_emulator)[0].body["input"]["messages"]
    assert sent[1]["content"].startswith("Sources:\n\n[1] source: pgvector.md (score ")


def test_nothing_above_cutoff_answers_without_calling_the_llm(
    index: VectorStoreIndex, dashscope_emulator: DashScopeEmulator
) -> None:
    engine = create_query_engine(index, Qwen(), similarity_cutoff=0.9)
    response = engine.query("今天北京的天气怎么样？")
    assert str(response) == NO_CONTEXT_ANSWERS["zh"]
    assert response.source_nodes == []
    assert response.metadata is not None
    assert response.metadata["no_context"] is True and response.metadata["model_called"] is False
    assert _generations(dashscope_emulator) == []


def test_same_answer_as_the_langchain_chain_on_the_same_table(
    index: VectorStoreIndex,
    dashscope_emulator: DashScopeEmulator,
    pg_dsn: str,
    table_name: str,
) -> None:
    from qwen_pg_integrations.langchain import ChatQwen, create_rag_chain

    table = table_name  # the fixture's index was built on this table
    lc_store = LCStore(DashScopeEmbeddings(), connection=pg_dsn, table_name=table)
    question = "通义千问是什么？"
    chain_out = create_rag_chain(lc_store, ChatQwen(), k=2, score_threshold=0.5).invoke(question)
    engine = create_query_engine(index, Qwen(), similarity_top_k=2, similarity_cutoff=0.5)
    response = engine.query(question)
    assert str(response) == chain_out["answer"]
    lc_prompt, li_prompt = (g.body["input"]["messages"] for g in _generations(dashscope_emulator))
    assert lc_prompt == li_prompt  # one core, byte-identical prompts


def test_streaming_response_streams_tokens_with_sources_known_first(
    index: VectorStoreIndex, dashscope_emulator: DashScopeEmulator
) -> None:
    engine = create_query_engine(index, Qwen(), similarity_top_k=1, streaming=True)
    response = engine.query("PolarDB storage?")
    assert isinstance(response, StreamingResponse)
    assert response.source_nodes[0].node.metadata["source"] == "polardb.md"
    tokens = list(response.response_gen)
    assert len(tokens) > 3
    assert "".join(tokens) == "Based on the context: PolarDB separates compute and storage."


async def test_async_query_and_async_streaming(
    index: VectorStoreIndex, dashscope_emulator: DashScopeEmulator
) -> None:
    engine = create_query_engine(index, Qwen(), similarity_top_k=1)
    response = await engine.aquery("PolarDB storage?")
    assert str(response).endswith("PolarDB separates compute and storage.")
    streaming = create_query_engine(index, Qwen(), similarity_top_k=1, streaming=True)
    aresponse = await streaming.aquery("PolarDB storage?")
    assert isinstance(aresponse, AsyncStreamingResponse)
    text = "".join([t async for t in aresponse.async_response_gen()])
    assert text == str(response)


def test_chat_rewrites_the_follow_up_before_retrieval(
    index: VectorStoreIndex, dashscope_emulator: DashScopeEmulator
) -> None:
    dashscope_emulator.script(ScriptedReply(text="Which indexes does pgvector support?"))
    engine = create_query_engine(index, Qwen(), similarity_top_k=1)
    history = [
        ChatMessage(role=MessageRole.USER, content="Tell me about pgvector."),
        ChatMessage(role=MessageRole.ASSISTANT, content="A PostgreSQL extension."),
    ]
    response = engine.chat("Which indexes does it support?", chat_history=history)
    assert response.metadata is not None
    assert response.metadata["standalone_question"] == "Which indexes does pgvector support?"
    assert response.source_nodes[0].node.metadata["source"] == "pgvector.md"


def test_bare_store_with_embed_model_and_filters(
    index: VectorStoreIndex, dashscope_emulator: DashScopeEmulator
) -> None:
    filters = MetadataFilters(filters=[ExactMatchFilter(key="source", value="qwen_zh.md")])
    engine = create_query_engine(
        index.vector_store,  # type: ignore[arg-type]
        Qwen(),
        embed_model=DashScopeEmbedding(),
        filters=filters,
    )
    response = engine.query("PolarDB storage?")
    assert [n.node.metadata["source"] for n in response.source_nodes] == ["qwen_zh.md"]
