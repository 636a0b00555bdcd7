"""Agent tools: LangChain (bind_tools, create_agent), LlamaIndex (FunctionAgent); emulator."""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain_core.messages import AIMessage, ToolMessage

from qwen_pg_integrations.langchain import (
    ChatQwen,
    DashScopeEmbeddings,
    PGVectorStore,
    create_rag_chain,
)
from qwen_pg_integrations.langchain.tools import create_answer_tool, create_search_tool
from qwen_pg_integrations.rag import NO_CONTEXT_ANSWERS
from qwen_pg_integrations.testing import DashScopeEmulator, ScriptedReply

TEXTS = [
    "pgvector supports HNSW and IVFFlat indexes.",
    "PolarDB separates compute and storage.",
    "通义千问是阿里云研发的大语言模型。",
]


@pytest.fixture
def store(dashscope_emulator: DashScopeEmulator, pg_dsn: str, table_name: str) -> PGVectorStore:
    s = PGVectorStore(DashScopeEmbeddings(), connection=pg_dsn, table_name=table_name)
    s.add_texts(TEXTS, metadatas=[{"source": f"doc{i}.md"} for i in range(len(TEXTS))])
    dashscope_emulator.clear_requests()
    return s


def _generations(emu: DashScopeEmulator) -> list[Any]:
    return [r for r in emu.requests if r.endpoint == "generation"]


def test_search_tool_returns_numbered_passages_and_documents(store: PGVectorStore) -> None:
    tool = create_search_tool(store, k=2, score_threshold=0.5)
    message = tool.invoke(
        {"type": "tool_call", "id": "c1", "name": tool.name, "args": {"query": "pgvector indexes"}}
    )
    assert isinstance(message, ToolMessage)
    assert message.content.startswith("[1] source: doc0.md (score ")  # type: ignore[union-attr]
    assert message.artifact[0].metadata["source"] == "doc0.md"
    assert all(d.metadata["score"] >= 0.2 for d in message.artifact)
    assert tool.invoke({"query": "bake sourdough bread"}) == (
        "No passage in the knowledge base is relevant enough to this query."
    )


async def test_search_tool_async(store: PGVectorStore) -> None:
    tool = create_search_tool(store, k=1)
    text = await tool.ainvoke({"query": "PolarDB storage"})
    assert "PolarDB separates compute and storage." in text


def test_tools_bind_to_chat_qwen_with_their_schemas(
    store: PGVectorStore, dashscope_emulator: DashScopeEmulator
) -> None:
    search = create_search_tool(store)
    answer = create_answer_tool(create_rag_chain(store, ChatQwen()))
    llm = ChatQwen().bind_tools([search, answer])
    reply = llm.invoke("Please search_knowledge_base for pgvector indexes")
    assert isinstance(reply, AIMessage)
    assert reply.tool_calls[0]["name"] == "search_knowledge_base"
    assert isinstance(reply.tool_calls[0]["args"]["query"], str)
    tools = _generations(dashscope_emulator)[0].body["parameters"]["tools"]
    by_name = {t["function"]["name"]: t["function"] for t in tools}
    assert set(by_name) == {"search_knowledge_base", "ask_knowledge_base"}
    assert by_name["search_knowledge_base"]["parameters"]["required"] == ["query"]
    assert by_name["ask_knowledge_base"]["parameters"]["required"] == ["question"]


def test_langchain_agent_calls_the_search_tool_and_answers_from_it(
    store: PGVectorStore, dashscope_emulator: DashScopeEmulator
) -> None:
    from langchain.agents import create_agent

    dashscope_emulator.script(
        ScriptedReply(
            tool_calls=[{"name": "search_knowledge_base", "arguments": {"query": "pgvector"}}]
        )
    )
    agent = create_agent(ChatQwen(), tools=[create_search_tool(store, k=1)])
    result = agent.invoke({"messages": [("user", "Which indexes does pgvector offer?")]})
    messages = result["messages"]
    tool_message = next(m for m in messages if isinstance(m, ToolMessage))
    assert "pgvector supports HNSW and IVFFlat indexes." in tool_message.content
    final = messages[-1]
    assert isinstance(final, AIMessage) and not final.tool_calls
    assert "pgvector supports HNSW and IVFFlat indexes." in final.content
    # the second model call saw the tool result
    second = _generations(dashscope_emulator)[1].body["input"]["messages"]
    assert second[-1]["role"] == "tool" and "HNSW" in second[-1]["content"]


