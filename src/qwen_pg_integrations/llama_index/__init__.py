"""LlamaIndex adapters over the core: ``DashScopeEmbedding``, ``Qwen`` and ``PGVectorStore``.

Example:
    >>> from llama_index.core import VectorStoreIndex
    >>> from qwen_pg_integrations.llama_index import DashScopeEmbedding, PGVectorStore, Qwen
    >>> store = PGVectorStore(table_name="docs", embed_dim=1024)  # doctest: +SKIP
    >>> index = VectorStoreIndex.from_vector_store(store, embed_model=DashScopeEmbedding())
    >>> index.as_query_engine(llm=Qwen()).query("What is pgvector?")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .embeddings import DashScopeEmbedding
from .llms import Qwen

if TYPE_CHECKING:
    from .vector_stores import PGVectorStore

__all__ = ["DashScopeEmbedding", "PGVectorStore", "Qwen"]


def __getattr__(name: str) -> Any:
    # The store is imported on first use, so the LLM and embedding adapters load without it.
    if name == "PGVectorStore":
        from .vector_stores import PGVectorStore

        return PGVectorStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
