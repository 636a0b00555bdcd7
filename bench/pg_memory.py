"""Memory probe, run by ``bench_pg.py`` in a fresh interpreter per measurement.

Ingests ``--rows`` documents streamed from a generator (``pg_data.stream_documents``) and prints
one JSON line: RSS before, peak RSS during (sampled every 5 ms) and the growth.  ``--system raw``
streams the rows through a hand-written COPY (the floor); ``--system ours`` uses our store.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from pg_data import stream_documents
from pg_raw import JSONB_OID, TEXT_OID, encode_block

Doc = tuple[str, str, dict[str, object], list[float]]
_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """Current resident set size of this process."""
    with open("/proc/self/statm", encoding="ascii") as fh:
        return int(fh.read().split()[1]) * _PAGE


class PeakSampler(threading.Thread):
    """Samples RSS until stopped and keeps the maximum."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = rss_bytes()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(0.005)

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        self.peak = max(self.peak, rss_bytes())
        return self.peak


def ingest_raw(dsn: str, table: str, dim: int, docs: Iterator[Doc]) -> Callable[[], None]:
    """Prepare a raw streaming COPY; returns the callable that does the ingest."""
    conn = psycopg.connect(dsn, autocommit=True)
    t = sql.Identifier(table)
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(t))
    conn.execute(
        sql.SQL(
            "CREATE TABLE {} (id text PRIMARY KEY, content text NOT NULL, metadata jsonb NOT NULL, "
            "embedding vector({}) NOT NULL)"
        ).format(t, sql.Literal(dim))
    )

    def run() -> None:
        from pg_raw import _vector_dumper, _VectorBytes

        row = conn.execute("SELECT 'vector'::regtype::oid").fetchone()
        assert row is not None
        vector_oid = int(str(row[0]))
        conn.adapters.register_dumper(_VectorBytes, _vector_dumper(vector_oid))
        stmt = sql.SQL("COPY {} (id, content, metadata, embedding) FROM STDIN (FORMAT BINARY)")
        with conn.transaction(), conn.cursor() as cur, cur.copy(stmt.format(t)) as copy:
            copy.set_types([TEXT_OID, TEXT_OID, JSONB_OID, vector_oid])
            for doc_id, text, meta, vec in docs:
                (enc,) = encode_block([vec])
                copy.write_row((doc_id, text, Jsonb(meta), enc))
        conn.close()

    return run


def ingest_ours(dsn: str, table: str, dim: int, docs: Iterator[Doc]) -> Callable[[], None]:
    """Prepare our store's streaming add; returns the callable that does the ingest."""
    import pg_ours

    return pg_ours.streaming_ingest(dsn, table, dim, docs)


def main() -> int:
    """Measure one ingest and print a JSON line."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--rows", type=int, required=True)
    ap.add_argument("--dim", type=int, required=True)
    ap.add_argument("--system", choices=["raw", "ours"], required=True)
    args = ap.parse_args()
    table = f"bench_mem_{args.system}"
    docs = stream_documents(args.rows, args.dim)
    prepare = ingest_raw if args.system == "raw" else ingest_ours
    try:
        run = prepare(args.dsn, table, args.dim, docs)
    except Exception as exc:
        print(json.dumps({"system": args.system, "rows": args.rows, "error": repr(exc)[:200]}))
        return 0
    before = rss_bytes()
    sampler = PeakSampler()
    sampler.start()
    t0 = time.perf_counter()
    run()
    seconds = time.perf_counter() - t0
    peak = sampler.stop()
    with psycopg.connect(args.dsn, autocommit=True) as conn:
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
        stored = int(row.fetchone()[0])  # type: ignore[index]
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))
    print(
        json.dumps(
            {
                "system": args.system,
                "rows": args.rows,
                "stored": stored,
                "seconds": seconds,
                "rss_before_mb": before / 1e6,
                "peak_rss_mb": peak / 1e6,
                "rss_growth_mb": (peak - before) / 1e6,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
