"""In-database AI: plpython3u SQL functions that call Qwen and the embedding models."""
