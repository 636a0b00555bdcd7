"""LlamaIndex adapters over the core: ``DashScopeEmbedding``, ``Qwen``, ``PGVectorStore``,
``DashScopeRerank``
and the RAG query-engine factory ``create_query_engine``.

Each class only translates LlamaIndex types to the framework-free core
(``qwen_pg_integrations.dashscope`` and ``qwen_pg_integrations.pg``) and back; see each class
for an example.
"""

from __future__ import annotations

from .embeddings import DashScopeEmbedding
from .llms import Qwen
from .postprocessor import DashScopeRerank
from .query_engine import create_query_engine
from .vector_stores import PGVectorStore

__all__ = ["DashScopeEmbedding", "DashScopeRerank", "PGVectorStore", "Qwen", "create_query_engine"]
