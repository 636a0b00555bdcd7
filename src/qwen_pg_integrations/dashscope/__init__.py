"""DashScope core: client, retries, error mapping, embeddings and chat over the official SDK.

Imports no LangChain or LlamaIndex module.
"""

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
    "ChatModelSpec",
    "EmbeddingModelSpec",
    "chat_model_spec",
    "embedding_model_spec",
]
