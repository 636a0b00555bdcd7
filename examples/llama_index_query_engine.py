"""A LlamaIndex query engine: PGVectorStore + DashScopeEmbedding + Qwen, with sources.

Run: ``python examples/llama_index_query_engine.py`` (needs DASHSCOPE_API_KEY).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from llama_index.core import VectorStoreIndex
from llama_index.core.schema import TextNode

from _common import corpus_chunks, dsn, table
from qwen_pg_integrations.llama_index import DashScopeEmbedding, PGVectorStore, Qwen
from qwen_pg_integrations.llama_index.query_engine import create_query_engine


def main() -> None:
    store = PGVectorStore(connection=dsn(), table_name=table("example_llama_index"), embed_dim=1024)
    index = VectorStoreIndex.from_vector_store(
        store, embed_model=DashScopeEmbedding(model_name="text-embedding-v4")
    )
    index.insert_nodes(
        [TextNode(id_=c.id, text=c.content, metadata=c.metadata) for c in corpus_chunks()]
    )

    engine = create_query_engine(
        index, Qwen(model="qwen-plus"), similarity_top_k=3, similarity_cutoff=0.5
    )
    for question in ("PolarDB 如何实现存储计算分离？", "What does text_type mean for embeddings?"):
        response = engine.query(question)
        print("Q:", question)
        print("A:", response)
        for n, source in enumerate(response.source_nodes, start=1):
            print(f"  [{n}] {source.node.metadata['file_name']} score={source.score:.3f}")

    streaming = create_query_engine(index, Qwen(), similarity_top_k=2, streaming=True)
    response = streaming.query("pgvector 的 HNSW 索引有什么特点？")
    print("Q: pgvector 的 HNSW 索引有什么特点？")
    print("A: ", end="")
    for token in response.response_gen:
        print(token, end="", flush=True)
    print()

    nothing = engine.query("How do I bake sourdough bread?")
    print("Q: How do I bake sourdough bread?")
    print("A:", nothing, f"(no_context={nothing.metadata['no_context']})")


if __name__ == "__main__":
    main()
