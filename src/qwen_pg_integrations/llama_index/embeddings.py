"""LlamaIndex ``BaseEmbedding`` over the DashScope embedding core.

The adapter only translates: batching per model limit, the query/document ``text_type``,
concurrency, retries and error mapping all live in the core's ``EmbeddingClient``.
"""

from __future__ import annotations

from typing import Any, Literal

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import Field, PrivateAttr, SecretStr

from ..dashscope import DEFAULT_EMBEDDING_MODEL, EmbeddingClient
from ..dashscope.compat import CompatEmbeddingClient, embedding_client
from ..dashscope.models import DEFAULT_EMBEDDING_CONCURRENCY

__all__ = ["DashScopeEmbedding"]

# LlamaIndex hands the adapter groups of ``embed_batch_size`` texts; the core splits each group
# into requests of the model's own limit (10 for v3/v4, 25 for v1/v2) and sends them concurrently,
# so a large group costs nothing and lets the core overlap requests.
_DEFAULT_GROUP = 100


class DashScopeEmbedding(BaseEmbedding):
    """DashScope text embeddings (``text-embedding-v1`` … ``v4``) for LlamaIndex.

    Queries are embedded with ``text_type="query"`` and documents with ``text_type="document"``,
    as the service expects for asymmetric retrieval. Requests respect each model's batch limit
    whatever ``embed_batch_size`` is; errors are raised as :mod:`qwen_pg_integrations.errors`
    types, never turned into empty vectors.

    Environment: ``DASHSCOPE_API_KEY`` and ``DASHSCOPE_HTTP_BASE_URL`` when ``api_key`` /
    ``base_url`` are not given (read when the object is built).

    Example:
        >>> from qwen_pg_integrations.llama_index import DashScopeEmbedding
        >>> embed = DashScopeEmbedding(model_name="text-embedding-v4", dimensions=1024)
        >>> vector = embed.get_query_embedding("What is pgvector?")  # doctest: +SKIP
    """

    model_name: str = Field(default=DEFAULT_EMBEDDING_MODEL, description="Embedding model.")
    embed_batch_size: int = Field(
        default=_DEFAULT_GROUP,
        gt=0,
        le=2048,
        description="Texts handed to the core at once; the core splits by the model's limit.",
    )
    dimensions: int | None = Field(
        default=None, description="Output dimension (v3/v4 only); None means the model default."
    )
    api_key: SecretStr | None = Field(default=None, exclude=True, repr=False)
    base_url: str | None = Field(
        default=None,
        description="DashScope endpoint or emulator URL; any other URL is an OpenAI-compatible "
        "/embeddings server (vLLM, Ollama, DashScope compatible mode).",
    )
    dialect: Literal["native", "dashscope", "vllm", "ollama", "openai"] | None = Field(
        default=None, description="How to talk to base_url; None guesses from the URL."
    )
    workspace: str | None = Field(default=None, description="DashScope workspace id.")
    max_retries: int = Field(default=3, ge=0)
    timeout: float = Field(default=60.0, gt=0)
    max_concurrency: int = Field(
        default=DEFAULT_EMBEDDING_CONCURRENCY, gt=0, description="Concurrent requests per call."
    )

    output_type: Literal["dense", "dense&sparse"] = Field(
        default="dense",
        description="'dense&sparse' (v3/v4): calls also return sparse weights, which a "
        "PGVectorStore given this model as sparse_embed_model stores and searches.",
    )

    _client: EmbeddingClient | CompatEmbeddingClient = PrivateAttr()

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)
        native: dict[str, Any] = {
            "max_concurrency": self.max_concurrency,
            "workspace": self.workspace,
            "output_type": self.output_type,
        }
        self._client = embedding_client(
            self.model_name,
            base_url=self.base_url,
            dialect=self.dialect,
            api_key=self.api_key,
            key_given=self.api_key is not None,
            dimensions=self.dimensions,
            max_retries=self.max_retries,
            timeout=self.timeout,
            **native,
        )
        # The resolved dimension (model default when None was given), for stores to read
        # (an OpenAI-compatible server's is known after its first answer).
        self.dimensions = self._client.dimensions or self.dimensions

    @classmethod
    def class_name(cls) -> str:
        return "QwenPGDashScopeEmbedding"

    @property
    def client(self) -> EmbeddingClient | CompatEmbeddingClient:
        """The core client (shared settings, cumulative ``total_tokens``)."""
        return self._client

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._client.embed_query(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return await self._client.aembed_query(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._client.embed_documents([text])[0]

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return (await self._client.aembed_documents([text]))[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._client.embed_documents(texts)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return await self._client.aembed_documents(texts)
