"""Sparse vectors (pgvector ``sparsevec``) in the store: the column and its HNSW index, writes
(COPY, upsert, the 1,000-weight cap, bad input), sparse search, dense + full-text + sparse RRF in
one statement, migration of existing tables and catalogs, pgvector < 0.7, and the LangChain and
LlamaIndex stores on DashScope's ``dense&sparse`` output (the unchanged SDK against the
emulator), all on real PostgreSQL."""

from __future__ import annotations

from typing import Any

import numpy as np
import psycopg
import pytest
from llama_index.core import VectorStoreIndex
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryMode

from _recorder import StatementRecorder as _Recorder
from qwen_pg_integrations.errors import (
    ExtensionError,
    InvalidInputError,
    SchemaMismatchError,
)
from qwen_pg_integrations.langchain import DashScopeEmbeddings, PGVectorStore
from qwen_pg_integrations.llama_index import DashScopeEmbedding
from qwen_pg_integrations.llama_index import PGVectorStore as LlamaStore
from qwen_pg_integrations.pg import PGStore, Record
from qwen_pg_integrations.pg.sparse import DEFAULT_SPARSE_DIMENSION
from qwen_pg_integrations.testing import DashScopeEmulator

DIM = 8


def _rng_records(n: int, seed: int = 0, vocab: int = 400) -> list[Record]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        terms = rng.choice(vocab, 12, replace=False)
        sparse = {int(t): float(rng.uniform(0.05, 1.0)) for t in terms}
        out.append(
            Record(f"r{i:03d}", f"doc {i}", {"i": i, "even": i % 2 == 0}, rng.random(DIM), sparse)
        )
    return out


def _ip(a: dict[int, float], b: dict[int, float]) -> float:
    return sum(w * b[i] for i, w in a.items() if i in b)


def _exact_sparse(recs: list[Record], q: dict[int, float], k: int) -> list[str]:
    scored = [(-_ip(r.sparse_embedding or {}, q), r.id) for r in recs]
    scored = [s for s in scored if s[0] < 0]
    return [str(rid) for _, rid in sorted(scored)[:k]]


def _column_type(dsn: str, table: str) -> str | None:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
            "%s::regclass AND attname = 'sparse_embedding' AND NOT attisdropped",
            (table,),
        ).fetchone()
    return None if row is None else str(row[0])


def test_table_has_sparsevec_column_hnsw_index_and_catalog_row(
    pg_dsn: str, table_name: str
) -> None:
    s = PGStore(pg_dsn, table_name=table_name, dimension=DIM, sparse_dimension=5000)
    s.setup()
    assert _column_type(pg_dsn, table_name) == "sparsevec(5000)"
    with psycopg.connect(pg_dsn) as conn:
        (indexdef,) = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = %s AND indexdef LIKE "
            "'%%sparse_embedding%%'",
            (table_name,),
        ).fetchone() or (None,)
        (dim,) = conn.execute(
            "SELECT sparse_dimension FROM qwen_pg_collections WHERE table_name = %s",
            (table_name,),
        ).fetchone() or (None,)
    assert indexdef is not None and "hnsw" in indexdef and "sparsevec_ip_ops" in indexdef
    assert dim == 5000
    # reopened without asking: the catalog says it has sparse vectors
    again = PGStore(pg_dsn, table_name=table_name)
    again.setup()
    assert again.spec is not None and again.spec.sparse_dimension == 5000
    # True means the default dimension; another dimension is refused, nothing changes
    with pytest.raises(SchemaMismatchError, match="sparse vectors of dimension 5000"):
        PGStore(pg_dsn, table_name=table_name, sparse_dimension=True).setup()
    s.drop()
    t = PGStore(pg_dsn, table_name=table_name, dimension=DIM, sparse_dimension=True)
    t.setup()
    assert _column_type(pg_dsn, table_name) == f"sparsevec({DEFAULT_SPARSE_DIMENSION})"
    t.drop()


