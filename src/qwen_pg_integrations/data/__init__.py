"""Bundled data: a small bilingual demo corpus (PostgreSQL, PolarDB, pgvector, Qwen).

``qwen-pg demo`` ingests it; :func:`corpus_dir` gives its folder for your own experiments.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["corpus_dir", "corpus_files"]


def corpus_dir() -> Path:
    """The folder of the bundled demo corpus (Markdown and text, Chinese and English)."""
    return Path(__file__).resolve().parent / "corpus"


def corpus_files() -> list[Path]:
    """The corpus files, sorted by name."""
    return sorted(p for p in corpus_dir().iterdir() if p.suffix in (".md", ".txt"))
