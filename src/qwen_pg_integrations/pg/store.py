"""``PGStore``: the PostgreSQL / PolarDB (pgvector) store both framework adapters wrap.

One class, sync methods and ``a``-prefixed async ones, each pair written once: a method builds a
task (see ``_plan.py``) from the shared plans in ``_ops.py``, and :class:`~._run.operation`
runs it with blocking I/O (``store.search``) or with asyncio (``await store.asearch``).
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterable, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar

import psycopg
from pgvector.psycopg.halfvec import register_halfvec_info
from pgvector.psycopg.sparsevec import register_sparsevec_info
from pgvector.psycopg.vector import register_vector_info
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.types import TypeInfo
from psycopg_pool import PoolTimeout

from ..errors import (
    DatabaseConnectionError,
    InvalidInputError,
    QwenPGError,
    ReadOnlyServerError,
    StorageError,
)
from . import _index, _ops
from ._plan import END, Connection, Exec, Plan, Pull, Task, Transaction, Unit
from ._replicas import ReadRouting
from ._run import Runner, drive_async, drive_sync, is_conflict, operation
from ._setup import Requested, setup_plan
from ._tsvector import TsVector, TsVectorDumper
from ._wire import register_wire_dumpers
from .connection import ConnectionArg, Engine
from .filters import Filter
from .records import Distance, EmbeddingLike, Record, SearchHit
from .schema import NO_TEXT_SEARCH, ServerInfo, TableSpec
from .sparse import DEFAULT_SPARSE_DIMENSION, SparseLike, check_sparse_dimension
from .text import warm_up

__all__ = ["PGStore"]

T = TypeVar("T")
Records = Iterable[Record] | AsyncIterable[Record]
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
    except pg_errors.ReadOnlySqlTransaction as err:
        first = str(err).strip().splitlines()[0]
        raise ReadOnlyServerError(
            f"the server of {store!r} is read-only ({first}; SQLSTATE 25006): it is a hot "
            "standby / PolarDB read-only node. Pass the primary's (read-write) DSN as "
            "connection=... and standbys as read_connection=..., which only serves reads."
        ) from None
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
    if is_conflict(err):
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


# the types pgvector adds, as TypeInfo.fetch finds them (by name, through the search_path)
_TYPE_SQL = sql.SQL(
    "SELECT oid, typarray FROM pg_type WHERE oid = to_regtype(%(name)s) ORDER BY oid LIMIT 1"
)


def _type_plan(name: str) -> Plan[TypeInfo | None]:
    row = yield Exec(_TYPE_SQL, {"name": name}, fetch="one")
    return None if row is None else TypeInfo(name, int(row[0]), int(row[1]), regtype=name)


class PGStore(Runner):
    """Chunks, vectors and metadata in one PostgreSQL / PolarDB table (DESIGN.md §4).

    Every method has an ``a``-prefixed async twin (``add`` / ``aadd``, ``search`` /
    ``asearch``, ...), the same code run with asyncio.

    Args:
        connection: DSN, psycopg connection or pool; ``None`` means ``QWEN_PG_DSN``, else the
            embedded server.
        table_name: the collection table (created on first use).
        schema_name: its schema (default: the connection's current schema).
        dimension: vector dimension; ``None`` takes it from the catalog or the first vector.
        distance: ``"cosine"``, ``"l2"`` or ``"inner_product"`` (fixed per table); ``None``
            (default): the existing table's, cosine for a new one.
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
        distributed: shard a new table with Citus (``create_distributed_table`` on ``id``,
            after its storage settings) when ``connection`` is a Citus coordinator; an
            existing plain table is sharded too (its rows move to the shards). Tables Citus
            already distributes are used as they are, whatever this says. Every write and
            search works the same; search settings reach the shards (``SET LOCAL`` with
            ``citus.propagate_set_commands = 'local'``).
        shard_count: shards of a new distributed table (default: ``citus.shard_count``, 32).
        read_connection: read replicas (a DSN, pool or connection, or a list of them: hot
            standbys, PolarDB read-only nodes) for searches, gets and counts; writes, DDL and
            index builds stay on ``connection``. A standby that is down, cancels the query or
            lags over ``max_replica_lag`` seconds is left out for a few seconds (warning) and
            the read runs on the primary.
        read_your_writes: after this store writes, a read on a standby first waits (up to
            ``read_your_writes_timeout`` seconds) until the standby has replayed the write,
            else it runs on the primary.
        max_replica_lag: seconds of replay lag a standby may have (``None``: any).
        read_your_writes_timeout: the longest wait of ``read_your_writes``.
        sparse_dimension: store sparse vectors too (``Record.sparse_embedding``, e.g. DashScope
            ``output_type="dense&sparse"``) in a ``sparsevec(n)`` column with an HNSW inner
            product index, for :meth:`sparse_search` and a sparse ranking in
            :meth:`hybrid_search`; ``True`` means
            :data:`~.sparse.DEFAULT_SPARSE_DIMENSION`. An existing table without the column
            gets it (its rows have none until re-added). ``None`` (default): the table's.
            Each row keeps its 1,000 largest weights (pgvector's HNSW limit). Needs pgvector
            >= 0.7.

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
        distance: Distance | str | None = None,
        embedding_model: str | None = None,
        text_search: str = "auto",
        vector_type: str = "auto",
        batch_size: int = 2000,
        create_table: bool = True,
        exact_filter_limit: int = 1000,
        sparse_dimension: int | bool | None = None,
        distributed: bool = False,
        shard_count: int | None = None,
        read_connection: ConnectionArg | Sequence[ConnectionArg] = None,
        read_your_writes: bool = False,
        max_replica_lag: float | None = 30.0,
        read_your_writes_timeout: float = 1.0,
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
        if shard_count is not None and (
            isinstance(shard_count, bool) or not isinstance(shard_count, int) or shard_count < 1
        ):
            raise InvalidInputError(f"shard_count must be a positive integer, got {shard_count!r}")
        if sparse_dimension is True:
            sparse_dimension = DEFAULT_SPARSE_DIMENSION
        elif sparse_dimension is False:
            sparse_dimension = None
        if sparse_dimension is not None:
            sparse_dimension = check_sparse_dimension(sparse_dimension)
        self.table_name = table_name
        self.batch_size = batch_size
        self.exact_filter_limit = exact_filter_limit
        self._engine = Engine(connection)
        self._routing = (
            None
            if read_connection is None
            else ReadRouting(
                read_connection,
                read_your_writes=read_your_writes,
                max_lag=max_replica_lag,
                wait=read_your_writes_timeout,
            )
        )
        self._req = Requested(
            table=table_name,
            schema=schema_name,
            dimension=dimension,
            distance=None if distance is None else Distance.parse(distance),
            embedding_model=embedding_model,
            text_search=text_search,
            vector_type=vector_type,
            create_table=create_table,
            sparse_dimension=sparse_dimension,
            distributed=distributed or shard_count is not None,
            shard_count=shard_count,
        )
        self._server: ServerInfo | None = None
        self._spec: TableSpec | None = None
        self._types: tuple[TypeInfo, TypeInfo | None, TypeInfo | None] | None = None
        self._registered: weakref.WeakSet[Any] = weakref.WeakSet()
        self.last_index_build: _index.IndexBuild | None = None

    def __repr__(self) -> str:
        reads = "" if self._routing is None else f", reads={self._routing.replicas!r}"
        return f"PGStore(table={self.table_name!r}, engine={self._engine!r}{reads})"

    # -- state -------------------------------------------------------------------------------

    @property
    def distance(self) -> Distance:
        """The table's distance."""
        if self._spec is not None:
            return self._spec.distance
        return self._req.distance or Distance.COSINE

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
        for replica in self._routing.replicas if self._routing else ():
            replica.engine.close()

    async def aclose(self) -> None:
        """Async :meth:`close` (also closes the async connections of the running loop)."""
        await self._engine.aclose()
        for replica in self._routing.replicas if self._routing else ():
            await replica.engine.aclose()

    def _forget(self) -> None:
        self._spec = None

    def _errors(self) -> AbstractContextManager[None]:
        return _db_errors(self)

    # -- shared plans ------------------------------------------------------------------------

    def _ready(self, dim_hint: int | None) -> Plan[TableSpec | None]:
        """The table ready for use on this connection: pgvector, catalog and table checked or
        created once per store, pgvector's types registered once per connection."""
        if self._spec is None or self._server is None:
            self._server, self._spec = yield Transaction(setup_plan(self._req, dim_hint))
            if self._spec is not None and self._spec.client_segmentation:
                warm_up()
        if self._spec is not None:
            conn = yield Connection()
            if conn not in self._registered:
                if self._types is None:
                    vec = yield from _type_plan("vector")
                    if vec is None:
                        raise StorageError(
                            "the vector type is missing although pgvector is installed: check "
                            "that the schema pgvector was installed in is on the search_path"
                        )
                    half = sparse = None
                    if self._server is not None and self._server.has_halfvec:
                        half = yield from _type_plan("halfvec")
                    if self._server is not None and self._server.has_sparsevec:
                        sparse = yield from _type_plan("sparsevec")
                    self._types = (vec, half, sparse)
                self._register(conn, self._types)
        return self._spec

    def _table(self, dim_hint: int) -> Plan[tuple[TableSpec, ServerInfo]]:
        spec = yield from self._ready(dim_hint)
        assert spec is not None and self._server is not None  # a dimension creates the table
        return spec, self._server

    def _register(
        self, conn: Any, infos: tuple[TypeInfo, TypeInfo | None, TypeInfo | None]
    ) -> None:
        register_vector_info(conn, infos[0])
        if infos[1] is not None:
            register_halfvec_info(conn, infos[1])
        if infos[2] is not None:
            register_sparsevec_info(conn, infos[2])
        register_wire_dumpers(conn, *infos)
        conn.adapters.register_dumper(TsVector, TsVectorDumper)
        self._registered.add(conn)

    def _setup_first(self, dim_hint: int | None) -> Task[bool]:
        """With read replicas, the table is checked (or created) on the primary before a
        read runs on a standby; ``False`` when there is no table to read."""
        if self._routing is None or self._spec is not None:
            return True

        def ready() -> Plan[TableSpec | None]:
            return (yield from self._ready(dim_hint))

        spec = yield Unit(ready, writes=False)
        return spec is not None

    def _on_table(
        self,
        body: Callable[[TableSpec], Plan[T]],
        *,
        tx: bool,
        conflicts: bool = False,
        read: bool = False,
    ) -> Task[T | None]:
        """One unit: the table (``None`` when it does not exist yet), then ``body``
        (``read``: on a read replica when the store has them)."""
        if read and not (yield from self._setup_first(None)):
            return None

        def plan() -> Plan[T | None]:
            spec = yield from self._ready(None)
            if spec is None:
                return None
            result: T = yield Transaction(body(spec), required=tx)
            return result

        result: T | None = yield Unit(plan, conflicts=conflicts, read=read)
        return result

    def _on_vectors(
        self,
        embedding: EmbeddingLike,
        body: Callable[[TableSpec, ServerInfo, Any], tuple[Plan[T], bool]],
    ) -> Task[T]:
        """One unit on the table of ``embedding``'s dimension: ``body(spec, server, vector)``
        gives the plan and whether it needs a transaction (``SET LOCAL`` settings)."""

        yield from self._setup_first(len(embedding))

        def plan() -> Plan[T]:
            spec, server = yield from self._table(len(embedding))
            inner, tx = body(spec, server, _ops.query_vector(spec, embedding))
            result: T = yield Transaction(inner, required=tx, pipeline=True)
            return result

        result: T = yield Unit(plan, read=True)
        return result

    # -- writes ------------------------------------------------------------------------------

    def _add_task(self, records: Records) -> Task[list[str]]:
        ids: list[str] = []
        pull = Pull.over(records)
        first = yield pull
        if first is END:
            return ids

        def ready() -> Plan[TableSpec | None]:
            return (yield from self._ready(_dim(first)))

        spec = yield Unit(ready)
        if spec is None:
            raise InvalidInputError("records need embeddings")
        batch = _ops.RowBatch(spec)
        rec = first
        while rec is not END:
            batch.add(rec)
            if len(batch) >= self.batch_size:
                yield from self._write(batch)
                ids.extend(batch.ids)
                batch = _ops.RowBatch(spec)
            rec = yield pull
        if len(batch):
            yield from self._write(batch)
            ids.extend(batch.ids)
        return ids

    def _write(self, batch: _ops.RowBatch) -> Task[None]:
        rows = batch.rows()

        def plan() -> Plan[None]:
            yield from self._ready(batch.spec.dimension)  # registers types on a fresh connection
            yield Transaction(_ops.write_plan(batch.spec, rows))

        yield Unit(plan, conflicts=True)

    def add(self, records: Iterable[Record]) -> list[str]:
        """Upsert records by id, streaming them in batches of ``batch_size``.

        Each batch is one transaction, its rows written in id order: a batch of new ids is
        COPied (binary) into the table, a batch holding stored ids goes through a staging
        table merged with one ``INSERT ... ON CONFLICT (id) DO UPDATE``. Records without an
        id get :func:`~.records.stable_id` of content and metadata, so re-adding them is
        idempotent. A batch whose pooled connection broke is written once more on a fresh
        connection, one rolled back by a deadlock or serialization failure up to five more
        times (committed batches are never repeated).

        Returns:
            The ids, in input order.
        """
        return drive_sync(self, self._add_task(records))

    async def aadd(self, records: Records) -> list[str]:
        """Async :meth:`add` (also takes an async iterable)."""
        return await drive_async(self, self._add_task(records))

    @operation
    def setup(self) -> Task[None]:
        """Make sure pgvector, the catalog and (if the dimension is known) the table exist."""

        def plan() -> Plan[None]:
            yield from self._ready(None)

        yield Unit(plan)

    @operation
    def delete(
        self, ids: Sequence[str] | None = None, *, filter: Filter | None = None
    ) -> Task[int]:
        """Delete by ids and/or filter (both: rows matching both). Returns rows deleted.

        Raises:
            InvalidInputError: neither ids nor a filter (to delete every row, call
                :meth:`clear`).
            FilterError: a malformed filter, or one that matches every row.
        """
        if ids is None and filter is None:
            raise InvalidInputError(
                "delete needs ids or a filter that restricts the rows; to delete every row "
                "call clear() (aclear() when async)"
            )
        if ids is not None and len(ids) == 0:
            return 0
        body = lambda spec: _ops.delete_plan(spec, ids, filter)  # noqa: E731
        return (yield from self._on_table(body, tx=True, conflicts=True)) or 0

    @operation
    def clear(self) -> Task[None]:
        """Delete every row (the table and its catalog row stay)."""
        yield from self._on_table(_ops.clear_plan, tx=True)

    @operation
    def drop(self) -> Task[None]:
        """Drop the table and its catalog row."""
        yield from self._on_table(_ops.drop_plan, tx=True)
        self._forget()

    # -- reads -------------------------------------------------------------------------------

    @operation
    def get(
        self,
        ids: Sequence[str] | None = None,
        *,
        filter: Filter | None = None,
        limit: int | None = None,
        include_embeddings: bool = False,
    ) -> Task[list[Record]]:
        """Records by ids (in that order, missing ones skipped) and/or by filter."""
        if ids is not None and len(ids) == 0:
            return []

        def body(spec: TableSpec) -> Plan[list[Record]]:
            return _ops.get_plan(
                spec, ids, filter=filter, limit=limit, include_embeddings=include_embeddings
            )

        return (yield from self._on_table(body, tx=False, read=True)) or []

    @operation
    def count(self, filter: Filter | None = None) -> Task[int]:
        """Number of rows (matching ``filter``)."""
        body = lambda spec: _ops.count_plan(spec, filter)  # noqa: E731
        return (yield from self._on_table(body, tx=False, read=True)) or 0

    @operation
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
        score_fn: Callable[[float], float] | None = None,
        candidates: int | None = None,
    ) -> Task[list[SearchHit]]:
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
            score_fn: relevance from the raw distance, instead of the distance's own
                (:meth:`~.records.Distance.score`); ``score_threshold`` then applies to its
                scores, in Python, among the ``k`` nearest rows.
            candidates: on a table with a quantized index, how many rows the index hands to
                the exact float32 re-rank (default: 4 x ``k``, at least ``k + 40``, for binary
                codes; ``k`` for halfvec).

        Raises:
            InvalidInputError: ``k`` or ``score_threshold`` out of range, a NaN vector...
        """
        _ops.check_search_args(k, score_threshold)

        def body(
            spec: TableSpec, server: ServerInfo, vec: Any
        ) -> tuple[Plan[list[SearchHit]], bool]:
            restricted = bool(filter) or ids is not None
            settings = _ops.vector_settings(
                spec,
                server,
                k,
                filtered=restricted,
                ef_search=ef_search,
                probes=probes,
                candidates=candidates,
            )
            plan = _ops.search_plan(
                spec,
                server,
                vec,
                k,
                filter=filter,
                ids=ids,
                score_threshold=score_threshold,
                ef_search=ef_search,
                probes=probes,
                include_embeddings=include_embeddings,
                exact_limit=self.exact_filter_limit,
                score_fn=score_fn,
                candidates=candidates,
            )
            return plan, bool(settings)

        return (yield from self._on_vectors(embedding, body))

    @operation
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
        candidates: int | None = None,
    ) -> Task[str]:
        """The query plan of :meth:`search` (to check that the vector index is used).

        ``settings`` adds planner settings (``SET LOCAL``), e.g. ``{"enable_seqscan": "off"}``.
        """
        _ops.check_search_args(k)

        def body(spec: TableSpec, server: ServerInfo, vec: Any) -> tuple[Plan[str], bool]:
            plan = _ops.explain_plan(
                spec,
                server,
                vec,
                k,
                filter=filter,
                ids=ids,
                ef_search=ef_search,
                probes=probes,
                analyze=analyze,
                settings=settings,
                exact_limit=self.exact_filter_limit,
                candidates=candidates,
            )
            return plan, True

        return (yield from self._on_vectors(embedding, body))

    @operation
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
        score_fn: Callable[[float], float] | None = None,
        candidates: int | None = None,
    ) -> Task[list[SearchHit]]:
        """Maximal marginal relevance over ``fetch_k`` nearest candidates (arguments as for
        :meth:`search`)."""
        _ops.check_search_args(k, score_threshold)

        def body(
            spec: TableSpec, server: ServerInfo, vec: Any
        ) -> tuple[Plan[list[SearchHit]], bool]:
            plan = _ops.mmr_plan(
                spec,
                server,
                vec,
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
                score_fn=score_fn,
                candidates=candidates,
            )
            return plan, True

        return (yield from self._on_vectors(embedding, body))

    @operation
    def text_search(
        self,
        query: str,
        *,
        k: int = 4,
        filter: Filter | None = None,
        ids: Sequence[str] | None = None,
    ) -> Task[list[SearchHit]]:
        """Full-text search only (Chinese segmented client-side unless the server can)."""
        _ops.check_search_args(k)
        body = lambda spec: _ops.text_plan(spec, query, k, filter=filter, ids=ids)  # noqa: E731
        return (yield from self._on_table(body, tx=False, read=True)) or []

    @operation
    def hybrid_search(
        self,
        embedding: EmbeddingLike,
        query: str | None,
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
        candidates: int | None = None,
        sparse: SparseLike | None = None,
        sparse_weight: float = 1.0,
    ) -> Task[list[SearchHit]]:
        """Vector, full-text and (``sparse`` given) sparse-vector rankings fused by reciprocal
        rank fusion in one SQL statement.

        Each ranking holds ``fetch_k`` rows (default ``max(4 k, 20)``); a row scores
        ``sum(weight / (rrf_k + rank))`` over the rankings it is in, normalised so a row first
        in every ranking scores 1. ``query`` ``None`` (or a table made with
        ``text_search="none"``, when ``sparse`` is given) leaves the full-text ranking out;
        ``sparse`` needs a table with sparse vectors. ``candidates``: as for :meth:`search`,
        for the vector ranking.
        """
        _ops.check_search_args(k)

        def body(
            spec: TableSpec, server: ServerInfo, vec: Any
        ) -> tuple[Plan[list[SearchHit]], bool]:
            plan = _ops.hybrid_plan(
                spec,
                server,
                vec,
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
                candidates=candidates,
                sparse=sparse,
                sparse_weight=sparse_weight,
            )
            return plan, True

        return (yield from self._on_vectors(embedding, body))

    @operation
    def sparse_search(
        self,
        sparse: SparseLike,
        *,
        k: int = 4,
        filter: Filter | None = None,
        ids: Sequence[str] | None = None,
        ef_search: int | None = None,
    ) -> Task[list[SearchHit]]:
        """The ``k`` rows of highest sparse inner product with ``sparse`` (term index ->
        weight), best first; rows sharing no term with it are not returned.

        ``SearchHit.distance`` is pgvector's ``<#>`` (the negative inner product) and
        ``score`` the inner product clipped to [0, 1] (as for dense inner-product tables).

        Raises:
            SchemaMismatchError: the table stores no sparse vectors.
        """
        _ops.check_search_args(k)

        def body(spec: TableSpec) -> Plan[list[SearchHit]]:
            assert self._server is not None
            return _ops.sparse_plan(
                spec,
                self._server,
                sparse,
                k,
                filter=filter,
                ids=ids,
                ef_search=ef_search,
                exact_limit=self.exact_filter_limit,
            )

        return (yield from self._on_table(body, tx=True, read=True)) or []

    # -- admin -------------------------------------------------------------------------------

    @operation
    def create_index(
        self,
        kind: str = "hnsw",
        *,
        m: int = 16,
        ef_construction: int = 64,
        lists: int | None = None,
        quantization: str | None = None,
        maintenance_work_mem: str | None = "auto",
        memory_fraction: float = 0.25,
        workers: int | None = None,
        concurrently: bool = False,
    ) -> Task[str]:
        """Create the HNSW or IVFFlat index (operator class of the table's distance and type).

        Args:
            kind: ``"hnsw"`` or ``"ivfflat"``.
            m, ef_construction: HNSW graph parameters.
            lists: IVFFlat lists (default from the row count).
            quantization: ``None`` (the stored vectors), ``"halfvec"`` (an index on
                ``embedding::halfvec(n)``: half the size) or ``"binary"`` (on
                ``binary_quantize(embedding)::bit(n)``: 1/32 of the size, searched with an
                oversampled candidate set re-ranked by the exact float32 distance). The
                vectors stay float32; the catalog records the choice and every search of this
                table uses that index, returning exact distances. Needs pgvector >= 0.7.
            maintenance_work_mem: ``"auto"``: sized to the estimated HNSW graph (rows x bytes
                per element) so the build does not spill to disk, capped by
                ``memory_fraction`` of the server's memory (1 GB when the server's memory
                cannot be read); a PostgreSQL size (``"2GB"``); ``None``: the server's.
            memory_fraction: the cap of ``"auto"``, a fraction of the server's memory.
            workers: parallel build workers (``max_parallel_maintenance_workers``); ``None``
                leaves the server's setting.
            concurrently: ``CREATE INDEX CONCURRENTLY`` (writes go on during the build; not
                inside a transaction of the caller's).

        Returns:
            The index name (:meth:`index_progress` shows a running build).

        Raises:
            ExtensionError: pgvector cannot index this column or quantization (e.g. > 2000
                dims without halfvec, or pgvector < 0.7 for a quantization).
        """

        def body(spec: TableSpec) -> Plan[_index.IndexBuild]:
            assert self._server is not None
            return _index.index_plan(
                spec,
                self._server,
                kind,
                m=m,
                ef_construction=ef_construction,
                lists=lists,
                maintenance_work_mem=maintenance_work_mem,
                quantization=quantization,
                concurrently=concurrently,
                memory_fraction=memory_fraction,
                workers=workers,
            )

        build = yield from self._on_table(body, tx=not concurrently)
        if build is None:
            raise InvalidInputError(
                "the table does not exist yet: add records (or give dimension=) first"
            )
        if self._spec is not None:
            self._spec = _index.quantized(self._spec, build)
        self.last_index_build = build
        return build.name

    @operation
    def index_progress(self) -> Task[list[_index.IndexProgress]]:
        """The index builds running on this table (``pg_stat_progress_create_index``), e.g.
        from another thread or process while :meth:`create_index` runs."""
        return (yield from self._on_table(_index.progress_plan, tx=False)) or []

    asetup = setup.aio
    adelete = delete.aio
    aclear = clear.aio
    adrop = drop.aio
    aget = get.aio
    acount = count.aio
    asearch = search.aio
    aexplain = explain.aio
    ammr_search = mmr_search.aio
    atext_search = text_search.aio
    ahybrid_search = hybrid_search.aio
    asparse_search = sparse_search.aio
    acreate_index = create_index.aio
    aindex_progress = index_progress.aio
