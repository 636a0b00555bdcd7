"""LangChain ``VectorStore`` over the PostgreSQL / PolarDB core (:mod:`qwen_pg_integrations.pg`).

This module only translates between LangChain's ``Document`` / ``Embeddings`` and the core's
``Record`` / ``SearchHit``; SQL, filters, MMR, hybrid fusion and thresholds live in the core.
"""

from __future__ import annotations

import uuid
from collections.abc import (
    AsyncIterator,
    Callable,
    Collection,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from itertools import islice
from typing import Any, ClassVar

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore, VectorStoreRetriever
from typing_extensions import Self, override

from ..dashscope.embeddings import EmbeddingClient, sparse_client
from ..errors import InvalidInputError
from ..pg import Distance, PGStore, Record, SearchHit
from ..pg.connection import ConnectionArg
from ..pg.filters import Filter

__all__ = ["PGVectorStore", "PGVectorStoreRetriever"]

_HIDDEN_PREFIX = "_node_"  # LlamaIndex's node payload keys (same table format, DESIGN.md §4)


def _document(hit_or_record: SearchHit | Record) -> Document:
    rec = hit_or_record.record if isinstance(hit_or_record, SearchHit) else hit_or_record
    meta = {k: v for k, v in rec.metadata.items() if not k.startswith(_HIDDEN_PREFIX)}
    return Document(id=rec.id, page_content=rec.content, metadata=meta)


def _docs(hits: Iterable[SearchHit | Record]) -> list[Document]:
    return [_document(h) for h in hits]


def _with_distance(hits: Iterable[SearchHit]) -> list[tuple[Document, float]]:
    """Documents with the raw distance (lower is closer), as ``similarity_search_with_score``."""
    return [(_document(h), float(h.distance or 0.0)) for h in hits]


def _with_score(hits: Iterable[SearchHit]) -> list[tuple[Document, float]]:
    """Documents with their relevance in [0, 1] (higher is closer)."""
    return [(_document(h), h.score) for h in hits]


def _aligned(name: str, values: Sequence[Any] | None, n: int) -> Sequence[Any]:
    if values is None:
        return [None] * n
    if len(values) != n:
        raise InvalidInputError(f"{name} has {len(values)} items but there are {n} texts")
    return values


def _id(value: Any) -> Any:
    """LangChain ids as the table stores them: ints and UUIDs by their string form (as
    langchain-postgres does); anything else is left to the core's checks."""
    if isinstance(value, (int, uuid.UUID)) and not isinstance(value, bool):
        return str(value)
    return value


def _ids(ids: Sequence[Any] | None) -> list[Any] | None:
    return None if ids is None else [_id(i) for i in ids]


class _Texts:
    """``add_texts`` input cut into embedding batches, turned into records batch by batch."""

    def __init__(
        self,
        texts: Iterable[str],
        metadatas: Sequence[dict[str, Any]] | None,
        ids: Sequence[Any] | None,
        size: int,
    ) -> None:
        if isinstance(texts, Sequence):
            _check_total(len(texts), metadatas, ids)
        self.texts, self.metadatas, self.ids, self.size = texts, metadatas, _ids(ids), size
        self.offset = 0

    def __iter__(self) -> Iterator[list[str]]:
        iterator = iter(self.texts)
        while chunk := list(islice(iterator, self.size)):
            yield chunk
        _check_total(self.offset, self.metadatas, self.ids)

    def records(
        self,
        chunk: list[str],
        vectors: Sequence[Sequence[float]],
        sparse: Sequence[Mapping[int, float]] | None = None,
    ) -> Iterator[Record]:
        """The records of one batch, its vectors (and sparse weights)."""
        yield from _records(chunk, vectors, self.metadatas, self.ids, self.offset, sparse)
        self.offset += len(chunk)


def _records(
    chunk: Sequence[str],
    vectors: Sequence[Sequence[float]],
    metadatas: Sequence[dict[str, Any]] | None,
    ids: Sequence[Any] | None,
    offset: int = 0,
    sparse: Sequence[Mapping[int, float]] | None = None,
) -> Iterator[Record]:
    if len(vectors) != len(chunk):
        raise InvalidInputError(
            f"the embeddings returned {len(vectors)} vectors for {len(chunk)} texts"
        )
    if sparse is not None and len(sparse) != len(chunk):
        raise InvalidInputError(
            f"the sparse embeddings returned {len(sparse)} vectors for {len(chunk)} texts"
        )
    for i, (text, vector) in enumerate(zip(chunk, vectors, strict=True)):
        j = offset + i
        meta = metadatas[j] if metadatas is not None and j < len(metadatas) else {}
        rid = ids[j] if ids is not None and j < len(ids) else None
        weights = sparse[i] if sparse is not None else None
        yield Record(rid or None, text, meta or {}, vector, weights)


def _check_total(n: int, metadatas: Sequence[Any] | None, ids: Sequence[Any] | None) -> None:
    _aligned("metadatas", metadatas, n)
    _aligned("ids", ids, n)


def _embedded(
    texts: Sequence[str],
    embeddings: Sequence[Sequence[float]],
    metadatas: Sequence[dict[str, Any]] | None,
    ids: Sequence[Any] | None,
) -> Iterator[Record]:
    n = len(texts)
    _aligned("embeddings", embeddings, n)
    return _records(list(texts), embeddings, metadatas, _aligned("ids", _ids(ids), n))


class PGVectorStore(VectorStore):
    """LangChain vector store on PostgreSQL / PolarDB with pgvector.

    Rows go into one table per collection (the format LlamaIndex's ``PGVectorStore`` of this
    package shares). Writes are upserts by id streamed in batches (COPY + one
    ``INSERT ... ON CONFLICT``); searches support metadata filters (``$eq $ne $lt $lte $gt
    $gte $in $nin $like $ilike $between $exists $and $or $not``), a score threshold in SQL,
    MMR, and hybrid (vector + full-text, fused by reciprocal rank fusion in one statement).

    Args:
        embeddings: the LangChain embeddings (``embed_documents`` for writes, ``embed_query``
            for searches).
        connection: DSN, psycopg connection or pool; ``None`` means ``QWEN_PG_DSN``, else the
            embedded server.
        table_name: the collection table.
        schema_name: its schema (default: the current schema).
        embedding_dimension: the vector dimension (default: taken from the first vector).
        distance: ``"cosine"``, ``"l2"`` or ``"inner_product"``; ``None``: the table's, cosine for a
            new table.
        embedding_model: recorded in the catalog (default: the embeddings' ``model``
            attribute); opening the table with another model raises ``SchemaMismatchError``.
        text_search: ``"auto"``, ``"jieba"``, a server text-search configuration, or
            ``"none"``: no full-text column (faster writes; hybrid search is refused).
        vector_type: ``"auto"``, ``"vector"`` or ``"halfvec"``.
        batch_size: rows per write batch (texts are embedded batch by batch too).
        create_table: create the table when missing.
        relevance_score_fn: relevance from the raw distance, replacing the distance's own
            (cosine ``1 - d``, l2 ``1 / (1 + d)``, inner product ``-d``) in
            ``similarity_search_with_relevance_scores`` and the ``similarity_score_threshold``
            retriever; the threshold then applies to its scores among the ``k`` nearest.
        sparse_embeddings: where sparse weights come from (DashScope text-embedding-v3/v4
            sparse output): ``None`` (default) uses ``embeddings`` when it is a
            ``DashScopeEmbeddings(output_type="dense&sparse")`` (dense and sparse in one call),
            else stores none; or a ``DashScopeEmbeddings`` / ``EmbeddingClient`` with sparse
            output. With sparse weights, rows keep them in a ``sparsevec`` column, hybrid
            search adds a sparse ranking to the fusion, and :meth:`sparse_search_with_score`
            and ``search_type="sparse"`` search them alone.
        sparse_dimension: the sparse column's dimension (default 1,000,000, above the
            vocabularies the sparse indices come from).
        read_connection: read replicas (DSN, pool or connection, or a list: hot standbys,
            PolarDB read-only nodes) for searches and gets; writes stay on ``connection``.
        read_your_writes: reads after this store's writes wait (bounded) until a standby has
            replayed them, else run on the primary.
        max_replica_lag: seconds of replay lag a standby may have before reads skip it.
        distributed, shard_count: shard a new table with Citus (``connection`` a Citus
            coordinator); see :class:`~qwen_pg_integrations.pg.PGStore`.

    Example:
        >>> from qwen_pg_integrations.langchain import DashScopeEmbeddings, PGVectorStore
        >>> store = PGVectorStore(DashScopeEmbeddings(model="text-embedding-v4"))
        >>> store.add_texts(["PolarDB 支持 pgvector"], metadatas=[{"src": "doc"}])
        ... # doctest: +SKIP
        >>> store.similarity_search("向量检索", k=4, filter={"src": "doc"})  # doctest: +SKIP
    """

    def __init__(
        self,
        embeddings: Embeddings,
        *,
        connection: ConnectionArg = None,
        table_name: str = "qwen_pg_documents",
        schema_name: str | None = None,
        embedding_dimension: int | None = None,
        distance: Distance | str | None = None,
        embedding_model: str | None = None,
        text_search: str = "auto",
        vector_type: str = "auto",
        batch_size: int = 1000,
        create_table: bool = True,
        relevance_score_fn: Callable[[float], float] | None = None,
        sparse_embeddings: Any = None,
        sparse_dimension: int | None = None,
        read_connection: Any = None,
        read_your_writes: bool = False,
        max_replica_lag: float | None = 30.0,
        distributed: bool = False,
        shard_count: int | None = None,
    ) -> None:
        if not isinstance(embeddings, Embeddings):
            raise InvalidInputError(
                f"embeddings must be a LangChain Embeddings, got {type(embeddings).__name__}"
            )
        if relevance_score_fn is not None and not callable(relevance_score_fn):
            raise InvalidInputError("relevance_score_fn must be a function of the distance")
        self._embeddings = embeddings
        self._relevance_score_fn = relevance_score_fn
        own = getattr(embeddings, "client", None)
        self._sparse: EmbeddingClient | None = None
        if sparse_embeddings is not None:
            self._sparse = sparse_client(sparse_embeddings)
        elif isinstance(own, EmbeddingClient) and own.output_type == "dense&sparse":
            self._sparse = own
        # dense and sparse from one call when both come from the same client
        self._joint = self._sparse is not None and self._sparse is own
        if sparse_dimension is not None and self._sparse is None:
            raise InvalidInputError(
                "sparse_dimension needs sparse weights: pass sparse_embeddings=..., or "
                "DashScopeEmbeddings(output_type='dense&sparse') as embeddings"
            )
        if embedding_model is None:
            model = getattr(embeddings, "model", None) or getattr(embeddings, "model_name", None)
            embedding_model = model if isinstance(model, str) else None
        self.store = PGStore(
            connection,
            table_name=table_name,
            schema_name=schema_name,
            dimension=embedding_dimension,
            distance=distance,
            embedding_model=embedding_model,
            text_search=text_search,
            vector_type=vector_type,
            batch_size=batch_size,
            create_table=create_table,
            sparse_dimension=(sparse_dimension or True) if self._sparse is not None else None,
            read_connection=read_connection,
            read_your_writes=read_your_writes,
            max_replica_lag=max_replica_lag,
            distributed=distributed,
            shard_count=shard_count,
        )

    def __repr__(self) -> str:
        return f"PGVectorStore(store={self.store!r})"

    @property
    def embeddings(self) -> Embeddings:
        """The embeddings used for texts and queries."""
        return self._embeddings

    @override
    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        return self._relevance_score_fn or self.store.distance.score

    def _query(self, query: str) -> list[float]:
        return self._embeddings.embed_query(query)

    async def _aquery(self, query: str) -> list[float]:
        return await self._embeddings.aembed_query(query)

    def _query_and_sparse(self, query: str) -> tuple[list[float], dict[int, float] | None]:
        """The query's vector and, with sparse weights on, its sparse weights (one call when
        both come from the same client)."""
        if self._sparse is None:
            return self._query(query), None
        if self._joint:
            res = self._sparse.embed([query], "query")
            return res.vectors[0], res.sparse[0] if res.sparse else None
        return self._query(query), self._sparse.embed_sparse([query], "query")[0]

    async def _aquery_and_sparse(self, query: str) -> tuple[list[float], dict[int, float] | None]:
        """Async :meth:`_query_and_sparse`."""
        if self._sparse is None:
            return await self._aquery(query), None
        if self._joint:
            res = await self._sparse.aembed([query], "query")
            return res.vectors[0], res.sparse[0] if res.sparse else None
        return await self._aquery(query), (await self._sparse.aembed_sparse([query], "query"))[0]

    def _sparse_source(self) -> EmbeddingClient:
        if self._sparse is None:
            raise InvalidInputError(
                "this store has no sparse weights: pass sparse_embeddings=..., or "
                "DashScopeEmbeddings(output_type='dense&sparse') as embeddings"
            )
        return self._sparse

    def _sparse_query(self, query: str) -> dict[int, float]:
        return self._sparse_source().embed_sparse([query], "query")[0]

    async def _asparse_query(self, query: str) -> dict[int, float]:
        return (await self._sparse_source().aembed_sparse([query], "query"))[0]

    # -- writes ------------------------------------------------------------------------------

    def _embed_chunk(
        self, chunk: list[str]
    ) -> tuple[Sequence[Sequence[float]], Sequence[Mapping[int, float]] | None]:
        if self._sparse is None:
            return self._embeddings.embed_documents(chunk), None
        if self._joint:
            res = self._sparse.embed(chunk, "document")
            return res.vectors, res.sparse
        return self._embeddings.embed_documents(chunk), self._sparse.embed_sparse(chunk)

    async def _aembed_chunk(
        self, chunk: list[str]
    ) -> tuple[Sequence[Sequence[float]], Sequence[Mapping[int, float]] | None]:
        if self._sparse is None:
            return await self._embeddings.aembed_documents(chunk), None
        if self._joint:
            res = await self._sparse.aembed(chunk, "document")
            return res.vectors, res.sparse
        dense = await self._embeddings.aembed_documents(chunk)
        return dense, await self._sparse.aembed_sparse(chunk)

    def _records(self, texts: _Texts) -> Iterator[Record]:
        for chunk in texts:
            yield from texts.records(chunk, *self._embed_chunk(chunk))

    async def _arecords(self, texts: _Texts) -> AsyncIterator[Record]:
        for chunk in texts:
            for rec in texts.records(chunk, *(await self._aembed_chunk(chunk))):
                yield rec

    @override
    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Embed and upsert texts (streamed batch by batch; ids default to a content hash;
        int ids are stored as their string form).

        Returns:
            The ids, in input order.
        """
        return self.store.add(self._records(_Texts(texts, metadatas, ids, self.store.batch_size)))

    @override
    async def aadd_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Async :meth:`add_texts`."""
        batches = _Texts(texts, metadatas, ids, self.store.batch_size)
        return await self.store.aadd(self._arecords(batches))

    def add_embeddings(
        self,
        texts: Sequence[str],
        embeddings: Sequence[Sequence[float]],
        metadatas: Sequence[dict[str, Any]] | None = None,
        ids: Sequence[str | None] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Upsert texts with precomputed vectors (no embedding call)."""
        return self.store.add(_embedded(texts, embeddings, metadatas, ids))

    async def aadd_embeddings(
        self,
        texts: Sequence[str],
        embeddings: Sequence[Sequence[float]],
        metadatas: Sequence[dict[str, Any]] | None = None,
        ids: Sequence[str | None] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Async :meth:`add_embeddings`."""
        return await self.store.aadd(_embedded(texts, embeddings, metadatas, ids))

    @override
    def delete(
        self, ids: list[str] | None = None, *, filter: Filter | None = None, **kwargs: Any
    ) -> bool:
        """Delete by ids and/or metadata filter (both: documents matching both).

        Missing ids are not an error. With neither, or with a filter that matches every row
        (``{}``, ``{"x": {"$nin": []}}``), nothing is deleted and ``InvalidInputError`` /
        ``FilterError`` is raised: deleting every document is only :meth:`clear`.
        """
        self.store.delete(_ids(ids), filter=filter)
        return True

    @override
    async def adelete(
        self, ids: list[str] | None = None, *, filter: Filter | None = None, **kwargs: Any
    ) -> bool:
        """Async :meth:`delete`."""
        await self.store.adelete(_ids(ids), filter=filter)
        return True

    def clear(self) -> None:
        """Delete every document (the table, its indexes and its catalog row stay)."""
        self.store.clear()

    async def aclear(self) -> None:
        """Async :meth:`clear`."""
        await self.store.aclear()

    @override
    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """Documents for these ids, in that order; missing ids are skipped."""
        return _docs(self.store.get(_ids(ids)))

    @override
    async def aget_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """Async :meth:`get_by_ids`."""
        return _docs(await self.store.aget(_ids(ids)))

    # -- similarity --------------------------------------------------------------------------

    def similarity_search_with_score_by_vector(
        self, embedding: list[float], k: int = 4, filter: Filter | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Nearest documents with their raw distance (lower is closer)."""
        return _with_distance(self.store.search(embedding, k=k, filter=filter, **kwargs))

    async def asimilarity_search_with_score_by_vector(
        self, embedding: list[float], k: int = 4, filter: Filter | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Async :meth:`similarity_search_with_score_by_vector`."""
        return _with_distance(await self.store.asearch(embedding, k=k, filter=filter, **kwargs))

    @override
    def similarity_search(
        self, query: str, k: int = 4, filter: Filter | None = None, **kwargs: Any
    ) -> list[Document]:
        """The ``k`` documents nearest to ``query`` (``filter``, ``score_threshold``,
        ``ef_search``, ``probes`` accepted)."""
        return _docs(self.store.search(self._query(query), k=k, filter=filter, **kwargs))

    @override
    async def asimilarity_search(
        self, query: str, k: int = 4, filter: Filter | None = None, **kwargs: Any
    ) -> list[Document]:
        """Async :meth:`similarity_search`."""
        hits = await self.store.asearch(await self._aquery(query), k=k, filter=filter, **kwargs)
        return _docs(hits)

    @override
    def similarity_search_by_vector(
        self, embedding: list[float], k: int = 4, filter: Filter | None = None, **kwargs: Any
    ) -> list[Document]:
        """The ``k`` documents nearest to a vector."""
        return _docs(self.store.search(embedding, k=k, filter=filter, **kwargs))

    @override
    async def asimilarity_search_by_vector(
        self, embedding: list[float], k: int = 4, filter: Filter | None = None, **kwargs: Any
    ) -> list[Document]:
        """Async :meth:`similarity_search_by_vector`."""
        return _docs(await self.store.asearch(embedding, k=k, filter=filter, **kwargs))

    @override
    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: Filter | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Nearest documents with their raw distance (lower is closer)."""
        return self.similarity_search_with_score_by_vector(self._query(query), k, filter, **kwargs)

    @override
    async def asimilarity_search_with_score(
        self, query: str, k: int = 4, filter: Filter | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Async :meth:`similarity_search_with_score`."""
        vector = await self._aquery(query)
        return await self.asimilarity_search_with_score_by_vector(vector, k, filter, **kwargs)

    @override
    def similarity_search_with_relevance_scores(
        self, query: str, k: int = 4, filter: Filter | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Nearest documents with relevance in [0, 1]; ``score_threshold`` is applied in SQL
        (with a custom ``relevance_score_fn``: to its scores, among the ``k`` nearest)."""
        kwargs.setdefault("score_fn", self._relevance_score_fn)
        return _with_score(self.store.search(self._query(query), k=k, filter=filter, **kwargs))

    @override
    async def asimilarity_search_with_relevance_scores(
        self, query: str, k: int = 4, filter: Filter | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Async :meth:`similarity_search_with_relevance_scores`."""
        kwargs.setdefault("score_fn", self._relevance_score_fn)
        vector = await self._aquery(query)
        return _with_score(await self.store.asearch(vector, k=k, filter=filter, **kwargs))

    # -- MMR ---------------------------------------------------------------------------------

    @override
    def max_marginal_relevance_search(
        self, query: str, k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5, **kwargs: Any
    ) -> list[Document]:
        """MMR over the ``fetch_k`` nearest candidates (``filter=`` and the search options of
        :meth:`similarity_search` accepted)."""
        vector = self._query(query)
        return self.max_marginal_relevance_search_by_vector(
            vector, k, fetch_k, lambda_mult, **kwargs
        )

    @override
    async def amax_marginal_relevance_search(
        self, query: str, k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5, **kwargs: Any
    ) -> list[Document]:
        """Async :meth:`max_marginal_relevance_search`."""
        vector = await self._aquery(query)
        hits = await self.store.ammr_search(
            vector, k=k, fetch_k=fetch_k, lambda_mult=lambda_mult, **kwargs
        )
        return _docs(hits)

    @override
    def max_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        **kwargs: Any,
    ) -> list[Document]:
        """MMR over the ``fetch_k`` candidates nearest to a vector."""
        return [
            d
            for d, _ in self.max_marginal_relevance_search_with_score_by_vector(
                embedding, k, fetch_k, lambda_mult, **kwargs
            )
        ]

    @override
    async def amax_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        **kwargs: Any,
    ) -> list[Document]:
        """Async :meth:`max_marginal_relevance_search_by_vector`."""
        scored = await self.amax_marginal_relevance_search_with_score_by_vector(
            embedding, k, fetch_k, lambda_mult, **kwargs
        )
        return [d for d, _ in scored]

    def max_marginal_relevance_search_with_score(
        self, query: str, k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """MMR picks with their raw distance to the query (as langchain-postgres returns)."""
        return self.max_marginal_relevance_search_with_score_by_vector(
            self._query(query), k, fetch_k, lambda_mult, **kwargs
        )

    async def amax_marginal_relevance_search_with_score(
        self, query: str, k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Async :meth:`max_marginal_relevance_search_with_score`."""
        vector = await self._aquery(query)
        return await self.amax_marginal_relevance_search_with_score_by_vector(
            vector, k, fetch_k, lambda_mult, **kwargs
        )

    def max_marginal_relevance_search_with_score_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """MMR picks among the ``fetch_k`` candidates nearest to a vector, with their raw
        distance (``filter=`` and the search options of :meth:`similarity_search` accepted)."""
        hits = self.store.mmr_search(
            embedding, k=k, fetch_k=fetch_k, lambda_mult=lambda_mult, **kwargs
        )
        return _with_distance(hits)

    async def amax_marginal_relevance_search_with_score_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """Async :meth:`max_marginal_relevance_search_with_score_by_vector`."""
        return _with_distance(
            await self.store.ammr_search(
                embedding, k=k, fetch_k=fetch_k, lambda_mult=lambda_mult, **kwargs
            )
        )

    # -- hybrid and text ---------------------------------------------------------------------

    def hybrid_search_with_score(
        self, query: str, k: int = 4, filter: Filter | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Vector + full-text (+ sparse) search fused by reciprocal rank fusion (one SQL
        statement).

        Chinese is segmented (jieba on the client, or the server's zhparser / pg_jieba). With
        sparse weights on (see ``sparse_embeddings``) the query's sparse ranking joins the
        fusion, from the same embedding call as its vector. Keyword arguments: ``fetch_k``,
        ``rrf_k`` (60), ``vector_weight``, ``text_weight``, ``sparse_weight``.

        Returns:
            The fused top ``k`` documents with the fused score normalised to [0, 1].
        """
        vector, sparse = self._query_and_sparse(query)
        hits = self.store.hybrid_search(vector, query, k=k, filter=filter, sparse=sparse, **kwargs)
        return _with_score(hits)

    async def ahybrid_search_with_score(
        self, query: str, k: int = 4, filter: Filter | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Async :meth:`hybrid_search_with_score`."""
        vector, sparse = await self._aquery_and_sparse(query)
        hits = await self.store.ahybrid_search(
            vector, query, k=k, filter=filter, sparse=sparse, **kwargs
        )
        return _with_score(hits)

    def sparse_search_with_score(
        self, query: str, k: int = 4, filter: Filter | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Documents of highest sparse inner product with the query's sparse weights, with
        that inner product clipped to [0, 1] (``ids=``, ``ef_search=`` accepted)."""
        hits = self.store.sparse_search(self._sparse_query(query), k=k, filter=filter, **kwargs)
        return _with_score(hits)

    async def asparse_search_with_score(
        self, query: str, k: int = 4, filter: Filter | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Async :meth:`sparse_search_with_score`."""
        sparse = await self._asparse_query(query)
        return _with_score(await self.store.asparse_search(sparse, k=k, filter=filter, **kwargs))

    def sparse_search(
        self, query: str, k: int = 4, filter: Filter | None = None, **kwargs: Any
    ) -> list[Document]:
        """Documents of :meth:`sparse_search_with_score`."""
        return [d for d, _ in self.sparse_search_with_score(query, k, filter, **kwargs)]

    async def asparse_search(
        self, query: str, k: int = 4, filter: Filter | None = None, **kwargs: Any
    ) -> list[Document]:
        """Async :meth:`sparse_search`."""
        return [d for d, _ in await self.asparse_search_with_score(query, k, filter, **kwargs)]

    def hybrid_search(
        self, query: str, k: int = 4, filter: Filter | None = None, **kwargs: Any
    ) -> list[Document]:
        """Documents of :meth:`hybrid_search_with_score`."""
        return [d for d, _ in self.hybrid_search_with_score(query, k, filter, **kwargs)]

    async def ahybrid_search(
        self, query: str, k: int = 4, filter: Filter | None = None, **kwargs: Any
    ) -> list[Document]:
        """Async :meth:`hybrid_search`."""
        return [d for d, _ in await self.ahybrid_search_with_score(query, k, filter, **kwargs)]

    def text_search(
        self, query: str, k: int = 4, filter: Filter | None = None
    ) -> list[tuple[Document, float]]:
        """Full-text search only (no embedding call), with normalised rank."""
        return _with_score(self.store.text_search(query, k=k, filter=filter))

    @override
    def search(self, query: str, search_type: str, **kwargs: Any) -> list[Document]:
        """``similarity``, ``similarity_score_threshold``, ``mmr``, ``hybrid`` or ``sparse``."""
        if search_type == "hybrid":
            return self.hybrid_search(query, **kwargs)
        if search_type == "sparse":
            return self.sparse_search(query, **kwargs)
        return super().search(query, search_type, **kwargs)

    @override
    async def asearch(self, query: str, search_type: str, **kwargs: Any) -> list[Document]:
        """Async :meth:`search`."""
        if search_type == "hybrid":
            return await self.ahybrid_search(query, **kwargs)
        if search_type == "sparse":
            return await self.asparse_search(query, **kwargs)
        return await super().asearch(query, search_type, **kwargs)

    # -- index, construction, retriever ------------------------------------------------------

    def close(self) -> None:
        """Close the pooled connections of this store's DSN (they reopen on next use)."""
        self.store.close()

    async def aclose(self) -> None:
        """Async :meth:`close`."""
        await self.store.aclose()

    def create_index(self, kind: str = "hnsw", **kwargs: Any) -> str:
        """Create the HNSW (``m``, ``ef_construction``) or IVFFlat (``lists``) index."""
        return self.store.create_index(kind, **kwargs)

    async def acreate_index(self, kind: str = "hnsw", **kwargs: Any) -> str:
        """Async :meth:`create_index`."""
        return await self.store.acreate_index(kind, **kwargs)

    @classmethod
    @override
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> Self:
        """A store (constructor keyword arguments in ``kwargs``) filled with ``texts``."""
        store = cls(embedding, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store

    @classmethod
    @override
    async def afrom_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> Self:
        """Async :meth:`from_texts`."""
        store = cls(embedding, **kwargs)
        await store.aadd_texts(texts, metadatas, ids=ids)
        return store

    @override
    def as_retriever(self, **kwargs: Any) -> PGVectorStoreRetriever:
        """A retriever: ``search_type`` ``similarity`` (default), ``similarity_score_threshold``,
        ``mmr`` or ``hybrid``; ``search_kwargs`` go to the search (``k``, ``filter``, ...)."""
        tags = kwargs.pop("tags", None) or [*self._get_retriever_tags()]
        return PGVectorStoreRetriever(vectorstore=self, tags=tags, **kwargs)


class PGVectorStoreRetriever(VectorStoreRetriever):
    """``VectorStoreRetriever`` that also knows ``search_type="hybrid"``."""

    vectorstore: PGVectorStore
    allowed_search_types: ClassVar[Collection[str]] = (
        "similarity",
        "similarity_score_threshold",
        "mmr",
        "hybrid",
        "sparse",
    )

    @override
    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        if self.search_type == "hybrid":
            return self.vectorstore.hybrid_search(query, **(self.search_kwargs | kwargs))
        if self.search_type == "sparse":
            return self.vectorstore.sparse_search(query, **(self.search_kwargs | kwargs))
        return super()._get_relevant_documents(query, run_manager=run_manager, **kwargs)

    @override
    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        if self.search_type == "hybrid":
            return await self.vectorstore.ahybrid_search(query, **(self.search_kwargs | kwargs))
        if self.search_type == "sparse":
            return await self.vectorstore.asparse_search(query, **(self.search_kwargs | kwargs))
        return await super()._aget_relevant_documents(query, run_manager=run_manager, **kwargs)
