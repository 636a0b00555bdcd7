"""A store operation whose own pooled connection breaks runs once more; a caller's never does.

The break is made deterministic: an admin session holds an ACCESS EXCLUSIVE lock on the table,
so the store's statement waits on it; the admin then terminates that waiting backend (the
statement is in flight) and releases the lock. Backends are told apart by application_name.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from qwen_pg_integrations.errors import DatabaseConnectionError
from qwen_pg_integrations.pg import PGStore, Record
from qwen_pg_integrations.pg.connection import close_pools

DIM = 8


@pytest.fixture
def app_dsn(pg_dsn: str) -> Iterator[tuple[str, str]]:
    app = f"retry_{uuid.uuid4().hex[:8]}"
    dsn = make_conninfo(pg_dsn, application_name=app)
    yield dsn, app
    close_pools(dsn)


def _vec(i: int) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[i % DIM] = 1.0
    v[(i + 1) % DIM] = 0.1 * (1 + i % 7)
    return v


def _waiting_pids(admin: psycopg.Connection[Any], app: str) -> list[int]:
    rows = admin.execute(
        "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND wait_event_type = 'Lock'",
        [app],
    ).fetchall()
    return [int(r[0]) for r in rows]


class _LockThenKill(threading.Thread):
    """Locks ``table``; kills the first backend of ``app`` that waits on it; then unlocks."""

    def __init__(self, admin_dsn: str, app: str, table: str) -> None:
        super().__init__(daemon=True)
        self.admin = psycopg.connect(admin_dsn)  # its own transaction holds the lock
        self.admin.execute(
            sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(table))
        )
        self.app = app
        self.killed: list[int] = []

    def run(self) -> None:
        watch = psycopg.connect(self.admin.info.dsn + " application_name=retry_watch")
        watch.autocommit = True
        try:
            deadline = time.monotonic() + 20
            while not self.killed and time.monotonic() < deadline:
                for pid in _waiting_pids(watch, self.app):
                    watch.execute("SELECT pg_terminate_backend(%s)", [pid])
                    self.killed.append(pid)
                time.sleep(0.01)
            time.sleep(0.1)
        finally:
            self.admin.rollback()  # release the lock
            self.admin.close()
            watch.close()


def test_a_read_whose_pooled_connection_is_killed_in_flight_is_rerun(
    app_dsn: tuple[str, str], pg_dsn: str, table_name: str
) -> None:
    dsn, app = app_dsn
    store = PGStore(dsn, table_name=table_name, dimension=DIM)
    store.add([Record(f"r{i}", f"row {i}", {"i": i}, _vec(i)) for i in range(20)])
    killer = _LockThenKill(pg_dsn, app, table_name)
    killer.start()
    assert store.count() == 20  # waits on the lock, is killed, reruns on a fresh connection
    killer.join(30)
    assert len(killer.killed) == 1
    store.drop()


def test_an_async_search_whose_connection_is_killed_in_flight_is_rerun(
    app_dsn: tuple[str, str], pg_dsn: str, table_name: str
) -> None:
    dsn, app = app_dsn
    store = PGStore(dsn, table_name=table_name, dimension=DIM)

    async def run() -> list[str]:
        await store.aadd([Record(f"r{i}", f"row {i}", {}, _vec(i)) for i in range(20)])
        killer = _LockThenKill(pg_dsn, app, table_name)
        killer.start()
        hits = await store.asearch(_vec(3), k=1)
        await asyncio.to_thread(killer.join, 30)
        assert len(killer.killed) == 1
        await store.aclose()
        return [h.record.id for h in hits]

    assert asyncio.run(run()) == ["r3"]
    store.drop()


def test_add_reruns_only_the_batch_whose_connection_broke(
    app_dsn: tuple[str, str], pg_dsn: str, table_name: str
) -> None:
    dsn, app = app_dsn
    batch = 10
    store = PGStore(dsn, table_name=table_name, dimension=DIM, batch_size=batch)
    store.setup()
    killers: list[_LockThenKill] = []

    def records() -> Iterator[Record]:
        for i in range(3 * batch):
            if i == batch + 1:  # batch 1 is committed; batch 2 will wait on the lock
                killers.append(_LockThenKill(pg_dsn, app, table_name))
                killers[0].start()
            yield Record(f"r{i:02d}", f"row {i}", {"b": i // batch}, _vec(i))

    ids = store.add(records())
    killers[0].join(30)
    assert len(killers[0].killed) == 1
    assert ids == [f"r{i:02d}" for i in range(3 * batch)]
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        rows = conn.execute(
            sql.SQL(
                "SELECT metadata->>'b', count(*), count(DISTINCT xmin::text) FROM {} GROUP BY 1 "
                "ORDER BY 1"
            ).format(sql.Identifier(table_name))
        ).fetchall()
        xmins = conn.execute(
            sql.SQL("SELECT count(DISTINCT xmin::text) FROM {}").format(sql.Identifier(table_name))
        ).fetchone()
    # every batch written exactly once, each in its own transaction (batch 1 not repeated)
    assert rows == [("0", batch, 1), ("1", batch, 1), ("2", batch, 1)]
    assert xmins == (3,)
    store.drop()


def test_a_callers_connection_is_never_retried(pg_dsn: str, table_name: str) -> None:
    app = f"retry_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(make_conninfo(pg_dsn, application_name=app), autocommit=True) as conn:
        store = PGStore(conn, table_name=table_name, dimension=DIM)
        store.add([Record(f"r{i}", f"row {i}", {}, _vec(i)) for i in range(5)])
        killer = _LockThenKill(pg_dsn, app, table_name)
        killer.start()
        with pytest.raises(DatabaseConnectionError):
            store.count()
        killer.join(30)
        assert len(killer.killed) == 1
        assert conn.closed  # the caller's connection broke; the store did not reconnect
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        assert not admin.execute(
            "SELECT 1 FROM pg_stat_activity WHERE application_name = %s", [app]
        ).fetchall()
    PGStore(pg_dsn, table_name=table_name, dimension=DIM).drop()
