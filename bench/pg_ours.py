"""Our store: the framework-free core (``PGStore``) and the LangChain ``PGVectorStore`` over it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, ClassVar

from psycopg import sql
from psycopg.types.json import Jsonb

from pg_common import HNSW_EF_CONSTRUCTION, HNSW_M, NoEmbeddings, ServerInfo, Skip
from pg_data import Dataset
from pg_raw import JSONB_OID, TEXT_OID, RawPsycopg, _vector_dumper, encode_block


def _core() -> Any:
    try:
        from qwen_pg_integrations import pg
    except ImportError as exc:  # pragma: no cover - depends on the checkout
        raise Skip(f"qwen_pg_integrations.pg not importable ({exc})") from exc
    if not hasattr(pg, "PGStore"):
        raise Skip("qwen_pg_integrations.pg.PGStore has not landed yet")
    return pg


def _close(store: Any, dsn: str) -> None:
    """Close the store's connections (process-wide pools per DSN when it has no ``close``)."""
    if hasattr(store, "close"):
        store.close()
        return
    from qwen_pg_integrations.pg.connection import close_pools

    close_pools(dsn)


class OursCore:
    """``qwen_pg_integrations.pg.PGStore``: ``add(records)`` (COPY + upsert) and ``search``."""

    name = "ours: pg core"
    tables: ClassVar[list[str]] = ["bench_ours_core"]
    text_search = "auto"  # the default: full-text column (client-side segmentation) on writes

    def __init__(self, server: ServerInfo) -> None:
        self._pg = _core()
        self._dsn = server.dsn
        self._store: Any = None

    def setup(self, data: Dataset) -> None:
        pg = self._pg
        self._store = pg.PGStore(self._dsn, table_name=self.tables[0], dimension=data.dim)
        self._store.drop()
        self._store = pg.PGStore(
            self._dsn,
            table_name=self.tables[0],
            dimension=data.dim,
            distance="cosine",
            text_search=self.text_search,
        )
        self._store.setup()

    def ingest(self, data: Dataset) -> None:
        record = self._pg.Record
        vectors = data.embeddings()
        self._store.add(
            record(id=data.ids[i], content=data.texts[i], metadata=data.metadatas[i], embedding=v)
            for i, v in enumerate(vectors)
        )

    def build_index(self) -> None:
        self._store.create_index("hnsw", m=HNSW_M, ef_construction=HNSW_EF_CONSTRUCTION)

    def query(self, vector: list[float], k: int, category: str | None) -> list[str]:
        flt = {"category": category} if category is not None else None
        return [str(h.record.id) for h in self._store.search(vector, k=k, filter=flt)]

    def close(self) -> None:
        if self._store is not None:
            _close(self._store, self._dsn)
            self._store = None


class OursLangChain:
    """``qwen_pg_integrations.langchain.PGVectorStore``: ``add_embeddings`` and
    ``similarity_search_by_vector``."""

    name = "ours: LangChain PGVectorStore"
    tables: ClassVar[list[str]] = ["bench_ours_lc"]
    text_search = "auto"

    def __init__(self, server: ServerInfo) -> None:
        _core()
        try:
            from qwen_pg_integrations.langchain import PGVectorStore
        except ImportError as exc:
            raise Skip(
                f"qwen_pg_integrations.langchain.PGVectorStore not available ({exc})"
            ) from exc
        self._cls = PGVectorStore
        self._dsn = server.dsn
        self._store: Any = None

    def setup(self, data: Dataset) -> None:
        from qwen_pg_integrations.pg import PGStore

        old = PGStore(self._dsn, table_name=self.tables[0], dimension=data.dim)
        old.drop()
        self._store = self._cls(
            NoEmbeddings(),
            connection=self._dsn,
            table_name=self.tables[0],
            embedding_dimension=data.dim,
            text_search=self.text_search,
        )

    def ingest(self, data: Dataset) -> None:
        self._store.add_embeddings(
            texts=data.texts, embeddings=data.embeddings(), metadatas=data.metadatas, ids=data.ids
        )

    def build_index(self) -> None:
        self._store.create_index("hnsw", m=HNSW_M, ef_construction=HNSW_EF_CONSTRUCTION)

    def query(self, vector: list[float], k: int, category: str | None) -> list[str]:
        flt = {"category": category} if category is not None else None
        docs = self._store.similarity_search_by_vector(vector, k=k, filter=flt)
        return [str(d.id) for d in docs]

    def close(self) -> None:
        if self._store is not None:
            _close(self._store.store, self._dsn)
            self._store = None


