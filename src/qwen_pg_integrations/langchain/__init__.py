"""LangChain adapters over the core."""

from .chat_models import ChatQwen
from .embeddings import DashScopeEmbeddings
from .rag import create_rag_chain

__all__ = ["ChatQwen", "DashScopeEmbeddings", "create_rag_chain"]
