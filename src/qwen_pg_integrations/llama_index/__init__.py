"""LlamaIndex adapters over the core: ``DashScopeEmbedding``, ``Qwen`` and ``PGVectorStore``.

Each class only translates LlamaIndex types to the framework-free core
(``qwen_pg_integrations.dashscope`` and ``qwen_pg_integrations.pg``) and back; see each class
for an example.
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
