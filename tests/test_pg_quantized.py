"""Issue 16: quantized vector indexes over the stored float32 vectors, every search path.

``create_index("hnsw", quantization="halfvec" | "binary")`` records the choice in the catalog;
every search (vector, filtered, ids, threshold, MMR, hybrid, the framework stores, a store
opened later) orders by the quantized expression so the index serves it, re-ranks by the exact
float32 distance and returns exact distances and scores. Small n: correctness, not speed (the
speed is bench/bench_scale.py's).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryMode

from qwen_pg_integrations.errors import ExtensionError, InvalidInputError
from qwen_pg_integrations.llama_index import PGVectorStore as LIStore
from qwen_pg_integrations.pg import PGStore, Record
from qwen_pg_integrations.pg._index import build_settings, graph_bytes

N, DIM, CATS = 600, 128, 10
_rng = np.random.default_rng(7)
_CENTRES = _rng.normal(size=(20, DIM))
X = _CENTRES[_rng.integers(0, 20, N)] + 0.6 * _rng.normal(size=(N, DIM))
X /= np.linalg.norm(X, axis=1, keepdims=True)
QUERIES = X[:8] + 0.2 * _rng.normal(size=(8, DIM))
WORDS = ["alpha", "beta", "gamma", "delta", "epsilon"]


def _exact(distance: str, q: np.ndarray, rows: np.ndarray) -> np.ndarray:
    if distance == "cosine":
        return 1 - rows @ q / (np.linalg.norm(rows, axis=1) * np.linalg.norm(q))
    if distance == "l2":
        return np.linalg.norm(rows - q, axis=1)
    return -(rows @ q)


def _make(dsn: str, distance: str, quantization: str | None) -> PGStore:
    store = PGStore(
        dsn,
        table_name=f"q_{quantization}_{distance}_{uuid.uuid4().hex[:6]}",
        dimension=DIM,
        distance=distance,
        embedding_model="m",
        exact_filter_limit=5,  # 60 matches: the index path, so filters use iterative scans
    )
    store.add(
        Record(f"r{i}", f"{WORDS[i % 5]} text {i}", {"c": i % CATS}, X[i].tolist())
        for i in range(N)
    )
    store.create_index("hnsw", quantization=quantization)
    return store


@pytest.fixture(params=["halfvec", "binary"])
def quant(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["cosine", "l2", "inner_product"])
def qstore(pg_dsn: str, quant: str, request: pytest.FixtureRequest) -> Iterator[PGStore]:
    store = _make(pg_dsn, str(request.param), quant)
    yield store
    store.drop()


def _index_used(store: PGStore, q: np.ndarray, **kw: Any) -> bool:
    plan = store.explain(q, k=10, **kw, settings={"enable_seqscan": "off"})
    return f"Index Scan using {store.spec.table}_embedding_hnsw_" in plan  # type: ignore[union-attr]


def test_the_catalog_records_the_quantization_and_a_later_store_uses_it(
    qstore: PGStore, quant: str, pg_dsn: str
) -> None:
    assert qstore.spec is not None and qstore.spec.quantization == quant
    build = qstore.last_index_build
    assert build is not None and build.quantization == quant and build.rows == N
    with psycopg.connect(pg_dsn) as conn:
        (recorded,) = conn.execute(
            "SELECT quantization FROM qwen_pg_collections WHERE table_name = %s",
            [qstore.table_name],
        ).fetchone()  # type: ignore[misc]
    assert recorded == quant
    later = PGStore(pg_dsn, table_name=qstore.table_name)
    later.count()
    assert later.spec is not None and later.spec.quantization == quant
    assert _index_used(later, QUERIES[0])
    plan = later.explain(QUERIES[0], k=10)
    assert ("binary_quantize" in plan) == (quant == "binary")


def test_searches_use_the_index_and_return_exact_distances(qstore: PGStore) -> None:
    assert _index_used(qstore, QUERIES[0])
    for q in QUERIES:
        hits = qstore.search(q, k=10)
        assert len(hits) == 10
        rows = np.array([X[int(h.record.id[1:])] for h in hits])
        exact = _exact(qstore.distance.value, q, rows)
        assert [h.distance for h in hits] == pytest.approx(exact.tolist(), abs=2e-5)
        scores = [qstore.distance.score(d) for d in exact.tolist()]
        assert [h.score for h in hits] == pytest.approx(scores, abs=2e-5)
        assert [h.distance for h in hits] == sorted(h.distance for h in hits)  # type: ignore[type-var]


def test_re_ranking_every_candidate_is_the_exact_top_k(qstore: PGStore) -> None:
    """With as many candidates as rows (and ef_search that large) the re-rank sees every row:
    the answer is the exact top k, so the re-rank itself loses nothing."""
    for q in QUERIES[:3]:
        want = np.argsort(_exact(qstore.distance.value, q, X), kind="stable")[:10]
        hits = qstore.search(q, k=10, candidates=N, ef_search=N)
        assert {h.record.id for h in hits} == {f"r{i}" for i in want}


def test_default_candidates_keep_recall(qstore: PGStore, quant: str) -> None:
    recall = []
    for q in QUERIES:
        want = {f"r{i}" for i in np.argsort(_exact(qstore.distance.value, q, X))[:10]}
        recall.append(len(want & {h.record.id for h in qstore.search(q, k=10)}) / 10)
    assert np.mean(recall) >= (0.9 if quant == "halfvec" else 0.6), recall


def test_filtered_ids_threshold_mmr_and_hybrid_on_a_quantized_table(qstore: PGStore) -> None:
    q = QUERIES[1]
    assert _index_used(qstore, q, filter={"c": 3})
    filtered = qstore.search(q, k=10, filter={"c": 3})
    assert len(filtered) == 10 and all(h.record.metadata["c"] == 3 for h in filtered)
    ids = [f"r{i}" for i in range(0, N, 7)]
    restricted = qstore.search(q, k=5, ids=ids)
    assert len(restricted) == 5 and {h.record.id for h in restricted} <= set(ids)
    top = qstore.search(q, k=10)
    cut = top[4].score
    thresholded = qstore.search(q, k=10, score_threshold=cut)
    assert thresholded and all(h.score >= cut for h in thresholded)
    mmr = qstore.mmr_search(q, k=4, fetch_k=20)
    assert len(mmr) == 4 and len({h.record.id for h in mmr}) == 4
    hybrid = qstore.hybrid_search(q, "gamma", k=5, filter={"c": {"$in": [1, 2, 3]}})
    assert len(hybrid) == 5 and all(h.record.metadata["c"] in (1, 2, 3) for h in hybrid)


async def test_async_paths_on_a_quantized_table(qstore: PGStore) -> None:
    q = QUERIES[2]
    sync = qstore.search(q, k=7)
    assert [h.record.id for h in await qstore.asearch(q, k=7)] == [h.record.id for h in sync]
    assert len(await qstore.ammr_search(q, k=3)) == 3
    assert len(await qstore.ahybrid_search(q, "beta", k=3)) == 3


def test_framework_stores_search_the_quantized_index(pg_dsn: str) -> None:
    store = _make(pg_dsn, "cosine", "binary")
    try:
        li = LIStore(connection=pg_dsn, table_name=store.table_name)
        for mode in (VectorStoreQueryMode.DEFAULT, VectorStoreQueryMode.MMR):
            res = li.query(VectorStoreQuery(QUERIES[0].tolist(), similarity_top_k=5, mode=mode))
            assert len(res.nodes) == 5
        hybrid = li.query(
            VectorStoreQuery(
                QUERIES[0].tolist(),
                query_str="alpha",
                similarity_top_k=5,
                mode=VectorStoreQueryMode.HYBRID,
            )
        )
        assert len(hybrid.nodes) == 5
        exact = store.search(QUERIES[0], k=5)
        plain = li.query(VectorStoreQuery(QUERIES[0].tolist(), similarity_top_k=5))
        assert plain.ids == [h.record.id for h in exact]
        assert plain.similarities == pytest.approx([h.score for h in exact])
    finally:
        store.drop()


def test_a_plain_index_after_a_quantized_one_switches_searches_back(pg_dsn: str) -> None:
    store = _make(pg_dsn, "cosine", "binary")
    try:
        store.create_index("hnsw")
        assert store.spec is not None and store.spec.quantization is None
        assert "binary_quantize" not in store.explain(QUERIES[0], k=5)
        with pytest.raises(InvalidInputError, match="quantization must be"):
            store.create_index("hnsw", quantization="int8")
    finally:
        store.drop()


def test_concurrent_build_and_progress(pg_dsn: str) -> None:
    store = _make(pg_dsn, "l2", None)
    try:
        name = store.create_index("hnsw", quantization="halfvec", concurrently=True, m=8)
        assert name.endswith("_embedding_hnsw_halfvec")
        assert store.index_progress() == []  # nothing running now
        with psycopg.connect(pg_dsn) as conn:  # the session settings were reset
            valid = conn.execute(
                "SELECT indisvalid FROM pg_index WHERE indexrelid = %s::regclass", [f'"{name}"']
            ).fetchone()
        assert valid == (True,)
        assert len(store.search(QUERIES[0], k=3)) == 3
    finally:
        store.drop()


def test_build_memory_is_sized_to_the_graph_and_capped() -> None:
    from qwen_pg_integrations.pg.records import Distance
    from qwen_pg_integrations.pg.schema import TableSpec

    spec = TableSpec("public", "t", 1024, Distance.COSINE, "vector", "jieba")
    f32 = graph_bytes(spec, 1_000_000, m=16, quantization=None)
    binary = graph_bytes(spec, 1_000_000, m=16, quantization="binary")
    assert 4_000 < f32 / 1_000_000 < 6_000 and binary / 1_000_000 < 1_000
    settings, estimate = build_settings(
        spec,
        "hnsw",
        rows=1_000_000,
        m=16,
        quantization="binary",
        maintenance_work_mem="auto",
        memory_fraction=0.5,
        server_memory=24 << 30,
        workers=1,
    )
    assert settings == {
        "maintenance_work_mem": f"{estimate >> 20}MB",
        "max_parallel_maintenance_workers": "1",
    }
    capped, _ = build_settings(
        spec,
        "hnsw",
        rows=1_000_000,
        m=16,
        quantization=None,
        maintenance_work_mem="auto",
        memory_fraction=0.1,
        server_memory=8 << 30,
        workers=None,
    )
    assert capped == {"maintenance_work_mem": f"{int((8 << 30) * 0.1) >> 20}MB"}
    with pytest.raises(InvalidInputError):
        build_settings(spec, "hnsw", rows=1, m=16, quantization=None,
                       maintenance_work_mem="auto", memory_fraction=0, server_memory=None,
                       workers=None)  # fmt: skip


@pytest.mark.polardb_compat
def test_quantization_on_pgvector_0_6_is_an_extension_error(pgserver_dsn: str) -> None:
    store = PGStore(pgserver_dsn, table_name=f"old_{uuid.uuid4().hex[:6]}", dimension=DIM)
    store.add([Record("a", "a", {}, X[0].tolist())])
    try:
        for quantization in ("halfvec", "binary"):
            with pytest.raises(ExtensionError, match=r"pgvector >= 0\.7"):
                store.create_index("hnsw", quantization=quantization)
        assert store.create_index("hnsw")  # the plain index still works
    finally:
        store.drop()
