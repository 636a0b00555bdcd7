"""Agent tools over a knowledge base: search it, or get a grounded answer with sources.

Both are ordinary LangChain tools: pass them to ``ChatQwen().bind_tools([...])`` or to
``langchain.agents.create_agent(model, tools=[...])``. They return text for the model and the
Documents (or the full chain output) as the tool message's ``artifact``.

Example::

    from langchain.agents import create_agent
    from qwen_pg_integrations.langchain import ChatQwen, PGVectorStore, DashScopeEmbeddings
    from qwen_pg_integrations.langchain.tools import create_search_tool

    store = PGVectorStore(DashScopeEmbeddings(), table_name="docs")
    agent = create_agent(ChatQwen(), tools=[create_search_tool(store, score_threshold=0.5)])
    agent.invoke({"messages": [("user", "Which indexes does pgvector offer?")]})
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.tools import BaseTool, StructuredTool
from langchain_core.vectorstores import VectorStore
from pydantic import BaseModel, Field

from ..rag import RetrievedChunk, detect_language, format_context, select_chunks, source_label
from ..rag.flow import arerank_chunks, fetch_size, rerank_chunks, reranker_of
from .rag import LangChainRetrieval, RagChain, chunk_to_document

__all__ = ["create_answer_tool", "create_search_tool"]

SEARCH_DESCRIPTION = (
    "Search the knowledge base (documents stored in PostgreSQL) for passages relevant to a "
    "query. Returns numbered passages with their source and relevance score. Use it for any "
    "question the documents may answer; write the query in the language of the documents."
)
ANSWER_DESCRIPTION = (
    "Answer a question from the knowledge base. Returns an answer grounded in the stored "
    "documents, with numbered sources, or says that the knowledge base has nothing on it."
)
_NOTHING = {
    "en": "No passage in the knowledge base is relevant enough to this query.",
    "zh": "知识库中没有与该查询足够相关的内容。",
}


class SearchInput(BaseModel):
    """Arguments of the search tool."""

    query: str = Field(description="what to look for, as a short question or key phrase")


class AnswerInput(BaseModel):
    """Arguments of the answer tool."""

    question: str = Field(description="the question to answer from the knowledge base")


def _render(query: str, chunks: tuple[RetrievedChunk, ...]) -> str:
    language = detect_language(query)
    return format_context(chunks, language) if chunks else _NOTHING[language]


def create_search_tool(
    store_or_retriever: VectorStore | BaseRetriever,
    *,
    k: int = 4,
    score_threshold: float | None = None,
    search_kwargs: Mapping[str, Any] | None = None,
    name: str = "search_knowledge_base",
    description: str = SEARCH_DESCRIPTION,
    rerank: Any = None,
    fetch_k: int | None = None,
) -> BaseTool:
    """A tool that returns the passages most relevant to a query (above the threshold).

    Args:
        store_or_retriever: a LangChain vector store or retriever, as for ``create_rag_chain``.
        k: passages to return at most.
        score_threshold: drop passages whose relevance score is below this.
        search_kwargs: extra search arguments (``filter``, ...).
        name: the tool name the model sees.
        description: the tool description the model sees.
        rerank: rerank ``fetch_k`` candidates first (``True``, a ``DashScopeRerank`` or a
            ``RerankClient``); the threshold then applies to rerank scores.
        fetch_k: candidates to rerank (default ``max(4 * k, 20)``).

    The tool message content is the numbered passages; its ``artifact`` the Documents (with
    ``metadata["score"]``).
    """
    retrieval = LangChainRetrieval(store_or_retriever, search_kwargs)
    reranker = reranker_of(rerank)
    fetch = fetch_size(k, reranker, fetch_k)

    def search(query: str) -> tuple[str, list[Document]]:
        found = rerank_chunks(reranker, query, retrieval.retrieve(query, fetch), k)
        chunks = select_chunks(found, score_threshold, k)
        return _render(query, chunks), [chunk_to_document(c) for c in chunks]

    async def asearch(query: str) -> tuple[str, list[Document]]:
        found = await arerank_chunks(reranker, query, await retrieval.aretrieve(query, fetch), k)
        chunks = select_chunks(found, score_threshold, k)
        return _render(query, chunks), [chunk_to_document(c) for c in chunks]

    return StructuredTool.from_function(
        func=search,
        coroutine=asearch,
        name=name,
        description=description,
        args_schema=SearchInput,
        response_format="content_and_artifact",
    )


def _answer_text(output: Mapping[str, Any]) -> str:
    docs: list[Document] = output["context"]
    if not docs:
        return str(output["answer"])
    word = "来源" if output.get("language") == "zh" else "Sources"
    sources = "; ".join(
        f"[{n}] {source_label(RetrievedChunk(d.page_content, None, d.metadata, d.id))}"
        + (f" ({d.metadata['score']:.2f})" if "score" in d.metadata else "")
        for n, d in enumerate(docs, start=1)
    )
    return f"{output['answer']}\n\n{word}: {sources}"


def create_answer_tool(
    chain: RagChain,
    *,
    name: str = "ask_knowledge_base",
    description: str = ANSWER_DESCRIPTION,
) -> BaseTool:
    """A tool that runs a RAG chain (from ``create_rag_chain``) and returns its answer.

    The content is the answer followed by its numbered sources; the ``artifact`` is the chain's
    whole output (``answer``, ``context``, ``no_context``, ...). When nothing passes the chain's
    threshold the content is the chain's "nothing found" answer, so the agent does not guess.
    """

    def answer(question: str) -> tuple[str, dict[str, Any]]:
        output = chain.invoke(question)
        return _answer_text(output), output

    async def aanswer(question: str) -> tuple[str, dict[str, Any]]:
        output = await chain.ainvoke(question)
        return _answer_text(output), output

    return StructuredTool.from_function(
        func=answer,
        coroutine=aanswer,
        name=name,
        description=description,
        args_schema=AnswerInput,
        response_format="content_and_artifact",
    )
