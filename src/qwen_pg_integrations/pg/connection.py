"""Where connections come from: a DSN, a psycopg connection or pool, or the embedded server.

A DSN (or ``None``: ``QWEN_PG_DSN``, else the embedded server) gives process-wide pools shared
by every store on that DSN: one ``ConnectionPool`` for sync calls and, per event loop, a small
task-free async pool for async calls. Connections the caller passes are used as they are.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Union

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from ..config import redact_dsn, redact_text, resolve_dsn
from ..errors import ConfigurationError, DatabaseConnectionError
from ._pools import aclose_loop_pool, checkout, close_pools, loop_pool, mark_used, sync_pool

__all__ = ["ATTEMPTS", "ConnectionArg", "Engine", "check_dsn", "close_pools"]

ConnectionArg = Union[
    str,
    "psycopg.Connection[Any]",
    "psycopg.AsyncConnection[Any]",
    "ConnectionPool[Any]",
    "AsyncConnectionPool[Any]",
    None,
]

# a store operation whose own pooled connection broke runs again, on another one: after a server
# restart every pooled connection is dead, and each failed attempt discards one
ATTEMPTS = 10


def check_dsn(dsn: str) -> str:
    """``dsn`` if libpq can parse it (no connection is made).

    Raises:
        DatabaseConnectionError: a malformed DSN, with libpq's reason (passwords redacted) and
            the two forms a DSN takes.
    """
    failure: DatabaseConnectionError | None = None
    try:
        conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as err:
        reason = redact_text(str(err).strip().splitlines()[0], dsn)
        failure = DatabaseConnectionError(
            f"invalid PostgreSQL DSN {redact_text(dsn, dsn)!r}: {reason}. Give a URL "
            "(postgresql://user:password@host:5432/dbname) or key=value pairs "
            "(host=... port=... dbname=... user=...), as --dsn, connection=... or QWEN_PG_DSN."
        )
    if failure is not None:  # raised outside the except: no __context__ holding the DSN
        raise failure
    return dsn


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
            if self._dsn is not None:
                check_dsn(self._dsn)
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

        Up to ``ATTEMPTS - 1`` times, only on the package's own pools (a caller's connection
        or pool may hold the caller's transaction), and only when the connection broke (a
        server-side error on a live connection, e.g. a statement timeout, is not retried).
        Every store operation is idempotent (reads; upserts by id and deletes in one
        transaction per batch), so re-running one whose commit outcome is unknown is safe.
        """
        return (
            attempt < ATTEMPTS - 1
            and self.owns_connections
            and conn is not None
            and bool(conn.closed)
        )

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
        await aclose_loop_pool(self._dsn)
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
        pool = sync_pool(dsn)
        conn = checkout(pool, dsn)
        try:
            with conn:  # what ConnectionPool.connection() does: end the transaction, keep it
                yield conn
        finally:
            mark_used(conn)
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
        async with loop_pool(self.dsn()).connection() as conn:
            yield conn
