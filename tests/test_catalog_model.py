"""Issue 14: the embedding model a table was made with is known and enforced by every store.

LlamaIndex ``PGVectorStore(embed_model=...)`` takes the model name and dimension from the model
and records them; opening the table with another model, from either framework, is a
``SchemaMismatchError``; a store that cannot know its model warns once when it creates a table.
"""

from __future__ import annotations

import math
import warnings

import psycopg
import pytest
from llama_index.core.schema import TextNode

from qwen_pg_integrations.errors import InvalidInputError, QwenPGWarning, SchemaMismatchError
from qwen_pg_integrations.langchain import DashScopeEmbeddings
from qwen_pg_integrations.langchain import PGVectorStore as LCStore
from qwen_pg_integrations.llama_index import DashScopeEmbedding
from qwen_pg_integrations.llama_index import PGVectorStore as LIStore
from qwen_pg_integrations.pg import PGStore, Record
from qwen_pg_integrations.testing import DashScopeEmulator


def _catalog(dsn: str, table: str) -> tuple[str | None, int]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT embedding_model, dimension FROM qwen_pg_collections WHERE table_name = %s",
            [table],
        ).fetchone()
    assert row is not None
    return row[0], int(row[1])


def test_llama_index_store_takes_model_and_dimension_from_embed_model(
    dashscope_emulator: DashScopeEmulator, pg_dsn: str, table_name: str
) -> None:
    embed = DashScopeEmbedding(model_name="text-embedding-v3", dimensions=128)
    store = LIStore(connection=pg_dsn, table_name=table_name, embed_model=embed)
    assert store.embed_dim == 128 and store.embedding_model == "text-embedding-v3"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", QwenPGWarning)  # the model is known: no warning
            store.client.setup()  # the dimension is known: the table exists before any write
        assert _catalog(pg_dsn, table_name) == ("text-embedding-v3", 128)
        node = TextNode(id_="n1", text="PolarDB 支持 pgvector")
        node.embedding = embed.get_text_embedding(node.text)
        store.add([node])

        # the same table from LlamaIndex with another model, and from LangChain
        other = DashScopeEmbedding(model_name="text-embedding-v4", dimensions=128)
        with pytest.raises(SchemaMismatchError, match="text-embedding-v3"):
            LIStore(connection=pg_dsn, table_name=table_name, embed_model=other).client.setup()
        lc_other = DashScopeEmbeddings(model="text-embedding-v4", dimensions=128)
        with pytest.raises(SchemaMismatchError, match="embedding model 'text-embedding-v3'"):
            LCStore(lc_other, connection=pg_dsn, table_name=table_name).similarity_search("x")
        lc_same = DashScopeEmbeddings(model="text-embedding-v3", dimensions=128)
        found = LCStore(lc_same, connection=pg_dsn, table_name=table_name).similarity_search("x")
        assert [d.id for d in found] == ["n1"]
    finally:
        store.client.drop()


def test_embed_model_contradicting_embed_dim_is_refused(
    dashscope_emulator: DashScopeEmulator, pg_dsn: str
) -> None:
    embed = DashScopeEmbedding(model_name="text-embedding-v4", dimensions=256)
    with pytest.raises(InvalidInputError, match="embed_dim=512 contradicts embed_model"):
        LIStore(connection=pg_dsn, table_name="never_made", embed_model=embed, embed_dim=512)
    with pytest.raises(InvalidInputError, match="BaseEmbedding"):
        LIStore(connection=pg_dsn, table_name="never_made", embed_model="text-embedding-v4")  # type: ignore[arg-type]


def test_a_store_that_cannot_know_its_model_warns_when_it_creates_a_table(
    pg_dsn: str, table_name: str
) -> None:
    store = PGStore(pg_dsn, table_name=table_name, dimension=3)
    try:
        with pytest.warns(QwenPGWarning, match="without an embedding model recorded"):
            store.add([Record("a", "a", {}, [1.0, 0.0, 0.0])])
        with warnings.catch_warnings():  # once: not again for the existing table
            warnings.simplefilter("error", QwenPGWarning)
            PGStore(pg_dsn, table_name=table_name).count()
    finally:
        store.drop()


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_metadata_is_the_same_typed_error_in_every_store(
    bad: float, dashscope_emulator: DashScopeEmulator, pg_dsn: str, table_name: str
) -> None:
    embed = DashScopeEmbedding(model_name="text-embedding-v4", dimensions=64)
    li = LIStore(connection=pg_dsn, table_name=table_name, embed_model=embed)
    node = TextNode(id_="n", text="t", metadata={"x": bad})
    node.embedding = [0.1] * 64
    try:
        with pytest.raises(InvalidInputError, match="NaN or Infinity"):
            li.add([node])
        lc = LCStore(DashScopeEmbeddings(dimensions=64), connection=pg_dsn, table_name=table_name)
        with pytest.raises(InvalidInputError, match="NaN or Infinity"):
            lc.add_texts(["t"], metadatas=[{"x": bad}])
        with pytest.raises(InvalidInputError, match="NaN or Infinity"):
            li.client.add([Record("r", "t", {"x": bad}, [0.1] * 64)])
        assert li.client.count() == 0
    finally:
        li.client.drop()
