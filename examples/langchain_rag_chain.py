"""A retrieval-augmented chain with LangChain: PGVectorStore + DashScope embeddings + Qwen.

Run: ``python examples/langchain_rag_chain.py`` (needs DASHSCOPE_API_KEY; QWEN_PG_DSN optional).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import corpus_chunks, dsn, table
from qwen_pg_integrations.langchain import (
    ChatQwen,
    DashScopeEmbeddings,
    PGVectorStore,
    create_rag_chain,
)


def main() -> None:
    store = PGVectorStore(
        DashScopeEmbeddings(model="text-embedding-v4"),
        connection=dsn(),
        table_name=table("example_langchain"),
    )
    chunks = corpus_chunks()
    # stable ids: running the example again upserts the same rows instead of duplicating them
    store.add_texts(
        [c.content for c in chunks],
        metadatas=[c.metadata for c in chunks],
        ids=[c.id for c in chunks],
    )
    store.create_index("hnsw")

    chain = create_rag_chain(
        store,
        ChatQwen(model="qwen-plus"),
        k=3,
        score_threshold=0.5,
        condense_llm=ChatQwen(model="qwen-turbo"),  # a fast model rewrites follow-ups
    )

    # 1. one question, one answer with its sources
    out = chain.invoke("How does PolarDB separate compute from storage?")
    print("Q:", out["question"])
    print("A:", out["answer"])
    for n, doc in enumerate(out["context"], start=1):
        print(f"  [{n}] {doc.metadata['file_name']} score={doc.metadata['score']:.3f}")

    # 2. a Chinese question, streamed token by token (the sources arrive first)
    question = "pgvector 的 HNSW 和 IVFFlat 索引应该怎么选择？"
    print("Q:", question)
    print("A: ", end="")
    for chunk in chain.stream(question):
        if "context" in chunk:
            sources = [d.metadata["file_name"] for d in chunk["context"]]
        print(chunk.get("answer", ""), end="", flush=True)
    print("\n  sources:", ", ".join(sources))

    # 3. a follow-up: the history turns "it" into "PolarDB" before retrieval
    follow = chain.invoke(
        {
            "question": "Is it compatible with PostgreSQL?",
            "chat_history": [("human", out["question"]), ("ai", out["answer"])],
        }
    )
    print("Q:", follow["question"], "->", follow["standalone_question"])
    print("A:", follow["answer"])

    # 4. nothing relevant: the chain says so without calling the model
    none = chain.invoke("今天北京的天气怎么样？")
    print("Q:", none["question"])
    print("A:", none["answer"], f"(no_context={none['no_context']})")


if __name__ == "__main__":
    main()