def test_sparse_search_is_exact_inner_product_order_and_skips_non_matches(
    pg_dsn: str, table_name: str
) -> None:
    recs = _rng_records(120)
    s = PGStore(pg_dsn, table_name=table_name, sparse_dimension=400, text_search="none")
    try:
        s.add(recs)
        q = {int(i): 1.0 for i in (3, 17, 42, 99, 250)}
        hits = s.sparse_search(q, k=10)
        assert [h.record.id for h in hits] == _exact_sparse(recs, q, 10)
        for h in hits:
            rec = next(r for r in recs if r.id == h.record.id)
            ip = _ip(rec.sparse_embedding or {}, q)
            assert h.distance == pytest.approx(-ip, rel=1e-5)
            assert h.score == pytest.approx(min(1.0, ip), rel=1e-5)
        # filters and ids restrict it, completely
        even = s.sparse_search(q, k=10, filter={"even": True})
        expect = _exact_sparse([r for r in recs if r.metadata["even"]], q, 10)
        assert [h.record.id for h in even] == expect
        some = [r.id for r in recs[:30] if r.id]
        only = s.sparse_search(q, k=50, ids=some)
        assert {h.record.id for h in only} <= set(some)
        assert [h.record.id for h in only] == _exact_sparse(recs[:30], q, 50)
    finally:
        s.drop()


def test_sparse_search_finds_nothing_for_a_term_nobody_has(pg_dsn: str, table_name: str) -> None:
    s = PGStore(pg_dsn, table_name=table_name, sparse_dimension=100, text_search="none")
    try:
        s.add([Record("a", "a", {}, [1.0] * DIM, {1: 0.5}), Record("b", "b", {}, [0.5] * DIM)])
        assert s.sparse_search({7: 1.0}, k=5) == []
        assert [h.record.id for h in s.sparse_search({1: 1.0, 7: 1.0}, k=5)] == ["a"]
    finally:
        s.drop()


def test_writes_cap_keep_largest_upsert_and_null(pg_dsn: str, table_name: str) -> None:
    s = PGStore(pg_dsn, table_name=table_name, dimension=DIM, sparse_dimension=10_000)
    try:
        big = {i: 1.0 + i / 10_000 for i in range(2500)}  # larger index, larger weight
        s.add([Record("big", "big", {}, [1.0] * DIM, big), Record("none", "n", {}, [1.0] * DIM)])
        got = {r.id: r for r in s.get(["big", "none"], include_embeddings=True)}
        kept = got["big"].sparse_embedding or {}
        assert len(kept) == 1000 and min(kept) == 1500 and max(kept) == 2499
        assert got["none"].sparse_embedding is None
        # upsert of stored ids (the staged path) replaces the sparse vector too
        s.add([Record("big", "big", {}, [1.0] * DIM, {5: 2.0})])
        (again,) = s.get(["big"], include_embeddings=True)
        assert again.sparse_embedding == {5: 2.0}
        # pgvector itself refuses 1,001 weights in an HNSW-indexed column: the cap is needed
        with psycopg.connect(pg_dsn) as conn, pytest.raises(psycopg.Error, match="hnsw"):
            text = "{" + ",".join(f"{i + 1}:1" for i in range(1001)) + "}/10000"
            conn.execute(
                psycopg.sql.SQL(
                    "UPDATE {} SET sparse_embedding = %s::sparsevec WHERE id = 'big'"
                ).format(psycopg.sql.Identifier(table_name)),
                (text,),
            )
    finally:
        s.drop()


@pytest.mark.parametrize(
    ("sparse", "match"),
    [
        ({10_000: 1.0}, "indices must be integers in 0..9999"),
        ({-1: 1.0}, "indices must be integers"),
        ({"3": 1.0}, "indices must be integers"),
        ({3: float("nan")}, "NaN or infinite"),
        ({3: "x"}, "non-numeric"),
        ([0.1, 0.2], "mapping of term index to weight"),
    ],
)
def test_bad_sparse_input_is_refused_and_loses_nothing(
    pg_dsn: str, table_name: str, sparse: Any, match: str
) -> None:
    s = PGStore(pg_dsn, table_name=table_name, dimension=DIM, sparse_dimension=10_000)
    try:
        s.add([Record("keep", "keep", {}, [1.0] * DIM, {1: 1.0})])
        with pytest.raises(InvalidInputError, match=match):
            s.add(
                [Record("new", "x", {}, [1.0] * DIM), Record("keep", "y", {}, [1.0] * DIM, sparse)]
            )
        assert [(r.id, r.content, r.sparse_embedding) for r in s.get(include_embeddings=True)] == [
            ("keep", "keep", {1: 1.0})
        ]
        with pytest.raises(InvalidInputError, match="no non-zero weight"):
            s.sparse_search({}, k=3)
    finally:
        s.drop()


