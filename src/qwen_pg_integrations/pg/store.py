"""``PGStore``: the PostgreSQL / PolarDB (pgvector) store both framework adapters wrap.

One class, sync methods and ``a``-prefixed async twins. The logic lives in plans (generators
of database operations, see ``_ops.py``); the methods below only get a connection, make sure
the table is ready, and run the plan in a transaction when it needs one.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar

import psycopg
from pgvector.psycopg.halfvec import register_halfvec_info
from pgvector.psycopg.vector import register_vector_info
from psycopg import errors as pg_errors
from psycopg.types import TypeInfo
from psycopg_pool import PoolTimeout

from ..errors import (
    DatabaseConnectionError,
    InvalidInputError,
    QwenPGError,
    StorageError,
)
from . import _ops
from ._async import AsyncMethods
from ._plan import Plan, run_sync
from ._setup import Requested, setup_plan
from ._tsvector import TsVector, TsVectorDumper
from ._wire import register_wire_dumpers
from .connection import ATTEMPTS, ConnectionArg, Engine
from .filters import Filter
from .records import Distance, EmbeddingLike, Record, SearchHit
from .schema import NO_TEXT_SEARCH, ServerInfo, TableSpec
from .text import warm_up

__all__ = ["PGStore"]

T = TypeVar("T")
_TABLE_MAX = 63


@contextmanager
def _db_errors(store: PGStore) -> Iterator[None]:
    """Turn driver errors into the package's typed errors (with what to do)."""
    try:
        yield
    except QwenPGError:
        raise
    except UnicodeEncodeError as err:  # a str argument UTF-8 cannot encode (lone surrogate)
        bad = err.object[err.start : err.end] if isinstance(err.object, str) else "?"
        raise InvalidInputError(
            f"an argument is not valid Unicode text: it holds a lone surrogate ({bad!r}), "
            "which UTF-8 cannot encode; fix the text (e.g. decode it with errors='replace')."
        ) from None
    except PoolTimeout as err:
        raise DatabaseConnectionError(
            f"no database connection available for {store!r} ({err}); the server may be down "
            "or the pool exhausted."
        ) from err
    except pg_errors.UndefinedTable as err:
        store._forget()
        raise StorageError(
            f"table {store.table_name!r} disappeared (dropped outside this store?): {err}. "
            "The next call recreates it."
        ) from err
    except psycopg.OperationalError as err:
        if _connection_lost(err):
            raise DatabaseConnectionError(f"database connection failed: {err}") from err
        raise StorageError(_server_refusal(err)) from err
    except psycopg.Error as err:
        raise StorageError(f"{type(err).__name__}: {err}") from err


# SQLSTATEs that mean the session is gone or was never made (besides class 08)
_CONNECTION_STATES = frozenset({"57P01", "57P02", "57P03", "53300"})


def _connection_lost(err: psycopg.OperationalError) -> bool:
    """True for failures of the connection itself; False for a statement the server refused
    on a live connection (timeouts, lock waits, deadlocks, resources), which psycopg also
    classes as ``OperationalError``."""
    state = err.sqlstate
    if state is None or state.startswith("08") or state in _CONNECTION_STATES:
        return True
    pgconn = err.pgconn
    return pgconn is not None and pgconn.status == psycopg.pq.ConnStatus.BAD


_ROLLED_BACK = "Its transaction was rolled back (an add() keeps the batches written before it)."


def _server_refusal(err: psycopg.OperationalError) -> str:
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if isinstance(err, pg_errors.QueryCanceled):
        return (
            f"the database cancelled the statement ({first}): statement_timeout or a cancel "
            f"request. {_ROLLED_BACK} Raise statement_timeout for this role or database, or "
            "narrow the call (a smaller batch_size, a filter, a smaller k)."
        )
    if isinstance(err, pg_errors.LockNotAvailable):
        return (
            f"a table lock was not granted in time ({first}): another session holds it (an "
            "ALTER TABLE, a CREATE INDEX without CONCURRENTLY, a long transaction). "
            f"{_ROLLED_BACK} Run it again when that session is done, or raise lock_timeout."
        )
    if isinstance(err, pg_errors.TransactionRollback):
        return (
            f"the server rolled the transaction back ({type(err).__name__}: {first}). "
            f"{_ROLLED_BACK} Run it again."
        )
    return (
        f"the database refused the statement ({type(err).__name__}: {first}). {_ROLLED_BACK} "
        "Check the server's state (disk space, memory, settings; its log says more) and run "
        "it again."
    )


