"""The process-wide connection pools behind DSNs (the lowest layer of ``pg``).

One ``ConnectionPool`` per DSN for sync calls and, per event loop, a small task-free async
pool for async calls, shared by every store on that DSN. ``connection.Engine`` hands their
connections out; ``embedded.stop_embedded`` closes them before stopping the server.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import threading
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

from ..config import redact_dsn, redact_text
from ..errors import DatabaseConnectionError

__all__ = [
    "IDLE_CHECK",
    "aclose_loop_pool",
    "check_if_idle",
    "checkout",
    "close_pools",
    "loop_pool",
    "mark_used",
    "sync_pool",
]

IDLE_CHECK = 1.0  # seconds a pooled connection sits idle before a checkout checks it first
_last_used: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()


def mark_used(conn: Any) -> None:
    """Note that ``conn`` just finished an operation (it goes back to its pool)."""
    _last_used[conn] = time.monotonic()


def _idle_for(conn: Any) -> float:
    return time.monotonic() - _last_used.get(conn, 0.0)


def check_if_idle(conn: psycopg.Connection[Any]) -> None:
    """The pools' checkout check: an empty query (one round trip) on connections idle for more
    than :data:`IDLE_CHECK` seconds, the ones a server restart, a killed backend or an idle
    timeout may have closed meanwhile. A connection handed back moments ago skips it: that
    round trip was a third of a k=10 HNSW search. If one did break since, the store runs the
    operation again on another connection (``Engine.should_retry``)."""
    if _idle_for(conn) > IDLE_CHECK:
        ConnectionPool.check_connection(conn)


_POOL_KW: dict[str, Any] = {"autocommit": True}
_MIN, _MAX = 1, 8
_FAST_WAIT = 2.0  # seconds a checkout waits before checking that the server is reachable
_POOL_WAIT = 30.0  # psycopg_pool's default checkout timeout: the total wait of a busy pool
_lock = threading.Lock()
_sync_pools: dict[str, ConnectionPool[Any]] = {}
_async_pools: dict[tuple[str, int], _LoopPool] = {}


def _connect_error(dsn: str, err: BaseException) -> DatabaseConnectionError:
    detail = redact_text(
        str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__, dsn
    )
    return DatabaseConnectionError(
        f"cannot connect to PostgreSQL at {redact_dsn(dsn)}: {detail}. Check the DSN "
        "(connection=... or QWEN_PG_DSN), that the server is running, and the credentials."
    )


def sync_pool(dsn: str) -> ConnectionPool[Any]:
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
            check=check_if_idle,
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


def checkout(pool: ConnectionPool[Any], dsn: str) -> psycopg.Connection[Any]:
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
                mark_used(conn)
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
                if _idle_for(cand) > IDLE_CHECK:
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


def loop_pool(dsn: str) -> _LoopPool:
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


async def aclose_loop_pool(dsn: str) -> None:
    """Close the idle async connections of ``dsn`` in the running loop."""
    loop = asyncio.get_running_loop()
    with _lock:
        pool = _async_pools.pop((dsn, id(loop)), None)
    if pool is not None:
        idle, pool.idle = pool.idle, []
        for conn in idle:
            with contextlib.suppress(Exception):
                await conn.close()
