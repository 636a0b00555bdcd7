"""What every benchmarked system implements, plus small helpers shared by the runners."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol
from urllib.parse import parse_qs, urlparse

from langchain_core.embeddings import Embeddings

from pg_data import Dataset

HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64
HNSW_EF_SEARCH = 40  # pgvector's default; every system runs with it unless it raises it itself


class System(Protocol):
    """One contender.  The driver times ``ingest``, ``build_index`` and every ``query`` call."""

    name: str
    tables: list[str]

    def setup(self, data: Dataset) -> None:
        """Create the empty store/table and anything the timed ingest must not pay for."""

    def ingest(self, data: Dataset) -> None:
        """Write every row of ``data`` (precomputed vectors)."""

    def build_index(self) -> None:
        """Create the HNSW index (cosine, m=16, ef_construction=64) the way the system offers it."""

    def query(self, vector: list[float], k: int, category: str | None) -> list[str]:
        """Top-``k`` by cosine distance, optionally with ``{"category": category}``; returns ids."""

    def close(self) -> None:
        """Release every connection (server-side statistics are flushed when backends exit)."""


class Skip(Exception):
    """A system cannot run here (package missing, store not available); the reason is printed."""


@dataclass(frozen=True)
class ServerInfo:
    """Where the benchmark server listens, in the spellings the contenders need."""

    dsn: str  # libpq URI for psycopg

    def _parts(self) -> tuple[str, str, str, str]:
        u = urlparse(self.dsn)
        q = parse_qs(u.query)
        host = q.get("host", [u.hostname or ""])[0]
        user = u.username or "postgres"
        db = (u.path or "/postgres").lstrip("/") or "postgres"
        port = str(u.port or q.get("port", ["5432"])[0])
        return host, port, user, db

    def sqlalchemy_url(self, driver: str) -> str:
        """SQLAlchemy URL for ``driver`` (psycopg, psycopg2, asyncpg); unix sockets supported."""
        u = urlparse(self.dsn)
        host, port, user, db = self._parts()
        password = f":{u.password}" if u.password else ""
        if host.startswith("/"):
            return f"postgresql+{driver}://{user}{password}@/{db}?host={host}&port={port}"
        return f"postgresql+{driver}://{user}{password}@{host}:{port}/{db}"


class NoEmbeddings(Embeddings):
    """Placeholder model: the benchmark passes precomputed vectors, so any call is a bug."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        raise RuntimeError("the benchmark passes precomputed vectors; nothing may embed text")

    def embed_query(self, text: str) -> list[float]:
        raise RuntimeError("the benchmark passes precomputed vectors; nothing may embed text")
