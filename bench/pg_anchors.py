"""The anchors, used as they ship: langchain-postgres ``PGVector`` (v1) and ``PGVectorStore`` (v2),
and llama-index's ``PGVectorStore``.  Each gets the same precomputed vectors through its own public
write call (``add_embeddings`` / nodes with embeddings) and is queried through its own search call.
Only where an anchor has no way to create an HNSW index (v1) is the index created with plain SQL.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pg_common import (
    HNSW_EF_CONSTRUCTION,
    HNSW_EF_SEARCH,
    HNSW_M,
    NoEmbeddings,
    ServerInfo,
    Skip,
)
from pg_data import Dataset


class LangChainV1:
    """langchain-postgres ``PGVector`` (SQLAlchemy ORM, one multi-row INSERT per call)."""

    name = "langchain-postgres PGVector (v1)"
    tables: ClassVar[list[str]] = ["langchain_pg_embedding"]

    def __init__(self, server: ServerInfo) -> None:
        try:
            from langchain_postgres import PGVector
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise Skip(
                f"langchain-postgres not installed ({exc}); pip install -e '.[bench]'"
            ) from exc
        self._cls = PGVector
        self._url = server.sqlalchemy_url("psycopg")
        self._store: Any = None

    def setup(self, data: Dataset) -> None:
        self._store = self._cls(
            embeddings=NoEmbeddings(),
            connection=self._url,
            collection_name="bench_lc_v1",
            embedding_length=data.dim,
            pre_delete_collection=True,
            use_jsonb=True,
        )

    def ingest(self, data: Dataset) -> None:
        self._store.add_embeddings(
            texts=data.texts, embeddings=data.embeddings(), metadatas=data.metadatas, ids=data.ids
        )

    def build_index(self) -> None:
        from sqlalchemy import text

        with self._store._engine.begin() as conn:  # v1 has no index API: documented plain SQL
            conn.execute(
                text(
                    "CREATE INDEX IF NOT EXISTS bench_lc_v1_hnsw ON langchain_pg_embedding "
                    f"USING hnsw (embedding vector_cosine_ops) WITH (m = {HNSW_M}, "
                    f"ef_construction = {HNSW_EF_CONSTRUCTION})"
                )
            )

    def query(self, vector: list[float], k: int, category: str | None) -> list[str]:
        flt = {"category": {"$eq": category}} if category is not None else None
        res = self._store.similarity_search_with_score_by_vector(vector, k=k, filter=flt)
        return [str(doc.id) for doc, _ in res]

    def close(self) -> None:
        if self._store is not None:
            self._store.session_maker.remove()
            self._store._engine.dispose()
            self._store = None


class LangChainV2:
    """langchain-postgres ``PGVectorStore`` (async engine; one INSERT and commit per row)."""

    name = "langchain-postgres PGVectorStore (v2)"
    tables: ClassVar[list[str]] = ["bench_lc_v2"]

    def __init__(self, server: ServerInfo) -> None:
        try:
            import langchain_postgres as lp
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise Skip(
                f"langchain-postgres not installed ({exc}); pip install -e '.[bench]'"
            ) from exc
        self._lp = lp
        self._url = server.sqlalchemy_url("psycopg")
        self._engine: Any = None
        self._store: Any = None

    full_text = False

    def setup(self, data: Dataset) -> None:
        lp = self._lp
        hybrid: dict[str, Any] = {}
        if self.full_text:
            from langchain_postgres.v2.hybrid_search_config import HybridSearchConfig

            hybrid["hybrid_search_config"] = HybridSearchConfig()
        self._engine = lp.PGEngine.from_connection_string(url=self._url)
        self._engine.init_vectorstore_table(
            table_name=self.tables[0],
            vector_size=data.dim,
            metadata_columns=[lp.Column("category", "TEXT")],  # v2 filters only on real columns
            overwrite_existing=True,
            **hybrid,
        )
        self._store = lp.PGVectorStore.create_sync(
            engine=self._engine,
            table_name=self.tables[0],
            embedding_service=NoEmbeddings(),
            metadata_columns=["category"],
            **hybrid,
        )
        if self.full_text:
            self._store.apply_hybrid_search_index()  # its GIN index exists before the ingest

    def ingest(self, data: Dataset) -> None:
        self._store.add_embeddings(
            texts=data.texts, embeddings=data.embeddings(), metadatas=data.metadatas, ids=data.ids
        )

    def build_index(self) -> None:
        from langchain_postgres.v2.indexes import HNSWIndex

        self._store.apply_vector_index(HNSWIndex(m=HNSW_M, ef_construction=HNSW_EF_CONSTRUCTION))

    def query(self, vector: list[float], k: int, category: str | None) -> list[str]:
        flt = {"category": {"$eq": category}} if category is not None else None
        res = self._store.similarity_search_with_score_by_vector(vector, k=k, filter=flt)
        return [str(doc.id) for doc, _ in res]

    def close(self) -> None:
        if self._engine is not None:
            self._engine._run_as_sync(self._engine._pool.dispose())
            self._engine = None
            self._store = None


class LlamaIndexPG:
    """llama-index ``PGVectorStore`` (SQLAlchemy ORM ``session.add`` per node, one transaction)."""

    name = "llama-index PGVectorStore"
    tables: ClassVar[list[str]] = ["data_bench_llama"]
    full_text = False

    def __init__(self, server: ServerInfo) -> None:
        try:
            from llama_index.vector_stores.postgres import PGVectorStore
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise Skip(
                f"llama-index-vector-stores-postgres not installed ({exc}); "
                "pip install -e '.[bench]'"
            ) from exc
        self._cls = PGVectorStore
        self._sync_url = server.sqlalchemy_url("psycopg2")
        self._async_url = server.sqlalchemy_url("asyncpg")
        self._store: Any = None
        self._nodes: list[Any] = []
        self._dim = 0

    def _make(self, hnsw: bool) -> Any:
        kwargs: dict[str, Any] = {}
        if hnsw:
            kwargs["hnsw_kwargs"] = {
                "hnsw_m": HNSW_M,
                "hnsw_ef_construction": HNSW_EF_CONSTRUCTION,
                "hnsw_ef_search": HNSW_EF_SEARCH,
                "hnsw_dist_method": "vector_cosine_ops",
            }
        if self.full_text:
            kwargs["hybrid_search"] = True  # generated to_tsvector('english', text) + GIN index
        return self._cls(
            connection_string=self._sync_url,
            async_connection_string=self._async_url,
            table_name=self.tables[0].removeprefix("data_"),
            embed_dim=self._dim,
            **kwargs,
        )

    def setup(self, data: Dataset) -> None:
        from llama_index.core.schema import TextNode
        from sqlalchemy import create_engine, text

        engine = create_engine(self._sync_url)
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE IF EXISTS {self.tables[0]}"))
        engine.dispose()
        self._dim = data.dim
        self._store = self._make(hnsw=False)
        self._store._initialize()  # create the table now, outside the timed ingest
        vectors = data.embeddings()
        self._nodes = [  # building nodes is the caller's work, not the store's: untimed
            TextNode(id_=data.ids[i], text=data.texts[i], metadata=data.metadatas[i], embedding=v)
            for i, v in enumerate(vectors)
        ]

    def ingest(self, data: Dataset) -> None:
        self._store.add(self._nodes)

    def build_index(self) -> None:
        # llama-index creates its HNSW index when a store with hnsw_kwargs initialises.
        self.close()
        self._store = self._make(hnsw=True)
        self._store._initialize()

    def query(self, vector: list[float], k: int, category: str | None) -> list[str]:
        from llama_index.core.vector_stores.types import (
            MetadataFilter,
            MetadataFilters,
            VectorStoreQuery,
        )

        filters = (
            MetadataFilters(filters=[MetadataFilter(key="category", value=category)])
            if category is not None
            else None
        )
        res = self._store.query(
            VectorStoreQuery(query_embedding=vector, similarity_top_k=k, filters=filters)
        )
        return [str(i) for i in (res.ids or [])]

    def close(self) -> None:
        if self._store is not None:
            if self._store._engine is not None:
                self._store._engine.dispose()
            self._store = None
        self._nodes = []


class LangChainV2FullText(LangChainV2):
    """v2 with its hybrid search on (``HybridSearchConfig()``: a tsvector column computed by
    ``to_tsvector('english', content)`` on insert, and its GIN index): full-text work like ours'
    default."""

    name = "langchain-postgres PGVectorStore (v2), full text on"
    tables: ClassVar[list[str]] = ["bench_lc_v2_ft"]
    full_text = True


class LlamaIndexPGFullText(LlamaIndexPG):
    """llama-index with ``hybrid_search=True`` (a generated tsvector column and its GIN index)."""

    name = "llama-index PGVectorStore, full text on"
    tables: ClassVar[list[str]] = ["data_bench_llama_ft"]
    full_text = True


ANCHORS = (LangChainV1, LangChainV2, LlamaIndexPG, LangChainV2FullText, LlamaIndexPGFullText)
