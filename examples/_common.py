"""Shared setup of the examples: where the knowledge base lives and which chunks go in it.

Each example reads the same environment as the package (DESIGN.md §5):
``DASHSCOPE_API_KEY`` (and optionally ``DASHSCOPE_HTTP_BASE_URL``), ``QWEN_PG_DSN`` (unset: the
embedded PostgreSQL server), plus ``EXAMPLE_TABLE`` to choose the table.
"""

from __future__ import annotations

import os

from qwen_pg_integrations.data import corpus_files
from qwen_pg_integrations.ingest import Chunk, load_and_split


def table(default: str) -> str:
    """The example's table: ``EXAMPLE_TABLE`` or ``default``."""
    return os.environ.get("EXAMPLE_TABLE", default)


def dsn() -> str | None:
    """``QWEN_PG_DSN``; ``None`` lets the stores start the embedded server."""
    return os.environ.get("QWEN_PG_DSN") or None


def corpus_chunks() -> list[Chunk]:
    """The bundled bilingual corpus, split for Chinese and English, with stable ids."""
    return [chunk for path in corpus_files() for chunk in load_and_split(path)]
