"""Text embeddings over DashScope's native API, batched to each model's limits.

``embed`` splits the texts into batches of the model's maximum (v1/v2: 25, v3/v4: 10), sends up
to ``max_concurrency`` batches at a time and places every vector by its ``text_index``, so the
result is in input order. The sync path runs the SDK's ``TextEmbedding.call`` on a thread pool;
the async path sends the same request with aiohttp (the SDK has no async text-embedding API), so
``aembed`` never blocks the event loop. Both share request building and response parsing.

Example:
    >>> emb = EmbeddingClient("text-embedding-v4", dimensions=512)
    >>> emb.embed_documents(["PolarDB supports pgvector", "通义千问"])  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import threading
import unicodedata
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any, Literal

from ..errors import BadRequestError, ConfigurationError, InvalidInputError
from ..types import EmbeddingResult
from . import _aio
from .client import DashScopeClient
from .models import (
    DEFAULT_EMBEDDING_CONCURRENCY,
    DEFAULT_EMBEDDING_MODEL,
    EmbeddingModelSpec,
    embedding_model_spec,
)

__all__ = [
    "OUTPUT_TYPES",
    "EmbeddingClient",
    "OutputType",
    "TextType",
    "check_texts",
    "sparse_client",
]

TextType = Literal["query", "document"]
OutputType = Literal["dense", "sparse", "dense&sparse"]
OUTPUT_TYPES: tuple[str, ...] = ("dense", "sparse", "dense&sparse")


class _Batch:
    __slots__ = ("start", "texts")

    def __init__(self, start: int, texts: list[str]) -> None:
        self.start = start
        self.texts = texts


def estimate_tokens(text: str) -> int:
    """A rough *lower* estimate of a text's tokens (CJK: 1 per 2 chars, other: 1 per 6 chars).

    Used only to refuse texts that are certainly over the model's limit; never an exact count.
    """
    wide = sum(1 for ch in text if unicodedata.east_asian_width(ch) in ("W", "F"))
    return wide // 2 + (len(text) - wide) // 6


class EmbeddingClient:
    """DashScope text embeddings (``text-embedding-v1`` ... ``v4``).

    Args:
        model: an embedding model of :data:`~.models.EMBEDDING_MODELS`.
        dimensions: output size; only v3/v4 take it (validated here, before any call).
        client: a :class:`DashScopeClient`; built from ``client_kwargs`` when ``None``
            (``api_key``, ``base_url``, ``workspace``, ``max_retries``, ``timeout``, ...).
        max_concurrency: batches in flight at once (threads for sync, requests for async).
        batch_size: texts per call; defaults to, and may not exceed, the model's maximum.
        check_length: refuse texts whose estimated tokens are surely over the model's limit.
        output_type: ``"dense"`` (default), ``"dense&sparse"`` (both, for the price of one
            call) or ``"sparse"``; v3/v4 only. Sparse weights come back in
            :attr:`EmbeddingResult.sparse <qwen_pg_integrations.types.EmbeddingResult.sparse>`.
    """

    def __init__(
        self,
        model: str = DEFAULT_EMBEDDING_MODEL,
        *,
        dimensions: int | None = None,
        client: DashScopeClient | None = None,
        max_concurrency: int = DEFAULT_EMBEDDING_CONCURRENCY,
        batch_size: int | None = None,
        check_length: bool = True,
        output_type: OutputType = "dense",
        **client_kwargs: Any,
    ) -> None:
        self.spec: EmbeddingModelSpec = embedding_model_spec(model)
        if output_type not in OUTPUT_TYPES:
            raise ConfigurationError(
                f"output_type must be one of {', '.join(OUTPUT_TYPES)}, not {output_type!r}."
            )
        if output_type != "dense" and not self.spec.supports_dimension_param:
            raise ConfigurationError(
                f"{self.spec.name} has no sparse output: use text-embedding-v3 or v4 for "
                f"output_type={output_type!r}."
            )
        self.output_type: OutputType = output_type
        if dimensions is not None and not self.spec.supports_dimension_param:
            if dimensions != self.spec.default_dimension:
                self.spec.resolve_dimension(dimensions)  # raises InvalidDimensionError
            dimensions = None  # v1/v2 take no dimension parameter
        self.dimensions: int = self.spec.resolve_dimension(dimensions)
        # v3/v4: always sent, so a change of the service default cannot change stored vectors
        self._send_dimension = self.spec.supports_dimension_param
        if max_concurrency < 1:
            raise ConfigurationError(f"max_concurrency must be >= 1, got {max_concurrency}.")
        if batch_size is not None and not 1 <= batch_size <= self.spec.max_batch:
            raise ConfigurationError(
                f"batch_size must be between 1 and {self.spec.max_batch} for {self.spec.name}"
            )
        self.batch_size = batch_size or self.spec.max_batch
        self.max_concurrency = max_concurrency
        self.check_length = check_length
        self.client = client if client is not None else DashScopeClient(**client_kwargs)
        self._lock = threading.Lock()
        self._total_tokens = 0

    @property
    def model(self) -> str:
        return self.spec.name

    @property
    def total_tokens(self) -> int:
        """Tokens used by every call of this instance so far (thread-safe)."""
        with self._lock:
            return self._total_tokens

    def __repr__(self) -> str:
        return (
            f"EmbeddingClient(model={self.model!r}, dimensions={self.dimensions}, "
            f"max_concurrency={self.max_concurrency}, client={self.client!r})"
        )

    # --- shared request building and parsing ----------------------------------------------

    def _parameters(self, text_type: TextType) -> dict[str, Any]:
        if text_type not in ("query", "document"):
            raise InvalidInputError(f"text_type must be 'query' or 'document', not {text_type!r}.")
        params: dict[str, Any] = {"text_type": text_type}
        if self._send_dimension:
            params["dimension"] = self.dimensions
        if self.output_type != "dense":
            params["output_type"] = self.output_type
        return params

    def _batches(self, texts: Sequence[str]) -> list[_Batch]:
        items = check_texts(texts)
        for i, text in enumerate(items):
            if (
                self.check_length
                and len(text) // 2 > self.spec.max_tokens  # cheap bound: most texts stop here
                and estimate_tokens(text) > self.spec.max_tokens
            ):
                raise InvalidInputError(
                    f"texts[{i}] is longer than {self.model} accepts "
                    f"({self.spec.max_tokens} tokens per text); split it into smaller chunks."
                )
        size = self.batch_size
        return [_Batch(s, items[s : s + size]) for s in range(0, len(items), size)]

    def _place(
        self,
        batch: _Batch,
        response: Mapping[str, Any],
        vectors: list[list[float] | None],
        sparse: list[dict[int, float] | None],
    ) -> tuple[int, str | None]:
        output = response.get("output") or {}
        items = output.get("embeddings") if isinstance(output, Mapping) else None
        if not isinstance(items, list) or len(items) != len(batch.texts):
            got = len(items) if isinstance(items, list) else 0
            raise BadRequestError(
                f"DashScope returned {got} embeddings for {len(batch.texts)} texts "
                f"(request_id={response.get('request_id')}); retry the call.",
                request_id=response.get("request_id") or None,
            )
        dense = self.output_type != "sparse"
        for position, item in enumerate(items):
            index = item.get("text_index", position)
            vector = item.get("embedding")
            weights = item.get("sparse_embedding")
            if (
                not isinstance(index, int)
                or not 0 <= index < len(batch.texts)
                or (dense and vector is None)
                or (self.output_type != "dense" and not isinstance(weights, list))
            ):
                raise BadRequestError(
                    f"DashScope returned a malformed embedding item (text_index={index!r}).",
                    request_id=response.get("request_id") or None,
                )
            if dense:
                vectors[batch.start + index] = [float(x) for x in vector]
            if self.output_type != "dense":
                sparse[batch.start + index] = _sparse_weights(weights)
        usage = response.get("usage") or {}
        tokens = int(usage.get("total_tokens") or 0) if isinstance(usage, Mapping) else 0
        return tokens, response.get("request_id") or None

    def _result(
        self,
        vectors: list[list[float] | None],
        sparse: list[dict[int, float] | None],
        tokens: int,
        request_ids: list[str | None],
    ) -> EmbeddingResult:
        with self._lock:
            self._total_tokens += tokens
        wanted_dense = self.output_type != "sparse"
        missing = [i for i, v in enumerate(vectors) if v is None] if wanted_dense else []
        if self.output_type != "dense":
            missing += [i for i, w in enumerate(sparse) if w is None]
        if missing:
            raise BadRequestError(f"DashScope returned no vector for texts {missing[:10]}.")
        return EmbeddingResult(
            vectors=[v for v in vectors if v is not None],
            model=self.model,
            dimensions=self.dimensions,
            total_tokens=tokens,
            request_ids=tuple(r for r in request_ids if r),
            sparse=[w for w in sparse if w is not None] if self.output_type != "dense" else None,
        )

    # --- sync -----------------------------------------------------------------------------

    def _embed_batch(self, batch: _Batch, params: Mapping[str, Any]) -> Mapping[str, Any]:
        return self.client.retry.call(
            lambda: self.client.text_embedding(self.model, batch.texts, params)
        )

    def embed(self, texts: Sequence[str], text_type: TextType = "document") -> EmbeddingResult:
        """Embed ``texts`` (in order) with ``text_type`` sent as ``parameters.text_type``.

        Raises:
            InvalidInputError: an empty text (message names its index), before any call.
            DashScopeError: the service's error, after retries where they make sense.
        """
        params = self._parameters(text_type)
        batches = self._batches(texts)
        vectors: list[list[float] | None] = [None] * sum(len(b.texts) for b in batches)
        sparse: list[dict[int, float] | None] = [None] * len(vectors)
        tokens = 0
        request_ids: list[str | None] = []
        if len(batches) <= 1 or self.max_concurrency == 1:
            for batch in batches:
                t, rid = self._place(batch, self._embed_batch(batch, params), vectors, sparse)
                tokens += t
                request_ids.append(rid)
            return self._result(vectors, sparse, tokens, request_ids)
        workers = min(self.max_concurrency, len(batches))
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="qwen-pg-embed")
        try:
            futures = [pool.submit(self._embed_batch, b, params) for b in batches]
            wait(futures, return_when=FIRST_EXCEPTION)
            for batch, future in zip(batches, futures, strict=True):
                t, rid = self._place(batch, future.result(), vectors, sparse)
                tokens += t
                request_ids.append(rid)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return self._result(vectors, sparse, tokens, request_ids)

    @property
    def has_sparse(self) -> bool:
        """True when calls return sparse weights (``output_type`` ``"sparse"`` or
        ``"dense&sparse"``)."""
        return self.output_type != "dense"

    def _need_sparse(self) -> None:
        if not self.has_sparse:
            raise ConfigurationError(
                "this client embeds dense vectors only: create it with "
                "output_type='dense&sparse' (or 'sparse') for sparse weights."
            )

    def embed_sparse(self, texts: Sequence[str], text_type: TextType = "document"
                     ) -> list[dict[int, float]]:  # fmt: skip
        """Sparse weights of ``texts`` (needs ``output_type`` ``"sparse"`` or
        ``"dense&sparse"``)."""
        self._need_sparse()
        if not texts:
            return []
        return self.embed(texts, text_type).sparse or []

    async def aembed_sparse(self, texts: Sequence[str], text_type: TextType = "document"
                            ) -> list[dict[int, float]]:  # fmt: skip
        """Async :meth:`embed_sparse`."""
        self._need_sparse()
        if not texts:
            return []
        return (await self.aembed(texts, text_type)).sparse or []

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Vectors of documents (``text_type="document"``), in input order."""
        return self.embed(texts, "document").vectors if texts else []

    def embed_query(self, text: str) -> list[float]:
        """The vector of one search query (``text_type="query"``)."""
        return self.embed([text], "query").vectors[0]

    # --- async ----------------------------------------------------------------------------

    async def aembed(
        self, texts: Sequence[str], text_type: TextType = "document"
    ) -> EmbeddingResult:
        """Async :meth:`embed`: aiohttp requests, at most ``max_concurrency`` at a time."""
        params = self._parameters(text_type)
        batches = self._batches(texts)
        vectors: list[list[float] | None] = [None] * sum(len(b.texts) for b in batches)
        sparse: list[dict[int, float] | None] = [None] * len(vectors)
        if not batches:
            return self._result(vectors, sparse, 0, [])
        semaphore = asyncio.Semaphore(self.max_concurrency)
        async with _aio.open_session(limit=self.max_concurrency) as session:

            async def one(batch: _Batch) -> Mapping[str, Any]:
                async with semaphore:
                    return await self.client.retry.acall(
                        lambda: self.client.atext_embedding(
                            session, self.model, batch.texts, params
                        )
                    )

            tasks = [asyncio.ensure_future(one(b)) for b in batches]
            try:
                responses = await asyncio.gather(*tasks)
            except BaseException:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise
        tokens = 0
        request_ids: list[str | None] = []
        for batch, response in zip(batches, responses, strict=True):
            t, rid = self._place(batch, response, vectors, sparse)
            tokens += t
            request_ids.append(rid)
        return self._result(vectors, sparse, tokens, request_ids)

    async def aembed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Async :meth:`embed_documents`."""
        return (await self.aembed(texts, "document")).vectors if texts else []

    async def aembed_query(self, text: str) -> list[float]:
        """Async :meth:`embed_query`."""
        return (await self.aembed([text], "query")).vectors[0]


def check_texts(texts: Sequence[str]) -> list[str]:
    """``texts`` as a list, refused when it is one string or holds a non-string or empty text
    (every embedding server rejects those)."""
    if isinstance(texts, str):
        raise InvalidInputError("texts must be a list of strings; use embed_query for one text.")
    items = list(texts)
    for i, text in enumerate(items):
        if not isinstance(text, str):
            raise InvalidInputError(f"texts[{i}] is {type(text).__name__}, not str.")
        if not text.strip():
            raise InvalidInputError(
                f"texts[{i}] is empty or whitespace only; embedding servers reject empty "
                "texts. Drop or fill it before embedding."
            )
    return items


def _sparse_weights(items: list[Any]) -> dict[int, float]:
    """``[{"index", "value", "token"?}, ...]`` -> ``{index: value}``; a repeated index keeps its
    largest weight (pgvector's sparsevec refuses duplicates); zero weights are dropped."""
    out: dict[int, float] = {}
    for item in items:
        index, value = item.get("index"), item.get("value")
        if not isinstance(index, int) or isinstance(index, bool) or index < 0 or value is None:
            raise BadRequestError(f"DashScope returned a malformed sparse weight: {item!r}.")
        weight = float(value)
        if weight != 0.0 and weight > out.get(index, float("-inf")):
            out[index] = weight
    return out


def sparse_client(source: Any) -> EmbeddingClient:
    """The :class:`EmbeddingClient` giving sparse weights behind ``source``: the client itself,
    or an embeddings adapter of this package (LangChain ``DashScopeEmbeddings``, LlamaIndex
    ``DashScopeEmbedding``) built with ``output_type="dense&sparse"`` or ``"sparse"``.

    Raises:
        ConfigurationError: ``source`` gives no sparse weights, with what to pass instead.
    """
    client = source if isinstance(source, EmbeddingClient) else getattr(source, "client", None)
    if not isinstance(client, EmbeddingClient):
        raise ConfigurationError(
            f"sparse vectors come from DashScope's text-embedding-v3/v4 sparse output, got "
            f"{type(source).__name__}: pass DashScopeEmbeddings(output_type='dense&sparse') "
            "(or an EmbeddingClient with that output_type)."
        )
    if not client.has_sparse:
        raise ConfigurationError(
            f"{client.model} was set up for dense vectors only: build it with "
            "output_type='dense&sparse' (dense and sparse in one call) or 'sparse'."
        )
    return client
