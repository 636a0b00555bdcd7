"""``create_query_engine``: the core retrieval flow (:mod:`qwen_pg_integrations.rag`), LlamaIndex.

The same threshold, Chinese/English prompts, numbered sources, "nothing found" answer and
follow-up rewriting as LangChain's ``create_rag_chain``; this module only translates nodes and
chat messages.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator, Mapping, Sequence
from typing import Any

from llama_index.core.base.base_query_engine import BaseQueryEngine
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.llms.types import ChatMessage as LIChatMessage
from llama_index.core.base.response.schema import (
    RESPONSE_TYPE,
    AsyncStreamingResponse,
    Response,
    StreamingResponse,
)
from llama_index.core.callbacks import CallbackManager
from llama_index.core.indices.vector_store import VectorStoreIndex
from llama_index.core.llms import LLM
from llama_index.core.prompts.mixin import PromptMixinType
from llama_index.core.schema import NodeWithScore, QueryBundle
from llama_index.core.vector_stores.types import BasePydanticVectorStore, MetadataFilters

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
from ._messages import to_core_history, to_li_messages

__all__ = ["QwenRAGQueryEngine", "create_query_engine"]

_to_llama = to_li_messages
_history = to_core_history


class _Nodes:
    """Remembers the retrieved nodes so sources go back as the original NodeWithScore."""

    def __init__(self) -> None:
        self.by_id: dict[str, NodeWithScore] = {}

    def chunks(self, nodes: Sequence[NodeWithScore], k: int) -> list[RetrievedChunk]:
        chunks = []
        for item in nodes[:k]:
            self.by_id[item.node.node_id] = item
            chunks.append(
                RetrievedChunk(
                    item.node.get_content(),
                    item.score,
                    dict(item.node.metadata),
                    item.node.node_id,
                )
            )
        return chunks

    def sources(self, result: RagResult) -> list[NodeWithScore]:
        return [self.by_id[c.id] for c in result.chunks if c.id in self.by_id]


def _metadata(result: RagResult) -> dict[str, Any]:
    return {
        "no_context": result.no_context,
        "model_called": result.model_called,
        "language": result.language,
        "question": result.question,
        "standalone_question": result.standalone_question,
        "prompt_messages": [{"role": m.role, "content": m.content} for m in result.messages],
    }


class QwenRAGQueryEngine(BaseQueryEngine):
    """Retrieval-augmented answers over a LlamaIndex retriever, with the package's core flow.

    Build it with :func:`create_query_engine`. ``query`` returns a ``Response`` (or a
    ``StreamingResponse`` with ``streaming=True``) whose ``source_nodes`` are the nodes that
    passed the threshold and whose ``metadata`` has ``no_context``, ``model_called``,
    ``language``, ``standalone_question`` and ``prompt_messages``. ``chat(message,
    chat_history)`` rewrites a follow-up into a standalone question before retrieval.
    """

    def __init__(
        self,
        retriever: BaseRetriever,
        llm: LLM,
        config: RagConfig,
        *,
        streaming: bool = False,
        condense_llm: LLM | None = None,
        callback_manager: CallbackManager | None = None,
    ) -> None:
        self.retriever = retriever
        self.llm = llm
        self.condense_llm = condense_llm or llm
        self.config = config
        self.streaming = streaming
        super().__init__(callback_manager=callback_manager or CallbackManager([]))

    def _get_prompt_modules(self) -> PromptMixinType:
        return {}

    # --- the flow's requests -----------------------------------------------------------------

    def _generate(self, messages: Sequence[ChatMessage]) -> str:
        return self.llm.chat(_to_llama(messages)).message.content or ""

    def _condense(self, messages: Sequence[ChatMessage]) -> str:
        return self.condense_llm.chat(_to_llama(messages)).message.content or ""

    async def _agenerate(self, messages: Sequence[ChatMessage]) -> str:
        return (await self.llm.achat(_to_llama(messages))).message.content or ""

    async def _acondense(self, messages: Sequence[ChatMessage]) -> str:
        return (await self.condense_llm.achat(_to_llama(messages))).message.content or ""

    def _tokens(self, messages: Sequence[ChatMessage]) -> Iterator[str]:
        for response in self.llm.stream_chat(_to_llama(messages)):
            if response.delta:
                yield response.delta

    async def _atokens(self, messages: Sequence[ChatMessage]) -> AsyncIterator[str]:
        async for response in await self.llm.astream_chat(_to_llama(messages)):
            if response.delta:
                yield response.delta

    # --- sync ----------------------------------------------------------------------------------

    def _run(self, question: str, history: Sequence[ChatMessage]) -> RESPONSE_TYPE:
        nodes = _Nodes()

        def retrieve(query: str, k: int) -> list[RetrievedChunk]:
            return nodes.chunks(self.retriever.retrieve(QueryBundle(query)), k)

        flow = rag_flow(question, self.config, history)
        if not self.streaming:
            result = run_flow(
                flow, retrieve=retrieve, generate=self._generate, condense=self._condense
            )
            return Response(
                result.answer, source_nodes=nodes.sources(result), metadata=_metadata(result)
            )
        events = stream_flow(flow, retrieve=retrieve, stream=self._tokens, condense=self._condense)
        for event in events:
            if isinstance(event, StreamContext):
                preview = event.result
                break

        def tokens() -> Generator[str, None, None]:
            for rest in events:
                if isinstance(rest, StreamToken):
                    yield rest.text

        return StreamingResponse(
            tokens(), source_nodes=nodes.sources(preview), metadata=_metadata(preview)
        )

    def _query(self, query_bundle: QueryBundle) -> RESPONSE_TYPE:
        return self._run(query_bundle.query_str, ())

    def chat(
        self, message: str, chat_history: Sequence[LIChatMessage] | None = None
    ) -> RESPONSE_TYPE:
        """Answer ``message``; with ``chat_history`` it is first made a standalone question."""
        return self._run(message, _history(chat_history))

    # --- async ---------------------------------------------------------------------------------

    async def _arun(self, question: str, history: Sequence[ChatMessage]) -> RESPONSE_TYPE:
        nodes = _Nodes()

        async def retrieve(query: str, k: int) -> list[RetrievedChunk]:
            return nodes.chunks(await self.retriever.aretrieve(QueryBundle(query)), k)

        flow = rag_flow(question, self.config, history)
        if not self.streaming:
            result = await arun_flow(
                flow, retrieve=retrieve, generate=self._agenerate, condense=self._acondense
            )
            return Response(
                result.answer, source_nodes=nodes.sources(result), metadata=_metadata(result)
            )
        events = astream_flow(
            flow, retrieve=retrieve, stream=self._atokens, condense=self._acondense
        )
        async for event in events:
            if isinstance(event, StreamContext):
                preview = event.result
                break

        async def tokens() -> AsyncGenerator[str, None]:
            async for rest in events:
                if isinstance(rest, StreamToken):
                    yield rest.text

        return AsyncStreamingResponse(
            tokens(), source_nodes=nodes.sources(preview), metadata=_metadata(preview)
        )

    async def _aquery(self, query_bundle: QueryBundle) -> RESPONSE_TYPE:
        return await self._arun(query_bundle.query_str, ())

    async def achat(
        self, message: str, chat_history: Sequence[LIChatMessage] | None = None
    ) -> RESPONSE_TYPE:
        """Async :meth:`chat`."""
        return await self._arun(message, _history(chat_history))


def _retriever(
    source: Any,
    k: int,
    embed_model: Any,
    filters: MetadataFilters | None,
    retriever_kwargs: Mapping[str, Any],
) -> BaseRetriever:
    if isinstance(source, BaseRetriever):
        return source
    if isinstance(source, BasePydanticVectorStore):
        source = VectorStoreIndex.from_vector_store(source, embed_model=embed_model)
    if isinstance(source, VectorStoreIndex):
        return source.as_retriever(similarity_top_k=k, filters=filters, **retriever_kwargs)
    raise InvalidInputError(
        "create_query_engine needs a LlamaIndex vector store, VectorStoreIndex or retriever, "
        f"not {type(source).__name__}."
    )


def create_query_engine(
    store_or_index: BasePydanticVectorStore | VectorStoreIndex | BaseRetriever,
    llm: LLM,
    *,
    similarity_top_k: int = 4,
    similarity_cutoff: float | None = None,
    embed_model: Any = None,
    filters: MetadataFilters | None = None,
    prompt: RagPrompt | None = None,
    language: str = "auto",
    no_context_answer: str | Mapping[str, str] | None = DEFAULT_NO_CONTEXT,
    streaming: bool = False,
    condense_llm: LLM | None = None,
    retriever_kwargs: Mapping[str, Any] | None = None,
    rerank: Any = None,
    fetch_k: int | None = None,
) -> QwenRAGQueryEngine:
    """A query engine that answers from a vector store with sources, or says it found nothing.

    Args:
        store_or_index: a vector store (e.g. this package's ``PGVectorStore``; then pass
            ``embed_model``), a ``VectorStoreIndex``, or any retriever (used as is).
        llm: the LLM, e.g. ``Qwen(model="qwen-plus")``.
        similarity_top_k: nodes to retrieve.
        similarity_cutoff: keep only nodes whose score (0..1, higher is closer) is at least this.
        embed_model: the embedding model for a bare vector store, e.g. ``DashScopeEmbedding()``.
        filters: ``MetadataFilters`` for the retriever.
        prompt: a :class:`~qwen_pg_integrations.rag.RagPrompt` instead of the built-in ones.
        language: ``"auto"`` (the question's), ``"zh"`` or ``"en"``.
        no_context_answer: the answer when nothing passes the cutoff (the LLM is not called);
            a string, a ``{"zh": ..., "en": ...}`` mapping, the default, or ``None`` to ask the
            LLM anyway. ``response.metadata["no_context"]`` says so.
        streaming: return ``StreamingResponse`` (``aquery``: ``AsyncStreamingResponse``).
        condense_llm: LLM for rewriting follow-ups in :meth:`QwenRAGQueryEngine.chat`.
        retriever_kwargs: more arguments for ``index.as_retriever`` (e.g.
            ``vector_store_query_mode="hybrid"``).
        rerank: rerank the candidates before answering: ``True`` (qwen3-rerank), a
            :class:`~qwen_pg_integrations.llama_index.DashScopeRerank` or a core
            ``RerankClient``. One extra call per question; ``similarity_cutoff`` then applies
            to rerank scores.
        fetch_k: candidates retrieved for the reranker (default ``max(4 * k, 20)``).

    Example::

        engine = create_query_engine(store, Qwen(), embed_model=DashScopeEmbedding(),
                                     similarity_top_k=4, similarity_cutoff=0.5)
        response = engine.query("PolarDB 如何实现存储计算分离？")
        str(response), [(n.node.metadata, n.score) for n in response.source_nodes]
    """
    config = RagConfig(
        k=similarity_top_k,
        score_threshold=similarity_cutoff,
        language=language,
        prompt=prompt,
        no_context_answer=no_context_answer,
        reranker=reranker_of(rerank),
        fetch_k=fetch_k,
    )
    retriever = _retriever(
        store_or_index, config.retrieve_k, embed_model, filters, retriever_kwargs or {}
    )
    return QwenRAGQueryEngine(
        retriever, llm, config, streaming=streaming, condense_llm=condense_llm
    )
