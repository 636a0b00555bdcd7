"""PGStore searches on the real server: index use, SET LOCAL, filtered completeness, MMR, hybrid."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from _recorder import StatementRecorder as _Recorder
from qwen_pg_integrations.pg import Distance, PGStore, Record, ServerInfo
from qwen_pg_integrations.pg._ops import search_settings


def _fill(
    store: PGStore, n: int, dim: int, seed: int = 0, buckets: int = 50
) -> np.ndarray[Any, Any]:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    store.add(Record(f"r{i}", f"row {i}", {"i": i, "bucket": i % buckets}, x[i]) for i in range(n))
    return x


@pytest.fixture
def cleanup() -> Iterator[list[PGStore]]:
    stores: list[PGStore] = []
    yield stores
    for s in stores:
        s.drop()


@pytest.mark.parametrize("distance", ["cosine", "l2", "inner_product"])
def test_hnsw_index_opclass_matches_distance_and_query_uses_it(
    pg_dsn: str, table_name: str, distance: str, cleanup: list[PGStore]
) -> None:
    # llama-index's L2 and halfvec indexes are never used by its queries
    s = PGStore(pg_dsn, table_name=table_name, distance=distance)
    cleanup.append(s)
    x = _fill(s, 2000, 64)
    name = s.create_index("hnsw", m=16, ef_construction=64)
    plan = s.explain(x[7], k=10)
    assert f"Index Scan using {name}" in plan, plan[:2000]
    suffix = {"cosine": "cosine", "l2": "l2", "inner_product": "ip"}[distance]
    assert _opclass(pg_dsn, name) == f"vector_{suffix}_ops"
    hits = s.search(x[7], k=10)
    assert hits[0].record.id == "r7"
    assert [h.distance for h in hits] == sorted(h.distance or 0.0 for h in hits)


@pytest.mark.parametrize("distance", ["cosine", "l2"])
def test_halfvec_above_2000_dims_is_indexed_and_the_index_is_used(
    pg_dsn: str, table_name: str, distance: str, cleanup: list[PGStore]
) -> None:
    # langchain-postgres cannot index > 2000 dims; llama-index runs unindexed
    s = PGStore(pg_dsn, table_name=table_name, distance=distance)
    cleanup.append(s)
    x = _fill(s, 4000, 2048)
    assert s.spec is not None and s.spec.vector_type == "halfvec"
    name = s.create_index("hnsw")
    plan = s.explain(x[3], k=10)
    assert f"Index Scan using {name}" in plan, plan[:2000]
    assert _opclass(pg_dsn, name) == f"halfvec_{distance}_ops"
    # random 2048-d data is HNSW's worst case: a wider candidate list finds the exact match
    assert s.search(x[3], k=1, ef_search=400)[0].record.id == "r3"


def _opclass(dsn: str, name: str) -> str:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT o.opcname::text FROM pg_index i JOIN pg_opclass o ON o.oid = i.indclass[0] "
            "WHERE i.indexrelid = %s::regclass",
            [name],
        ).fetchone()
    assert row is not None
    return str(row[0])


def test_ivfflat_index_with_probes(pg_dsn: str, table_name: str, cleanup: list[PGStore]) -> None:
    s = PGStore(pg_dsn, table_name=table_name, distance="l2")
    cleanup.append(s)
    x = _fill(s, 5000, 64)
    name = s.create_index("ivfflat", lists=50)
    assert _opclass(pg_dsn, name) == "vector_l2_ops"
    assert f"Index Scan using {name}" in s.explain(x[5], k=5, probes=2)
    assert s.search(x[5], k=5, probes=20)[0].record.id == "r5"


def test_ef_search_is_raised_to_at_least_k(
    pg_dsn: str, table_name: str, cleanup: list[PGStore]
) -> None:
    s = PGStore(pg_dsn, table_name=table_name)
    cleanup.append(s)
    x = _fill(s, 5000, 128)
    s.create_index("hnsw")
    # (at 5,000 rows the planner may rightly prefer an exact scan for k=150 with ef_search 300)
    assert "Index Scan" in s.explain(x[0], k=150, settings={"enable_seqscan": "off"})
    # HNSW returns at most ef_search rows (default 40)
    assert len(s.search(x[0], k=150)) == 150
    assert len(s.search(x[0], k=150, ef_search=10)) == 150


@pytest.mark.parametrize("distance", list(Distance))
def test_relevance_scores_in_unit_interval_and_threshold_applied_in_sql(
    pg_dsn: str, table_name: str, distance: Distance, cleanup: list[PGStore]
) -> None:
    s = PGStore(pg_dsn, table_name=table_name, distance=distance)
    cleanup.append(s)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((200, 8))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    s.add(Record(f"r{i}", "t", {}, x[i]) for i in range(200))
    hits = s.search(x[0], k=200)
    scores = [h.score for h in hits]
    assert all(0.0 <= v <= 1.0 for v in scores)
    assert scores == sorted(scores, reverse=True)
    assert hits[0].record.id == "r0" and hits[0].score == pytest.approx(1.0, abs=1e-3)
    threshold = scores[50]  # clamped cosine scores are 0 for half the rows: no median
    kept = s.search(x[0], k=200, score_threshold=threshold)
    assert 0 < len(kept) < 200
    assert all(h.score >= threshold - 1e-6 for h in kept)
    assert len(kept) == sum(v >= threshold - 1e-6 for v in scores)


def test_set_local_does_not_leak_into_pooled_connections(
    pg_dsn: str, table_name: str, cleanup: list[PGStore]
) -> None:
    # llama-index runs SET hnsw.ef_search on pooled sessions; the next user inherits it
    with ConnectionPool(
        pg_dsn, min_size=1, max_size=1, kwargs={"autocommit": True}, open=True
    ) as pool:
        s = PGStore(pool, table_name=table_name)
        cleanup.append(PGStore(pg_dsn, table_name=table_name))
        x = _fill(s, 500, 8)
        s.create_index("hnsw")
        assert len(s.search(x[0], k=60, ef_search=123, probes=7, filter={"i": {"$gt": 3}})) == 60
        s.hybrid_search(x[0], "row", k=5, filter={"bucket": 1}, ef_search=77)
        s.mmr_search(x[0], k=5, fetch_k=90)
        with pool.connection() as conn:  # the only connection: the one the store just used
            shown = {
                name: conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
                for name in ("hnsw.ef_search", "hnsw.iterative_scan", "ivfflat.probes")
            }
    assert shown == {"hnsw.ef_search": "40", "hnsw.iterative_scan": "off", "ivfflat.probes": "1"}


async def test_set_local_does_not_leak_into_async_pooled_connections(
    pg_dsn: str, table_name: str, cleanup: list[PGStore]
) -> None:
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        pg_dsn, min_size=1, max_size=1, kwargs={"autocommit": True}, open=False
    )
    await pool.open()
    try:
        s = PGStore(pool, table_name=table_name)
        cleanup.append(PGStore(pg_dsn, table_name=table_name))
        rng = np.random.default_rng(0)
        await s.aadd(Record(f"r{i}", "t", {"i": i}, rng.standard_normal(8)) for i in range(300))
        await s.acreate_index("hnsw")
        assert len(await s.asearch(np.ones(8), k=55, ef_search=99, filter={"i": {"$gt": 1}})) == 55
        async with pool.connection() as conn:
            cur = await conn.execute("SHOW hnsw.ef_search")
            ef = (await cur.fetchone() or [None])[0]
            cur = await conn.execute("SHOW hnsw.iterative_scan")
            it = (await cur.fetchone() or [None])[0]
        assert (ef, it) == ("40", "off")
    finally:
        await pool.close()


def test_filtered_hnsw_query_returns_k_rows_whenever_k_rows_match(
    pg_dsn: str, table_name: str, cleanup: list[PGStore]
) -> None:
    # anchors return 1-4 of 10, and 40 of 50, with the same index and filter
    # exact_filter_limit below the 100 matches: the HNSW path (small matches go exact, below)
    s = PGStore(pg_dsn, table_name=table_name, exact_filter_limit=50)
    cleanup.append(s)
    x = _fill(s, 6000, 32, buckets=60)  # 100 rows per bucket: 1.7 % selectivity
    name = s.create_index("hnsw")
    flt = {"bucket": {"$lt": 1}}  # a range filter: the GIN index cannot serve it
    for k in (10, 50):
        plan = s.explain(x[1], k=k, filter=flt)
        assert f"Index Scan using {name}" in plan, plan[:2000]
        hits = s.search(x[1], k=k, filter=flt)
        assert len(hits) == k
        assert all(h.record.metadata["bucket"] == 0 for h in hits)
        dists = [h.distance for h in hits]
        assert dists == sorted(d or 0.0 for d in dists)
    # the same statement without our settings (what the anchors run) comes back short
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        register_vector(conn)
        rows = conn.execute(
            psycopg.sql.SQL(
                "SELECT id FROM {} WHERE (metadata->>'bucket')::int < 1 "
                "ORDER BY embedding <=> %s LIMIT 10"
            ).format(psycopg.sql.Identifier(table_name)),
            [x[1]],
        ).fetchall()
    assert len(rows) < 10


def test_search_settings_fall_back_without_iterative_scans() -> None:
    new = ServerInfo(180000, "public", (0, 8, 1))
    old = ServerInfo(160000, "public", (0, 6, 2))
    assert search_settings(new, 10, filtered=False, ef_search=None, probes=None) == {}
    # a large k gets twice its size (recall@100 0.94 with ef_search = k at 100k rows)
    assert search_settings(new, 50, filtered=False, ef_search=None, probes=None) == {
        "hnsw.ef_search": "100"
    }
    assert search_settings(
        new, 50, filtered=False, ef_search=None, probes=None, oversampled=True
    ) == {"hnsw.ef_search": "50"}
    assert search_settings(new, 50, filtered=False, ef_search=60, probes=None) == {
        "hnsw.ef_search": "60"
    }
    assert search_settings(new, 10, filtered=True, ef_search=None, probes=None) == {
        "hnsw.iterative_scan": "relaxed_order",
        "ivfflat.iterative_scan": "relaxed_order",
    }
    fallback = search_settings(old, 10, filtered=True, ef_search=None, probes=3)
    assert "hnsw.iterative_scan" not in fallback
    assert int(fallback["hnsw.ef_search"]) >= 100 and fallback["ivfflat.probes"] == "3"
    assert search_settings(new, 5000, filtered=False, ef_search=None, probes=None) == {
        "hnsw.ef_search": "1000"
    }


def test_mmr_sees_fetch_k_candidates(pg_dsn: str, table_name: str, cleanup: list[PGStore]) -> None:
    # langchain-postgres v2 hands MMR only k candidates, so diversity cannot be found
    s = PGStore(pg_dsn, table_name=table_name)
    cleanup.append(s)
    recs = [Record(f"dup{i}", "same", {}, [1.0, 0.01 * i, 0.0]) for i in range(5)]
    recs.append(Record("diverse", "other", {}, [0.6, 0.0, 0.8]))
    s.add(recs)
    q = [1.0, 0.0, 0.0]
    wide = s.mmr_search(q, k=2, fetch_k=20, lambda_mult=0.25)
    assert [h.record.id for h in wide] == ["dup0", "diverse"]
    narrow = s.mmr_search(q, k=2, fetch_k=2, lambda_mult=0.25)
    assert "diverse" not in [h.record.id for h in narrow]
    assert s.mmr_search(q, k=2, fetch_k=20, lambda_mult=1.0)[1].record.id == "dup1"
    with_vectors = s.mmr_search(q, k=1, fetch_k=5, include_embeddings=True)
    assert with_vectors[0].record.embedding is not None


CHINESE = {
    "pg": "PostgreSQL 是一个强大的开源关系型数据库系统",
    "vec": "向量数据库支持相似度检索和混合检索",
    "weather": "今天天气很好我们去公园散步",
    "en": "Hybrid search fuses keyword and vector rankings",
}


def test_hybrid_search_is_one_statement_and_chinese_works(pg_dsn: str, table_name: str) -> None:
    # langchain-postgres fuses two queries in Python; llama-index concatenates; every anchor
    # turns a Chinese sentence into one token
    conn = _Recorder.connect(pg_dsn, autocommit=True)
    conn.statements = []
    s = PGStore(conn, table_name=table_name)
    vecs = {
        "pg": [0.7, 0.7, 0.0],
        "vec": [0.0, 0.0, 1.0],
        "weather": [1.0, 0.0, 0.0],
        "en": [0.0, 1.0, 0.0],
    }
    try:
        s.add(Record(k, CHINESE[k], {"k": k}, vecs[k]) for k in CHINESE)
        q = [1.0, 0.05, 0.0]  # nearest by vector: "weather", then "pg"; "vec" is farthest
        assert [h.record.id for h in s.search(q, k=2)] == ["weather", "pg"]
        conn.statements.clear()
        hits = s.hybrid_search(q, "混合检索", k=2)
        ids = [h.record.id for h in hits]
        assert "vec" in ids and "weather" in ids  # text rank brings in the lexical match
        assert all(0.0 < h.score <= 1.0 for h in hits)
        fused = [t for t in conn.statements if "set_config" not in t]
        assert len(fused) == 1, conn.statements
        assert "ts_rank_cd" in fused[0] and "<=>" in fused[0] and "UNION ALL" in fused[0]
        # full-text alone, Chinese words found inside sentences
        assert [h.record.id for h in s.text_search("数据库", k=5)] in (["pg", "vec"], ["vec", "pg"])
        assert [h.record.id for h in s.text_search("公园", k=5)] == ["weather"]
        assert [h.record.id for h in s.text_search("RANKINGS", k=5)] == ["en"]
        assert s.text_search("完全无关的词", k=5) == []
        assert s.text_search("", k=5) == []
        assert [h.record.id for h in s.hybrid_search(q, "混合检索", k=4, filter={"k": "vec"})] == [
            "vec"
        ]
        lexemes = conn.execute(
            psycopg.sql.SQL(
                "SELECT length(content_tsv), length(to_tsvector('simple', content)) FROM {} "
                "WHERE id = 'vec'"
            ).format(psycopg.sql.Identifier(table_name))
        ).fetchone()
        assert lexemes is not None and lexemes[0] >= 5 and lexemes[1] == 1
    finally:
        s.drop()
        conn.close()


async def test_async_search_mmr_hybrid_text(pg_dsn: str, table_name: str) -> None:
    s = PGStore(pg_dsn, table_name=table_name)
    try:
        await s.aadd(
            Record(k, CHINESE[k], {"k": k}, v) for k, v in zip(CHINESE, np.eye(4), strict=True)
        )
        assert (await s.asearch(np.eye(4)[1], k=1))[0].record.id == "vec"
        assert len(await s.ammr_search(np.eye(4)[1], k=2, fetch_k=4)) == 2
        assert (await s.atext_search("天气"))[0].record.id == "weather"
        hyb = await s.ahybrid_search(np.eye(4)[0], "天气", k=1)
        assert hyb[0].record.id == "weather"
        assert s.explain(np.eye(4)[0]).startswith(("Sort", "Limit", "Incremental", "Subquery"))
    finally:
        s.drop()


def test_searches_can_be_restricted_to_ids(
    pg_dsn: str, table_name: str, cleanup: list[PGStore]
) -> None:
    # LlamaIndex's VectorStoreQuery.node_ids
    s = PGStore(pg_dsn, table_name=table_name)
    cleanup.append(s)
    x = _fill(s, 300, 8)
    only = ["r5", "r17", "r200"]
    hits = s.search(x[0], k=10, ids=only)
    assert sorted(h.record.id or "" for h in hits) == sorted(only)
    assert [h.record.id for h in s.search(x[17], k=1, ids=only)] == ["r17"]
    assert s.search(x[0], k=5, ids=[]) == []
    assert {h.record.id for h in s.mmr_search(x[0], k=2, fetch_k=10, ids=only)} <= set(only)
    assert {h.record.id for h in s.hybrid_search(x[0], "row", k=5, ids=only)} == set(only)
    assert {h.record.id for h in s.text_search("row", k=10, ids=only)} == set(only)
    assert s.search(x[0], k=10, ids=only, filter={"i": {"$gt": 10}})[0].record.id in ("r17", "r200")


async def test_async_searches_restricted_to_ids(pg_dsn: str, table_name: str) -> None:
    s = PGStore(pg_dsn, table_name=table_name)
    try:
        x = _fill(s, 50, 4)
        assert {h.record.id for h in await s.asearch(x[0], k=10, ids=["r1", "r2"])} == {"r1", "r2"}
        assert len(await s.ahybrid_search(x[0], "row", k=10, ids=["r3"])) == 1
        assert len(await s.atext_search("row", k=10, ids=["r3", "r4"])) == 2
        assert len(await s.ammr_search(x[0], k=1, ids=["r9"])) == 1
        await s.aclose()
        assert await s.acount() == 50  # reopens after close
    finally:
        s.drop()
        s.close()


def test_cached_unfiltered_statement_matches_a_fresh_build(pg_dsn: str, table_name: str) -> None:
    from qwen_pg_integrations.pg._ops import _cached_search
    from qwen_pg_integrations.pg.filters import Params
    from qwen_pg_integrations.pg.queries import vector_search_sql

    s = PGStore(pg_dsn, table_name=table_name)
    try:
        _fill(s, 5, 4)
        assert s.spec is not None
        for bound in (None, 0.5):
            for emb in (False, True):
                p = Params()
                fresh = vector_search_sql(
                    s.spec, p, "V", 7, max_distance=bound, include_embeddings=emb
                ).as_bytes(None)
                for _ in range(2):
                    cached, values = _cached_search(s.spec, "V", 7, 7, bound, emb)
                    assert cached == fresh and values == p.values
        s.close()
        assert s.count() == 5  # the pool reopens
    finally:
        s.drop()


def test_filter_strategy_exact_for_few_matches_index_for_many(
    pg_dsn: str, table_name: str, cleanup: list[PGStore]
) -> None:
    s = PGStore(pg_dsn, table_name=table_name)
    cleanup.append(s)
    x = _fill(s, 6000, 32, buckets=4)  # 1,500 rows per bucket
    name = s.create_index("hnsw")
    # many matches (an equality the GIN index could serve): the vector index, iteratively
    plan = s.explain(x[0], k=10, filter={"bucket": 1})
    assert f"Index Scan using {name}" in plan and "Bitmap" not in plan, plan[:1500]
    assert len(s.search(x[0], k=10, filter={"bucket": 1})) == 10
    # a rare range filter (3 rows): exact, so all of them come back
    rare = {"i": {"$gte": 5997}}
    assert name not in s.explain(x[0], k=10, filter=rare)
    assert sorted(h.record.id or "" for h in s.search(x[0], k=10, filter=rare)) == [
        "r5997",
        "r5998",
        "r5999",
    ]
    # few matches of an equality: exact through the GIN index
    few = {"i": 42}
    assert "metadata_gin" in s.explain(x[0], k=10, filter=few)
    assert [h.record.id for h in s.search(x[0], k=3, filter=few)] == ["r42"]
