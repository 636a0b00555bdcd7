"""LangChain adapters over the core."""

from .chat_models import ChatQwen
from .embeddings import DashScopeEmbeddings

__all__ = ["ChatQwen", "DashScopeEmbeddings"]
