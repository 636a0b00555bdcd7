"""The limit: hand-written psycopg 3 — COPY BINARY for ingest, a prepared statement for queries.

The table has the layout of DESIGN.md §4 (text id primary key, content, jsonb metadata, vector
kept inline with ``STORAGE PLAIN``), so the raw figures are what that table costs with no library.
It receives the same ``list[list[float]]`` as every other system and converts them itself.
"""

from __future__ import annotations

import struct

import numpy as np
import psycopg
from psycopg import sql
from psycopg.adapt import Dumper
from psycopg.pq import Format
from psycopg.types.json import Jsonb

from pg_common import HNSW_EF_CONSTRUCTION, HNSW_M
from pg_data import Dataset

TEXT_OID = 25
JSONB_OID = 3802


class _VectorBytes(bytes):
    """A vector already in pgvector's binary wire format."""


def _vector_dumper(oid: int) -> type[Dumper]:
    class VectorBytesDumper(Dumper):
        format = Format.BINARY

        def dump(self, obj: bytes) -> bytes:
            return obj

    VectorBytesDumper.oid = oid
    return VectorBytesDumper


def encode_block(vectors: list[list[float]]) -> list[_VectorBytes]:
    """Encode vectors to pgvector's binary format (uint16 dim, uint16 unused, float4 big-endian)."""
    if not vectors:
        return []
    arr = np.asarray(vectors, dtype=">f4")
    head = struct.pack(">HH", arr.shape[1], 0)
    return [_VectorBytes(head + row.tobytes()) for row in arr]


class RawPsycopg:
    """COPY BINARY into the table; k-NN through one prepared statement with a binary parameter."""

    name = "raw psycopg (COPY BINARY / prepared SQL)"

    def __init__(self, dsn: str, table: str = "bench_raw") -> None:
        self.dsn = dsn
        self.table = table
        self.tables = [table]
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._sql_knn: sql.Composed | None = None
        self._sql_knn_f: sql.Composed | None = None
        self.vector_oid = 0

    def _connect(self) -> psycopg.Connection[tuple[object, ...]]:
        if self._conn is None:
            conn = psycopg.connect(self.dsn, autocommit=True)
            row = conn.execute("SELECT 'vector'::regtype::oid").fetchone()
            assert row is not None
            self.vector_oid = int(str(row[0]))
            conn.adapters.register_dumper(_VectorBytes, _vector_dumper(self.vector_oid))
            self._conn = conn
        return self._conn

    def setup(self, data: Dataset) -> None:
        conn = self._connect()
        t = sql.Identifier(self.table)
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(t))
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (id text PRIMARY KEY, content text NOT NULL, "
                "metadata jsonb NOT NULL DEFAULT '{{}}', embedding vector({}) NOT NULL)"
            ).format(t, sql.Literal(data.dim))
        )
        conn.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN embedding SET STORAGE PLAIN").format(t))
        self.setup_statements()

    def setup_statements(self) -> None:
        """Compose the query statements for this table."""
        t = sql.Identifier(self.table)
        cols = sql.SQL("id, content, metadata, embedding <=> %s AS distance")
        self._sql_knn = sql.SQL("SELECT {} FROM {} ORDER BY embedding <=> %s LIMIT %s").format(
            cols, t
        )
        self._sql_knn_f = sql.SQL(
            "SELECT {} FROM {} WHERE metadata @> %s ORDER BY embedding <=> %s LIMIT %s"
        ).format(cols, t)

    def ingest(self, data: Dataset) -> None:
        conn = self._connect()
        vectors = data.embeddings()
        copy_sql = sql.SQL(
            "COPY {} (id, content, metadata, embedding) FROM STDIN (FORMAT BINARY)"
        ).format(sql.Identifier(self.table))
        block = 1000
        with conn.transaction(), conn.cursor() as cur, cur.copy(copy_sql) as copy:
            copy.set_types([TEXT_OID, TEXT_OID, JSONB_OID, self.vector_oid])
            for start in range(0, data.rows, block):
                enc = encode_block(vectors[start : start + block])
                for j, vec in enumerate(enc):
                    i = start + j
                    copy.write_row((data.ids[i], data.texts[i], Jsonb(data.metadatas[i]), vec))

    def build_index(self) -> None:
        self._connect().execute(
            sql.SQL(
                "CREATE INDEX ON {} USING hnsw (embedding vector_cosine_ops) "
                "WITH (m = {}, ef_construction = {})"
            ).format(
                sql.Identifier(self.table), sql.Literal(HNSW_M), sql.Literal(HNSW_EF_CONSTRUCTION)
            )
        )

    def query(self, vector: list[float], k: int, category: str | None) -> list[str]:
        conn = self._connect()
        assert self._sql_knn is not None and self._sql_knn_f is not None
        (vec,) = encode_block([vector])
        if category is None:
            rows = conn.execute(self._sql_knn, (vec, vec, k), prepare=True).fetchall()
        else:
            params = (vec, Jsonb({"category": category}), vec, k)
            rows = conn.execute(self._sql_knn_f, params, prepare=True).fetchall()
        return [str(r[0]) for r in rows]

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class RawIterative(RawPsycopg):
    """The same prepared statements with iterative index scans on for the session
    (``hnsw.iterative_scan = relaxed_order``), so filtered queries are complete: the raw limit
    a complete filtered search is measured against."""

    name = "raw psycopg, iterative scans (complete filtered)"

    def __init__(self, dsn: str, table: str = "bench_raw_iter") -> None:
        super().__init__(dsn, table)

    def _connect(self) -> psycopg.Connection[tuple[object, ...]]:
        fresh = self._conn is None
        conn = super()._connect()
        if fresh:
            conn.execute("SET hnsw.iterative_scan = relaxed_order")
        return conn
