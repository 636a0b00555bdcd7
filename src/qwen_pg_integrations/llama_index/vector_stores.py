"""LlamaIndex ``BasePydanticVectorStore`` over the PostgreSQL / pgvector store core.

SQL, filters, MMR, hybrid fusion, thresholds and batching are the core's
(:class:`qwen_pg_integrations.pg.PGStore`); this module translates nodes, ``MetadataFilters``
and ``VectorStoreQuery`` to it. The table is the one the LangChain ``PGVectorStore`` uses, so
each framework reads what the other wrote.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.schema import BaseNode
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)

from ..dashscope.embeddings import EmbeddingClient, sparse_client
from ..errors import InvalidInputError
from ..pg import PGStore, Record, SearchHit
from ._filters import to_core_filter
from ._nodes import REF_DOC_KEY, node_to_record, record_to_node

__all__ = ["PGVectorStore"]

_TEXT_MODES = (VectorStoreQueryMode.TEXT_SEARCH, VectorStoreQueryMode.SPARSE)
_VECTOR_MODES = (
    VectorStoreQueryMode.DEFAULT,
    VectorStoreQueryMode.MMR,
    VectorStoreQueryMode.HYBRID,
)


class PGVectorStore(BasePydanticVectorStore):
    """PostgreSQL / PolarDB vector store (pgvector) for LlamaIndex.

    Query modes: ``DEFAULT`` (vector), ``MMR``, ``HYBRID`` (vector + full text, + sparse
    vectors with a ``sparse_embed_model``, fused by reciprocal rank, Chinese segmented),
    ``TEXT_SEARCH`` (full text only), ``SPARSE`` (sparse vectors with a
    ``sparse_embed_model``, else full text).
    ``MetadataFilters`` take every ``FilterOperator`` and nested AND / OR / NOT conditions.
    Query keyword arguments (``vector_store_kwargs`` of a retriever): ``score_threshold``
    (alias ``similarity_cutoff``; relevance in [0, 1], applied in SQL; vector modes only),
    ``mmr_prefetch_k`` / ``mmr_prefetch_factor``, ``rrf_k``, ``ef_search``, ``probes``.

    ``HYBRID`` returns the ``hybrid_top_k`` (else ``similarity_top_k``) rows of the fused
    ranking (reciprocal rank fusion of the vector and full-text rankings, in one statement),
    not the union of a dense top-k and a sparse top-k that other stores return.

    Args:
        connection: a DSN, a psycopg connection or pool, or None for ``QWEN_PG_DSN`` (else the
            embedded server).
        table_name: the collection table (shared with the LangChain store).
        embed_model: the embedding model the table is filled with: its ``model_name`` is
            recorded in the catalog (opening the table with another model, from either
            framework, raises ``SchemaMismatchError``) and its dimension is the table's.
        embed_dim: vector dimension, when no ``embed_model`` states it; None takes it from the
            table's catalog row or the first write.
        schema_name, distance, embedding_model, text_search: passed to the core store.
        read_connection: read replicas (DSN, pool or connection, or a list: hot standbys,
            PolarDB read-only nodes) for queries and gets; writes stay on ``connection``.
        read_your_writes: queries after this store's writes wait (bounded) until a standby
            has replayed them, else run on the primary.
        distributed, shard_count: shard a new table with Citus (``connection`` a Citus
            coordinator).
        sparse_embed_model: DashScope sparse weights (``DashScopeEmbedding(output_type=
            "dense&sparse")`` or an ``EmbeddingClient`` with sparse output): ``add`` stores
            each node's sparse weights (one more embedding call per batch: LlamaIndex hands the
            store nodes already embedded), ``SPARSE`` searches them and ``HYBRID`` adds their
            ranking to the fusion.

    Example:
        >>> from llama_index.core import VectorStoreIndex
        >>> from qwen_pg_integrations.llama_index import DashScopeEmbedding, PGVectorStore, Qwen
        >>> embed = DashScopeEmbedding()
        >>> store = PGVectorStore(table_name="docs", embed_model=embed)  # doctest: +SKIP
        >>> index = VectorStoreIndex.from_vector_store(store, embed_model=embed)
        >>> index.as_query_engine(llm=Qwen()).query("What is pgvector?")  # doctest: +SKIP
    """

    stores_text: bool = True
    is_embedding_query: bool = True
    table_name: str = "qwen_pg_documents"
    schema_name: str | None = None
    embed_dim: int | None = None
    distance: str | None = None
    embedding_model: str | None = None
    text_search: str = "auto"

    sparse_dimension: int | None = None
    read_your_writes: bool = False
    distributed: bool = False
    shard_count: int | None = None

    _store: PGStore = PrivateAttr()
    _sparse: EmbeddingClient | None = PrivateAttr(default=None)

    def __init__(
        self,
        *,
        connection: Any = None,
        store: PGStore | None = None,
        embed_model: BaseEmbedding | None = None,
        sparse_embed_model: Any = None,
        read_connection: Any = None,
        **data: Any,
    ) -> None:
        if embed_model is not None:
            data.update(_from_embed_model(embed_model, data))
        sparse = None if sparse_embed_model is None else sparse_client(sparse_embed_model)
        super().__init__(**data)
        self._sparse = sparse
        self._store = store or PGStore(
            connection,
            table_name=self.table_name,
            schema_name=self.schema_name,
            dimension=self.embed_dim,
            distance=self.distance,
            embedding_model=self.embedding_model,
            text_search=self.text_search,
            sparse_dimension=(self.sparse_dimension or True) if sparse is not None else None,
            read_connection=read_connection,
            read_your_writes=self.read_your_writes,
            distributed=self.distributed,
            shard_count=self.shard_count,
        )

    @classmethod
    def class_name(cls) -> str:
        return "QwenPGVectorStore"

    @property
    def client(self) -> PGStore:
        """The core store (for ``create_index``, ``count``, ``close`` ...)."""
        return self._store

    # -- writes ----------------------------------------------------------------------------

    def add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        """Upsert ``nodes`` (by node id) and return their ids (with their sparse weights when
        the store has a ``sparse_embed_model``)."""
        records = [node_to_record(n) for n in nodes]
        if self._sparse is not None and records:
            weights = self._sparse.embed_sparse([r.content for r in records], "document")
            records = _with_sparse(records, weights)
        return self._store.add(records)

    async def async_add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        records = [node_to_record(n) for n in nodes]
        if self._sparse is not None and records:
            weights = await self._sparse.aembed_sparse([r.content for r in records], "document")
            records = _with_sparse(records, weights)
        return await self._store.aadd(records)

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node of the source document ``ref_doc_id``."""
        self._store.delete(filter={REF_DOC_KEY: ref_doc_id})

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        await self._store.adelete(filter={REF_DOC_KEY: ref_doc_id})

    def delete_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        **delete_kwargs: Any,
    ) -> None:
        """Delete nodes by id and/or filter (both given: nodes that match both)."""
        self._store.delete(node_ids, filter=to_core_filter(filters))

    async def adelete_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        **delete_kwargs: Any,
    ) -> None:
        await self._store.adelete(node_ids, filter=to_core_filter(filters))

    def clear(self) -> None:
        """Delete every row (the table and its catalog entry stay)."""
        self._store.clear()

    async def aclear(self) -> None:
        await self._store.aclear()

    # -- reads -----------------------------------------------------------------------------

    def get_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
    ) -> list[BaseNode]:
        """Nodes by id (in that order, missing ones skipped) and/or filter, with embeddings."""
        records = self._store.get(node_ids, filter=to_core_filter(filters), include_embeddings=True)
        return [record_to_node(r) for r in records]

    async def aget_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
    ) -> list[BaseNode]:
        records = await self._store.aget(
            node_ids, filter=to_core_filter(filters), include_embeddings=True
        )
        return [record_to_node(r) for r in records]

    def _sparse_wanted(self, query: VectorStoreQuery) -> bool:
        mode = VectorStoreQueryMode(query.mode)
        wanted = mode in (VectorStoreQueryMode.SPARSE, VectorStoreQueryMode.HYBRID)
        return wanted and self._sparse is not None and bool(query.query_str)

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """Run ``query`` in its mode; scores are relevances in [0, 1], best first."""
        sparse = None
        if self._sparse_wanted(query):
            assert self._sparse is not None and query.query_str
            sparse = self._sparse.embed_sparse([query.query_str], "query")[0]
        method, args, options = _plan(query, kwargs, sparse)
        return _result(getattr(self._store, method)(*args, **options))

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        sparse = None
        if self._sparse_wanted(query):
            assert self._sparse is not None and query.query_str
            sparse = (await self._sparse.aembed_sparse([query.query_str], "query"))[0]
        method, args, options = _plan(query, kwargs, sparse)
        return _result(await getattr(self._store, "a" + method)(*args, **options))


