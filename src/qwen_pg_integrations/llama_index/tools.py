"""LlamaIndex agent tools over a knowledge base: a grounded-answer tool and a search tool.

Example::

    from llama_index.core.agent.workflow import FunctionAgent
    from qwen_pg_integrations.llama_index import Qwen
    from qwen_pg_integrations.llama_index.query_engine import create_query_engine
    from qwen_pg_integrations.llama_index.tools import create_query_engine_tool

    engine = create_query_engine(index, Qwen(), similarity_cutoff=0.5)
    agent = FunctionAgent(tools=[create_query_engine_tool(engine)], llm=Qwen())
"""

from __future__ import annotations

from typing import Any

from llama_index.core.base.base_query_engine import BaseQueryEngine
from llama_index.core.schema import QueryBundle
from llama_index.core.tools import FunctionTool, QueryEngineTool

from ..rag import RetrievedChunk, detect_language, format_context, select_chunks
from ..rag.flow import arerank_chunks, fetch_size, rerank_chunks, reranker_of
from .query_engine import _Nodes, _retriever

__all__ = ["create_query_engine_tool", "create_search_tool"]

ANSWER_DESCRIPTION = (
    "Answer a question from the knowledge base (documents stored in PostgreSQL). Input: the "
    "question. Returns an answer grounded in the documents, or says the knowledge base has "
    "nothing on it."
)
SEARCH_DESCRIPTION = (
    "Search the knowledge base (documents stored in PostgreSQL) for passages relevant to a "
    "query. Returns numbered passages with their source and relevance score."
)
_NOTHING = {
    "en": "No passage in the knowledge base is relevant enough to this query.",
    "zh": "知识库中没有与该查询足够相关的内容。",
}


def create_query_engine_tool(
    query_engine: BaseQueryEngine,
    *,
    name: str = "ask_knowledge_base",
    description: str = ANSWER_DESCRIPTION,
) -> QueryEngineTool:
    """A ``QueryEngineTool`` over a query engine (e.g. from ``create_query_engine``)."""
    return QueryEngineTool.from_defaults(query_engine, name=name, description=description)


def create_search_tool(
    store_or_index: Any,
    *,
    similarity_top_k: int = 4,
    similarity_cutoff: float | None = None,
    embed_model: Any = None,
    name: str = "search_knowledge_base",
    description: str = SEARCH_DESCRIPTION,
    rerank: Any = None,
    fetch_k: int | None = None,
) -> FunctionTool:
    """A ``FunctionTool`` returning the passages above the cutoff, numbered, with scores.

    ``store_or_index`` is what ``create_query_engine`` takes (vector store + ``embed_model``,
    index, or retriever). ``rerank`` (``True``, a ``DashScopeRerank`` or a ``RerankClient``)
    reranks ``fetch_k`` candidates first (default ``max(4 * k, 20)``); the cutoff then applies
    to rerank scores.
    """
    k = similarity_top_k
    reranker = reranker_of(rerank)
    fetch = fetch_size(k, reranker, fetch_k)
    retriever = _retriever(store_or_index, fetch, embed_model, None, {})

    def render(query: str, chunks: tuple[RetrievedChunk, ...]) -> str:
        chunks = select_chunks(chunks, similarity_cutoff, k)
        language = detect_language(query)
        return format_context(chunks, language) if chunks else _NOTHING[language]

    def search_knowledge_base(query: str) -> str:
        """Search the knowledge base for passages relevant to ``query``."""
        found = _Nodes().chunks(retriever.retrieve(QueryBundle(query)), fetch)
        return render(query, rerank_chunks(reranker, query, found, k))

    async def asearch_knowledge_base(query: str) -> str:
        """Search the knowledge base for passages relevant to ``query``."""
        found = _Nodes().chunks(await retriever.aretrieve(QueryBundle(query)), fetch)
        return render(query, await arerank_chunks(reranker, query, found, k))

    return FunctionTool.from_defaults(
        fn=search_knowledge_base,
        async_fn=asearch_knowledge_base,
        name=name,
        description=description,
    )
