"""DashScope core: client, retries, error mapping, embeddings and chat over the official SDK.

Imports no LangChain or LlamaIndex module.
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
    ChatModelSpec,
    EmbeddingModelSpec,
    chat_model_spec,
    embedding_model_spec,
)

__all__ = [
    "CHAT_MODELS",
    "DEFAULT_CHAT_MODEL",
    "DEFAULT_EMBEDDING_MODEL",
    "EMBEDDING_MODELS",
    "ChatClient",
    "ChatModelSpec",
    "DashScopeClient",
    "EmbeddingClient",
    "EmbeddingModelSpec",
    "RetryPolicy",
    "chat_model_spec",
    "embedding_model_spec",
    "merge_chunks",
]
