"""Issue 7: database faults (killed backends, a server restart) lose and duplicate nothing.

Backends are killed with ``pg_terminate_backend`` on the session's PG18 server; every test
gives its store a DSN with its own ``application_name`` so only its backends are hit (and it
gets its own shared pool). The restart tests run on a private embedded server (``pg_ctl
restart``), never on the shared one.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from psycopg import sql
from psycopg_pool import ConnectionPool

from _rel_support import (
    backends,
    close_pools_under,
    connection_count,
    dedicated_server,
    embed_log,
    record_figures,
    terminate,
    unique_app,
    with_app_name,
    write_corpus,
)
from qwen_pg_integrations.dashscope import DashScopeClient, EmbeddingClient
from qwen_pg_integrations.errors import DatabaseConnectionError
from qwen_pg_integrations.pg import PGStore, Record
from qwen_pg_integrations.rag.knowledge_base import KnowledgeBase
from qwen_pg_integrations.testing import DashScopeEmulator

DIM = 64


@pytest.fixture
def app_dsn(pg_dsn: str) -> Iterator[tuple[str, str]]:
    app = unique_app("rel")
    dsn = with_app_name(pg_dsn, app)
    yield dsn, app
    close_pools_under(dsn)


def _vectors(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _fill(store: PGStore, n: int) -> np.ndarray:
    vecs = _vectors(n)
    store.add(Record(f"r{i}", f"row {i} text", {"i": i}, vecs[i]) for i in range(n))
    return vecs


def _stats(dsn: str, table: str) -> tuple[int, int, int, dict[str, int]]:
    ident = sql.Identifier(table)
    with psycopg.connect(dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", [table]).fetchone()
        if not exists or not exists[0]:
            return 0, 0, 0, {}
        row = conn.execute(
            sql.SQL("SELECT count(*), count(DISTINCT id), count(DISTINCT content) FROM {}").format(
                ident
            )
        ).fetchone()
        per = conn.execute(
            sql.SQL("SELECT metadata->>'source', count(*) FROM {} GROUP BY 1").format(ident)
        ).fetchall()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2]), {str(k): int(v) for k, v in per}


# --- a backend killed in the middle of an ingest ------------------------------------------


def _whole_batch_counts(per_file: int, batch: int, add_slice: int = 64) -> set[int]:
    """Row counts a file can have when only whole store batches were committed.

    ``ingest_files`` hands the sink ``add_slice`` chunks at a time; the store writes each slice
    in transactions of ``batch`` rows.
    """
    counts = {0}
    done = 0
    while done < per_file:
        size = min(add_slice, per_file - done)
        written = 0
        while written < size:
            written += min(batch, size - written)
            counts.add(done + written)
        done += size
    return counts


class _WriteKiller(threading.Thread):
    """Kills the store's backend inside a write transaction (holding an xid) past N rows."""

    def __init__(self, admin_dsn: str, app: str, table: str, after_rows: int) -> None:
        super().__init__(daemon=True)
        self.admin_dsn, self.app, self.table, self.after_rows = admin_dsn, app, table, after_rows
        self.killed: list[tuple[int, str, str]] = []
        self.rows_at_kill = -1
        self.stop = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            while not self.stop.is_set() and not self.killed:
                row = conn.execute(
                    "SELECT CASE WHEN to_regclass(%s) IS NULL THEN 0 ELSE 1 END", [self.table]
                ).fetchone()
                if row and row[0]:
                    n = conn.execute(
                        sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(self.table))
                    ).fetchone()
                    if n and n[0] >= self.after_rows:
                        self.killed = [
                            (int(pid), str(state), str(query)[:60])
                            for pid, state, query in conn.execute(
                                "SELECT pid, state, query FROM pg_stat_activity "
                                "WHERE application_name = %s AND backend_xid IS NOT NULL "
                                "AND pg_terminate_backend(pid)",
                                [self.app],
                            ).fetchall()
                        ]
                        if self.killed:
                            self.rows_at_kill = int(n[0])
                            return
                time.sleep(0.001)


