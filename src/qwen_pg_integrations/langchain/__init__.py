"""LangChain adapters over the core."""

from .chat_models import ChatQwen
from .embeddings import DashScopeEmbeddings
from .rag import create_rag_chain
from .rerank import DashScopeRerank
from .vectorstores import PGVectorStore

__all__ = [
    "ChatQwen",
    "DashScopeEmbeddings",
    "DashScopeRerank",
    "PGVectorStore",
    "create_rag_chain",
]