def test_sparse_on_a_table_without_them_is_a_clear_error(pg_dsn: str, table_name: str) -> None:
    s = PGStore(pg_dsn, table_name=table_name, dimension=DIM)
    try:
        s.add([Record("a", "a", {}, [1.0] * DIM)])
        with pytest.raises(SchemaMismatchError, match="stores none"):
            s.add([Record("b", "b", {}, [1.0] * DIM, {1: 1.0})])
        with pytest.raises(SchemaMismatchError, match="no sparse vectors"):
            s.sparse_search({1: 1.0}, k=3)
        with pytest.raises(SchemaMismatchError, match="no sparse vectors"):
            s.hybrid_search([1.0] * DIM, "a", k=3, sparse={1: 1.0})
        assert s.count() == 1
    finally:
        s.drop()


def test_existing_table_and_old_catalog_get_the_sparse_column(pg_dsn: str, table_name: str) -> None:
    old = PGStore(pg_dsn, table_name=table_name, dimension=DIM)
    try:
        old.add([Record("a", "alpha", {}, [1.0] * DIM)])
        # a catalog from before sparse_dimension existed
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute("ALTER TABLE qwen_pg_collections DROP COLUMN sparse_dimension")
        # read-only stores read it as NULL and do not change anything
        ro = PGStore(pg_dsn, table_name=table_name, create_table=False)
        assert ro.count() == 1 and ro.spec is not None and ro.spec.sparse_dimension is None
        with pytest.raises(SchemaMismatchError, match="create_table=False"):
            PGStore(pg_dsn, table_name=table_name, create_table=False, sparse_dimension=50).setup()
        assert _column_type(pg_dsn, table_name) is None
        new = PGStore(pg_dsn, table_name=table_name, sparse_dimension=50)
        new.add([Record("b", "beta", {}, [0.5] * DIM, {7: 1.0})])
        assert _column_type(pg_dsn, table_name) == "sparsevec(50)"
        got = {r.id: r.sparse_embedding for r in new.get(include_embeddings=True)}
        assert got == {"a": None, "b": {7: 1.0}}  # old rows have none until re-added
        assert [h.record.id for h in new.sparse_search({7: 1.0}, k=5)] == ["b"]
        fresh = PGStore(pg_dsn, table_name=table_name)
        fresh.setup()
        assert fresh.spec is not None and fresh.spec.sparse_dimension == 50
    finally:
        PGStore(pg_dsn, table_name=table_name).drop()


def _rrf(rankings: list[tuple[list[str], float]], k: int, rrf_k: int = 60) -> list[str]:
    fused: dict[str, float] = {}
    for ids, w in rankings:
        for rank, rid in enumerate(ids, 1):
            fused[rid] = fused.get(rid, 0.0) + w / (rrf_k + rank)
    return [rid for rid, _ in sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]


