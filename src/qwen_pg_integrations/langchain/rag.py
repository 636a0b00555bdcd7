"""``create_rag_chain``: the core retrieval flow (:mod:`qwen_pg_integrations.rag`) as a Runnable.

This module only translates: LangChain documents and messages to the core's types and back. The
threshold, prompts, "nothing found" answer and follow-up rewriting live in the core.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForChainRun,
    CallbackManagerForChainRun,
)
from langchain_core.documents import Document
from langchain_core.language_models import BaseLanguageModel
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    convert_to_messages,
)
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import patch_config
from langchain_core.vectorstores import VectorStore, VectorStoreRetriever

from ..errors import InvalidInputError
from ..rag import (
    DEFAULT_NO_CONTEXT,
    RagConfig,
    RagPrompt,
    RagResult,
    RetrievedChunk,
    StreamContext,
    StreamToken,
    arun_flow,
    astream_flow,
    rag_flow,
    reranker_of,
    run_flow,
    stream_flow,
)
from ..types import ChatMessage

__all__ = ["RagChain", "create_rag_chain", "documents_to_chunks", "result_to_output"]

_SCORE_KEYS = ("score", "relevance_score", "similarity_score", "similarity")
_LC_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}


class LangChainRetrieval:
    """Turns a LangChain vector store or retriever into the core's ``retrieve(query, k)``.

    * a vector store, or its ``as_retriever()`` with ``search_type`` ``"similarity"`` or
      ``"similarity_score_threshold"``: the store's relevance scores (0..1);
    * ``as_retriever(search_type="hybrid")`` of a store with ``hybrid_search_with_score`` (the
      package's ``PGVectorStore``): the fused hybrid score (0..1);
    * any other retriever (``"mmr"``, custom): its documents, with the score read from
      ``metadata["score"]`` when present (a threshold needs it).
    """

    def __init__(
        self,
        source: VectorStore | BaseRetriever,
        search_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        kwargs = dict(search_kwargs or {})
        self.store: VectorStore | None = None
        self.retriever: BaseRetriever | None = None
        self.hybrid = False
        by_score = ("similarity", "similarity_score_threshold", "hybrid")
        if isinstance(source, VectorStoreRetriever) and source.search_type in by_score:
            self.store = source.vectorstore
            self.hybrid = source.search_type == "hybrid"
            if self.hybrid and not hasattr(self.store, "hybrid_search_with_score"):
                self.store, self.retriever, self.hybrid = None, source, False
            inherited = {
                key: value
                for key, value in source.search_kwargs.items()
                if key not in ("k", "score_threshold")
            }
            kwargs = {**inherited, **kwargs}
        elif isinstance(source, VectorStore):
            self.store = source
        elif isinstance(source, BaseRetriever):
            self.retriever = source
        else:
            raise InvalidInputError(
                "create_rag_chain needs a LangChain VectorStore or BaseRetriever, "
                f"not {type(source).__name__}."
            )
        self.search_kwargs = kwargs

    def retrieve(
        self, query: str, k: int, config: RunnableConfig | None = None
    ) -> list[RetrievedChunk]:
        if self.hybrid:
            search = self.store.hybrid_search_with_score  # type: ignore[union-attr]
            pairs = search(query, k=k, **self.search_kwargs)
            return [_chunk(doc, score) for doc, score in pairs]
        if self.store is not None:
            try:
                pairs = self.store.similarity_search_with_relevance_scores(
                    query, k=k, **self.search_kwargs
                )
            except NotImplementedError:
                # stores without a relevance function (InMemoryVectorStore): their raw
                # similarity score, which for cosine stores is the same number
                pairs = self.store.similarity_search_with_score(query, k=k, **self.search_kwargs)
            return [_chunk(doc, score) for doc, score in pairs]
        assert self.retriever is not None
        docs = self.retriever.invoke(query, config)
        return documents_to_chunks(docs[:k])

    async def aretrieve(
        self, query: str, k: int, config: RunnableConfig | None = None
    ) -> list[RetrievedChunk]:
        if self.hybrid:
            asearch = self.store.ahybrid_search_with_score  # type: ignore[union-attr]
            pairs = await asearch(query, k=k, **self.search_kwargs)
            return [_chunk(doc, score) for doc, score in pairs]
        if self.store is not None:
            try:
                pairs = await self.store.asimilarity_search_with_relevance_scores(
                    query, k=k, **self.search_kwargs
                )
            except NotImplementedError:
                pairs = await self.store.asimilarity_search_with_score(
                    query, k=k, **self.search_kwargs
                )
            return [_chunk(doc, score) for doc, score in pairs]
        assert self.retriever is not None
        docs = await self.retriever.ainvoke(query, config)
        return documents_to_chunks(docs[:k])


def _chunk(doc: Document, score: float | None) -> RetrievedChunk:
    metadata = {k: v for k, v in doc.metadata.items() if k not in _SCORE_KEYS}
    return RetrievedChunk(
        doc.page_content, None if score is None else float(score), metadata, doc.id
    )


def documents_to_chunks(docs: Sequence[Document]) -> list[RetrievedChunk]:
    """Documents from a retriever; the score is read from ``metadata["score"]`` when present."""
    chunks = []
    for doc in docs:
        score = next((doc.metadata[k] for k in _SCORE_KEYS if k in doc.metadata), None)
        chunks.append(_chunk(doc, None if score is None else float(score)))
    return chunks


def chunk_to_document(chunk: RetrievedChunk) -> Document:
    """A source as a Document, with its score in ``metadata["score"]``."""
    metadata = dict(chunk.metadata)
    if chunk.score is not None:
        metadata["score"] = chunk.score
    return Document(page_content=chunk.content, metadata=metadata, id=chunk.id)


def to_langchain_messages(messages: Sequence[ChatMessage]) -> list[BaseMessage]:
    """Core messages of a prompt as LangChain messages."""
    out: list[BaseMessage] = []
    for m in messages:
        if m.role == "system":
            out.append(SystemMessage(m.content))
        elif m.role == "assistant":
            out.append(AIMessage(m.content))
        elif m.role == "tool":
            out.append(ToolMessage(m.content, tool_call_id=m.tool_call_id or ""))
        else:
            out.append(HumanMessage(m.content))
    return out


def _history(value: Any) -> list[ChatMessage]:
    if not value:
        return []
    history = []
    for message in convert_to_messages(value):
        role = _LC_ROLES.get(message.type)
        if role is not None:
            history.append(ChatMessage(role=role, content=message.text))  # type: ignore[arg-type]
    return history


def _parse_input(value: Any) -> tuple[str, list[ChatMessage]]:
    if isinstance(value, str):
        return value, []
    if isinstance(value, Mapping):
        for key in ("question", "input", "query"):
            if isinstance(value.get(key), str):
                return value[key], _history(value.get("chat_history"))
    raise InvalidInputError(
        'The RAG chain takes a question string or {"question": ..., "chat_history": [...]}.'
    )


def _text(output: Any) -> str:
    if isinstance(output, BaseMessage):
        return output.text
    return str(output)


def result_to_output(result: RagResult, *, include_answer: bool = True) -> dict[str, Any]:
    """The chain's output dict for a core result."""
    out: dict[str, Any] = {
        "question": result.question,
        "standalone_question": result.standalone_question,
        "context": [chunk_to_document(c) for c in result.chunks],
        "no_context": result.no_context,
        "model_called": result.model_called,
        "language": result.language,
        "prompt_messages": to_langchain_messages(result.messages),
    }
    if include_answer:
        out["answer"] = result.answer
    return out


class _AddableDict(dict[str, Any]):
    """Stream chunks that add up (``answer`` tokens concatenate) to the final output."""

    def __add__(self, other: Mapping[str, Any]) -> _AddableDict:
        merged = _AddableDict(self)
        for key, value in other.items():
            if key == "answer" and key in merged:
                merged[key] = merged[key] + value
            else:
                merged[key] = value
        return merged


class RagChain(Runnable[Any, dict[str, Any]]):
    """Retrieval-augmented answers over a LangChain vector store or retriever.

    Build it with :func:`create_rag_chain`. Input: a question string, or
    ``{"question": str, "chat_history": [messages or (role, text) pairs]}``. Output dict:

    * ``answer`` (str), ``context`` (the Documents used, best first, ``metadata["score"]``);
    * ``no_context`` (nothing passed the threshold), ``model_called`` (False for the fixed
      "nothing found" answer), ``question``, ``standalone_question`` (after rewriting with
      chat history), ``language``, ``prompt_messages`` (the exact prompt).

    ``stream`` yields the output without ``answer`` first (sources known), then
    ``{"answer": token}`` pieces; adding the chunks gives the final output.
    """

    def __init__(
        self,
        retrieval: LangChainRetrieval,
        llm: BaseLanguageModel[Any],
        rag_config: RagConfig,
        condense_llm: BaseLanguageModel[Any] | None = None,
    ) -> None:
        self.retrieval = retrieval
        self.llm = llm
        self.condense_llm = condense_llm or llm
        self.rag_config = rag_config
        self.name = "RagChain"

    # --- the three requests of the core flow, with child callbacks ---------------------------

    def _generate(self, messages: Sequence[ChatMessage], config: RunnableConfig) -> str:
        return _text(self.llm.invoke(to_langchain_messages(messages), config))

    def _condense(self, messages: Sequence[ChatMessage], config: RunnableConfig) -> str:
        return _text(self.condense_llm.invoke(to_langchain_messages(messages), config))

    async def _agenerate(self, messages: Sequence[ChatMessage], config: RunnableConfig) -> str:
        return _text(await self.llm.ainvoke(to_langchain_messages(messages), config))

    async def _acondense(self, messages: Sequence[ChatMessage], config: RunnableConfig) -> str:
        return _text(await self.condense_llm.ainvoke(to_langchain_messages(messages), config))

    # --- invoke / ainvoke -----------------------------------------------------------------------

    def invoke(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        return self._call_with_config(self._invoke, input, config, **kwargs)

    def _invoke(
        self, input: Any, run_manager: CallbackManagerForChainRun, config: RunnableConfig
    ) -> dict[str, Any]:
        question, history = _parse_input(input)
        child = patch_config(config, callbacks=run_manager.get_child())
        result = run_flow(
            rag_flow(question, self.rag_config, history),
            retrieve=lambda q, k: self.retrieval.retrieve(q, k, child),
            generate=lambda m: self._generate(m, child),
            condense=lambda m: self._condense(m, child),
        )
        return result_to_output(result)

    async def ainvoke(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        return await self._acall_with_config(self._ainvoke, input, config, **kwargs)

    async def _ainvoke(
        self, input: Any, run_manager: AsyncCallbackManagerForChainRun, config: RunnableConfig
    ) -> dict[str, Any]:
        question, history = _parse_input(input)
        child = patch_config(config, callbacks=run_manager.get_child())

        async def retrieve(q: str, k: int) -> list[RetrievedChunk]:
            return await self.retrieval.aretrieve(q, k, child)

        async def generate(m: Sequence[ChatMessage]) -> str:
            return await self._agenerate(m, child)

        async def condense(m: Sequence[ChatMessage]) -> str:
            return await self._acondense(m, child)

        result = await arun_flow(
            rag_flow(question, self.rag_config, history),
            retrieve=retrieve,
            generate=generate,
            condense=condense,
        )
        return result_to_output(result)

    # --- stream / astream -----------------------------------------------------------------------

    def stream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[dict[str, Any]]:
        yield from self._transform_stream_with_config(iter([input]), self._stream, config, **kwargs)

    def _stream(
        self,
        inputs: Iterator[Any],
        run_manager: CallbackManagerForChainRun,
        config: RunnableConfig,
    ) -> Iterator[dict[str, Any]]:
        question, history = _parse_input(next(inputs))
        child = patch_config(config, callbacks=run_manager.get_child())

        def tokens(messages: Sequence[ChatMessage]) -> Iterator[str]:
            for chunk in self.llm.stream(to_langchain_messages(messages), child):
                yield _text(chunk)

        events = stream_flow(
            rag_flow(question, self.rag_config, history),
            retrieve=lambda q, k: self.retrieval.retrieve(q, k, child),
            stream=tokens,
            condense=lambda m: self._condense(m, child),
        )
        for event in events:
            if isinstance(event, StreamContext):
                yield _AddableDict(result_to_output(event.result, include_answer=False))
            elif isinstance(event, StreamToken):
                yield _AddableDict(answer=event.text)

    def transform(
        self, input: Iterator[Any], config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[dict[str, Any]]:
        for item in input:
            yield from self.stream(item, config, **kwargs)

    async def astream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[dict[str, Any]]:
        async def one() -> AsyncIterator[Any]:
            yield input

        async for chunk in self._atransform_stream_with_config(
            one(), self._astream, config, **kwargs
        ):
            yield chunk

    async def _astream(
        self,
        inputs: AsyncIterator[Any],
        run_manager: AsyncCallbackManagerForChainRun,
        config: RunnableConfig,
    ) -> AsyncIterator[dict[str, Any]]:
        question, history = _parse_input(await anext(inputs))
        child = patch_config(config, callbacks=run_manager.get_child())

        async def retrieve(q: str, k: int) -> list[RetrievedChunk]:
            return await self.retrieval.aretrieve(q, k, child)

        async def condense(m: Sequence[ChatMessage]) -> str:
            return await self._acondense(m, child)

        async def tokens(messages: Sequence[ChatMessage]) -> AsyncIterator[str]:
            async for chunk in self.llm.astream(to_langchain_messages(messages), child):
                yield _text(chunk)

        async for event in astream_flow(
            rag_flow(question, self.rag_config, history),
            retrieve=retrieve,
            stream=tokens,
            condense=condense,
        ):
            if isinstance(event, StreamContext):
                yield _AddableDict(result_to_output(event.result, include_answer=False))
            elif isinstance(event, StreamToken):
                yield _AddableDict(answer=event.text)

    async def atransform(
        self, input: AsyncIterator[Any], config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[dict[str, Any]]:
        async for item in input:
            async for chunk in self.astream(item, config, **kwargs):
                yield chunk


def create_rag_chain(
    store_or_retriever: VectorStore | BaseRetriever,
    llm: BaseLanguageModel[Any],
    *,
    k: int = 4,
    score_threshold: float | None = None,
    prompt: RagPrompt | None = None,
    language: str = "auto",
    no_context_answer: str | Mapping[str, str] | None = DEFAULT_NO_CONTEXT,
    condense_llm: BaseLanguageModel[Any] | None = None,
    condense_question: bool = True,
    search_kwargs: Mapping[str, Any] | None = None,
    rerank: Any = None,
    fetch_k: int | None = None,
) -> RagChain:
    """A Runnable that answers questions from a vector store, with sources.

    Args:
        store_or_retriever: a LangChain ``VectorStore`` (for example
            :class:`~qwen_pg_integrations.langchain.PGVectorStore`), its ``as_retriever()``, or any
            retriever (scores then come from ``metadata["score"]``).
        llm: the chat model, for example ``ChatQwen(model="qwen-plus")``.
        k: chunks to retrieve.
        score_threshold: keep only chunks whose relevance score (0..1, higher is closer) is at
            least this. ``None`` keeps all ``k``.
        prompt: a :class:`~qwen_pg_integrations.rag.RagPrompt` (``{context}`` and ``{question}``
            fields) to use instead of the built-in Chinese/English prompts.
        language: ``"auto"`` (the question's language), ``"zh"`` or ``"en"``.
        no_context_answer: the answer when nothing passes the threshold; the model is not
            called. A string, a ``{"zh": ..., "en": ...}`` mapping, the built-in default, or
            ``None`` to ask the model anyway (told that nothing was found).
        condense_llm: model for rewriting follow-ups (default: ``llm``).
        condense_question: rewrite follow-ups into standalone questions when chat history is given.
        search_kwargs: extra arguments for the store's search, e.g. ``{"filter": {...}}``.
        rerank: rerank the candidates before answering: ``True`` (qwen3-rerank), a
            :class:`~qwen_pg_integrations.langchain.DashScopeRerank` or a core ``RerankClient``.
            One extra call per question; ``score_threshold`` then applies to rerank scores.
        fetch_k: candidates retrieved for the reranker (default ``max(4 * k, 20)``).

    Example::

        chain = create_rag_chain(store, ChatQwen(), k=4, score_threshold=0.5)
        out = chain.invoke("pgvector 支持哪些索引？")
        out["answer"], [d.metadata["score"] for d in out["context"]], out["no_context"]
    """
    config = RagConfig(
        k=k,
        score_threshold=score_threshold,
        language=language,
        prompt=prompt,
        no_context_answer=no_context_answer,
        condense=condense_question,
        reranker=reranker_of(rerank),
        fetch_k=fetch_k,
    )
    return RagChain(
        LangChainRetrieval(store_or_retriever, search_kwargs), llm, config, condense_llm
    )
