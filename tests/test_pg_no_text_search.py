"""Tables made with ``text_search="none"``: no full-text column to maintain on writes.

The anchors build no full-text data unless asked (llama-index ``hybrid_search=False``,
langchain-postgres without a hybrid config); ``text_search="none"`` is the same choice here,
recorded in the catalog, with keyword and hybrid search refused by a clear error.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest

from qwen_pg_integrations.errors import SchemaMismatchError
from qwen_pg_integrations.pg import PGStore, Record


def _vec(seed: int, dim: int = 8) -> np.ndarray[Any, Any]:
    return np.random.default_rng(seed).standard_normal(dim).astype(np.float32)


@pytest.fixture
def store(pg_dsn: str, table_name: str) -> Iterator[PGStore]:
    s = PGStore(pg_dsn, table_name=table_name, text_search="none")
    yield s
    s.drop()


def _tsv_and_indexes(dsn: str, table: str) -> tuple[int, int, set[str], str]:
    with psycopg.connect(dsn) as conn:
        q = psycopg.sql.SQL("SELECT count(*), count(content_tsv) FROM {}").format(
            psycopg.sql.Identifier(table)
        )
        row = conn.execute(q).fetchone()
        idx = {
            str(r[0])
            for r in conn.execute(
                "SELECT indexdef FROM pg_indexes WHERE tablename = %s", [table]
            ).fetchall()
        }
        cat = conn.execute(
            "SELECT text_search FROM qwen_pg_collections WHERE table_name = %s", [table]
        ).fetchone()
    assert row is not None and cat is not None
    return int(row[0]), int(row[1]), idx, str(cat[0])


def test_writes_leave_the_full_text_column_empty_and_unindexed(store: PGStore, pg_dsn: str) -> None:
    store.add(Record(f"d{i}", f"文档 {i}：向量检索", {"i": i}, _vec(i)) for i in range(30))
    store.add([Record("d3", "updated", {"i": 3}, _vec(99))])  # existing id: staged upsert
    rows, with_tsv, idx, recorded = _tsv_and_indexes(pg_dsn, store.table_name)
    assert (rows, with_tsv) == (30, 0)
    assert recorded == "none"
    assert any("gin (metadata jsonb_path_ops)" in d for d in idx)
    assert not any("content_tsv" in d for d in idx)
    [hit] = store.search(_vec(99), k=1)
    assert (hit.record.id, hit.record.content) == ("d3", "updated")
    assert [r.id for r in store.get(["d0", "d29"])] == ["d0", "d29"]


def test_keyword_and_hybrid_search_are_refused_with_what_to_do(store: PGStore) -> None:
    store.add([Record("a", "向量检索", {}, _vec(1))])
    with pytest.raises(SchemaMismatchError, match=r"text_search='none'.*text_search='auto'"):
        store.text_search("向量", k=3)
    with pytest.raises(SchemaMismatchError, match="hybrid search"):
        store.hybrid_search(_vec(1), "向量", k=3)
    assert store.count() == 1  # nothing changed


def test_reopening_takes_the_setting_from_the_catalog(store: PGStore, pg_dsn: str) -> None:
    store.add([Record("a", "x", {}, _vec(1))])
    again = PGStore(pg_dsn, table_name=store.table_name)  # text_search="auto"
    again.add([Record("b", "y", {}, _vec(2))])
    assert again.spec is not None and again.spec.text_search == "none"
    assert _tsv_and_indexes(pg_dsn, store.table_name)[:2] == (2, 0)
    with pytest.raises(SchemaMismatchError, match="text search 'none'"):
        PGStore(pg_dsn, table_name=store.table_name, text_search="jieba").count()


async def test_async_twins(store: PGStore, pg_dsn: str) -> None:
    await store.aadd([Record(f"d{i}", f"text {i}", {}, _vec(i)) for i in range(5)])
    await store.aadd([Record("d1", "again", {}, _vec(1))])
    assert _tsv_and_indexes(pg_dsn, store.table_name)[:2] == (5, 0)
    assert (await store.asearch(_vec(1), k=1))[0].record.content == "again"
    with pytest.raises(SchemaMismatchError, match="text_search='none'"):
        await store.ahybrid_search(_vec(1), "again", k=2)
    with pytest.raises(SchemaMismatchError, match="text_search='none'"):
        await store.atext_search("again", k=2)


def test_both_adapters_pass_the_setting_through(pg_dsn: str, table_name: str) -> None:
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from llama_index.core.schema import TextNode
    from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryMode

    from qwen_pg_integrations.langchain import PGVectorStore as LCStore
    from qwen_pg_integrations.llama_index import PGVectorStore as LIStore

    lc = LCStore(
        DeterministicFakeEmbedding(size=8), connection=pg_dsn, table_name=table_name,
        text_search="none",
    )  # fmt: skip
    try:
        lc.add_texts(["向量检索", "天气"], ids=["a", "b"])
        assert lc.similarity_search("向量检索", k=1)[0].id == "a"
        with pytest.raises(SchemaMismatchError, match="text_search='none'"):
            lc.as_retriever(search_type="hybrid").invoke("向量")
        li = LIStore(connection=pg_dsn, table_name=table_name)  # the catalog says "none"
        node = TextNode(id_="c", text="通义千问", embedding=list(_vec(3)))
        li.add([node])
        with pytest.raises(SchemaMismatchError, match="hybrid search"):
            li.query(
                VectorStoreQuery(
                    query_embedding=list(_vec(3)), query_str="通义千问", similarity_top_k=2,
                    mode=VectorStoreQueryMode.HYBRID,
                )
            )  # fmt: skip
        assert _tsv_and_indexes(pg_dsn, table_name)[:2] == (3, 0)
    finally:
        lc.store.drop()
