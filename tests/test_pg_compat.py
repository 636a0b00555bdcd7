"""Fallbacks on an older server: PostgreSQL 16 + pgvector 0.6 (the pgserver wheel), like
open-source PolarDB: no halfvec (< 0.7), no iterative index scans (< 0.8)."""

from __future__ import annotations

from typing import Any

import numpy as np
import psycopg
import pytest

from qwen_pg_integrations.errors import ExtensionError
from qwen_pg_integrations.pg import PGStore, Record

pytestmark = pytest.mark.polardb_compat


class _Recorder(psycopg.Connection[Any]):
    statements: list[str]
    values: list[Any]

    def execute(self, query: Any, params: Any = None, **kw: Any) -> Any:  # type: ignore[override]
        if isinstance(query, bytes):
            self.statements.append(query.decode())
        else:
            self.statements.append(query if isinstance(query, str) else query.as_string(self))
        self.values.extend((params or {}).values() if isinstance(params, dict) else params or [])
        return super().execute(query, params, **kw)


def _records(n: int, dim: int, buckets: int = 20) -> list[Record]:
    x = np.random.default_rng(0).standard_normal((n, dim)).astype(np.float32)
    return [
        Record(f"r{i}", f"第{i}段 向量检索 row {i}", {"b": i % buckets}, x[i]) for i in range(n)
    ]


def test_everything_works_on_pgvector_0_6(pgserver_dsn: str, table_name: str) -> None:
    s = PGStore(pgserver_dsn, table_name=table_name)
    recs = _records(600, 16, buckets=10)
    try:
        s.add(recs)
        assert s.pgvector_version is not None and s.pgvector_version < (0, 7, 0)
        assert s.server is not None and not s.server.has_halfvec and not s.server.has_iterative_scan
        name = s.create_index("hnsw")
        assert name.endswith("embedding_hnsw")
        q = recs[5].embedding
        assert q is not None
        assert s.search(q, k=1)[0].record.id == "r5"
        # no iterative scans below 0.8: a short filtered answer is rerun as an exact scan
        for k in (10, 50):
            hits = s.search(q, k=k, filter={"b": {"$lt": 1}})
            assert len(hits) == k and all(h.record.metadata["b"] < 1 for h in hits)
        assert len(s.mmr_search(q, k=3, fetch_k=30)) == 3
        assert s.text_search("向量检索", k=3)
        assert s.hybrid_search(q, "第5段", k=3)[0].record.id == "r5"
        assert s.delete(filter={"b": 0}) == 60
        assert s.count() == 540
    finally:
        s.drop()


def test_no_iterative_scan_settings_below_0_8(pgserver_dsn: str, table_name: str) -> None:
    conn = _Recorder.connect(pgserver_dsn, autocommit=True)
    conn.statements, conn.values = [], []
    s = PGStore(conn, table_name=table_name)
    try:
        recs = _records(300, 8)
        s.add(recs)
        s.create_index("hnsw")
        q = recs[0].embedding
        assert q is not None
        conn.statements.clear()
        conn.values.clear()
        hits = s.search(q, k=10, filter={"b": {"$lt": 3}})
        assert all(h.record.metadata["b"] < 3 for h in hits)
        assert len(hits) == 10
        settings = [v for v in conn.values if isinstance(v, str) and "." in v]
        assert "hnsw.ef_search" in settings  # raised instead (best effort) ...
        assert not any("iterative_scan" in v for v in settings)  # ... no iterative scans
    finally:
        s.drop()
        conn.close()


def test_above_2000_dims_without_halfvec_stores_vector_and_explains_the_index_limit(
    pgserver_dsn: str, table_name: str
) -> None:
    s = PGStore(pgserver_dsn, table_name=table_name)
    recs = _records(50, 2048)
    try:
        s.add(recs)
        assert s.spec is not None and s.spec.vector_type == "vector"
        with pytest.raises(ExtensionError, match=r"pgvector >= 0\.7.*halfvec"):
            s.create_index("hnsw")
        q = recs[7].embedding
        assert q is not None
        assert s.search(q, k=1)[0].record.id == "r7"  # exact scan still works
    finally:
        s.drop()


def test_asking_for_halfvec_below_0_7_is_a_clear_error(pgserver_dsn: str, table_name: str) -> None:
    s = PGStore(pgserver_dsn, table_name=table_name, vector_type="halfvec")
    with pytest.raises(ExtensionError, match=r"halfvec needs pgvector >= 0\.7"):
        s.add(_records(2, 8))


async def test_async_on_pgvector_0_6(pgserver_dsn: str, table_name: str) -> None:
    s = PGStore(pgserver_dsn, table_name=table_name)
    try:
        recs = _records(40, 8)
        await s.aadd(recs)
        q = recs[3].embedding
        assert q is not None
        assert (await s.asearch(q, k=1, filter={"b": 3}))[0].record.id == "r3"
        assert len(await s.ahybrid_search(q, "向量", k=5)) == 5
    finally:
        s.drop()
