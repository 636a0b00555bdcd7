"""PostgreSQL / PolarDB (pgvector) store core. Imports no LangChain or LlamaIndex module."""
