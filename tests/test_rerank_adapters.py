"""DashScopeRerank for LangChain (a document compressor) and LlamaIndex (a node postprocessor),
on PGVectorStore (real PostgreSQL) with the unchanged SDK against the emulator."""

from __future__ import annotations

import pytest
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_core.documents import Document
from llama_index.core import VectorStoreIndex
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode

from qwen_pg_integrations.errors import BadRequestError, UnsupportedModelError
from qwen_pg_integrations.langchain import DashScopeEmbeddings, PGVectorStore
from qwen_pg_integrations.langchain import DashScopeRerank as LangChainRerank
from qwen_pg_integrations.llama_index import DashScopeEmbedding, Qwen
from qwen_pg_integrations.llama_index import DashScopeRerank as LlamaRerank
from qwen_pg_integrations.llama_index import PGVectorStore as LlamaStore
from qwen_pg_integrations.testing import DashScopeEmulator, Fault

TEXTS = [
    "Qwen is a family of large language models made by Alibaba Cloud.",
    "PolarDB separates compute and storage.",
    "pgvector adds HNSW and IVFFlat vector indexes to PostgreSQL.",
    "The weather in Hangzhou is mild in spring.",
    "HNSW indexes give fast approximate vector search in pgvector.",
]
QUESTION = "Which vector indexes does pgvector add to PostgreSQL?"


def _reranks(emu: DashScopeEmulator) -> list[dict[str, object]]:
    return [r.body for r in emu.requests_for("rerank")]


# --- LangChain ---------------------------------------------------------------------------


def test_langchain_compression_retriever_reranks_the_stores_candidates(
    dashscope_emulator: DashScopeEmulator, pg_dsn: str, table_name: str
) -> None:
    store = PGVectorStore(DashScopeEmbeddings(), connection=pg_dsn, table_name=table_name)
    store.add_texts(TEXTS, metadatas=[{"n": i, "secret_tag": "zzz"} for i in range(len(TEXTS))])
    retriever = ContextualCompressionRetriever(
        base_compressor=LangChainRerank(top_n=2),
        base_retriever=store.as_retriever(search_kwargs={"k": 5}),
    )
    docs = retriever.invoke(QUESTION)
    assert [d.metadata["n"] for d in docs] == [2, 4]
    assert docs[0].metadata["relevance_score"] > docs[1].metadata["relevance_score"]
    (body,) = _reranks(dashscope_emulator)
    assert body["model"] == "qwen3-rerank"
    sent = body["input"]["documents"]  # type: ignore[index]
    assert sorted(sent) == sorted(TEXTS)  # the content alone: no metadata tokens
    assert not any("zzz" in s for s in sent)


async def test_langchain_async_and_metadata_on_request(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    docs = [Document(t, metadata={"source": f"s{i}.md"}) for i, t in enumerate(TEXTS)]
    rr = LangChainRerank(top_n=None, include_metadata=True, score_threshold=0.3)
    got = await rr.acompress_documents(docs, QUESTION)
    assert got and got[0].page_content == TEXTS[2]
    assert all(d.metadata["relevance_score"] >= 0.3 for d in got)
    assert "relevance_score" not in docs[2].metadata  # inputs are not changed
    (body,) = _reranks(dashscope_emulator)
    assert body["input"]["documents"][0] == "source: s0.md\n\n" + TEXTS[0]  # type: ignore[index]
    assert rr.rerank(TEXTS, QUESTION, top_n=1) == [
        {"index": 2, "relevance_score": got[0].metadata["relevance_score"]}
    ]


def test_langchain_model_and_api_key_are_honoured_and_errors_are_typed(
    dashscope_emulator: DashScopeEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    rr = LangChainRerank(model="gte-rerank-v2", api_key=dashscope_emulator.api_key)
    assert rr.compress_documents([Document(t) for t in TEXTS], QUESTION)
    assert _reranks(dashscope_emulator)[0]["model"] == "gte-rerank-v2"
    assert dashscope_emulator.api_key not in repr(rr)
    dashscope_emulator.inject(Fault(status=400, code="InvalidParameter"), endpoint="rerank")
    with pytest.raises(BadRequestError):
        rr.compress_documents([Document(t) for t in TEXTS], QUESTION)
    with pytest.raises(UnsupportedModelError, match="discontinued"):
        LangChainRerank(model="gte-rerank")
    assert rr.compress_documents([], QUESTION) == []


# --- LlamaIndex --------------------------------------------------------------------------


def test_llama_index_query_engine_reranks_with_the_node_text_alone(
    dashscope_emulator: DashScopeEmulator, pg_dsn: str, table_name: str
) -> None:
    store = LlamaStore(connection=pg_dsn, table_name=table_name, embed_model=DashScopeEmbedding())
    nodes = [TextNode(text=t, metadata={"n": i, "secret_tag": "zzz"}) for i, t in enumerate(TEXTS)]
    index = VectorStoreIndex.from_vector_store(store, embed_model=DashScopeEmbedding())
    index.insert_nodes(nodes)
    engine = index.as_query_engine(
        llm=Qwen(), similarity_top_k=5, node_postprocessors=[LlamaRerank(top_n=2)]
    )
    response = engine.query(QUESTION)
    assert [n.node.metadata["n"] for n in response.source_nodes] == [2, 4]
    scores = [n.score for n in response.source_nodes]
    assert scores[0] is not None and scores[1] is not None and scores[0] > scores[1]
    (body,) = _reranks(dashscope_emulator)
    assert not any("zzz" in s for s in body["input"]["documents"])  # type: ignore[index]


async def test_llama_index_async_modes_and_retrieval_score(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    nodes = [NodeWithScore(node=TextNode(text=t, metadata={"k": "v"}), score=0.5) for t in TEXTS]
    rr = LlamaRerank(top_n=3, metadata_mode=MetadataMode.EMBED, keep_retrieval_score=True)
    got = await rr.apostprocess_nodes(nodes, QueryBundle(QUESTION))
    assert len(got) == 3 and got[0].node.get_content() == TEXTS[2]
    assert got[0].node.metadata["retrieval_score"] == 0.5
    assert "retrieval_score" not in nodes[2].node.metadata
    (body,) = _reranks(dashscope_emulator)
    assert body["input"]["documents"][0].startswith("k: v")  # type: ignore[index]
    assert rr.postprocess_nodes([], query_str=QUESTION) == []
    strict = LlamaRerank(top_n=5, score_threshold=0.3)
    kept = strict.postprocess_nodes(nodes, query_str=QUESTION)
    assert kept and all(n.score is not None and n.score >= 0.3 for n in kept)
    assert len(kept) < len(nodes)
