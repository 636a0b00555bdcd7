"""PostgreSQL / PolarDB (pgvector) store core. Imports no LangChain or LlamaIndex module.

Example:
    >>> from qwen_pg_integrations.pg import PGStore, Record
    >>> store = PGStore(table_name="docs")  # QWEN_PG_DSN, else the embedded server
    >>> store.add([Record(None, "pgvector adds vectors to PostgreSQL", {"lang": "en"}, vec)])
    ... # doctest: +SKIP
    >>> hits = store.search(query_vec, k=4, filter={"lang": "en"})  # doctest: +SKIP
"""

from .connection import ConnectionArg, Engine
from .embedded import embedded_dsn, stop_embedded
from .filters import Filter, compile_filter
from .mmr import maximal_marginal_relevance
from .records import Distance, Record, SearchHit, stable_id
from .schema import ServerInfo, TableSpec
from .store import PGStore
from .text import segment

__all__ = [
    "ConnectionArg",
    "Distance",
    "Engine",
    "Filter",
    "PGStore",
    "Record",
    "SearchHit",
    "ServerInfo",
    "TableSpec",
    "compile_filter",
    "embedded_dsn",
    "maximal_marginal_relevance",
    "segment",
    "stable_id",
    "stop_embedded",
]