def test_backend_killed_mid_ingest_leaves_whole_batches_and_resume_completes_once(
    app_dsn: tuple[str, str], pg_dsn: str, table_name: str, tmp_path: Path
) -> None:
    dsn, app = app_dsn
    files, per_file, batch = 30, 100, 25  # 4 write transactions per file
    write_corpus(tmp_path / "corpus", files, per_file)
    with DashScopeEmulator(log_limit=None) as emu:
        client = DashScopeClient(api_key=emu.api_key, base_url=emu.base_url, backoff_base=0.01)
        emb = EmbeddingClient("text-embedding-v4", dimensions=DIM, client=client)
        store = PGStore(dsn, table_name=table_name, dimension=DIM, batch_size=batch)
        kb = KnowledgeBase(store, emb)

        killer = _WriteKiller(pg_dsn, app, table_name, after_rows=1000)
        killer.start()
        surfaced: Exception | None = None
        try:
            kb.ingest([tmp_path / "corpus"])
        except DatabaseConnectionError as exc:  # typed, but the store should have rerun the batch
            surfaced = exc
        finally:
            killer.stop.set()
            killer.join(5)
        assert killer.killed, "the kill never landed inside a write transaction"
        # the broken batch is rerun on a fresh connection (REL_NEEDS #2): nothing surfaces
        assert surfaced is None, f"the killed write transaction surfaced: {surfaced!r}"

        rows, ids, contents, per_source = _stats(pg_dsn, table_name)
        assert rows == ids == contents
        # one transaction per store batch: a file holds whole batches only
        assert set(per_source.values()) <= _whole_batch_counts(per_file, batch), per_source
        first = embed_log(emu)

        emu.clear_requests()
        summary = kb.ingest([tmp_path / "corpus"])  # the pool must hand out a live connection
        again = embed_log(emu)
    rows2, ids2, contents2, per_source2 = _stats(pg_dsn, table_name)
    assert rows2 == ids2 == contents2 == files * per_file, "lost or duplicated chunks"
    assert set(per_source2.values()) == {per_file}
    assert summary.new == files * per_file - rows
    assert again.texts_sent == files * per_file - rows, "stored chunks were embedded again"
    record_figures(
        "db_kill_mid_ingest",
        killed=[k[1] for k in killer.killed],
        rows_at_kill=killer.rows_at_kill,
        error_surfaced=type(surfaced).__name__ if surfaced else None,
        rows_after_failure=rows,
        texts_embedded_first_run=first.texts_sent,
        texts_embedded_on_resume=again.texts_sent,
        rows_after_resume=rows2,
        duplicates=rows2 - contents2,
    )


# --- killed idle connections and a query burst ---------------------------------------------


def _kill_idle_then_search(store: PGStore, admin_dsn: str, app: str) -> int:
    vecs = _fill(store, 50)
    for _ in range(3):
        store.search(vecs[0], k=3)
    pids = backends(admin_dsn, app)
    assert pids, "the store holds no pooled connection"
    assert terminate(admin_dsn, pids) == len(pids)
    time.sleep(0.2)
    for i in range(len(pids) + 2):  # more calls than there were dead connections
        assert store.search(vecs[i], k=3)[0].record.id == f"r{i}"
    assert store.count() == 50
    return len(pids)


def test_store_pool_recovers_from_killed_idle_connections_without_an_error(
    app_dsn: tuple[str, str], pg_dsn: str, table_name: str
) -> None:
    dsn, app = app_dsn
    _kill_idle_then_search(PGStore(dsn, table_name=table_name, dimension=DIM), pg_dsn, app)


def test_a_pool_with_check_connection_recovers_from_killed_idle_connections(
    app_dsn: tuple[str, str], pg_dsn: str, table_name: str
) -> None:
    """The workaround until REL_NEEDS #1 lands: hand the store a pool that checks connections."""
    dsn, app = app_dsn
    with ConnectionPool(
        dsn,
        min_size=2,
        max_size=4,
        kwargs={"autocommit": True},
        check=ConnectionPool.check_connection,
    ) as pool:
        killed = _kill_idle_then_search(
            PGStore(pool, table_name=table_name, dimension=DIM), pg_dsn, app
        )
    assert killed >= 2