def _dim(rec: Any) -> int | None:
    emb = getattr(rec, "embedding", None)
    return None if emb is None else len(emb)


class PGStore(AsyncMethods):
    """Chunks, vectors and metadata in one PostgreSQL / PolarDB table (DESIGN.md §4).

    Args:
        connection: DSN, psycopg connection or pool; ``None`` means ``QWEN_PG_DSN``, else the
            embedded server.
        table_name: the collection table (created on first use).
        schema_name: its schema (default: the connection's current schema).
        dimension: vector dimension; ``None`` takes it from the catalog or the first vector.
        distance: ``"cosine"``, ``"l2"`` or ``"inner_product"`` (fixed per table).
        embedding_model: recorded in the catalog; opening the table with another model fails.
        text_search: ``"auto"`` (a zhparser / pg_jieba configuration if the server has one,
            else ``"jieba"``: client-side segmentation into a ``simple`` tsvector), a
            configuration name, or ``"none"``: no full-text column, for stores searched by
            vector only (writes skip the segmentation and the GIN index; keyword and hybrid
            search raise :class:`~qwen_pg_integrations.errors.SchemaMismatchError`). An
            existing table keeps what its catalog row records.
        vector_type: ``"auto"`` (``halfvec`` above 2000 dims on pgvector >= 0.7), ``"vector"``,
            ``"halfvec"``.
        batch_size: rows per write batch (COPY + one upsert, one transaction per batch).
        create_table: create a missing table (else a missing table is an error).
        exact_filter_limit: a filtered search first counts matching rows (up to this many + 1);
            at most this many -> exact search, more -> the vector index with iterative scans.
            0 leaves the choice to the planner.

    Example:
        >>> store = PGStore("postgresql://localhost/db", table_name="docs", dimension=1024)
        >>> store.add([Record(None, "hello", {"lang": "en"}, vec)])  # doctest: +SKIP
        >>> store.search(query_vec, k=4, filter={"lang": "en"})  # doctest: +SKIP
    """

    def __init__(
        self,
        connection: ConnectionArg = None,
        *,
        table_name: str = "qwen_pg_documents",
        schema_name: str | None = None,
        dimension: int | None = None,
        distance: Distance | str = "cosine",
        embedding_model: str | None = None,
        text_search: str = "auto",
        vector_type: str = "auto",
        batch_size: int = 2000,
        create_table: bool = True,
        exact_filter_limit: int = 1000,
    ) -> None:
        for label, name in (("table_name", table_name), ("schema_name", schema_name)):
            if name is not None and (
                not isinstance(name, str)
                or not name
                or len(name.encode()) > _TABLE_MAX
                or "\x00" in name
            ):
                raise InvalidInputError(f"{label} must be 1..{_TABLE_MAX} bytes, got {name!r}")
        if dimension is not None and (not isinstance(dimension, int) or dimension < 1):
            raise InvalidInputError(f"dimension must be a positive integer, got {dimension!r}")
        if batch_size < 1:
            raise InvalidInputError("batch_size must be >= 1")
        if not isinstance(text_search, str) or not text_search.strip():
            raise InvalidInputError(
                "text_search must be 'auto', 'jieba', 'none' or the name of a text-search "
                f"configuration, got {text_search!r}"
            )
        if text_search.strip().lower() in ("auto", "jieba", NO_TEXT_SEARCH):
            text_search = text_search.strip().lower()
        if vector_type not in ("auto", "vector", "halfvec"):
            raise InvalidInputError(
                f"vector_type must be auto, vector or halfvec, got {vector_type!r}"
            )
        self.table_name = table_name
        self.batch_size = batch_size
        self.exact_filter_limit = exact_filter_limit
        self._engine = Engine(connection)
        self._req = Requested(
            table=table_name,
            schema=schema_name,
            dimension=dimension,
            distance=Distance.parse(distance),
            embedding_model=embedding_model,
            text_search=text_search,
            vector_type=vector_type,
            create_table=create_table,
        )
        self._server: ServerInfo | None = None
        self._spec: TableSpec | None = None
        self._types: tuple[TypeInfo, TypeInfo | None] | None = None
        self._registered: weakref.WeakSet[Any] = weakref.WeakSet()

    def __repr__(self) -> str:
        return f"PGStore(table={self.table_name!r}, engine={self._engine!r})"

    # -- state -------------------------------------------------------------------------------

    @property
    def distance(self) -> Distance:
        """The table's distance."""
        return self._spec.distance if self._spec else self._req.distance

    @property
    def spec(self) -> TableSpec | None:
        """The table as recorded in the catalog (``None`` before it exists)."""
        return self._spec

    @property
    def server(self) -> ServerInfo | None:
        """What the server offers (known after the first call)."""
        return self._server

    @property
    def pgvector_version(self) -> tuple[int, int, int] | None:
        """The server's pgvector version (known after the first call)."""
        return self._server.pgvector if self._server else None

    def close(self) -> None:
        """Close the pooled connections this store's DSN opened (they reopen on next use).

        Connections or pools passed in as ``connection`` are left to their owner.
        """
        self._engine.close()

    async def aclose(self) -> None:
        """Async :meth:`close` (also closes the async connections of the running loop)."""
        await self._engine.aclose()

    def _forget(self) -> None:
        self._spec = None

    def _errors(self) -> AbstractContextManager[None]:
        return _db_errors(self)

    def _register(self, conn: Any, infos: tuple[TypeInfo, TypeInfo | None]) -> None:
        register_vector_info(conn, infos[0])
        if infos[1] is not None:
            register_halfvec_info(conn, infos[1])
        register_wire_dumpers(conn, *infos)
        conn.adapters.register_dumper(TsVector, TsVectorDumper)
        self._registered.add(conn)

    # -- sync --------------------------------------------------------------------------------

    def _ready(self, conn: psycopg.Connection[Any], dim_hint: int | None) -> TableSpec | None:
        if self._spec is None or self._server is None:
            with conn.transaction():
                self._server, self._spec = run_sync(conn, setup_plan(self._req, dim_hint))
            if self._spec is not None and self._spec.client_segmentation:
                warm_up()
        if self._spec is not None and conn not in self._registered:
            if self._types is None:
                vec = TypeInfo.fetch(conn, "vector")
                if vec is None:
                    raise StorageError("the vector type is missing although pgvector is installed")
                half = None
                if self._server is not None and self._server.has_halfvec:
                    half = TypeInfo.fetch(conn, "halfvec")
                self._types = (vec, half)
            self._register(conn, self._types)
        return self._spec

    def _run(self, conn: psycopg.Connection[Any], plan: Plan[T], *, tx: bool) -> T:
        # outside autocommit a bare statement would leave a transaction open (and a pool would
        # roll it back on return): always give it its own transaction (a savepoint if the caller
        # has one open, so the caller's transaction stays in charge)
        if tx or not conn.autocommit:
            with conn.transaction():
                return run_sync(conn, plan)
        return run_sync(conn, plan)

    def _call(self, op: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run one whole operation on a connection, with typed errors.

        If the store's own pooled connection broke underneath it (server restart, killed
        backend), the operation runs once more on a fresh connection: every operation is
        idempotent (see :meth:`Engine.should_retry`). A caller's connection is never retried.
        """
        with _db_errors(self):
            for attempt in range(ATTEMPTS):
                used: psycopg.Connection[Any] | None = None
                try:
                    with self._engine.connect() as conn:
                        used = conn
                        return op(conn)
                except psycopg.OperationalError:
                    if not self._engine.should_retry(attempt, used):
                        raise
            raise AssertionError("unreachable: the last attempt raises")

    def _write(self, batch: _ops.RowBatch) -> None:
        rows = batch.rows()

        def op(conn: psycopg.Connection[Any]) -> None:
            self._ready(conn, batch.spec.dimension)  # (re)registers types on a fresh connection
            self._run(conn, _ops.write_plan(batch.spec, rows), tx=True)

        self._call(op)

    def setup(self) -> None:
        """Make sure pgvector, the catalog and (if the dimension is known) the table exist."""
        self._call(lambda conn: self._ready(conn, None))

    def add(self, records: Iterable[Record]) -> list[str]:
        """Upsert records by id, streaming them in batches of ``batch_size``.

        Each batch is one transaction: rows with new ids are COPied (binary) into the table,
        rows whose ids are stored already into a staging table merged with one
        ``INSERT ... ON CONFLICT (id) DO UPDATE``. Records without an id get
        :func:`~.records.stable_id` of content and metadata, so re-adding them is idempotent.
        A batch whose pooled connection broke is written once more on a fresh connection
        (committed batches are never repeated).

        Returns:
            The ids, in input order.
        """
        ids: list[str] = []
        it = iter(records)
        first = next(it, None)
        if first is None:
            return ids
        dim = _dim(first)
        spec = self._call(lambda conn: self._ready(conn, dim))
        if spec is None:
            raise InvalidInputError("records need embeddings")
        batch = _ops.RowBatch(spec)
        for rec in itertools.chain([first], it):
            batch.add(rec)
            if len(batch) >= self.batch_size:
                self._write(batch)
                ids.extend(batch.ids)
                batch = _ops.RowBatch(spec)
        if len(batch):
            self._write(batch)
            ids.extend(batch.ids)
        return ids

    def get(
        self,
        ids: Sequence[str] | None = None,
        *,
        filter: Filter | None = None,
        limit: int | None = None,
        include_embeddings: bool = False,
    ) -> list[Record]:
        """Records by ids (in that order, missing ones skipped) and/or by filter."""
        if ids is not None and len(ids) == 0:
            return []

        def op(conn: psycopg.Connection[Any]) -> list[Record]:
            spec = self._ready(conn, None)
            if spec is None:
                return []
            plan = _ops.get_plan(
                spec, ids, filter=filter, limit=limit, include_embeddings=include_embeddings
            )
            return self._run(conn, plan, tx=False)

        return self._call(op)

    def delete(self, ids: Sequence[str] | None = None, *, filter: Filter | None = None) -> int:
        """Delete by ids and/or filter (both: rows matching both). Returns rows deleted."""
        if ids is None and filter is None:
            raise InvalidInputError(
                "delete needs ids or a filter that restricts the rows; to delete every row "
                "call clear()"
            )
        if ids is not None and len(ids) == 0:
            return 0

        def op(conn: psycopg.Connection[Any]) -> int:
            spec = self._ready(conn, None)
            if spec is None:
                return 0
            return self._run(conn, _ops.delete_plan(spec, ids, filter), tx=True)

        return self._call(op)

    def count(self, filter: Filter | None = None) -> int:
        """Number of rows (matching ``filter``)."""

        def op(conn: psycopg.Connection[Any]) -> int:
            spec = self._ready(conn, None)
            return 0 if spec is None else self._run(conn, _ops.count_plan(spec, filter), tx=False)

        return self._call(op)

    def clear(self) -> None:
        """Delete every row (the table and its catalog row stay)."""

        def op(conn: psycopg.Connection[Any]) -> None:
            spec = self._ready(conn, None)
            if spec is not None:
                self._run(conn, _ops.clear_plan(spec), tx=True)

        self._call(op)

    def drop(self) -> None:
        """Drop the table and its catalog row."""

        def op(conn: psycopg.Connection[Any]) -> None:
            spec = self._ready(conn, None)
            if spec is not None:
                self._run(conn, _ops.drop_plan(spec), tx=True)
            self._forget()

        self._call(op)

    def search(
        self,
        embedding: EmbeddingLike,
        *,
        k: int = 4,
        filter: Filter | None = None,
        ids: Sequence[str] | None = None,
        score_threshold: float | None = None,
        ef_search: int | None = None,
        probes: int | None = None,
        include_embeddings: bool = False,
    ) -> list[SearchHit]:
        """The ``k`` nearest rows, best first.

        Args:
            embedding: the query vector.
            k: how many rows (a positive integer).
            filter: metadata filter (see :mod:`.filters`).
            ids: restrict the search to these row ids.
            score_threshold: minimum relevance, a number in [0, 1], applied in SQL.
            ef_search: HNSW candidate list size (raised to at least ``k``), ``SET LOCAL``.
            probes: IVFFlat lists to probe, ``SET LOCAL``.
            include_embeddings: return the stored vectors too.

        Raises:
            InvalidInputError: ``k`` or ``score_threshold`` out of range, a NaN vector...
        """
        _ops.check_search_args(k, score_threshold)

        def op(conn: psycopg.Connection[Any]) -> list[SearchHit]:
            spec = self._ready(conn, len(embedding))
            assert spec is not None and self._server is not None
            vec = _ops.query_vector(spec, embedding)
            settings = _ops.search_settings(
                self._server,
                k,
                filtered=bool(filter) or ids is not None,
                ef_search=ef_search,
                probes=probes,
            )
            plan = _ops.search_plan(
                spec,
                self._server,
                vec,
                k,
                filter=filter,
                ids=ids,
                score_threshold=score_threshold,
                ef_search=ef_search,
                probes=probes,
                include_embeddings=include_embeddings,
                exact_limit=self.exact_filter_limit,
            )
            return self._run(conn, plan, tx=bool(settings))

        return self._call(op)

    def explain(
        self,
        embedding: EmbeddingLike,
        *,
        k: int = 4,
        filter: Filter | None = None,
        ids: Sequence[str] | None = None,
        ef_search: int | None = None,
        probes: int | None = None,
        analyze: bool = False,
        settings: Mapping[str, str] | None = None,
    ) -> str:
        """The query plan of :meth:`search` (to check that the vector index is used).

        ``settings`` adds planner settings (``SET LOCAL``), e.g. ``{"enable_seqscan": "off"}``.
        """
        _ops.check_search_args(k)

        def op(conn: psycopg.Connection[Any]) -> str:
            spec = self._ready(conn, len(embedding))
            assert spec is not None and self._server is not None
            plan = _ops.explain_plan(
                spec,
                self._server,
                _ops.query_vector(spec, embedding),
                k,
                filter=filter,
                ids=ids,
                ef_search=ef_search,
                probes=probes,
                analyze=analyze,
                settings=settings,
                exact_limit=self.exact_filter_limit,
            )
            return self._run(conn, plan, tx=True)

        return self._call(op)

    def mmr_search(
        self,
        embedding: EmbeddingLike,
        *,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Filter | None = None,
        ids: Sequence[str] | None = None,
        score_threshold: float | None = None,
        ef_search: int | None = None,
        probes: int | None = None,
        include_embeddings: bool = False,
    ) -> list[SearchHit]:
        """Maximal marginal relevance over ``fetch_k`` nearest candidates."""
        _ops.check_search_args(k, score_threshold)

        def op(conn: psycopg.Connection[Any]) -> list[SearchHit]:
            spec = self._ready(conn, len(embedding))
            assert spec is not None and self._server is not None
            plan = _ops.mmr_plan(
                spec,
                self._server,
                _ops.query_vector(spec, embedding),
                k,
                fetch_k=fetch_k,
                lambda_mult=lambda_mult,
                filter=filter,
                ids=ids,
                score_threshold=score_threshold,
                ef_search=ef_search,
                probes=probes,
                include_embeddings=include_embeddings,
                exact_limit=self.exact_filter_limit,
            )
            return self._run(conn, plan, tx=True)

        return self._call(op)

    def text_search(
        self,
        query: str,
        *,
        k: int = 4,
        filter: Filter | None = None,
        ids: Sequence[str] | None = None,
    ) -> list[SearchHit]:
        """Full-text search only (Chinese segmented client-side unless the server can)."""
        _ops.check_search_args(k)

        def op(conn: psycopg.Connection[Any]) -> list[SearchHit]:
            spec = self._ready(conn, None)
            if spec is None:
                return []
            return self._run(conn, _ops.text_plan(spec, query, k, filter=filter, ids=ids), tx=False)

        return self._call(op)

    def hybrid_search(
        self,
        embedding: EmbeddingLike,
        query: str,
        *,
        k: int = 4,
        filter: Filter | None = None,
        ids: Sequence[str] | None = None,
        fetch_k: int | None = None,
        rrf_k: int = 60,
        vector_weight: float = 1.0,
        text_weight: float = 1.0,
        ef_search: int | None = None,
        probes: int | None = None,
    ) -> list[SearchHit]:
        """Vector and full-text rankings fused by reciprocal rank fusion in one SQL statement."""
        _ops.check_search_args(k)

        def op(conn: psycopg.Connection[Any]) -> list[SearchHit]:
            spec = self._ready(conn, len(embedding))
            assert spec is not None and self._server is not None
            plan = _ops.hybrid_plan(
                spec,
                self._server,
                _ops.query_vector(spec, embedding),
                query,
                k,
                fetch_k=fetch_k,
                filter=filter,
                ids=ids,
                rrf_k=rrf_k,
                vector_weight=vector_weight,
                text_weight=text_weight,
                ef_search=ef_search,
                probes=probes,
                exact_limit=self.exact_filter_limit,
            )
            return self._run(conn, plan, tx=True)

        return self._call(op)

    def create_index(
        self,
        kind: str = "hnsw",
        *,
        m: int = 16,
        ef_construction: int = 64,
        lists: int | None = None,
        maintenance_work_mem: str | None = "256MB",
    ) -> str:
        """Create the HNSW or IVFFlat index (operator class of the table's distance and type).

        Returns:
            The index name.

        Raises:
            ExtensionError: pgvector cannot index this column (e.g. > 2000 dims without halfvec).
        """

        def op(conn: psycopg.Connection[Any]) -> str:
            spec = self._ready(conn, None)
            if spec is None:
                raise InvalidInputError(
                    "the table does not exist yet: add records (or give dimension=) first"
                )
            assert self._server is not None
            plan = _ops.index_plan(
                spec,
                self._server,
                kind,
                m=m,
                ef_construction=ef_construction,
                lists=lists,
                maintenance_work_mem=maintenance_work_mem,
            )
            return self._run(conn, plan, tx=True)

        return self._call(op)
