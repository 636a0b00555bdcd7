"""An agent with knowledge-base tools: LangChain's create_agent + ChatQwen + PGVectorStore.

The model decides when to search; the tools return numbered passages with scores (search) or a
grounded answer with sources (ask). Run: ``python examples/agent_with_tools.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from langchain.agents import create_agent
from langchain_core.messages import AIMessage, ToolMessage

from _common import corpus_chunks, dsn, table
from qwen_pg_integrations.langchain import (
    ChatQwen,
    DashScopeEmbeddings,
    PGVectorStore,
    create_rag_chain,
)
from qwen_pg_integrations.langchain.tools import create_answer_tool, create_search_tool


def main() -> None:
    store = PGVectorStore(
        DashScopeEmbeddings(), connection=dsn(), table_name=table("example_agent")
    )
    chunks = corpus_chunks()
    store.add_texts(
        [c.content for c in chunks],
        metadatas=[c.metadata for c in chunks],
        ids=[c.id for c in chunks],
    )

    llm = ChatQwen(model="qwen-plus")
    tools = [
        create_search_tool(store, k=3, score_threshold=0.5),
        create_answer_tool(create_rag_chain(store, llm, k=3, score_threshold=0.5)),
    ]
    agent = create_agent(
        llm,
        tools=tools,
        system_prompt="Answer questions about databases and Qwen using the knowledge base tools.",
    )
    question = "Search the knowledge base: which vector indexes does pgvector offer?"
    result = agent.invoke({"messages": [("user", question)]})
    for message in result["messages"]:
        if isinstance(message, AIMessage) and message.tool_calls:
            for call in message.tool_calls:
                print(f"agent calls {call['name']}({call['args']})")
        elif isinstance(message, ToolMessage):
            print(f"tool {message.name} returned:\n{message.content}")
    print("final answer:", result["messages"][-1].content)


if __name__ == "__main__":
    main()
