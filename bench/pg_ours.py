"""Our store: the framework-free core and the LangChain ``PGVectorStore`` over it.

Filled in against the store's API (see /work/coord/PG_CORE_API.md); until the store lands these
runners raise ``Skip`` and the benchmark reports them as not available.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import ClassVar

from pg_common import ServerInfo, Skip
from pg_data import Dataset


class OursCore:
    """``qwen_pg_integrations.pg`` store core, bulk add path."""

    name = "ours: pg core"
    tables: ClassVar[list[str]] = ["bench_ours_core"]

    def __init__(self, server: ServerInfo) -> None:
        raise Skip("the store core has not landed yet")

    def setup(self, data: Dataset) -> None: ...
    def ingest(self, data: Dataset) -> None: ...
    def build_index(self) -> None: ...
    def query(self, vector: list[float], k: int, category: str | None) -> list[str]:
        return []

    def close(self) -> None: ...


class OursLangChain(OursCore):
    """``qwen_pg_integrations.langchain.PGVectorStore.add_embeddings`` / ``similarity_search``."""

    name = "ours: LangChain PGVectorStore"
    tables: ClassVar[list[str]] = ["bench_ours_lc"]


OURS = (OursCore, OursLangChain)


def streaming_ingest(
    dsn: str, table: str, dim: int, docs: Iterator[tuple[str, str, dict[str, object], list[float]]]
) -> Callable[[], None]:
    """Prepare an ingest of ``docs`` through our store; the returned callable does the work."""
    raise Skip("the store core has not landed yet")
