"""DashScope core: client, retries, error mapping, embeddings and chat over the official SDK.

Imports no LangChain or LlamaIndex module; both adapters build on these classes.

* :class:`DashScopeClient`: key (``DASHSCOPE_API_KEY``), endpoint (``DASHSCOPE_HTTP_BASE_URL``),
  workspace, timeout and retry policy of one connection, passed per call to the SDK.
* :class:`EmbeddingClient`: batched text embeddings, sync (thread pool) and async (aiohttp).
* :class:`RerankClient`: text rerank (qwen3-rerank), batched to the model's limits, sync and async.
* :class:`ChatClient`: chat, streams and tool calls, sync and async; :func:`merge_chunks` turns
  streamed deltas into one answer.

Example:
    >>> from qwen_pg_integrations.dashscope import ChatClient, EmbeddingClient
    >>> from qwen_pg_integrations.types import ChatMessage
    >>> emb = EmbeddingClient("text-embedding-v4", dimensions=1024)  # doctest: +SKIP
    >>> emb.embed_query("什么是 PolarDB?")  # doctest: +SKIP
    >>> ChatClient("qwen-plus").chat([ChatMessage("user", "Hi")]).content  # doctest: +SKIP
"""

from ._retry import RetryPolicy
from .chat import ChatClient, merge_chunks
from .client import DashScopeClient
from .embeddings import EmbeddingClient
from .models import (
    CHAT_MODELS,
    DEFAULT_CHAT_MODEL,
    DEFAULT_EMBEDDING_MODEL,
    EMBEDDING_MODELS,
    RERANK_MODELS,
    ChatModelSpec,
    EmbeddingModelSpec,
    chat_model_spec,
    embedding_model_spec,
    rerank_model_spec,
)
from .rerank import RerankClient

__all__ = [
    "CHAT_MODELS",
    "DEFAULT_CHAT_MODEL",
    "DEFAULT_EMBEDDING_MODEL",
    "EMBEDDING_MODELS",
    "RERANK_MODELS",
    "ChatClient",
    "ChatModelSpec",
    "DashScopeClient",
    "EmbeddingClient",
    "EmbeddingModelSpec",
    "RerankClient",
    "RetryPolicy",
    "chat_model_spec",
    "embedding_model_spec",
    "merge_chunks",
    "rerank_model_spec",
]
