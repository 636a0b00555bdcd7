"""Hybrid search in Chinese: vector + full text (jieba-segmented), fused by reciprocal rank.

Exact terms such as 产品名、错误码 are found by the keyword side; meaning by the vector side.
Run: ``python examples/hybrid_search_zh.py`` (needs DASHSCOPE_API_KEY).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from langchain_core.documents import Document

from _common import corpus_chunks, dsn, table
from qwen_pg_integrations.langchain import DashScopeEmbeddings, PGVectorStore


def show(title: str, pairs: list[tuple[Document, float]]) -> None:
    print(title)
    for n, (doc, score) in enumerate(pairs, start=1):
        text = " ".join(doc.page_content.split())[:60]
        print(f"  {n}. {score:.3f} {doc.metadata['file_name']}: {text}")


def main() -> None:
    store = PGVectorStore(
        DashScopeEmbeddings(), connection=dsn(), table_name=table("example_hybrid_zh")
    )
    chunks = corpus_chunks()
    store.add_texts(
        [c.content for c in chunks],
        metadatas=[c.metadata for c in chunks],
        ids=[c.id for c in chunks],
    )

    query = "倒数排名融合 RRF 怎么计算"
    show(f"vector search: {query}", store.similarity_search_with_relevance_scores(query, k=3))
    show(f"hybrid search: {query}", store.hybrid_search_with_score(query, k=3))

    query = "数据库崩溃后如何恢复"
    only_chinese = {"file_name": {"$like": "%_zh.%"}}
    show(
        f"hybrid search, Chinese files only: {query}",
        store.hybrid_search_with_score(query, k=3, filter=only_chinese),
    )


if __name__ == "__main__":
    main()
