"""LlamaIndex PGVectorStore on the real PostgreSQL + pgvector server (no mocked database).

Anchor defects (llama-index-vector-stores-postgres) shown absent here: a NOT condition raising;
operators missing; duplicates on re-add. Vectors come from DashScopeEmbedding on the emulator.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)

from qwen_pg_integrations.errors import InvalidInputError
from qwen_pg_integrations.llama_index import DashScopeEmbedding, PGVectorStore
from qwen_pg_integrations.testing import DashScopeEmulator

DIM = 256

DOCS = {
    "n1": ("PolarDB supports pgvector for vector search.", "doc-a", {
        "topic": "db", "year": 2023, "tags": ["pg", "vector"], "title": "PolarDB guide",
        "empty": "",
    }),
    "n2": ("Qwen is a family of large language models.", "doc-a", {
        "topic": "ai", "year": 2024, "tags": ["llm"], "title": "Qwen 模型 guide", "empty": [],
    }),
    "n3": ("HNSW indexes make pgvector queries fast.", "doc-b", {
        "topic": "db", "year": 2025, "tags": ["pg"], "title": "pgvector_100% tips",
    }),
    "n4": ("Meeting notes about lunch.", "doc-c", {
        "topic": "misc", "year": 2022, "tags": [], "title": "Notes", "empty": "x",
    }),
}  # fmt: skip


@pytest.fixture
def embed(dashscope_emulator: DashScopeEmulator) -> DashScopeEmbedding:
    return DashScopeEmbedding(model_name="text-embedding-v4", dimensions=DIM)


def _nodes(embed: DashScopeEmbedding) -> list[TextNode]:
    nodes = []
    for node_id, (text, doc, meta) in DOCS.items():
        node = TextNode(
            id_=node_id,
            text=text,
            metadata=dict(meta),
            relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=doc)},
        )
        node.embedding = embed.get_text_embedding(text)
        nodes.append(node)
    return nodes


@pytest.fixture
def store(pg_dsn: str) -> Iterator[PGVectorStore]:
    s = PGVectorStore(connection=pg_dsn, table_name=f"li_{uuid.uuid4().hex[:10]}", embed_dim=DIM)
    yield s
    s.client.drop()


@pytest.fixture
async def astore(pg_dsn: str) -> AsyncIterator[PGVectorStore]:
    s = PGVectorStore(connection=pg_dsn, table_name=f"li_{uuid.uuid4().hex[:10]}", embed_dim=DIM)
    yield s
    s.client.drop()


@pytest.fixture
def filled(store: PGVectorStore, embed: DashScopeEmbedding) -> PGVectorStore:
    store.add(_nodes(embed))
    return store


def _ids(store: PGVectorStore, filters: MetadataFilters, embed: DashScopeEmbedding) -> set[str]:
    q = VectorStoreQuery(
        query_embedding=embed.get_query_embedding("pgvector"), similarity_top_k=10, filters=filters
    )
    result = store.query(q)
    return set(result.ids or [])


def _f(key: str, op: FilterOperator, value: object) -> MetadataFilters:
    return MetadataFilters(filters=[MetadataFilter(key=key, operator=op, value=value)])


# -- round trip, upsert, delete --------------------------------------------------------------


def test_nodes_round_trip_with_text_metadata_and_relationships(
    filled: PGVectorStore, embed: DashScopeEmbedding
) -> None:
    original = {n.node_id: n for n in _nodes(embed)}
    got = filled.get_nodes(node_ids=["n2", "n1"])
    assert [n.node_id for n in got] == ["n2", "n1"]
    for node in got:
        want = original[node.node_id]
        assert isinstance(node, TextNode)
        assert node.get_content() == want.get_content()
        assert node.metadata == want.metadata
        assert node.ref_doc_id == want.ref_doc_id
        assert node.relationships == want.relationships
        assert node.embedding == pytest.approx(want.embedding, abs=1e-6)
    result = filled.query(
        VectorStoreQuery(query_embedding=original["n3"].embedding, similarity_top_k=1)
    )
    (hit,) = result.nodes or []
    assert hit.node_id == "n3" and hit.get_content() == original["n3"].get_content()
    assert hit.metadata == original["n3"].metadata and hit.ref_doc_id == "doc-b"
    assert result.similarities and result.similarities[0] == pytest.approx(1.0, abs=1e-3)


def test_add_twice_upserts_instead_of_duplicating(
    filled: PGVectorStore, embed: DashScopeEmbedding
) -> None:
    nodes = _nodes(embed)
    nodes[0].text = "PolarDB supports pgvector (updated)."
    filled.add(nodes)
    assert filled.client.count() == len(DOCS)
    assert filled.get_nodes(node_ids=["n1"])[0].get_content() == nodes[0].text


def test_delete_by_ref_doc_id_removes_only_that_document(filled: PGVectorStore) -> None:
    filled.delete("doc-a")
    remaining = {n.node_id for n in filled.get_nodes(node_ids=list(DOCS))}
    assert remaining == {"n3", "n4"}


def test_delete_nodes_by_ids_and_by_filters(filled: PGVectorStore) -> None:
    filled.delete_nodes(node_ids=["n1"])
    filled.delete_nodes(filters=_f("topic", FilterOperator.EQ, "misc"))
    assert {n.node_id for n in filled.get_nodes(node_ids=list(DOCS))} == {"n2", "n3"}


def test_get_nodes_by_filter(filled: PGVectorStore) -> None:
    got = filled.get_nodes(filters=_f("topic", FilterOperator.EQ, "db"))
    assert {n.node_id for n in got} == {"n1", "n3"}


def test_clear_removes_every_node(filled: PGVectorStore) -> None:
    filled.clear()
    assert filled.client.count() == 0


async def test_async_twins(astore: PGVectorStore, embed: DashScopeEmbedding) -> None:
    nodes = _nodes(embed)
    assert sorted(await astore.async_add(nodes)) == sorted(DOCS)
    assert sorted(await astore.async_add(nodes)) == sorted(DOCS)  # upsert
    q = VectorStoreQuery(query_embedding=nodes[2].embedding, similarity_top_k=2)
    result = await astore.aquery(q)
    assert (result.ids or [])[0] == "n3"
    got = await astore.aget_nodes(filters=_f("year", FilterOperator.GTE, 2024))
    assert {n.node_id for n in got} == {"n2", "n3"}
    await astore.adelete("doc-a")
    await astore.adelete_nodes(node_ids=["n4"])
    assert [n.node_id for n in await astore.aget_nodes(node_ids=list(DOCS))] == ["n3"]
    await astore.aclear()
    assert await astore.client.acount() == 0


def test_node_without_embedding_is_refused(store: PGVectorStore) -> None:
    with pytest.raises(InvalidInputError):
        store.add([TextNode(text="no vector")])


# -- filters: every operator, nested AND / OR / NOT -----------------------------------------

OPERATOR_CASES = [
    (FilterOperator.EQ, "topic", "db", {"n1", "n3"}),
    (FilterOperator.NE, "topic", "db", {"n2", "n4"}),
    (FilterOperator.GT, "year", 2023, {"n2", "n3"}),
    (FilterOperator.GTE, "year", 2024, {"n2", "n3"}),
    (FilterOperator.LT, "year", 2023, {"n4"}),
    (FilterOperator.LTE, "year", 2023, {"n1", "n4"}),
    (FilterOperator.IN, "topic", ["ai", "misc"], {"n2", "n4"}),
    (FilterOperator.NIN, "topic", ["ai", "misc"], {"n1", "n3"}),
    (FilterOperator.ANY, "tags", ["llm", "vector"], {"n1", "n2"}),
    (FilterOperator.ALL, "tags", ["pg", "vector"], {"n1"}),
    (FilterOperator.CONTAINS, "tags", "pg", {"n1", "n3"}),
    (FilterOperator.TEXT_MATCH, "title", "guide", {"n1", "n2"}),
    (FilterOperator.TEXT_MATCH_INSENSITIVE, "title", "POLARDB", {"n1"}),
    (FilterOperator.IS_EMPTY, "empty", None, {"n1", "n2", "n3"}),
]


def test_operator_cases_cover_every_filter_operator() -> None:
    assert {case[0] for case in OPERATOR_CASES} == set(FilterOperator)


@pytest.mark.parametrize(("op", "key", "value", "expected"), OPERATOR_CASES, ids=lambda c: str(c))
def test_every_filter_operator(
    filled: PGVectorStore,
    embed: DashScopeEmbedding,
    op: FilterOperator,
    key: str,
    value: object,
    expected: set[str],
) -> None:
    assert _ids(filled, _f(key, op, value), embed) == expected


def test_text_match_treats_like_wildcards_literally(
    filled: PGVectorStore, embed: DashScopeEmbedding
) -> None:
    assert _ids(filled, _f("title", FilterOperator.TEXT_MATCH, "_100%"), embed) == {"n3"}
    assert _ids(filled, _f("title", FilterOperator.TEXT_MATCH, "%"), embed) == {"n3"}


def test_not_condition_filters_do_not_raise(
    filled: PGVectorStore, embed: DashScopeEmbedding
) -> None:
    # The anchor raised on FilterCondition.NOT. LlamaIndex semantics: none of the filters match.
    one = MetadataFilters(
        filters=[MetadataFilter(key="topic", value="db")], condition=FilterCondition.NOT
    )
    assert _ids(filled, one, embed) == {"n2", "n4"}
    two = MetadataFilters(
        filters=[
            MetadataFilter(key="topic", value="db"),
            MetadataFilter(key="year", value=2024),
        ],
        condition=FilterCondition.NOT,
    )
    assert _ids(filled, two, embed) == {"n4"}


def test_nested_and_or_not_filters(filled: PGVectorStore, embed: DashScopeEmbedding) -> None:
    nested = MetadataFilters(
        filters=[
            MetadataFilter(key="topic", value="db"),
            MetadataFilters(
                filters=[
                    MetadataFilter(key="year", operator=FilterOperator.GTE, value=2025),
                    MetadataFilter(key="tags", operator=FilterOperator.CONTAINS, value="vector"),
                ],
                condition=FilterCondition.OR,
            ),
        ],
        condition=FilterCondition.AND,
    )
    assert _ids(filled, nested, embed) == {"n1", "n3"}
    with_not = MetadataFilters(
        filters=[
            MetadataFilter(key="year", operator=FilterOperator.GTE, value=2023),
            MetadataFilters(
                filters=[MetadataFilter(key="topic", value="ai")], condition=FilterCondition.NOT
            ),
        ]
    )
    assert _ids(filled, with_not, embed) == {"n1", "n3"}
    either = MetadataFilters(
        filters=[
            MetadataFilter(key="topic", value="misc"),
            MetadataFilter(key="year", operator=FilterOperator.LT, value=2024),
        ],
        condition=FilterCondition.OR,
    )
    assert _ids(filled, either, embed) == {"n1", "n4"}


def test_filter_values_are_parameters_not_sql(
    filled: PGVectorStore, embed: DashScopeEmbedding
) -> None:
    evil = "db' OR '1'='1"
    assert _ids(filled, _f("topic", FilterOperator.EQ, evil), embed) == set()
    assert _ids(filled, _f("topic') OR true --", FilterOperator.EQ, "db"), embed) == set()
    assert filled.client.count() == len(DOCS)


def test_doc_ids_restrict_the_query(filled: PGVectorStore, embed: DashScopeEmbedding) -> None:
    q = VectorStoreQuery(
        query_embedding=embed.get_query_embedding("pgvector"), similarity_top_k=10,
        doc_ids=["doc-b", "doc-c"],
    )  # fmt: skip
    assert set(filled.query(q).ids or []) == {"n3", "n4"}


# -- query modes and cutoff ------------------------------------------------------------------


def test_default_mode_scores_best_first_in_unit_range(
    filled: PGVectorStore, embed: DashScopeEmbedding
) -> None:
    q = VectorStoreQuery(
        query_embedding=embed.get_query_embedding("HNSW indexes"), similarity_top_k=4
    )
    result = filled.query(q)
    sims = result.similarities or []
    assert (result.ids or [])[0] == "n3"
    assert sims == sorted(sims, reverse=True) and all(0.0 <= s <= 1.0 for s in sims)


def test_similarity_cutoff_keeps_only_close_nodes(
    filled: PGVectorStore, embed: DashScopeEmbedding
) -> None:
    vector = embed.get_text_embedding(DOCS["n3"][0])
    q = VectorStoreQuery(query_embedding=vector, similarity_top_k=4)
    assert filled.query(q, score_threshold=0.999).ids == ["n3"]
    assert filled.query(q, similarity_cutoff=0.999).ids == ["n3"]
    assert len(filled.query(q).ids or []) == 4


def test_mmr_mode_prefers_diverse_nodes(store: PGVectorStore, embed: DashScopeEmbedding) -> None:
    texts = {
        "dup1": "pgvector HNSW index tuning",
        "dup2": "pgvector HNSW index tuning",
        "other": "pgvector on PolarDB clusters",
    }
    nodes = []
    for node_id, text in texts.items():
        node = TextNode(id_=node_id, text=text)
        node.embedding = embed.get_text_embedding(text)
        nodes.append(node)
    store.add(nodes)
    query_vector = embed.get_query_embedding("pgvector HNSW index")
    plain = store.query(VectorStoreQuery(query_embedding=query_vector, similarity_top_k=2))
    assert set(plain.ids or []) == {"dup1", "dup2"}
    mmr = store.query(
        VectorStoreQuery(
            query_embedding=query_vector, similarity_top_k=2,
            mode=VectorStoreQueryMode.MMR, mmr_threshold=0.5,
        )
    )  # fmt: skip
    assert "other" in (mmr.ids or []) and len(mmr.ids or []) == 2


def test_text_search_mode_needs_no_embedding(filled: PGVectorStore) -> None:
    q = VectorStoreQuery(
        query_str="HNSW", mode=VectorStoreQueryMode.TEXT_SEARCH, similarity_top_k=3
    )
    assert (filled.query(q).ids or [])[0] == "n3"


def test_hybrid_mode_with_chinese_text(store: PGVectorStore, embed: DashScopeEmbedding) -> None:
    texts = {
        "zh1": "向量数据库用于语义检索和推荐系统。",
        "zh2": "今天天气很好，我们去公园散步。",
        "zh3": "通义千问是阿里云的大语言模型。",
        "en1": "A vector database stores embeddings.",
    }
    nodes = []
    for node_id, text in texts.items():
        node = TextNode(id_=node_id, text=text, metadata={"lang": node_id[:2]})
        node.embedding = embed.get_text_embedding(text)
        nodes.append(node)
    store.add(nodes)
    question = "什么是向量数据库？"
    hybrid = store.query(
        VectorStoreQuery(
            query_embedding=embed.get_query_embedding(question), query_str=question,
            similarity_top_k=2, mode=VectorStoreQueryMode.HYBRID,
        )
    )  # fmt: skip
    assert (hybrid.ids or [])[0] == "zh1"
    text_only = store.query(
        VectorStoreQuery(query_str="大语言模型", mode=VectorStoreQueryMode.TEXT_SEARCH)
    )
    assert text_only.ids == ["zh3"]
    filtered = store.query(
        VectorStoreQuery(
            query_embedding=embed.get_query_embedding(question), query_str=question,
            similarity_top_k=4, mode=VectorStoreQueryMode.HYBRID,
            filters=_f("lang", FilterOperator.EQ, "en"),
        )
    )  # fmt: skip
    assert filtered.ids == ["en1"]


def test_unsupported_query_mode_raises(filled: PGVectorStore, embed: DashScopeEmbedding) -> None:
    q = VectorStoreQuery(
        query_embedding=embed.get_query_embedding("x"), mode=VectorStoreQueryMode.SVM
    )
    with pytest.raises(InvalidInputError):
        filled.query(q)


def test_score_threshold_outside_vector_modes_raises_instead_of_being_ignored(
    filled: PGVectorStore, embed: DashScopeEmbedding
) -> None:
    q = VectorStoreQuery(
        query_embedding=embed.get_query_embedding("HNSW"), query_str="HNSW",
        mode=VectorStoreQueryMode.HYBRID,
    )  # fmt: skip
    with pytest.raises(InvalidInputError):
        filled.query(q, score_threshold=0.5)


def test_mmr_prefetch_and_threshold_reach_the_core(
    filled: PGVectorStore, embed: DashScopeEmbedding
) -> None:
    vector = embed.get_text_embedding(DOCS["n3"][0])
    q = VectorStoreQuery(query_embedding=vector, similarity_top_k=3, mode=VectorStoreQueryMode.MMR)
    assert filled.query(q, mmr_prefetch_k=4, score_threshold=0.999).ids == ["n3"]
    assert len(filled.query(q, mmr_prefetch_factor=2).ids or []) == 3


def test_documents_and_index_nodes_keep_their_class(
    store: PGVectorStore, embed: DashScopeEmbedding
) -> None:
    from llama_index.core.schema import Document, IndexNode

    doc = Document(id_="d1", text="整篇文档 full document", metadata={"k": "v"})
    idx = IndexNode(id_="i1", text="points to another index", index_id="sub-index")
    for node in (doc, idx):
        node.embedding = embed.get_text_embedding(node.get_content())
    store.add([doc, idx])
    got_doc, got_idx = store.get_nodes(node_ids=["d1", "i1"])
    assert isinstance(got_doc, Document) and got_doc.text == doc.text
    assert got_doc.metadata == {"k": "v"}
    assert isinstance(got_idx, IndexNode) and got_idx.index_id == "sub-index"
    assert got_idx.get_content() == idx.get_content()


def test_reserved_node_keys_in_user_metadata_are_refused(
    store: PGVectorStore, embed: DashScopeEmbedding
) -> None:
    node = TextNode(text="x", metadata={"_node_type": "spoof"})
    node.embedding = embed.get_text_embedding("x")
    with pytest.raises(InvalidInputError):
        store.add([node])


@pytest.mark.polardb_compat
def test_store_works_on_older_pgvector_like_open_source_polardb(
    pgserver_dsn: str, embed: DashScopeEmbedding
) -> None:
    store = PGVectorStore(
        connection=pgserver_dsn, table_name=f"li_{uuid.uuid4().hex[:10]}", embed_dim=DIM
    )
    try:
        store.add(_nodes(embed))
        q = VectorStoreQuery(
            query_embedding=embed.get_query_embedding("HNSW indexes"), query_str="HNSW",
            similarity_top_k=2, mode=VectorStoreQueryMode.HYBRID,
            filters=_f("topic", FilterOperator.EQ, "db"),
        )  # fmt: skip
        assert (store.query(q).ids or [])[0] == "n3"
        not_db = MetadataFilters(
            filters=[MetadataFilter(key="topic", value="db")], condition=FilterCondition.NOT
        )
        assert {n.node_id for n in store.get_nodes(filters=not_db)} == {"n2", "n4"}
    finally:
        store.client.drop()


@pytest.mark.parametrize("mode", ["default", "mmr", "hybrid", "text_search"])
def test_node_ids_restrict_the_query_in_every_mode(
    filled: PGVectorStore, embed: DashScopeEmbedding, mode: str
) -> None:
    q = VectorStoreQuery(
        query_embedding=embed.get_query_embedding("pgvector"), query_str="pgvector",
        similarity_top_k=10, node_ids=["n2", "n3"], mode=VectorStoreQueryMode(mode),
    )  # fmt: skip
    assert set(filled.query(q).ids or []) <= {"n2", "n3"}
    if mode != "text_search":  # a text search only returns rows whose words match
        assert set(filled.query(q).ids or []) == {"n2", "n3"}


async def test_node_ids_restrict_the_async_query(
    filled: PGVectorStore, embed: DashScopeEmbedding
) -> None:
    q = VectorStoreQuery(
        query_embedding=embed.get_query_embedding("pgvector"), similarity_top_k=10,
        node_ids=["n1"],
    )  # fmt: skip
    assert (await filled.aquery(q)).ids == ["n1"]
