"""Qwen (DashScope) and PostgreSQL / PolarDB (pgvector) for LangChain and LlamaIndex.

The core lives in :mod:`qwen_pg_integrations.dashscope` and :mod:`qwen_pg_integrations.pg`
and imports no framework; :mod:`qwen_pg_integrations.langchain` and
:mod:`qwen_pg_integrations.llama_index` adapt it. Importing this package imports neither
framework.
"""

from .errors import QwenPGError

__version__ = "0.1.0"
__all__ = ["QwenPGError", "__version__"]
