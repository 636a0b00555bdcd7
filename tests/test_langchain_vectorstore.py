"""The LangChain PGVectorStore adapter: search types, retriever, hybrid, streaming, translation."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from qwen_pg_integrations.errors import FilterError, InvalidInputError, SchemaMismatchError
from qwen_pg_integrations.langchain import PGVectorStore
from qwen_pg_integrations.pg import Record


class CharEmbeddings(Embeddings):
    """Deterministic bag-of-characters vectors: texts sharing characters are close."""

    model = "char-bag-64"

    def __init__(self) -> None:
        self.calls: list[int] = []

    def _one(self, text: str) -> list[float]:
        v = np.zeros(64)
        for ch in text.lower():
            if not ch.isspace():
                v[int(hashlib.md5(ch.encode()).hexdigest(), 16) % 64] += 1.0
        n = np.linalg.norm(v)
        return list(v / n) if n else [1.0] + [0.0] * 63

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls.append(len(texts))
        return [self._one(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._one(text)


DOCS = [
    Document(page_content="PostgreSQL 向量数据库 pgvector", metadata={"lang": "zh", "n": 1}),
    Document(page_content="PolarDB 兼容 PostgreSQL", metadata={"lang": "zh", "n": 2}),
    Document(page_content="The weather is sunny today", metadata={"lang": "en", "n": 3}),
    Document(page_content="Hybrid search fuses rankings", metadata={"lang": "en", "n": 4}),
    Document(page_content="今天天气晴朗", metadata={"lang": "zh", "n": 5}),
]


@pytest.fixture
def vs(pg_dsn: str, table_name: str) -> Iterator[PGVectorStore]:
    store = PGVectorStore(CharEmbeddings(), connection=pg_dsn, table_name=table_name)
    store.add_documents(DOCS, ids=[f"d{i}" for i in range(len(DOCS))])
    yield store
    store.store.drop()


def test_similarity_scores_and_threshold(vs: PGVectorStore) -> None:
    docs = vs.similarity_search("PostgreSQL 向量", k=2)
    assert docs[0].id == "d0" and docs[0].metadata == {"lang": "zh", "n": 1}
    with_rel = vs.similarity_search_with_relevance_scores("PostgreSQL 向量", k=5)
    assert all(0.0 <= s <= 1.0 for _, s in with_rel)
    with_dist = vs.similarity_search_with_score("PostgreSQL 向量", k=5)
    assert [d.id for d, _ in with_dist] == [d.id for d, _ in with_rel]
    assert with_dist[0][1] == pytest.approx(1 - with_rel[0][1], abs=1e-6)  # cosine distance
    cut = with_rel[1][1]
    kept = vs.similarity_search_with_relevance_scores("PostgreSQL 向量", k=5, score_threshold=cut)
    assert [d.id for d, _ in kept] == [d.id for d, _ in with_rel if _ >= cut]
    assert (
        vs.similarity_search("PostgreSQL", k=5, filter={"lang": "en"})[0].metadata["lang"] == "en"
    )


@pytest.mark.parametrize(
    ("search_type", "search_kwargs"),
    [
        ("similarity", {"k": 2}),
        ("similarity_score_threshold", {"k": 5, "score_threshold": 0.5}),
        ("mmr", {"k": 2, "fetch_k": 5, "lambda_mult": 0.3}),
        ("hybrid", {"k": 2}),
    ],
)
async def test_retriever_supports_every_search_type(
    vs: PGVectorStore, search_type: str, search_kwargs: dict[str, object]
) -> None:
    retriever = vs.as_retriever(search_type=search_type, search_kwargs=search_kwargs)
    docs = retriever.invoke("PostgreSQL 向量数据库")
    adocs = await retriever.ainvoke("PostgreSQL 向量数据库")
    assert docs and [d.id for d in docs] == [d.id for d in adocs]
    assert docs[0].id == "d0"
    assert len(docs) <= int(search_kwargs["k"])  # type: ignore[call-overload]
    assert vs.search("PostgreSQL 向量数据库", search_type, **search_kwargs)[0].id == "d0"


def test_retriever_rejects_unknown_search_type(vs: PGVectorStore) -> None:
    with pytest.raises(ValueError, match="search_type"):
        vs.as_retriever(search_type="magic")


def test_hybrid_finds_chinese_keyword_matches(vs: PGVectorStore) -> None:
    results = vs.hybrid_search_with_score("天气", k=3)
    assert results[0][0].id == "d4"
    assert all(0.0 < s <= 1.0 for _, s in results)
    assert [d.id for d, _ in vs.text_search("天气")] == ["d4"]
    assert vs.hybrid_search("天气", k=3, filter={"lang": "en"})[0].metadata["lang"] == "en"


async def test_async_twins(vs: PGVectorStore) -> None:
    assert (await vs.asimilarity_search("PolarDB", k=1))[0].id == "d1"
    assert (await vs.asimilarity_search_with_score("PolarDB", k=1))[0][0].id == "d1"
    rel = await vs.asimilarity_search_with_relevance_scores("PolarDB", k=1, score_threshold=0.1)
    assert rel[0][0].id == "d1"
    assert len(await vs.amax_marginal_relevance_search("PolarDB", k=2, fetch_k=5)) == 2
    assert (await vs.ahybrid_search("天气", k=1))[0].id == "d4"
    assert (await vs.aget_by_ids(["d3", "nope", "d1"]))[0].id == "d3"
    await vs.adelete(filter={"lang": "en"})
    assert {d.metadata["lang"] for d in vs.similarity_search("x", k=10)} == {"zh"}
    with pytest.raises(InvalidInputError, match=r"aclear\(\) when async"):
        await vs.adelete()
    with pytest.raises(FilterError, match="matches every row"):
        await vs.adelete(filter={})
    assert len(vs.similarity_search("x", k=10)) == 3
    await vs.aclear()
    assert vs.similarity_search("x", k=10) == []


def test_delete_by_filter_and_everything_only_by_clear(vs: PGVectorStore) -> None:
    assert vs.delete(filter={"n": {"$gte": 4}})
    assert sorted(d.id or "" for d in vs.similarity_search("x", k=10)) == ["d0", "d1", "d2"]
    assert vs.delete(["d0"])
    # no ids and no filter, or a filter matching every row: refused, nothing deleted
    for kwargs in ({}, {"filter": {}}, {"filter": {"n": {"$nin": []}}}):
        with pytest.raises(InvalidInputError):
            vs.delete(**kwargs)
    assert len(vs.similarity_search("x", k=10)) == 2
    vs.clear()
    assert vs.similarity_search("x", k=10) == []


def test_add_texts_streams_in_batches_from_a_generator(pg_dsn: str, table_name: str) -> None:
    emb = CharEmbeddings()
    store = PGVectorStore(emb, connection=pg_dsn, table_name=table_name, batch_size=64)
    try:
        ids = store.add_texts(f"文本 {i}" for i in range(300))
        assert len(ids) == 300 and store.store.count() == 300
        assert max(emb.calls) <= 64 and sum(emb.calls) == 300  # never more than a batch at once
        assert store.add_texts(f"文本 {i}" for i in range(300)) == ids  # content-hash ids
        assert store.store.count() == 300
    finally:
        store.store.drop()


def test_add_embeddings_and_from_texts(pg_dsn: str, table_name: str) -> None:
    emb = CharEmbeddings()
    store = PGVectorStore.from_texts(
        ["alpha", "beta"],
        emb,
        [{"i": 1}, {"i": 2}],
        ids=["a", "b"],
        connection=pg_dsn,
        table_name=table_name,
    )
    try:
        vec = emb.embed_query("gamma")
        assert store.add_embeddings(["gamma"], [vec], [{"i": 3}], ids=["c"]) == ["c"]
        assert store.similarity_search_by_vector(vec, k=1)[0].id == "c"
        assert [d.id for d in store.get_by_ids(["b", "a"])] == ["b", "a"]
        with pytest.raises(InvalidInputError):
            store.add_texts(["x", "y"], metadatas=[{}])
        with pytest.raises(InvalidInputError):
            store.add_embeddings(["x"], [vec, vec])
    finally:
        store.store.drop()


async def test_afrom_documents(pg_dsn: str, table_name: str) -> None:
    store = await PGVectorStore.afrom_documents(
        DOCS[:2], CharEmbeddings(), connection=pg_dsn, table_name=table_name
    )
    try:
        assert len(await store.asimilarity_search("PolarDB", k=5)) == 2
    finally:
        store.store.drop()


def test_llama_index_node_payload_keys_are_hidden(vs: PGVectorStore) -> None:
    vs.store.add(
        [
            Record(
                "n1",
                "node text",
                {"_node_content": "{}", "_node_type": "TextNode", "doc_id": "x"},
                CharEmbeddings().embed_query("node text"),
            )
        ]
    )
    [doc] = vs.get_by_ids(["n1"])
    assert doc.metadata == {"doc_id": "x"} and doc.page_content == "node text"


def test_embedding_model_from_embeddings_is_recorded_and_checked(
    vs: PGVectorStore, pg_dsn: str
) -> None:
    assert vs.store.spec is not None and vs.store.spec.embedding_model == "char-bag-64"
    other = CharEmbeddings()
    other.model = "another-model"  # type: ignore[misc]
    with pytest.raises(SchemaMismatchError, match="embedding model"):
        PGVectorStore(other, connection=pg_dsn, table_name=vs.store.table_name).similarity_search(
            "x"
        )


def test_create_index_and_repr_without_password(vs: PGVectorStore) -> None:
    assert vs.create_index("hnsw").endswith("_embedding_hnsw")
    assert vs.similarity_search("PolarDB", k=1)[0].id == "d1"
    store = PGVectorStore(CharEmbeddings(), connection="postgresql://u:pw-secret@h/db")
    assert "pw-secret" not in repr(store)


# --- peer-compatible surfaces (issue 14) -------------------------------------------------------


def test_int_ids_are_stored_as_their_string_form_like_langchain_postgres(
    pg_dsn: str, table_name: str
) -> None:
    store = PGVectorStore(CharEmbeddings(), connection=pg_dsn, table_name=table_name)
    try:
        ids = store.add_texts(["one", "two"], ids=[1, 2])  # type: ignore[list-item]
        assert ids == ["1", "2"]
        assert [d.id for d in store.get_by_ids([2, "1"])] == ["2", "1"]  # type: ignore[list-item]
        store.delete([1])  # type: ignore[list-item]
        assert [d.id for d in store.similarity_search("one", k=5)] == ["2"]
    finally:
        store.store.drop()


async def test_int_ids_async(pg_dsn: str, table_name: str) -> None:
    store = PGVectorStore(CharEmbeddings(), connection=pg_dsn, table_name=table_name)
    try:
        assert await store.aadd_texts(["a", "b"], ids=[7, 8]) == ["7", "8"]  # type: ignore[list-item]
        assert [d.id for d in await store.aget_by_ids([8])] == ["8"]  # type: ignore[list-item]
    finally:
        await store.store.adrop()


def test_relevance_score_fn_overrides_distance_to_relevance(pg_dsn: str, table_name: str) -> None:
    seen: list[float] = []

    def halve(distance: float) -> float:
        seen.append(distance)
        return (1.0 - distance) / 2

    store = PGVectorStore(
        CharEmbeddings(), connection=pg_dsn, table_name=table_name, relevance_score_fn=halve
    )
    try:
        store.add_documents(DOCS, ids=[f"d{i}" for i in range(len(DOCS))])
        plain = store.similarity_search_with_score("PolarDB 兼容 PostgreSQL", k=5)
        scored = store.similarity_search_with_relevance_scores("PolarDB 兼容 PostgreSQL", k=5)
        assert [d.id for d, _ in scored] == [d.id for d, _ in plain]
        assert [s for _, s in scored] == pytest.approx([(1 - d) / 2 for _, d in plain])
        assert seen, "the function was not called"
        # the threshold applies to the function's scores (exact match: distance 0 -> 0.5)
        top = store.similarity_search_with_relevance_scores(
            "PolarDB 兼容 PostgreSQL", k=5, score_threshold=0.45
        )
        assert [d.id for d, _ in top] == ["d1"]
        retriever = store.as_retriever(
            search_type="similarity_score_threshold",
            search_kwargs={"k": 5, "score_threshold": 0.45},
        )
        assert [d.id for d in retriever.invoke("PolarDB 兼容 PostgreSQL")] == ["d1"]
        assert store._select_relevance_score_fn() is halve
    finally:
        store.store.drop()
    with pytest.raises(InvalidInputError, match="relevance_score_fn"):
        PGVectorStore(CharEmbeddings(), connection=pg_dsn, relevance_score_fn=0.5)  # type: ignore[arg-type]


def test_mmr_with_score_returns_the_picks_with_their_distance(vs: PGVectorStore) -> None:
    query = "PostgreSQL 向量数据库"
    picks = vs.max_marginal_relevance_search("PostgreSQL 向量数据库", k=3, fetch_k=5)
    scored = vs.max_marginal_relevance_search_with_score(query, k=3, fetch_k=5)
    assert [d.id for d, _ in scored] == [d.id for d in picks]
    distances = dict((d.id, s) for d, s in vs.similarity_search_with_score(query, k=5))
    assert [s for _, s in scored] == pytest.approx([distances[d.id] for d, _ in scored])
    vec = vs.embeddings.embed_query(query)
    by_vec = vs.max_marginal_relevance_search_with_score_by_vector(
        vec, k=2, fetch_k=5, filter={"lang": "en"}
    )
    assert {d.metadata["lang"] for d, _ in by_vec} == {"en"}


async def test_mmr_with_score_async(vs: PGVectorStore) -> None:
    query = "PostgreSQL 向量数据库"
    sync = vs.max_marginal_relevance_search_with_score(query, k=3, fetch_k=5)
    got = await vs.amax_marginal_relevance_search_with_score(query, k=3, fetch_k=5)
    assert [(d.id, s) for d, s in got] == [(d.id, pytest.approx(s)) for d, s in sync]
    vec = vs.embeddings.embed_query(query)
    by_vec = await vs.amax_marginal_relevance_search_with_score_by_vector(vec, k=3, fetch_k=5)
    assert [d.id for d, _ in by_vec] == [d.id for d, _ in sync]