def test_hybrid_fuses_dense_text_and_sparse_in_one_statement(pg_dsn: str, table_name: str) -> None:
    rng = np.random.default_rng(7)
    words = ["向量", "数据库", "检索", "混合", "天气", "公园", "模型", "索引"]
    recs = []
    for i in range(60):
        picked = rng.choice(len(words), 3, replace=False)
        text = " ".join(words[j] for j in picked) + f" 文档{i}"
        sparse = {int(j): float(rng.uniform(0.1, 1)) for j in picked}
        recs.append(Record(f"h{i:02d}", text, {"i": i}, rng.random(DIM), sparse))
    conn = _Recorder.connect(pg_dsn, autocommit=True)
    conn.statements = []
    s = PGStore(conn, table_name=table_name, sparse_dimension=len(words))
    try:
        s.add(recs)
        qv = rng.random(DIM).tolist()
        qs = {0: 1.0, 2: 0.5}
        n = 20
        dense = [h.record.id for h in s.search(qv, k=n)]
        text = [h.record.id for h in s.text_search("向量检索", k=n)]
        sparse = [h.record.id for h in s.sparse_search(qs, k=n)]
        conn.statements.clear()
        hits = s.hybrid_search(qv, "向量检索", k=8, fetch_k=n, sparse=qs, sparse_weight=2.0)
        expect = _rrf([(dense, 1.0), (text, 1.0), (sparse, 2.0)], 8)
        assert [h.record.id for h in hits] == expect
        assert all(0 < h.score <= 1 for h in hits)
        fused = [t for t in conn.statements if "set_config" not in t]
        assert len(fused) == 1 and all(op in fused[0] for op in ("<=>", "<#>", "ts_rank_cd"))
        # without a text query: dense + sparse
        two = s.hybrid_search(qv, None, k=8, fetch_k=n, sparse=qs)
        assert [h.record.id for h in two] == _rrf([(dense, 1.0), (sparse, 1.0)], 8)
        # without sparse: as before
        plain = s.hybrid_search(qv, "向量检索", k=8, fetch_k=n)
        assert [h.record.id for h in plain] == _rrf([(dense, 1.0), (text, 1.0)], 8)
        with pytest.raises(InvalidInputError, match="text query or a sparse vector"):
            s.hybrid_search(qv, None, k=3)
        # filters apply to every ranking
        filt = s.hybrid_search(
            qv, "向量检索", k=50, fetch_k=n, sparse=qs, filter={"i": {"$lt": 10}}
        )
        assert filt and all(int(h.record.metadata["i"]) < 10 for h in filt)
    finally:
        s.drop()
        conn.close()


async def test_async_sparse_and_hybrid(pg_dsn: str, table_name: str) -> None:
    recs = _rng_records(40, seed=3)
    s = PGStore(pg_dsn, table_name=table_name, sparse_dimension=400, text_search="none")
    try:
        await s.aadd(recs)
        q = dict(list((recs[5].sparse_embedding or {}).items())[:4])
        hits = await s.asparse_search(q, k=5)
        assert [h.record.id for h in hits] == _exact_sparse(recs, q, 5)
        fused = await s.ahybrid_search(recs[5].embedding, "ignored", k=3, sparse=q)  # type: ignore[arg-type]
        assert fused[0].record.id == "r005"  # first in both rankings
    finally:
        await s.adrop()
        await s.aclose()


def test_old_pgvector_refuses_sparse_with_what_to_do(pgserver_dsn: str, table_name: str) -> None:
    s = PGStore(pgserver_dsn, table_name=table_name, dimension=DIM, sparse_dimension=100)
    with pytest.raises(ExtensionError, match=r"pgvector >= 0.7 \(sparsevec\).*ALTER EXTENSION"):
        s.setup()
    plain = PGStore(pgserver_dsn, table_name=table_name, dimension=DIM)
    try:
        plain.add([Record("a", "a", {}, [1.0] * DIM)])  # nothing half-made by the refusal
        with pytest.raises(ExtensionError, match="sparsevec"):
            PGStore(pgserver_dsn, table_name=table_name, sparse_dimension=100).setup()
        assert plain.count() == 1
    finally:
        plain.drop()


# -- the framework stores on DashScope's dense&sparse output (emulator) ----------------------

TEXTS = [
    "pgvector adds HNSW and IVFFlat vector indexes to PostgreSQL.",
    "PolarDB separates compute and storage.",
    "Qwen is a family of large language models made by Alibaba Cloud.",
    "The weather in Hangzhou is mild in spring.",
    "Sparse vectors keep one weight per vocabulary term.",
]


def test_langchain_store_stores_and_searches_sparse_from_one_call(
    dashscope_emulator: DashScopeEmulator, pg_dsn: str, table_name: str
) -> None:
    emb = DashScopeEmbeddings(output_type="dense&sparse")
    store = PGVectorStore(emb, connection=pg_dsn, table_name=table_name)
    try:
        ids = store.add_texts(TEXTS)
        calls = dashscope_emulator.requests_for("embedding")
        assert len(calls) == 1  # dense and sparse together
        assert calls[0].body["parameters"]["output_type"] == "dense&sparse"
        rows = store.store.get(ids, include_embeddings=True)
        assert all(r.sparse_embedding for r in rows)
        dashscope_emulator.clear_requests()
        docs = store.sparse_search("Which vector indexes does pgvector add?", k=2)
        assert docs[0].page_content == TEXTS[0]
        hybrid = store.hybrid_search("Which vector indexes does pgvector add?", k=2)
        assert hybrid[0].page_content == TEXTS[0]
        # one embedding call per query, even for hybrid (vector + sparse from the same call)
        assert len(dashscope_emulator.requests_for("embedding")) == 2
        retriever = store.as_retriever(search_type="sparse", search_kwargs={"k": 1})
        assert retriever.invoke("storage and compute")[0].page_content == TEXTS[1]
    finally:
        store.store.drop()