def _with_sparse(records: list[Record], weights: list[dict[int, float]]) -> list[Record]:
    if len(weights) != len(records):
        raise InvalidInputError(
            f"the sparse embed model returned {len(weights)} vectors for {len(records)} nodes"
        )
    return [
        dataclasses.replace(r, sparse_embedding=w) for r, w in zip(records, weights, strict=True)
    ]


def _from_embed_model(model: BaseEmbedding, data: dict[str, Any]) -> dict[str, Any]:
    """The model name and dimension an embedding model states (``model_name``; ``dimensions``,
    ``embed_dim`` or ``dimension`` when it has one), checked against what was also given."""
    if not isinstance(model, BaseEmbedding):
        raise InvalidInputError(
            f"embed_model must be a LlamaIndex BaseEmbedding, got {type(model).__name__}"
        )
    out: dict[str, Any] = {}
    name = getattr(model, "model_name", None)
    if isinstance(name, str) and name and name != "unknown":
        out["embedding_model"] = name
    for attr in ("dimensions", "embed_dim", "dimension"):
        dim = getattr(model, attr, None)
        if isinstance(dim, int) and not isinstance(dim, bool) and dim > 0:
            out["embed_dim"] = dim
            break
    for key, value in out.items():
        given = data.get(key)
        if given is not None and given != value:
            raise InvalidInputError(
                f"{key}={given!r} contradicts embed_model ({value!r}): leave {key} out, the "
                "store takes it from the model"
            )
    return out


