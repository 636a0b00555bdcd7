"""LlamaIndex adapters over the core: ``DashScopeEmbedding``, ``Qwen`` and ``PGVectorStore``.

Each class only translates LlamaIndex types to the framework-free core
(``qwen_pg_integrations.dashscope`` and ``qwen_pg_integrations.pg``) and back; see each class
for an example.
"""

from __future__ import annotations

from .embeddings import DashScopeEmbedding
from .llms import Qwen
from .vector_stores import PGVectorStore

__all__ = ["DashScopeEmbedding", "PGVectorStore", "Qwen"]