async def test_langchain_store_async_sparse_with_a_separate_encoder(
    dashscope_emulator: DashScopeEmulator, pg_dsn: str, table_name: str
) -> None:
    store = PGVectorStore(
        DashScopeEmbeddings(),
        connection=pg_dsn,
        table_name=table_name,
        sparse_embeddings=DashScopeEmbeddings(output_type="dense&sparse"),
    )
    try:
        await store.aadd_texts(TEXTS)
        docs = await store.asparse_search("language models by Alibaba", k=1)
        assert docs[0].page_content == TEXTS[2]
        hybrid = await store.ahybrid_search("language models by Alibaba", k=1)
        assert hybrid[0].page_content == TEXTS[2]
    finally:
        await store.store.adrop()


def test_langchain_store_without_sparse_says_how_to_get_it(
    dashscope_emulator: DashScopeEmulator, pg_dsn: str, table_name: str
) -> None:
    from qwen_pg_integrations.errors import ConfigurationError

    store = PGVectorStore(DashScopeEmbeddings(), connection=pg_dsn, table_name=table_name)
    with pytest.raises(InvalidInputError, match="output_type='dense&sparse'"):
        store.sparse_search("x")
    with pytest.raises(ConfigurationError, match="dense vectors only"):
        PGVectorStore(DashScopeEmbeddings(), sparse_embeddings=DashScopeEmbeddings())


def test_llama_index_sparse_and_hybrid_modes(
    dashscope_emulator: DashScopeEmulator, pg_dsn: str, table_name: str
) -> None:
    embed = DashScopeEmbedding()
    store = LlamaStore(
        connection=pg_dsn,
        table_name=table_name,
        embed_model=embed,
        sparse_embed_model=DashScopeEmbedding(output_type="dense&sparse"),
    )
    try:
        nodes = [TextNode(text=t, id_=f"n{i}") for i, t in enumerate(TEXTS)]
        index = VectorStoreIndex.from_vector_store(store, embed_model=embed)
        index.insert_nodes(nodes)
        rows = store.client.get(include_embeddings=True)
        assert len(rows) == len(TEXTS) and all(r.sparse_embedding for r in rows)
        q = "Which vector indexes does pgvector add?"
        sparse = store.query(
            VectorStoreQuery(query_str=q, mode=VectorStoreQueryMode.SPARSE, similarity_top_k=2)
        )
        assert sparse.ids and sparse.ids[0] == "n0"
        dashscope_emulator.clear_requests()
        retriever = index.as_retriever(vector_store_query_mode="hybrid", similarity_top_k=2)
        got = retriever.retrieve(q)
        assert got[0].node.node_id == "n0"
        bodies = [
            r.body["parameters"].get("output_type")
            for r in dashscope_emulator.requests_for("embedding")
        ]
        assert "dense&sparse" in bodies  # the sparse ranking took part
    finally:
        store.client.drop()


def test_langchain_hybrid_on_a_table_without_full_text_fuses_dense_and_sparse(
    dashscope_emulator: DashScopeEmulator, pg_dsn: str, table_name: str
) -> None:
    emb = DashScopeEmbeddings(output_type="dense&sparse")
    store = PGVectorStore(emb, connection=pg_dsn, table_name=table_name, text_search="none")
    try:
        store.add_texts(TEXTS)
        docs = store.hybrid_search("Which vector indexes does pgvector add?", k=2)
        assert docs[0].page_content == TEXTS[0]  # no full-text column: dense + sparse only
    finally:
        store.store.drop()
    plain = PGVectorStore(DashScopeEmbeddings(), connection=pg_dsn, table_name=table_name,
                          text_search="none")  # fmt: skip
    try:
        plain.add_texts(TEXTS)
        with pytest.raises(SchemaMismatchError, match="text_search='none'"):
            plain.hybrid_search("pgvector", k=2)  # neither text nor sparse: a clear error
    finally:
        plain.store.drop()