def test_langchain_agent_answer_tool_passes_the_no_context_answer_through(
    store: PGVectorStore, dashscope_emulator: DashScopeEmulator
) -> None:
    from langchain.agents import create_agent

    chain = create_rag_chain(store, ChatQwen(), score_threshold=0.95)
    dashscope_emulator.script(
        ScriptedReply(
            tool_calls=[
                {"name": "ask_knowledge_base", "arguments": {"question": "How to bake bread?"}}
            ]
        )
    )
    agent = create_agent(ChatQwen(), tools=[create_answer_tool(chain)])
    result = agent.invoke({"messages": [("user", "How do I bake bread?")]})
    tool_message = next(m for m in result["messages"] if isinstance(m, ToolMessage))
    assert tool_message.content == NO_CONTEXT_ANSWERS["en"]
    # the agent's model was called twice; the chain's model never (nothing above threshold)
    assert len(_generations(dashscope_emulator)) == 2


def test_answer_tool_lists_sources_after_the_answer(store: PGVectorStore) -> None:
    tool = create_answer_tool(create_rag_chain(store, ChatQwen(), k=1))
    message = tool.invoke(
        {"type": "tool_call", "id": "c2", "name": tool.name, "args": {"question": "PolarDB?"}}
    )
    answer, _, sources = str(message.content).partition("\n\nSources: ")
    assert answer.endswith("PolarDB separates compute and storage.")
    assert sources.startswith("[1] doc1.md (")
    assert message.artifact["context"][0].metadata["source"] == "doc1.md"


async def test_llama_index_function_agent_uses_the_query_engine_tool(
    dashscope_emulator: DashScopeEmulator, pg_dsn: str, table_name: str
) -> None:
    from llama_index.core import VectorStoreIndex
    from llama_index.core.agent.workflow import FunctionAgent
    from llama_index.core.schema import TextNode

    from qwen_pg_integrations.llama_index import DashScopeEmbedding, Qwen
    from qwen_pg_integrations.llama_index import PGVectorStore as LIStore
    from qwen_pg_integrations.llama_index.query_engine import create_query_engine
    from qwen_pg_integrations.llama_index.tools import (
        create_query_engine_tool,
    )
    from qwen_pg_integrations.llama_index.tools import (
        create_search_tool as li_search_tool,
    )

    index = VectorStoreIndex.from_vector_store(
        LIStore(connection=pg_dsn, table_name=table_name, embed_dim=1024),
        embed_model=DashScopeEmbedding(),
    )
    index.insert_nodes(
        [TextNode(text=t, metadata={"source": f"d{i}"}) for i, t in enumerate(TEXTS)]
    )
    engine = create_query_engine(index, Qwen(), similarity_top_k=1)
    tools = [create_query_engine_tool(engine), li_search_tool(index, similarity_top_k=1)]
    assert (
        li_search_tool(index, similarity_top_k=1)
        .call(query="PolarDB")
        .content.startswith("[1] source: d1")
    )
    dashscope_emulator.clear_requests()
    dashscope_emulator.script(
        ScriptedReply(
            tool_calls=[{"name": "ask_knowledge_base", "arguments": {"input": "PolarDB storage?"}}]
        )
    )
    agent = FunctionAgent(tools=tools, llm=Qwen())
    response = await agent.run(user_msg="How does PolarDB store data?")
    assert "PolarDB separates compute and storage." in str(response)
    calls = _generations(dashscope_emulator)
    offered = {t["function"]["name"] for t in calls[0].body["parameters"]["tools"]}
    assert offered == {"ask_knowledge_base", "search_knowledge_base"}
    # the query engine's own LLM call carries the grounded prompt
    prompts = [json.dumps(c.body["input"]["messages"], ensure_ascii=False) for c in calls]
    assert any("[1] source: d1" in p for p in prompts)
