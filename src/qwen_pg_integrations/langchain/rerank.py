"""LangChain ``DashScopeRerank``: a document compressor over DashScope text rerank.

A thin adapter over :class:`qwen_pg_integrations.dashscope.RerankClient` (batching to the
model's limits, retries, typed errors). Unlike langchain-community's class of the same name it
sends the ``model`` it is given (default ``qwen3-rerank``; ``gte-rerank`` was discontinued),
takes ``api_key=``, raises the service's error instead of an ``AttributeError``, has a real async
path and ranks the page content alone unless ``include_metadata=True``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.utils import from_env, secret_from_env
from pydantic import AliasChoices, ConfigDict, Field, PrivateAttr, SecretStr

from ..dashscope.models import DEFAULT_RERANK_MODEL
from ..dashscope.rerank import RerankClient
from ..types import RerankResult

__all__ = ["DashScopeRerank"]

SCORE_KEY = "relevance_score"


class DashScopeRerank(BaseDocumentCompressor):
    """Rerank documents with a DashScope cross-encoder (``qwen3-rerank`` by default).

    Each returned document is a copy with its score in ``metadata["relevance_score"]``, best
    first, at most ``top_n`` (``None``: all). Use it in a ``ContextualCompressionRetriever``
    to rerank a vector store's candidates:

    .. code-block:: python

        from langchain_classic.retrievers import ContextualCompressionRetriever
        from qwen_pg_integrations.langchain import DashScopeRerank

        retriever = ContextualCompressionRetriever(
            base_compressor=DashScopeRerank(top_n=4),
            base_retriever=store.as_retriever(search_kwargs={"k": 20}),
        )

    Environment: ``DASHSCOPE_API_KEY`` and ``DASHSCOPE_HTTP_BASE_URL`` as for the other classes.
    """

    model_config = ConfigDict(populate_by_name=True, extra="forbid", protected_namespaces=())

    model: str = Field(
        default=DEFAULT_RERANK_MODEL, validation_alias=AliasChoices("model", "model_name")
    )
    """Rerank model (``qwen3-rerank``, ``gte-rerank-v2``)."""
    top_n: int | None = 3
    """Documents to keep (the peer's default, 3); ``None`` keeps all, reordered."""
    instruct: str | None = None
    """Task instruction for qwen3-rerank (English recommended); ``None``: the service's."""
    include_metadata: bool = False
    """Rank ``key: value`` lines of the metadata with the content (costs tokens, can change
    scores); off by default: the content alone is ranked."""
    score_threshold: float | None = None
    """Drop documents whose rerank score is below this."""
    api_key: SecretStr | None = Field(
        default_factory=secret_from_env("DASHSCOPE_API_KEY", default=None),
        validation_alias=AliasChoices("api_key", "dashscope_api_key"),
    )
    """DashScope API key; defaults to ``DASHSCOPE_API_KEY``. Never printed."""
    base_url: str | None = Field(
        default_factory=from_env("DASHSCOPE_HTTP_BASE_URL", default=None),
        validation_alias=AliasChoices("base_url", "base_address"),
    )
    """Endpoint ending in ``/api/v1``, or a region name; default ``DASHSCOPE_HTTP_BASE_URL``."""
    workspace: str | None = None
    max_retries: int = 3
    timeout: float = 60.0

    _client: RerankClient = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        """Build the per-instance core client (validates the model and ``top_n``)."""
        self._client = RerankClient(
            self.model,
            top_n=self.top_n,
            instruct=self.instruct,
            api_key=self.api_key,
            base_url=self.base_url,
            workspace=self.workspace,
            max_retries=self.max_retries,
            timeout=self.timeout,
        )

    def __repr_args__(self) -> Any:
        return [(k, v) for k, v in super().__repr_args__() if k != "api_key"]

    @property
    def client(self) -> RerankClient:
        """The core client (for ``total_tokens`` and direct calls)."""
        return self._client

    def _text(self, doc: Document) -> str:
        if not self.include_metadata:
            return doc.page_content
        lines = [f"{k}: {v}" for k, v in doc.metadata.items() if not str(k).startswith("_node_")]
        return "\n".join([*lines, "", doc.page_content]) if lines else doc.page_content

    def _documents(
        self, documents: Sequence[Document], ranked: list[RerankResult]
    ) -> list[Document]:
        out = []
        for r in ranked:
            doc = documents[r.index]
            metadata = {**doc.metadata, SCORE_KEY: r.relevance_score}
            out.append(Document(page_content=doc.page_content, metadata=metadata, id=doc.id))
        return out

    def rerank(
        self, documents: Sequence[str | Document], query: str, *, top_n: int | None = None
    ) -> list[dict[str, Any]]:
        """``[{"index", "relevance_score"}]`` best first (the peer's shape)."""
        texts = [d if isinstance(d, str) else self._text(d) for d in documents]
        ranked = self._client.rerank(query, texts, top_n=top_n)
        return [{"index": r.index, SCORE_KEY: r.relevance_score} for r in ranked]

    def compress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        """The ``top_n`` most relevant documents for ``query``, best first, scores attached."""
        if not documents:
            return []
        texts = [self._text(d) for d in documents]
        ranked = self._client.rerank(query, texts, score_threshold=self.score_threshold)
        return self._documents(documents, ranked)

    async def acompress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        """Async :meth:`compress_documents` (aiohttp, never blocks the event loop)."""
        if not documents:
            return []
        texts = [self._text(d) for d in documents]
        ranked = await self._client.arerank(query, texts, score_threshold=self.score_threshold)
        return self._documents(documents, ranked)