def _plan(
    query: VectorStoreQuery, kwargs: dict[str, Any], sparse: dict[int, float] | None = None
) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
    """Which core search to run for ``query`` (``sparse``: the query's sparse weights, for the
    sparse and hybrid modes), with which arguments."""
    mode = VectorStoreQueryMode(query.mode)
    if mode not in _TEXT_MODES + _VECTOR_MODES:
        raise InvalidInputError(
            f"Query mode {mode.value!r} is not supported; use default, mmr, hybrid or text_search."
        )
    core_filter = to_core_filter(query.filters)
    if query.doc_ids:
        doc_filter = {REF_DOC_KEY: {"$in": list(query.doc_ids)}}
        core_filter = doc_filter if core_filter is None else {"$and": [core_filter, doc_filter]}
    options: dict[str, Any] = {"filter": core_filter}
    if query.node_ids:  # restrict the search to these nodes (the core binds them as parameters)
        options["ids"] = list(query.node_ids)
    k = query.similarity_top_k
    threshold = kwargs.get("score_threshold", kwargs.get("similarity_cutoff"))
    if threshold is not None and mode not in (
        VectorStoreQueryMode.DEFAULT,
        VectorStoreQueryMode.MMR,
    ):
        raise InvalidInputError(
            f"score_threshold applies to vector similarity (default and mmr modes), not to "
            f"{mode.value!r}; use a SimilarityPostprocessor on fused scores instead."
        )

    if mode in _TEXT_MODES:
        if not query.query_str:
            raise InvalidInputError(f"Query mode {mode.value!r} needs query_str.")
        options["k"] = query.sparse_top_k or k
        if mode == VectorStoreQueryMode.SPARSE and sparse is not None:
            if kwargs.get("ef_search") is not None:
                options["ef_search"] = kwargs["ef_search"]
            return "sparse_search", (sparse,), options
        return "text_search", (query.query_str,), options

    if query.query_embedding is None:
        raise InvalidInputError(
            f"Query mode {mode.value!r} needs query_embedding; give the index an embed_model."
        )
    for name in ("ef_search", "probes"):
        if kwargs.get(name) is not None:
            options[name] = kwargs[name]

    if mode == VectorStoreQueryMode.HYBRID:
        if not query.query_str:
            raise InvalidInputError("Hybrid queries need query_str as well as an embedding.")
        options["k"] = query.hybrid_top_k or k
        if query.sparse_top_k:
            options["fetch_k"] = max(query.sparse_top_k, k)
        if sparse is not None:
            options["sparse"] = sparse
        if query.alpha is not None:  # LlamaIndex: 0 = text (and sparse) only, 1 = vector only
            options.update(vector_weight=query.alpha, text_weight=1.0 - query.alpha)
            if sparse is not None:
                options["sparse_weight"] = 1.0 - query.alpha
        if kwargs.get("rrf_k") is not None:
            options["rrf_k"] = kwargs["rrf_k"]
        return "hybrid_search", (query.query_embedding, query.query_str), options

    options.update(k=k, score_threshold=threshold)
    if mode == VectorStoreQueryMode.MMR:
        factor = kwargs.get("mmr_prefetch_factor")
        options["fetch_k"] = kwargs.get("mmr_prefetch_k") or (
            int(k * factor) if factor else max(20, 4 * k)
        )
        if query.mmr_threshold is not None:
            options["lambda_mult"] = query.mmr_threshold
        return "mmr_search", (query.query_embedding,), options
    return "search", (query.query_embedding,), options


def _result(hits: list[SearchHit]) -> VectorStoreQueryResult:
    nodes = [record_to_node(h.record) for h in hits]
    return VectorStoreQueryResult(
        nodes=nodes,
        similarities=[h.score for h in hits],
        ids=[n.node_id for n in nodes],
    )
