"""Statements the server refuses on a live connection are not reported as connection failures.

psycopg classes statement and lock timeouts, deadlocks and serialization failures as
``OperationalError``, like a dropped connection; the store tells them apart, names the cause
and says what to do, and keeps ``DatabaseConnectionError`` for connections that failed.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import psycopg
import pytest

from qwen_pg_integrations.errors import DatabaseConnectionError, StorageError
from qwen_pg_integrations.pg import PGStore, Record


def _with_options(dsn: str, options: str) -> str:
    sep = "&" if "?" in dsn else "?"
    return f"{dsn}{sep}options={quote(options)}"


@pytest.fixture
def locked(pg_dsn: str, table_name: str) -> Iterator[str]:
    """The table exists with one row, and another session holds an exclusive lock on it."""
    owner = PGStore(pg_dsn, table_name=table_name)
    owner.add([Record("a", "x", {}, [1.0, 0.0])])
    with psycopg.connect(pg_dsn) as other:
        other.execute(
            psycopg.sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
                psycopg.sql.Identifier(table_name)
            )
        )
        yield table_name
        other.rollback()
    owner.drop()


def test_lock_timeout_is_a_storage_error_naming_the_lock(pg_dsn: str, locked: str) -> None:
    store = PGStore(_with_options(pg_dsn, "-c lock_timeout=200"), table_name=locked)
    with pytest.raises(StorageError, match=r"lock was not granted.*Run it again") as info:
        store.add([Record("b", "y", {}, [0.0, 1.0])])
    assert not isinstance(info.value, DatabaseConnectionError)
    assert isinstance(info.value.__cause__, psycopg.errors.LockNotAvailable)
    store.close()


def test_statement_timeout_is_a_storage_error_saying_what_to_raise(
    pg_dsn: str, locked: str
) -> None:
    store = PGStore(_with_options(pg_dsn, "-c statement_timeout=200"), table_name=locked)
    with pytest.raises(StorageError, match=r"cancelled the statement.*statement_timeout") as info:
        store.search([1.0, 0.0], k=1)
    assert not isinstance(info.value, DatabaseConnectionError)
    assert isinstance(info.value.__cause__, psycopg.errors.QueryCanceled)
    store.close()


async def test_async_lock_timeout_is_a_storage_error(pg_dsn: str, locked: str) -> None:
    store = PGStore(_with_options(pg_dsn, "-c lock_timeout=200"), table_name=locked)
    with pytest.raises(StorageError, match="lock was not granted") as info:
        await store.aget(["a"])
    assert not isinstance(info.value, DatabaseConnectionError)
    await store.aclose()


def test_a_server_that_is_not_there_is_still_a_connection_error() -> None:
    store = PGStore("postgresql://127.0.0.1:1/none?connect_timeout=2", table_name="t")
    with pytest.raises(DatabaseConnectionError):
        store.count()
    store.close()
