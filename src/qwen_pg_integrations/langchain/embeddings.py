"""LangChain ``Embeddings`` over DashScope text-embedding models (v1-v4).

A thin adapter: batching to each model's limit, bounded concurrency across batches, retries,
``text_type`` (document vs query) and error mapping all live in the core
(:class:`qwen_pg_integrations.dashscope.EmbeddingClient`).
"""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.embeddings import Embeddings
from langchain_core.utils import from_env, secret_from_env
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, PrivateAttr, SecretStr

from ..dashscope.compat import CompatEmbeddingClient, embedding_client
from ..dashscope.embeddings import EmbeddingClient, TextType
from ..dashscope.models import DEFAULT_EMBEDDING_CONCURRENCY, DEFAULT_EMBEDDING_MODEL
from ..types import EmbeddingResult

__all__ = ["DashScopeEmbeddings"]


class DashScopeEmbeddings(BaseModel, Embeddings):
    """DashScope text embeddings (``text-embedding-v4`` by default) for LangChain.

    Documents are embedded with ``text_type="document"`` and queries with ``text_type="query"``,
    as DashScope recommends for retrieval. Lists longer than the model's per-call limit (25 texts
    for v1/v2, 10 for v3/v4) are split into batches that run concurrently (at most
    ``max_concurrency`` calls in flight); vectors come back in input order.

    The key and endpoint belong to the instance: two instances with different keys or regions
    work side by side, and nothing process-wide (``dashscope.api_key``) is touched.

    Environment:
        ``DASHSCOPE_API_KEY``: the key when ``api_key`` is not given.
        ``DASHSCOPE_HTTP_BASE_URL``: the endpoint (region or a local emulator) when ``base_url``
        is not given; the default is the Beijing endpoint.

    Example:
        .. code-block:: python

            from qwen_pg_integrations.langchain import DashScopeEmbeddings

            emb = DashScopeEmbeddings(model="text-embedding-v4", dimensions=512)
            vectors = emb.embed_documents(["PostgreSQL is a database.", "pgvector adds vectors."])
            query = emb.embed_query("Which extension stores vectors?")
            print(emb.total_tokens)  # tokens used so far by this instance
    """

    model_config = ConfigDict(populate_by_name=True, extra="forbid", protected_namespaces=())

    model: str = Field(
        default=DEFAULT_EMBEDDING_MODEL, validation_alias=AliasChoices("model", "model_name")
    )
    """DashScope embedding model name (``text-embedding-v1`` ... ``text-embedding-v4``)."""
    dimensions: int | None = None
    """Output dimension (v3/v4 only); ``None`` means the model's default (1024 for v3/v4)."""
    api_key: SecretStr | None = Field(
        default_factory=secret_from_env("DASHSCOPE_API_KEY", default=None),
        validation_alias=AliasChoices("api_key", "dashscope_api_key"),
    )
    """DashScope API key; defaults to ``DASHSCOPE_API_KEY``. Never printed."""
    base_url: str | None = Field(
        default_factory=from_env("DASHSCOPE_HTTP_BASE_URL", default=None),
        validation_alias=AliasChoices("base_url", "base_address"),
    )
    """Endpoint ending in ``/api/v1``, or a region name; default ``DASHSCOPE_HTTP_BASE_URL``.
    Any other URL is an OpenAI-compatible ``/embeddings`` server (vLLM, Ollama, DashScope's
    compatible mode)."""
    dialect: Literal["native", "dashscope", "vllm", "ollama", "openai"] | None = None
    """``"native"``, or the OpenAI-compatible server's dialect; ``None`` guesses from the URL."""
    workspace: str | None = None
    """DashScope workspace id (sent as ``X-DashScope-WorkSpace``)."""
    max_retries: int = 3
    """Retries on 429, 5xx, timeouts and dropped connections (never on other 4xx)."""
    timeout: float = 60.0
    """Seconds to wait for one call."""
    max_concurrency: int = DEFAULT_EMBEDDING_CONCURRENCY
    """Batches in flight at once. DashScope takes only 10 texts per call on v3/v4, so one
    document list is many small calls; quotas count requests per minute, and a 429 is retried
    with backoff, so lower this if throttling shows up."""
    batch_size: int | None = None
    """Texts per call; ``None`` means the model's limit (larger values are refused)."""
    output_type: Literal["dense", "dense&sparse"] = "dense"
    """``"dense&sparse"`` (v3/v4): each call also returns DashScope's sparse weights, at no
    extra cost; a ``PGVectorStore`` built on these embeddings then stores and searches them
    (sparse ranking in hybrid search)."""

    _client: EmbeddingClient | CompatEmbeddingClient = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        """Build the per-instance core client (validates model, dimensions and key)."""
        native: dict[str, Any] = {
            "max_concurrency": self.max_concurrency,
            "workspace": self.workspace,
            "output_type": self.output_type,
        }
        self._client = embedding_client(
            self.model,
            base_url=self.base_url,
            dialect=self.dialect,
            api_key=self.api_key,
            key_given="api_key" in self.model_fields_set,
            dimensions=self.dimensions,
            batch_size=self.batch_size,
            max_retries=self.max_retries,
            timeout=self.timeout,
            **native,
        )

    def __repr_args__(self) -> Any:
        # SecretStr already masks itself; keep the repr short and free of the key regardless.
        return [(k, v) for k, v in super().__repr_args__() if k != "api_key"]

    # --- LangChain Embeddings API -----------------------------------------------------------

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed texts for storage (``text_type="document"``), in input order."""
        return self._client.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        """Embed a search query (``text_type="query"``)."""
        return self._client.embed_query(text)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Async :meth:`embed_documents` (non-blocking, concurrent batches)."""
        return await self._client.aembed_documents(texts)

    async def aembed_query(self, text: str) -> list[float]:
        """Async :meth:`embed_query`."""
        return await self._client.aembed_query(text)

    # --- extras -----------------------------------------------------------------------------

    def embed_with_usage(
        self, texts: list[str], *, text_type: TextType = "document"
    ) -> EmbeddingResult:
        """Embed and return vectors with the tokens used and the DashScope request ids."""
        return self._client.embed(texts, text_type=text_type)

    async def aembed_with_usage(
        self, texts: list[str], *, text_type: TextType = "document"
    ) -> EmbeddingResult:
        """Async :meth:`embed_with_usage`."""
        return await self._client.aembed(texts, text_type=text_type)

    @property
    def client(self) -> EmbeddingClient | CompatEmbeddingClient:
        """The core client (shared settings, cumulative ``total_tokens``)."""
        return self._client

    @property
    def total_tokens(self) -> int:
        """Tokens used by this instance so far (sum of DashScope ``usage.total_tokens``)."""
        return self._client.total_tokens

    @property
    def embedding_dimensions(self) -> int:
        """The dimension of the vectors this instance returns."""
        return self._client.dimensions
