"""The usual LlamaIndex recipes over our adapters: emulator for DashScope, real PostgreSQL.

Query engine with source nodes, chat engine, FunctionAgent with a QueryEngineTool, and an
IngestionPipeline writing through our embedding into our store.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from llama_index.core import Document, Settings, StorageContext, VectorStoreIndex
from llama_index.core.agent.workflow import FunctionAgent, ReActAgent
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.postprocessor import SimilarityPostprocessor
from llama_index.core.tools import QueryEngineTool

from qwen_pg_integrations.llama_index import DashScopeEmbedding, PGVectorStore, Qwen
from qwen_pg_integrations.testing import DashScopeEmulator, ScriptedReply

# llama-index's workflow engine inspects agents with pydantic-deprecated attributes (not ours).
pytestmark = pytest.mark.filterwarnings(
    "ignore::pydantic.warnings.PydanticDeprecatedSince20",
    "ignore::pydantic.warnings.PydanticDeprecatedSince211",
)

DIM = 256
FACTS = [
    Document(
        text="PolarDB for PostgreSQL supports the pgvector extension for vector search. "
        "HNSW indexes keep queries fast.",
        metadata={"source": "polardb.md"},
        id_="doc-polardb",
    ),
    Document(
        text="通义千问（Qwen）是阿里云推出的大语言模型。它可以通过 DashScope 调用。",
        metadata={"source": "qwen.md"},
        id_="doc-qwen",
    ),
    Document(
        text="The cafeteria serves noodles on Tuesdays.",
        metadata={"source": "lunch.md"},
        id_="doc-lunch",
    ),
]


@pytest.fixture
def embed(dashscope_emulator: DashScopeEmulator) -> DashScopeEmbedding:
    return DashScopeEmbedding(model_name="text-embedding-v4", dimensions=DIM)


@pytest.fixture
def store(pg_dsn: str) -> Iterator[PGVectorStore]:
    s = PGVectorStore(connection=pg_dsn, table_name=f"li_{uuid.uuid4().hex[:10]}", embed_dim=DIM)
    yield s
    s.client.drop()


@pytest.fixture
def index(store: PGVectorStore, embed: DashScopeEmbedding) -> VectorStoreIndex:
    IngestionPipeline(
        transformations=[SentenceSplitter(chunk_size=64, chunk_overlap=0), embed],
        vector_store=store,
    ).run(documents=FACTS)
    # A fresh index over the filled table: nothing but the store holds the nodes.
    return VectorStoreIndex.from_vector_store(store, embed_model=embed)


def _last_prompt(emu: DashScopeEmulator) -> str:
    messages = [r for r in emu.requests if r.endpoint == "generation"][-1].body["input"]["messages"]
    return "\n".join(m["content"] for m in messages)


def test_ingestion_pipeline_writes_nodes_with_our_embedding(
    store: PGVectorStore, embed: DashScopeEmbedding, dashscope_emulator: DashScopeEmulator
) -> None:
    pipeline = IngestionPipeline(
        transformations=[SentenceSplitter(chunk_size=64, chunk_overlap=0), embed],
        vector_store=store,
    )
    nodes = pipeline.run(documents=FACTS)
    assert store.client.count() == len(nodes) >= len(FACTS)
    embedding_bodies = [r.body for r in dashscope_emulator.requests if r.endpoint == "embedding"]
    assert {b["parameters"]["text_type"] for b in embedding_bodies} == {"document"}
    stored = store.get_nodes(node_ids=[n.node_id for n in nodes])
    assert {n.ref_doc_id for n in stored} == {"doc-polardb", "doc-qwen", "doc-lunch"}
    # Re-running the nodes through the store upserts instead of duplicating.
    store.add(nodes)
    assert store.client.count() == len(nodes)


async def test_ingestion_pipeline_async(store: PGVectorStore, embed: DashScopeEmbedding) -> None:
    pipeline = IngestionPipeline(
        transformations=[SentenceSplitter(chunk_size=64, chunk_overlap=0), embed],
        vector_store=store,
    )
    nodes = await pipeline.arun(documents=FACTS)
    assert await store.client.acount() == len(nodes)


def test_query_engine_answers_with_source_nodes(
    index: VectorStoreIndex, dashscope_emulator: DashScopeEmulator
) -> None:
    engine = index.as_query_engine(llm=Qwen(), similarity_top_k=2)
    response = engine.query("Which extension does PolarDB support for vector search?")
    assert "pgvector" in str(response)
    assert response.source_nodes
    top = response.source_nodes[0]
    assert top.node.metadata["source"] == "polardb.md" and top.node.ref_doc_id == "doc-polardb"
    assert top.score is not None and 0.0 < top.score <= 1.0
    assert "pgvector extension" in _last_prompt(dashscope_emulator)


def test_query_engine_in_chinese_with_hybrid_mode(index: VectorStoreIndex) -> None:
    engine = index.as_query_engine(llm=Qwen(), similarity_top_k=1, vector_store_query_mode="hybrid")
    response = engine.query("通义千问是什么？")
    assert response.source_nodes[0].node.metadata["source"] == "qwen.md"
    assert "阿里云" in str(response)


def test_similarity_cutoff_postprocessor_drops_unrelated_nodes(index: VectorStoreIndex) -> None:
    engine = index.as_query_engine(
        llm=Qwen(),
        similarity_top_k=3,
        node_postprocessors=[SimilarityPostprocessor(similarity_cutoff=0.5)],
    )
    response = engine.query("Which extension does PolarDB support for vector search?")
    sources = {n.node.metadata["source"] for n in response.source_nodes}
    assert "polardb.md" in sources and "lunch.md" not in sources


async def test_async_query_engine(index: VectorStoreIndex) -> None:
    response = await index.as_query_engine(llm=Qwen()).aquery("What keeps pgvector queries fast?")
    assert response.source_nodes and "HNSW" in str(response)


def test_chat_engine_answers_from_the_store(index: VectorStoreIndex) -> None:
    engine = index.as_chat_engine(llm=Qwen())
    first = engine.chat("Which extension does PolarDB support for vector search?")
    assert "pgvector" in str(first)
    assert first.source_nodes and first.source_nodes[0].node.metadata["source"] == "polardb.md"
    second = engine.chat("What keeps those queries fast?")
    assert str(second)
    assert len(engine.chat_history) == 4


def test_streaming_chat_engine(index: VectorStoreIndex) -> None:
    engine = index.as_chat_engine(llm=Qwen(), chat_mode="context")
    streamed = engine.stream_chat("Which extension does PolarDB support for vector search?")
    text = "".join(streamed.response_gen)
    assert "pgvector" in text and streamed.source_nodes


async def test_function_agent_with_query_engine_tool(
    index: VectorStoreIndex, dashscope_emulator: DashScopeEmulator
) -> None:
    tool = QueryEngineTool.from_defaults(
        index.as_query_engine(llm=Qwen(), similarity_top_k=1),
        name="company_docs",
        description="Answers questions about PolarDB, Qwen and the cafeteria.",
    )
    question = "Which extension does PolarDB support for vector search?"
    dashscope_emulator.script(
        ScriptedReply(
            tool_calls=[{"name": "company_docs", "arguments": json.dumps({"input": question})}],
            chunk_size=5,
        )
    )
    # then: the query engine's own answer (default policy), then the agent's final answer
    agent = FunctionAgent(tools=[tool], llm=Qwen())
    result = await agent.run(user_msg=question)
    assert "pgvector" in str(result)
    (call,) = result.tool_calls
    assert call.tool_name == "company_docs" and call.tool_kwargs == {"input": question}
    assert "pgvector" in call.tool_output.content


async def test_react_agent_with_qwen_calls_the_query_engine_tool_unscripted(
    index: VectorStoreIndex, dashscope_emulator: DashScopeEmulator
) -> None:
    """LlamaIndex's ReActAgent speaks a text protocol (Thought / Action / Action Input /
    Observation); the emulator's default policy answers it as Qwen does: it calls the tool
    the question needs, then answers from the observation."""
    tool = QueryEngineTool.from_defaults(
        index.as_query_engine(llm=Qwen(), similarity_top_k=1),
        name="company_docs",
        description="Answers questions about PolarDB, Qwen and the cafeteria.",
    )
    agent = ReActAgent(tools=[tool], llm=Qwen())
    result = await agent.run(user_msg="Which extension does PolarDB support for vector search?")
    (call,) = result.tool_calls
    assert call.tool_name == "company_docs"
    assert "PolarDB" in call.tool_kwargs["input"]
    assert "pgvector" in call.tool_output.content and "pgvector" in str(result)
    prompts = [r for r in dashscope_emulator.requests if r.endpoint == "generation"]
    react = [r for r in prompts if "Action Input:" in json.dumps(r.body, ensure_ascii=False)]
    assert len(react) == 2, "one step to call the tool, one to answer from the observation"


def test_settings_defaults_work_with_our_classes(
    store: PGVectorStore, embed: DashScopeEmbedding
) -> None:
    old_llm, old_embed = Settings._llm, Settings._embed_model
    try:
        Settings.llm, Settings.embed_model = Qwen(), embed
        index = VectorStoreIndex.from_documents(
            FACTS,
            storage_context=StorageContext.from_defaults(vector_store=store),
            transformations=[SentenceSplitter()],
        )
        assert "pgvector" in str(
            index.as_query_engine().query("Which extension does PolarDB support for vector search?")
        )
    finally:
        Settings._llm, Settings._embed_model = old_llm, old_embed


def test_ingestion_pipeline_upserts_changed_documents_through_the_docstore(
    store: PGVectorStore, embed: DashScopeEmbedding
) -> None:
    from llama_index.core.ingestion import DocstoreStrategy
    from llama_index.core.storage.docstore import SimpleDocumentStore

    pipeline = IngestionPipeline(
        transformations=[SentenceSplitter(chunk_size=64, chunk_overlap=0), embed],
        vector_store=store,
        docstore=SimpleDocumentStore(),
        docstore_strategy=DocstoreStrategy.UPSERTS,
    )
    pipeline.run(documents=FACTS)
    first = store.client.count()
    assert pipeline.run(documents=FACTS) == []  # unchanged: nothing re-embedded or re-written
    changed = Document(text="The cafeteria serves dumplings on Fridays.", id_="doc-lunch")
    pipeline.run(documents=[changed])
    # the old nodes of doc-lunch were deleted by ref_doc_id, the new one written
    assert store.client.count() == first
    from llama_index.core.vector_stores.types import VectorStoreQuery

    lunch = store.query(
        VectorStoreQuery(
            query_embedding=embed.get_query_embedding("cafeteria"),
            similarity_top_k=10,
            doc_ids=["doc-lunch"],
        )
    )
    assert [n.get_content() for n in lunch.nodes or []] == [changed.text]
