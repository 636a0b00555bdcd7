"""LangChain adapters over the core."""