def _burst_threads(
    store: PGStore, vecs: np.ndarray, seconds: float, kill_at: float, admin: str, app: str
) -> dict[str, Any]:
    errors: list[tuple[float, BaseException]] = []
    calls = [0]
    lock = threading.Lock()
    t0 = time.perf_counter()
    killed: list[int] = []

    def client(n: int) -> None:
        i = n
        while (now := time.perf_counter() - t0) < seconds:
            try:
                if i % 2:
                    store.hybrid_search(vecs[i % len(vecs)], f"row {i % len(vecs)}", k=5)
                else:
                    store.search(vecs[i % len(vecs)], k=5)
            except Exception as exc:  # collected and checked below
                with lock:
                    errors.append((now, exc))
            with lock:
                calls[0] += 1
            i += 8

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    time.sleep(kill_at)
    pids = backends(admin, app)
    killed.extend(pids)
    terminate(admin, pids)
    for t in threads:
        t.join()
    return {"errors": errors, "calls": calls[0], "killed": len(killed), "kill_at": kill_at}


def _check_burst(result: dict[str, Any], label: str, rows_before: int, rows_after: int) -> None:
    errors = result["errors"]
    assert result["killed"] > 0
    assert all(isinstance(e, DatabaseConnectionError) for _, e in errors), [
        repr(e) for _, e in errors
    ]
    late = [e for t, e in errors if t > result["kill_at"] + 1.0]
    assert not late, f"the pool had not recovered 1 s after the kill: {late}"
    # an in-flight read on a killed connection is rerun once on a fresh one (REL_NEEDS #2)
    assert not errors, f"{len(errors)} calls failed for {result['killed']} killed backends"
    assert rows_after == rows_before
    record_figures(
        label,
        calls=result["calls"],
        killed_backends=result["killed"],
        errors_surfaced=len(errors),
        error_types=sorted({type(e).__name__ for _, e in errors}),
        rows_before=rows_before,
        rows_after=rows_after,
    )


def test_query_burst_survives_killed_backends_threads(
    app_dsn: tuple[str, str], pg_dsn: str, table_name: str
) -> None:
    dsn, app = app_dsn
    store = PGStore(dsn, table_name=table_name, dimension=DIM)
    vecs = _fill(store, 2000)
    result = _burst_threads(store, vecs, seconds=3.0, kill_at=1.0, admin=pg_dsn, app=app)
    _check_burst(result, "db_kill_query_burst_threads", 2000, store.count())


def test_query_burst_survives_killed_backends_asyncio(
    app_dsn: tuple[str, str], pg_dsn: str, table_name: str
) -> None:
    dsn, app = app_dsn
    store = PGStore(dsn, table_name=table_name, dimension=DIM)
    vecs = _fill(store, 2000)

    async def burst() -> dict[str, Any]:
        errors: list[tuple[float, BaseException]] = []
        calls = [0]
        t0 = time.perf_counter()

        async def client(n: int) -> None:
            i = n
            while (now := time.perf_counter() - t0) < 3.0:
                try:
                    if i % 2:
                        await store.ahybrid_search(vecs[i % 2000], f"row {i % 2000}", k=5)
                    else:
                        await store.asearch(vecs[i % 2000], k=5)
                except Exception as exc:  # collected and checked below
                    errors.append((now, exc))
                calls[0] += 1
                i += 8

        tasks = [asyncio.create_task(client(n)) for n in range(8)]
        await asyncio.sleep(1.0)
        pids = await asyncio.to_thread(backends, pg_dsn, app)
        await asyncio.to_thread(terminate, pg_dsn, pids)
        await asyncio.gather(*tasks)
        return {"errors": errors, "calls": calls[0], "killed": len(pids), "kill_at": 1.0}

    result = asyncio.run(burst())
    _check_burst(result, "db_kill_query_burst_asyncio", 2000, _stats(pg_dsn, table_name)[0])


# --- a server restart between two calls ------------------------------------------------------


