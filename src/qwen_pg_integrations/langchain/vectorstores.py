"""LangChain ``VectorStore`` over the PostgreSQL / PolarDB core (:mod:`qwen_pg_integrations.pg`).

This module only translates between LangChain's ``Document`` / ``Embeddings`` and the core's
``Record`` / ``SearchHit``; SQL, filters, MMR, hybrid fusion and thresholds live in the core.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection, Iterable, Iterator, Sequence
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


def _aligned(name: str, values: Sequence[Any] | None, n: int) -> Sequence[Any]:
    if values is None:
        return [None] * n
    if len(values) != n:
        raise InvalidInputError(f"{name} has {len(values)} items but there are {n} texts")
    return values


def _chunks(it: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(it)
    while chunk := list(islice(iterator, size)):
        yield chunk


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
        distance: ``"cosine"`` (default), ``"l2"`` or ``"inner_product"``.
        embedding_model: recorded in the catalog (default: the embeddings' ``model``
            attribute); opening the table with another model raises ``SchemaMismatchError``.
        text_search: ``"auto"``, ``"jieba"``, a server text-search configuration, or
            ``"none"``: no full-text column (faster writes; hybrid search is refused).
        vector_type: ``"auto"``, ``"vector"`` or ``"halfvec"``.
        batch_size: rows per write batch (texts are embedded batch by batch too).
        create_table: create the table when missing.

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
        distance: Distance | str = "cosine",
        embedding_model: str | None = None,
        text_search: str = "auto",
        vector_type: str = "auto",
        batch_size: int = 1000,
        create_table: bool = True,
    ) -> None:
        if not isinstance(embeddings, Embeddings):
            raise InvalidInputError(
                f"embeddings must be a LangChain Embeddings, got {type(embeddings).__name__}"
            )
        self._embeddings = embeddings
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
        )

    def __repr__(self) -> str:
        return f"PGVectorStore(store={self.store!r})"

    @property
    def embeddings(self) -> Embeddings:
        """The embeddings used for texts and queries."""
        return self._embeddings

    @override
    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        return self.store.distance.score

    # -- writes ------------------------------------------------------------------------------

    def _records(
        self,
        texts: Iterable[str],
        metadatas: Sequence[dict[str, Any]] | None,
        ids: Sequence[str | None] | None,
    ) -> Iterator[Record]:
        offset = 0
        for chunk in _chunks(texts, self.store.batch_size):
            vectors = self._embeddings.embed_documents(chunk)
            yield from self._chunk_records(chunk, vectors, metadatas, ids, offset)
            offset += len(chunk)
        self._check_total(offset, metadatas, ids)

    async def _arecords(
        self,
        texts: Iterable[str],
        metadatas: Sequence[dict[str, Any]] | None,
        ids: Sequence[str | None] | None,
    ) -> AsyncIterator[Record]:
        offset = 0
        for chunk in _chunks(texts, self.store.batch_size):
            vectors = await self._embeddings.aembed_documents(chunk)
            for rec in self._chunk_records(chunk, vectors, metadatas, ids, offset):
                yield rec
            offset += len(chunk)
        self._check_total(offset, metadatas, ids)

    @staticmethod
    def _chunk_records(
        chunk: list[str],
        vectors: Sequence[Sequence[float]],
        metadatas: Sequence[dict[str, Any]] | None,
        ids: Sequence[str | None] | None,
        offset: int,
    ) -> Iterator[Record]:
        if len(vectors) != len(chunk):
            raise InvalidInputError(
                f"the embeddings returned {len(vectors)} vectors for {len(chunk)} texts"
            )
        for i, (text, vector) in enumerate(zip(chunk, vectors, strict=True)):
            j = offset + i
            meta = metadatas[j] if metadatas is not None and j < len(metadatas) else {}
            rid = ids[j] if ids is not None and j < len(ids) else None
            yield Record(rid or None, text, meta or {}, vector)

    @staticmethod
    def _check_total(n: int, metadatas: Sequence[Any] | None, ids: Sequence[Any] | None) -> None:
        _aligned("metadatas", metadatas, n)
        _aligned("ids", ids, n)

    @override
    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Embed and upsert texts (streamed batch by batch; ids default to a content hash).

        Returns:
            The ids, in input order.
        """
        if isinstance(texts, Sequence):
            self._check_total(len(texts), metadatas, ids)
        return self.store.add(self._records(texts, metadatas, ids))

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
        if isinstance(texts, Sequence):
            self._check_total(len(texts), metadatas, ids)
        return await self.store.aadd(self._arecords(texts, metadatas, ids))

    def add_embeddings(
        self,
        texts: Sequence[str],
        embeddings: Sequence[Sequence[float]],
        metadatas: Sequence[dict[str, Any]] | None = None,
        ids: Sequence[str | None] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Upsert texts with precomputed vectors (no embedding call)."""
        n = len(texts)
        _aligned("embeddings", embeddings, n)
        return self.store.add(
            self._chunk_records(list(texts), embeddings, metadatas, _aligned("ids", ids, n), 0)
        )

    async def aadd_embeddings(
        self,
        texts: Sequence[str],
        embeddings: Sequence[Sequence[float]],
        metadatas: Sequence[dict[str, Any]] | None = None,
        ids: Sequence[str | None] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Async :meth:`add_embeddings`."""
        n = len(texts)
        _aligned("embeddings", embeddings, n)
        return await self.store.aadd(
            self._chunk_records(list(texts), embeddings, metadatas, _aligned("ids", ids, n), 0)
        )

    @override
    def delete(
        self, ids: list[str] | None = None, *, filter: Filter | None = None, **kwargs: Any
    ) -> bool:
        """Delete by ids and/or metadata filter (both: documents matching both).

        Missing ids are not an error. With neither, or with a filter that matches every row
        (``{}``, ``{"x": {"$nin": []}}``), nothing is deleted and ``InvalidInputError`` /
        ``FilterError`` is raised: deleting every document is only :meth:`clear`.
        """
        self.store.delete(ids, filter=filter)
        return True

    @override
    async def adelete(
        self, ids: list[str] | None = None, *, filter: Filter | None = None, **kwargs: Any
    ) -> bool:
        """Async :meth:`delete`."""
        await self.store.adelete(ids, filter=filter)
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
        return [_document(r) for r in self.store.get(list(ids))]

    @override
    async def aget_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """Async :meth:`get_by_ids`."""
        return [_document(r) for r in await self.store.aget(list(ids))]

    # -- similarity --------------------------------------------------------------------------

    def similarity_search_with_score_by_vector(
        self, embedding: list[float], k: int = 4, filter: Filter | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Nearest documents with their raw distance (lower is closer)."""
        hits = self.store.search(embedding, k=k, filter=filter, **kwargs)
        return [(_document(h), float(h.distance or 0.0)) for h in hits]

    async def asimilarity_search_with_score_by_vector(
        self, embedding: list[float], k: int = 4, filter: Filter | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Async :meth:`similarity_search_with_score_by_vector`."""
        hits = await self.store.asearch(embedding, k=k, filter=filter, **kwargs)
        return [(_document(h), float(h.distance or 0.0)) for h in hits]

    @override
    def similarity_search(
        self, query: str, k: int = 4, filter: Filter | None = None, **kwargs: Any
    ) -> list[Document]:
        """The ``k`` documents nearest to ``query`` (``filter``, ``score_threshold``,
        ``ef_search``, ``probes`` accepted)."""
        return self.similarity_search_by_vector(
            self._embeddings.embed_query(query), k=k, filter=filter, **kwargs
        )

    @override
    async def asimilarity_search(
        self, query: str, k: int = 4, filter: Filter | None = None, **kwargs: Any
    ) -> list[Document]:
        """Async :meth:`similarity_search`."""
        vector = await self._embeddings.aembed_query(query)
        return await self.asimilarity_search_by_vector(vector, k=k, filter=filter, **kwargs)

    @override
    def similarity_search_by_vector(
        self, embedding: list[float], k: int = 4, filter: Filter | None = None, **kwargs: Any
    ) -> list[Document]:
        """The ``k`` documents nearest to a vector."""
        return [_document(h) for h in self.store.search(embedding, k=k, filter=filter, **kwargs)]

    @override
    async def asimilarity_search_by_vector(
        self, embedding: list[float], k: int = 4, filter: Filter | None = None, **kwargs: Any
    ) -> list[Document]:
        """Async :meth:`similarity_search_by_vector`."""
        hits = await self.store.asearch(embedding, k=k, filter=filter, **kwargs)
        return [_document(h) for h in hits]

    @override
    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: Filter | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Nearest documents with their raw distance (lower is closer)."""
        return self.similarity_search_with_score_by_vector(
            self._embeddings.embed_query(query), k=k, filter=filter, **kwargs
        )

    @override
    async def asimilarity_search_with_score(
        self, query: str, k: int = 4, filter: Filter | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Async :meth:`similarity_search_with_score`."""
        vector = await self._embeddings.aembed_query(query)
        return await self.asimilarity_search_with_score_by_vector(
            vector, k=k, filter=filter, **kwargs
        )

    @override
    def similarity_search_with_relevance_scores(
        self,
        query: str,
        k: int = 4,
        filter: Filter | None = None,
        score_threshold: float | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """Nearest documents with relevance in [0, 1]; ``score_threshold`` is applied in SQL."""
        hits = self.store.search(
            self._embeddings.embed_query(query),
            k=k,
            filter=filter,
            score_threshold=score_threshold,
            **kwargs,
        )
        return [(_document(h), h.score) for h in hits]

    @override
    async def asimilarity_search_with_relevance_scores(
        self,
        query: str,
        k: int = 4,
        filter: Filter | None = None,
        score_threshold: float | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """Async :meth:`similarity_search_with_relevance_scores`."""
        hits = await self.store.asearch(
            await self._embeddings.aembed_query(query),
            k=k,
            filter=filter,
            score_threshold=score_threshold,
            **kwargs,
        )
        return [(_document(h), h.score) for h in hits]

    # -- MMR ---------------------------------------------------------------------------------

    @override
    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Filter | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """MMR over the ``fetch_k`` nearest candidates."""
        return self.max_marginal_relevance_search_by_vector(
            self._embeddings.embed_query(query),
            k=k,
            fetch_k=fetch_k,
            lambda_mult=lambda_mult,
            filter=filter,
            **kwargs,
        )

    @override
    async def amax_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Filter | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """Async :meth:`max_marginal_relevance_search`."""
        return await self.amax_marginal_relevance_search_by_vector(
            await self._embeddings.aembed_query(query),
            k=k,
            fetch_k=fetch_k,
            lambda_mult=lambda_mult,
            filter=filter,
            **kwargs,
        )

    @override
    def max_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Filter | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """MMR over the ``fetch_k`` candidates nearest to a vector."""
        hits = self.store.mmr_search(
            embedding, k=k, fetch_k=fetch_k, lambda_mult=lambda_mult, filter=filter, **kwargs
        )
        return [_document(h) for h in hits]

    @override
    async def amax_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Filter | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """Async :meth:`max_marginal_relevance_search_by_vector`."""
        hits = await self.store.ammr_search(
            embedding, k=k, fetch_k=fetch_k, lambda_mult=lambda_mult, filter=filter, **kwargs
        )
        return [_document(h) for h in hits]

    # -- hybrid and text ---------------------------------------------------------------------

    def hybrid_search_with_score(
        self, query: str, k: int = 4, filter: Filter | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Vector + full-text search fused by reciprocal rank fusion (one SQL statement).

        Chinese is segmented (jieba on the client, or the server's zhparser / pg_jieba).
        Keyword arguments: ``fetch_k``, ``rrf_k`` (60), ``vector_weight``, ``text_weight``.

        Returns:
            Documents with the fused score normalised to [0, 1].
        """
        hits = self.store.hybrid_search(
            self._embeddings.embed_query(query), query, k=k, filter=filter, **kwargs
        )
        return [(_document(h), h.score) for h in hits]

    async def ahybrid_search_with_score(
        self, query: str, k: int = 4, filter: Filter | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Async :meth:`hybrid_search_with_score`."""
        hits = await self.store.ahybrid_search(
            await self._embeddings.aembed_query(query), query, k=k, filter=filter, **kwargs
        )
        return [(_document(h), h.score) for h in hits]

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
        return [(_document(h), h.score) for h in self.store.text_search(query, k=k, filter=filter)]

    @override
    def search(self, query: str, search_type: str, **kwargs: Any) -> list[Document]:
        """``similarity``, ``similarity_score_threshold``, ``mmr`` or ``hybrid``."""
        if search_type == "hybrid":
            return self.hybrid_search(query, **kwargs)
        return super().search(query, search_type, **kwargs)

    @override
    async def asearch(self, query: str, search_type: str, **kwargs: Any) -> list[Document]:
        """Async :meth:`search`."""
        if search_type == "hybrid":
            return await self.ahybrid_search(query, **kwargs)
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
    )

    @override
    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        if self.search_type == "hybrid":
            return self.vectorstore.hybrid_search(query, **(self.search_kwargs | kwargs))
        return super()._get_relevant_documents(query, run_manager=run_manager, **kwargs)

    @override
    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        if self.search_type == "hybrid":
            return await self.vectorstore.ahybrid_search(query, **(self.search_kwargs | kwargs))
        return await super()._aget_relevant_documents(query, run_manager=run_manager, **kwargs)
