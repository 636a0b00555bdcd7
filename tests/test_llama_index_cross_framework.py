"""One table, both frameworks (DESIGN.md §4): what LangChain wrote, LlamaIndex finds, and back.

Real PostgreSQL, embeddings from the emulator; filters in both directions.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from langchain_core.documents import Document as LCDocument
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import NodeRelationship, TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)

from qwen_pg_integrations.langchain import DashScopeEmbeddings
from qwen_pg_integrations.langchain import PGVectorStore as LCStore
from qwen_pg_integrations.llama_index import DashScopeEmbedding, PGVectorStore, Qwen
from qwen_pg_integrations.testing import DashScopeEmulator

DIM = 256
MODEL = "text-embedding-v4"


@pytest.fixture
def lc_store(
    pg_dsn: str, table_name: str, dashscope_emulator: DashScopeEmulator
) -> Iterator[LCStore]:
    store = LCStore(
        DashScopeEmbeddings(model=MODEL, dimensions=DIM), connection=pg_dsn, table_name=table_name
    )
    yield store
    store.store.drop()


@pytest.fixture
def li_store(pg_dsn: str, table_name: str) -> PGVectorStore:
    return PGVectorStore(connection=pg_dsn, table_name=table_name, embed_dim=DIM)


@pytest.fixture
def embed(dashscope_emulator: DashScopeEmulator) -> DashScopeEmbedding:
    return DashScopeEmbedding(model_name=MODEL, dimensions=DIM)


def test_llama_index_reads_and_filters_what_langchain_wrote(
    lc_store: LCStore, li_store: PGVectorStore, embed: DashScopeEmbedding
) -> None:
    lc_store.add_documents(
        [
            LCDocument(
                id="lc-1",
                page_content="PolarDB supports pgvector for vector search.",
                metadata={"topic": "db", "year": 2024, "tags": ["pg", "vector"]},
            ),
            LCDocument(
                id="lc-2",
                page_content="Qwen models answer questions in Chinese and English.",
                metadata={"topic": "ai", "year": 2025, "tags": ["llm"]},
            ),
            LCDocument(
                id="lc-3",
                page_content="pgvector HNSW indexes on PolarDB clusters.",
                metadata={"topic": "db", "year": 2023, "tags": ["pg"]},
            ),
        ]
    )
    index = VectorStoreIndex.from_vector_store(li_store, embed_model=embed)
    filters = MetadataFilters(
        filters=[
            MetadataFilter(key="topic", value="db"),
            MetadataFilter(key="year", operator=FilterOperator.GTE, value=2024),
        ]
    )
    (hit,) = index.as_retriever(similarity_top_k=5, filters=filters).retrieve("pgvector")
    assert hit.node.node_id == "lc-1"
    assert hit.node.get_content() == "PolarDB supports pgvector for vector search."
    assert hit.node.metadata == {"topic": "db", "year": 2024, "tags": ["pg", "vector"]}
    assert isinstance(hit.node, TextNode) and hit.node.ref_doc_id is None

    not_db = MetadataFilters(
        filters=[MetadataFilter(key="topic", value="db")], condition=FilterCondition.NOT
    )
    assert [n.node.node_id for n in index.as_retriever(filters=not_db).retrieve("models")] == [
        "lc-2"
    ]
    got = li_store.get_nodes(
        filters=MetadataFilters(
            filters=[MetadataFilter(key="tags", operator=FilterOperator.CONTAINS, value="pg")]
        )
    )
    assert {n.node_id for n in got} == {"lc-1", "lc-3"}
    response = index.as_query_engine(llm=Qwen(), filters=filters).query(
        "Which extension does PolarDB support for vector search?"
    )
    assert "pgvector" in str(response)
    assert [s.node.node_id for s in response.source_nodes] == ["lc-1"]


def test_langchain_reads_and_filters_what_llama_index_wrote_with_clean_metadata(
    lc_store: LCStore, li_store: PGVectorStore, embed: DashScopeEmbedding
) -> None:
    docs = [
        Document(
            id_="li-doc-1",
            text="PolarDB supports pgvector. HNSW indexes keep search fast.",
            metadata={"topic": "db", "lang": "en"},
        ),
        Document(
            id_="li-doc-2",
            text="通义千问是阿里云的大语言模型。",
            metadata={"topic": "ai", "lang": "zh"},
        ),
    ]
    nodes = IngestionPipeline(
        transformations=[SentenceSplitter(chunk_size=64, chunk_overlap=0), embed],
        vector_store=li_store,
    ).run(documents=docs)
    by_id = {n.node_id: n for n in nodes}

    found = lc_store.similarity_search("pgvector on PolarDB", k=5, filter={"topic": "db"})
    assert found
    for doc in found:
        node = by_id[doc.id or ""]
        assert doc.page_content == node.get_content()
        # exactly the node's own metadata: nothing LlamaIndex-internal leaks into LangChain
        assert doc.metadata == {"topic": "db", "lang": "en"}
    zh = lc_store.similarity_search("大语言模型", k=5, filter={"lang": {"$in": ["zh"]}})
    assert [d.metadata for d in zh] == [{"topic": "ai", "lang": "zh"}]

    # LlamaIndex's relationships survive a LangChain-side read and are still there for LlamaIndex
    node_id = found[0].id or ""
    (back,) = li_store.get_nodes(node_ids=[node_id])
    assert back.relationships[NodeRelationship.SOURCE].node_id == "li-doc-1"

    # deleting a source document through LlamaIndex is visible to LangChain
    li_store.delete("li-doc-1")
    assert lc_store.similarity_search("pgvector", k=5, filter={"topic": "db"}) == []
    # and LangChain's delete by id is visible to LlamaIndex
    zh_id = zh[0].id or ""
    lc_store.delete([zh_id])
    assert li_store.get_nodes(node_ids=[zh_id]) == []


async def test_async_both_ways(
    lc_store: LCStore, li_store: PGVectorStore, embed: DashScopeEmbedding
) -> None:
    await lc_store.aadd_texts(["pgvector on PolarDB"], metadatas=[{"side": "lc"}], ids=["a"])
    node = TextNode(id_="b", text="Qwen on DashScope", metadata={"side": "li"})
    node.embedding = await embed.aget_text_embedding(node.text)
    await li_store.async_add([node])
    lc_docs = await lc_store.asimilarity_search("Qwen", k=2, filter={"side": "li"})
    assert [(d.id, d.metadata) for d in lc_docs] == [("b", {"side": "li"})]
    li_nodes = await li_store.aget_nodes(
        filters=MetadataFilters(filters=[MetadataFilter(key="side", value="lc")])
    )
    assert [(n.node_id, n.get_content()) for n in li_nodes] == [("a", "pgvector on PolarDB")]