@pytest.fixture(scope="module")
def private_server() -> Iterator[Any]:
    with dedicated_server() as srv:
        yield srv


def _restart_between_calls(store: PGStore, srv: Any) -> tuple[float, int]:
    vecs = _fill(store, 100)
    assert store.search(vecs[1], k=1)[0].record.id == "r1"
    seconds = srv.restart()
    hit = store.search(vecs[2], k=1)  # the first call after the restart
    assert hit[0].record.id == "r2"
    assert store.count() == 100
    return seconds, 100


def test_server_restart_between_two_calls_is_survived(private_server: Any) -> None:
    dsn = with_app_name(private_server.dsn, unique_app("restart"))
    seconds, rows = _restart_between_calls(
        PGStore(dsn, table_name="restart_sync", dimension=DIM), private_server
    )
    record_figures("db_restart_sync", restart_seconds=round(seconds, 2), rows=rows, errors=0)


def test_server_restart_between_two_async_calls_is_survived(private_server: Any) -> None:
    dsn = with_app_name(private_server.dsn, unique_app("restart"))
    store = PGStore(dsn, table_name="restart_async", dimension=DIM)
    vecs = _vectors(100)

    async def run() -> None:
        await store.aadd(Record(f"r{i}", f"row {i}", {}, vecs[i]) for i in range(100))
        assert (await store.asearch(vecs[1], k=1))[0].record.id == "r1"
        await asyncio.to_thread(private_server.restart)
        assert (await store.asearch(vecs[2], k=1))[0].record.id == "r2"
        assert await store.acount() == 100

    asyncio.run(run())


def test_server_restart_with_a_checking_pool_is_survived(private_server: Any) -> None:
    dsn = with_app_name(private_server.dsn, unique_app("restart"))
    with ConnectionPool(
        dsn,
        min_size=1,
        max_size=4,
        kwargs={"autocommit": True},
        check=ConnectionPool.check_connection,
    ) as pool:
        seconds, rows = _restart_between_calls(
            PGStore(pool, table_name="restart_pool", dimension=DIM), private_server
        )
    record_figures(
        "db_restart_checking_pool", restart_seconds=round(seconds, 2), rows=rows, errors=0
    )


def test_server_restart_costs_the_store_at_most_one_failed_call_per_pooled_connection(
    private_server: Any,
) -> None:
    """The package's own pool checks connections before handing them out (REL_NEEDS #1)."""
    app = unique_app("restart")
    dsn = with_app_name(private_server.dsn, app)
    store = PGStore(dsn, table_name="restart_count", dimension=DIM)
    vecs = _fill(store, 100)
    store.search(vecs[0], k=1)
    pooled = connection_count(private_server.dsn, app)
    private_server.restart()
    failures = 0
    for i in range(pooled + 2):
        try:
            store.search(vecs[i], k=1)
        except DatabaseConnectionError:
            failures += 1
    assert failures == 0, f"{failures} failed calls after a restart ({pooled} pooled)"
    assert store.search(vecs[5], k=1)[0].record.id == "r5"
    record_figures(
        "db_restart_package_pool", pooled_connections=pooled, failed_calls_after_restart=failures
    )


def test_a_server_that_goes_down_fails_calls_in_seconds_and_recovery_follows() -> None:
    """With the server stopped under an open pool, a call raises DatabaseConnectionError with
    the cause in a few seconds (it waited for psycopg_pool's 30 s timeout), and the store
    works again once the server is back."""
    with dedicated_server() as srv:
        store = PGStore(srv.dsn, table_name="down", dimension=DIM)
        vecs = _fill(store, 20)
        opts = srv.stop()
        started = time.perf_counter()
        with pytest.raises(DatabaseConnectionError, match="cannot connect") as info:
            store.search(vecs[1], k=1)
        waited = time.perf_counter() - started
        assert waited < 10, f"{waited:.1f} s before the error"
        assert info.value.__context__ is None
        srv.start(opts)
        assert store.search(vecs[1], k=1)[0].record.id == "r1"
        record_figures("db_server_down", seconds_to_error=round(waited, 2))
