"""LlamaIndex adapters over the core."""
