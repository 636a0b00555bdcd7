"""Where connections come from: a DSN, a psycopg connection or pool, or the embedded server.

A DSN (or ``None``: ``QWEN_PG_DSN``, else the embedded server) gives process-wide pools shared
by every store on that DSN: one ``ConnectionPool`` for sync calls and, per event loop, a small
task-free async pool for async calls. Connections the caller passes are used as they are.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Union

import psycopg
from psycopg.pq import TransactionStatus
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

from ..config import redact_dsn, resolve_dsn
from ..errors import ConfigurationError, DatabaseConnectionError

__all__ = ["ATTEMPTS", "ConnectionArg", "Engine", "close_pools"]

ConnectionArg = Union[
    str,
    "psycopg.Connection[Any]",
    "psycopg.AsyncConnection[Any]",
    "ConnectionPool[Any]",
    "AsyncConnectionPool[Any]",
    None,
]

_POOL_KW: dict[str, Any] = {"autocommit": True}
_MIN, _MAX = 1, 8
ATTEMPTS = 2  # a store operation whose own pooled connection broke runs once more
_FAST_WAIT = 2.0  # seconds a checkout waits before checking that the server is reachable
_POOL_WAIT = 30.0  # psycopg_pool's default checkout timeout: the total wait of a busy pool
_lock = threading.Lock()
_sync_pools: dict[str, ConnectionPool[Any]] = {}
_async_pools: dict[tuple[str, int], _LoopPool] = {}


def _connect_error(dsn: str, err: BaseException) -> DatabaseConnectionError:
    detail = redact_dsn(
        str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    )
    return DatabaseConnectionError(
        f"cannot connect to PostgreSQL at {redact_dsn(dsn)}: {detail}. Check the DSN "
        "(connection=... or QWEN_PG_DSN), that the server is running, and the credentials."
    )


def _sync_pool(dsn: str) -> ConnectionPool[Any]:
    with _lock:
        pool = _sync_pools.get(dsn)
        if pool is not None and not pool.closed:
            return pool
        # fail fast with a clear error instead of a pool timeout; raised outside the except
        # block so the typed error has no __context__ (psycopg's error keeps the connection
        # options, password included)
        failure: DatabaseConnectionError | None = None
        try:
            psycopg.connect(dsn, connect_timeout=15).close()
        except psycopg.Error as err:
            failure = _connect_error(dsn, err)
        if failure is not None:
            raise failure
        # check: every checkout first runs an empty query (one round trip), so connections
        # killed while idle (server restart, pg_terminate_backend, idle timeouts) are
        # replaced instead of failing the next call
        pool = ConnectionPool(
            dsn,
            kwargs=dict(_POOL_KW),
            min_size=_MIN,
            max_size=_MAX,
            open=True,
            name="qwen-pg",
            check=ConnectionPool.check_connection,
        )
        # wait for min_size: a first request that finds no connection yet makes the pool grow,
        # and then even a single-threaded caller alternates between two backends (the pool is
        # FIFO), measured ~8 % slower per k=10 HNSW search than staying on one
        try:
            pool.wait(timeout=15.0)
        except PoolTimeout:
            pool.close()
            raise
        _sync_pools[dsn] = pool
        return pool


def _checkout(pool: ConnectionPool[Any], dsn: str) -> psycopg.Connection[Any]:
    """A connection from the shared pool; a server that went away fails in seconds.

    The pool replaces dead connections in the background and a checkout waits for one, up to
    its 30 s timeout, which is right when every connection is busy but not when the server
    is down. After a short wait, one direct connection attempt tells the two apart: if it
    fails, its error is raised now; if it works, the pool is only busy and the wait goes on.
    """
    conn: psycopg.Connection[Any]
    try:
        conn = pool.getconn(timeout=_FAST_WAIT)
    except PoolTimeout:
        pass
    else:
        return conn
    failure: DatabaseConnectionError | None = None
    try:
        psycopg.connect(dsn, connect_timeout=5).close()
    except psycopg.Error as err:
        failure = _connect_error(dsn, err)
    if failure is not None:  # outside the except: no __context__ (see _sync_pool)
        raise failure
    conn = pool.getconn(timeout=_POOL_WAIT - _FAST_WAIT)
    return conn


class _LoopPool:
    """A small async pool bound to one event loop, with no background tasks.

    ``AsyncConnectionPool`` keeps worker tasks alive; with one event loop per test (or per
    ``asyncio.run``) those tasks outlive their loop. This pool only hands out idle connections
    or opens new ones (at most ``_MAX`` at a time) and keeps up to ``_MAX`` idle. An idle
    connection is checked (one empty query) before it is handed out, like the sync pool's.
    """

    def __init__(self, dsn: str, loop: asyncio.AbstractEventLoop) -> None:
        self.dsn = dsn
        self.loop = loop
        self.idle: list[psycopg.AsyncConnection[Any]] = []
        self.slots = asyncio.Semaphore(_MAX)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        async with self.slots:
            conn = await self._idle_connection()
            if conn is None:
                failure: DatabaseConnectionError | None = None
                try:
                    conn = await psycopg.AsyncConnection.connect(
                        self.dsn, autocommit=True, connect_timeout=15
                    )
                except psycopg.OperationalError as err:
                    failure = _connect_error(self.dsn, err)
                if failure is not None:  # outside the except: no __context__ (see _sync_pool)
                    raise failure
                assert conn is not None
            try:
                yield conn
            finally:
                healthy = not conn.closed and conn.info.transaction_status == TransactionStatus.IDLE
                if healthy and len(self.idle) < _MAX:
                    self.idle.append(conn)
                else:
                    await conn.close()

    async def _idle_connection(self) -> psycopg.AsyncConnection[Any] | None:
        """A live idle connection (checked with an empty query: a backend killed while the
        connection sat idle is only noticed on the next read), or ``None``."""
        while self.idle:
            cand = self.idle.pop()
            if cand.closed or cand.info.transaction_status != TransactionStatus.IDLE:
                continue
            try:
                await AsyncConnectionPool.check_connection(cand)
            except psycopg.Error:
                with contextlib.suppress(Exception):
                    await cand.close()
                continue
            return cand
        return None

    def discard(self) -> None:
        """Close idle connections without the (possibly closed) loop."""
        for conn in self.idle:
            with contextlib.suppress(Exception):
                conn.pgconn.finish()
        self.idle.clear()


def _loop_pool(dsn: str) -> _LoopPool:
    loop = asyncio.get_running_loop()
    with _lock:
        for key in [k for k, p in _async_pools.items() if p.loop.is_closed()]:
            _async_pools.pop(key).discard()
        pool = _async_pools.get((dsn, id(loop)))
        if pool is None or pool.loop is not loop:
            pool = _async_pools[(dsn, id(loop))] = _LoopPool(dsn, loop)
        return pool


def close_pools(dsn: str | None = None) -> None:
    """Close the shared sync pools (of one DSN, or all); async pools close with their loop.

    Call it before stopping a server the pools point at.
    """
    with _lock:
        keys = [k for k in _sync_pools if dsn is None or k == dsn]
        pools = [_sync_pools.pop(k) for k in keys]
        for k in [k for k in _async_pools if dsn is None or k[0] == dsn]:
            _async_pools.pop(k).discard()
    for pool in pools:
        with contextlib.suppress(Exception):  # interpreter shutdown: nobody to report to
            pool.close(timeout=1.0)


atexit.register(close_pools)


class Engine:
    """Hands out connections for one store.

    Args:
        connection: a DSN, a ``psycopg.Connection`` / ``AsyncConnection``, a
            ``ConnectionPool`` / ``AsyncConnectionPool``, or ``None`` (``QWEN_PG_DSN``, else the
            embedded server, started on first use).
    """

    def __init__(self, connection: ConnectionArg = None) -> None:
        self._dsn: str | None = None
        self._conn: psycopg.Connection[Any] | None = None
        self._aconn: psycopg.AsyncConnection[Any] | None = None
        self._pool: ConnectionPool[Any] | None = None
        self._apool: AsyncConnectionPool[Any] | None = None
        if connection is None or isinstance(connection, str):
            self._dsn = resolve_dsn(connection)
        elif isinstance(connection, psycopg.Connection):
            self._conn = connection
        elif isinstance(connection, psycopg.AsyncConnection):
            self._aconn = connection
        elif isinstance(connection, ConnectionPool):
            self._pool = connection
        elif isinstance(connection, AsyncConnectionPool):
            self._apool = connection
        else:
            raise ConfigurationError(
                "connection must be a DSN string, a psycopg Connection/AsyncConnection, a "
                "psycopg_pool ConnectionPool/AsyncConnectionPool or None, got "
                f"{type(connection).__name__}"
            )
        self._embedded = connection is None and self._dsn is None

    def __repr__(self) -> str:
        if self._embedded:
            return "Engine(embedded)"
        if self._dsn is not None:
            return f"Engine({redact_dsn(self._dsn)!r})"
        return f"Engine({type(self._conn or self._aconn or self._pool or self._apool).__name__})"

    @property
    def supports_sync(self) -> bool:
        """Whether sync methods can run on this connection."""
        return self._aconn is None and self._apool is None

    @property
    def owns_connections(self) -> bool:
        """Whether connections come from this package's own pools (a DSN), not the caller's."""
        return self._dsn is not None or self._embedded

    def should_retry(self, attempt: int, conn: Any) -> bool:
        """Whether an operation that failed with ``psycopg.OperationalError`` on ``conn`` may
        run once more on a fresh connection.

        Only the first attempt, only on the package's own pools (a caller's connection or
        pool may hold the caller's transaction), and only when the connection broke (a
        server-side error on a live connection, e.g. a statement timeout, is not retried).
        Every store operation is idempotent (reads; upserts by id and deletes in one
        transaction per batch), so re-running one whose commit outcome is unknown is safe.
        """
        return attempt == 0 and self.owns_connections and conn is not None and bool(conn.closed)

    @property
    def supports_async(self) -> bool:
        """Whether async methods can run on this connection."""
        return self._conn is None and self._pool is None

    def dsn(self) -> str:
        """The DSN (starting the embedded server if that is the source)."""
        if self._dsn is None:
            if not self._embedded:
                raise ConfigurationError("this store was given a connection object, not a DSN")
            from .embedded import embedded_dsn

            self._dsn = embedded_dsn()
        return self._dsn

    def close(self) -> None:
        """Close the shared sync pool of this store's DSN (reopened on next use).

        Connections and pools the caller passed stay open: they belong to the caller.
        """
        if self._dsn is not None:
            close_pools(self._dsn)

    async def aclose(self) -> None:
        """Close this DSN's async connections in the running loop, and the sync pool."""
        if self._dsn is None:
            return
        loop = asyncio.get_running_loop()
        with _lock:
            pool = _async_pools.pop((self._dsn, id(loop)), None)
        if pool is not None:
            idle, pool.idle = pool.idle, []
            for conn in idle:
                with contextlib.suppress(Exception):
                    await conn.close()
        close_pools(self._dsn)

    @contextmanager
    def connect(self) -> Iterator[psycopg.Connection[Any]]:
        """A sync connection for one operation."""
        if self._conn is not None:
            yield self._conn
            return
        if not self.supports_sync:
            raise ConfigurationError(
                "this store was given an async connection or pool: use the async methods "
                "(aadd, asearch, ...) or pass a DSN / sync connection for sync calls"
            )
        if self._pool is not None:  # the caller's pool, with the caller's timeouts
            with self._pool.connection() as conn:
                yield conn
            return
        dsn = self.dsn()
        pool = _sync_pool(dsn)
        conn = _checkout(pool, dsn)
        try:
            with conn:  # what ConnectionPool.connection() does: end the transaction, keep it
                yield conn
        finally:
            pool.putconn(conn)

    @asynccontextmanager
    async def aconnect(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """An async connection for one operation."""
        if self._aconn is not None:
            yield self._aconn
            return
        if not self.supports_async:
            raise ConfigurationError(
                "this store was given a sync connection or pool: use the sync methods or pass "
                "a DSN / AsyncConnection / AsyncConnectionPool for async calls"
            )
        if self._apool is not None:
            async with self._apool.connection() as conn:
                yield conn
            return
        async with _loop_pool(self.dsn()).connection() as conn:
            yield conn