class OursCoreNoText(OursCore):
    """``PGStore(text_search="none")``: no full-text column, the same work as raw and the
    anchors as configured here."""

    name = "ours: pg core, text_search='none'"
    tables: ClassVar[list[str]] = ["bench_ours_core_nt"]
    text_search = "none"


class OursLangChainNoText(OursLangChain):
    """``PGVectorStore(text_search="none")``."""

    name = "ours: LangChain PGVectorStore, text_search='none'"
    tables: ClassVar[list[str]] = ["bench_ours_lc_nt"]
    text_search = "none"


OURS = (OursCore, OursLangChain, OursCoreNoText, OursLangChainNoText)


def streaming_ingest(
    dsn: str, table: str, dim: int, docs: Iterator[tuple[str, str, dict[str, object], list[float]]]
) -> Callable[[], None]:
    """Prepare an ingest of ``docs`` through ``PGStore.add``; the returned callable runs it."""
    pg = _core()
    store = pg.PGStore(dsn, table_name=table, dimension=dim)
    store.drop()
    store = pg.PGStore(dsn, table_name=table, dimension=dim)
    store.setup()

    def run() -> None:
        store.add(pg.Record(id=i, content=t, metadata=m, embedding=v) for i, t, m, v in docs)
        _close(store, dsn)

    return run


class RawSameWork(RawPsycopg):
    """Diagnostic: hand-written COPY BINARY into a table made by our store (tsvector column, GIN
    indexes), with the content_tsv built by our segmenter, i.e. our write's work without the
    store's own code: ``ours ÷ this`` is the store's overhead, ``this ÷ raw`` the feature's
    cost."""

    name = "raw psycopg, ours' table + tsvector (diagnostic)"

    def __init__(self, server: ServerInfo) -> None:
        self._pg = _core()
        try:
            from qwen_pg_integrations.pg._tsvector import TSVECTOR_OID, tsvector_binary
            from qwen_pg_integrations.pg.text import segment, warm_up
        except ImportError as exc:
            raise Skip(f"store internals moved ({exc})") from exc
        super().__init__(server.dsn, table="bench_raw_same")
        self._tsv = (TSVECTOR_OID, tsvector_binary, segment)
        warm_up()

    def _connect(self) -> Any:
        fresh = self._conn is None
        conn = super()._connect()
        if fresh:
            conn.adapters.register_dumper(_TsvBytes, _vector_dumper(self._tsv[0]))
        return conn

    def setup(self, data: Dataset) -> None:
        pg = self._pg
        store = pg.PGStore(self.dsn, table_name=self.table, dimension=data.dim)
        store.drop()
        store = pg.PGStore(self.dsn, table_name=self.table, dimension=data.dim)
        store.setup()
        _close(store, self.dsn)
        self.setup_statements()

    def ingest(self, data: Dataset) -> None:
        conn = self._connect()
        tsv_oid, tsvector_binary, segment = self._tsv
        vectors = data.embeddings()
        copy_sql = sql.SQL(
            "COPY {} (id, content, metadata, embedding, content_tsv) FROM STDIN (FORMAT BINARY)"
        ).format(sql.Identifier(self.table))
        block = 1000
        with conn.transaction(), conn.cursor() as cur, cur.copy(copy_sql) as copy:
            copy.set_types([TEXT_OID, TEXT_OID, JSONB_OID, self.vector_oid, tsv_oid])
            for start in range(0, data.rows, block):
                enc = encode_block(vectors[start : start + block])
                for j, vec in enumerate(enc):
                    i = start + j
                    tsv = _TsvBytes(tsvector_binary(segment(data.texts[i])))
                    copy.write_row((data.ids[i], data.texts[i], Jsonb(data.metadatas[i]), vec, tsv))


class _TsvBytes(bytes):
    """A tsvector already in binary wire format."""


DIAGNOSTIC = (RawSameWork,)
