"""The phases of a run: ingest (each system), then queries interleaved across systems.

The machine is shared, so load changes during a run. Fast ingests are repeated in rounds across
systems (median of 3), and every query phase rotates through all systems in blocks of ten
queries, so a burst of background load hits every system alike, not whichever ran then.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import psycopg
from psycopg import sql

from pg_common import System
from pg_data import CATEGORIES, Dataset, exact_neighbours

BLOCK = 10  # queries a system runs back to back before the next system's turn
REPEAT_BELOW_S = 5.0  # ingests faster than this are repeated (median of 3); slower ones run once


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
    filtered: dict[int, float] = field(default_factory=dict)  # k -> mean completeness
    filtered_p50_ms: float | None = None
    hnsw_scans: int | None = None
    queries_run: int = 0


@dataclass
class Entry:
    """A system in the run and its result."""

    system: System
    res: Result
    alive: bool = True
    lat: list[float] = field(default_factory=list)
    recalls: list[float] = field(default_factory=list)
    flat: list[float] = field(default_factory=list)
    fracs: dict[int, list[float]] = field(default_factory=dict)


def _fail(e: Entry, exc: BaseException) -> None:
    first = str(exc).splitlines()[0][:160] if str(exc) else ""
    e.res.error = f"{type(exc).__name__}: {first}"
    e.alive = False
    print(f"  {e.res.name}: FAILED {e.res.error}", flush=True)
    with contextlib.suppress(Exception):
        e.system.close()


def quiet_sql(dsn: str, statement: str) -> None:
    """Run a maintenance statement; failures (e.g. no CHECKPOINT privilege) are ignored."""
    with contextlib.suppress(psycopg.Error), psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(statement)  # type: ignore[arg-type]


def count_rows(dsn: str, tables: list[str]) -> int:
    """Rows stored in ``tables`` (the anchors' tables hold only this run's collection)."""
    total = 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        for t in tables:
            q = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(t))
            row = conn.execute(q).fetchone()
            total += int(row[0]) if row else 0
    return total


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


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _ingest_once(e: Entry, data: Dataset, dsn: str) -> None:
    try:
        e.system.setup(data)
        quiet_sql(dsn, "CHECKPOINT")
        e.res.ingest_runs.append(_timed(lambda: e.system.ingest(data)))
        print(f"  {e.res.name}: ingest {e.res.ingest_runs[-1]:.2f} s", flush=True)
    except Exception as exc:  # an anchor failing is a finding, not a crash of the benchmark
        _fail(e, exc)


def ingest_phase(entries: list[Entry], data: Dataset, repeats: int, dsn: str) -> None:
    """Every system once; fast ones again in rounds; then counts, index builds and ANALYZE."""
    for e in entries:
        _ingest_once(e, data, dsn)
    fast = [e for e in entries if e.alive and e.res.ingest_runs[-1] <= REPEAT_BELOW_S]
    for _ in range(repeats - 1):
        for e in fast:
            if e.alive:
                with contextlib.suppress(Exception):
                    e.system.close()
                _ingest_once(e, data, dsn)
    for e in entries:
        if not e.alive:
            continue
        try:
            e.res.ingest_s = statistics.median(e.res.ingest_runs)
            e.res.rows_stored = count_rows(dsn, e.system.tables)
            e.res.index_s = _timed(e.system.build_index)
            for t in e.system.tables:
                quiet_sql(dsn, f'ANALYZE "{t}"')
        except Exception as exc:
            _fail(e, exc)


def _rotation(entries: list[Entry], i: int) -> list[Entry]:
    n = len(entries)
    return [entries[(i + j) % n] for j in range(n)] if n else []


def _blocks(items: range, size: int = BLOCK) -> list[range]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _call(e: Entry, vector: list[float], k: int, category: str | None) -> list[str] | None:
    try:
        t0 = time.perf_counter()
        ids = e.system.query(vector, k, category)
        ms = (time.perf_counter() - t0) * 1000
    except Exception as exc:
        _fail(e, exc)
        return None
    e.res.queries_run += 1
    if category is None and k == 10:
        e.lat.append(ms)
    elif k == 10:
        e.flat.append(ms)
    return ids


def query_phase(
    entries: list[Entry], data: Dataset, queries: int, filtered: int, warmup: int
) -> None:
    """Warm-up, then k=10 and filtered queries, rotating through the systems block by block."""
    live = [e for e in entries if e.alive]
    qvecs = data.queries.tolist()
    for e in live:
        for q in qvecs[:warmup]:
            if e.alive and _call(e, q, 10, None) is not None:
                e.lat.clear()
    truths = [
        set(exact_neighbours(data, data.queries[i % len(qvecs)], 10, None)) for i in range(queries)
    ]
    for b, block in enumerate(_blocks(range(queries))):
        for e in _rotation(live, b):
            for i in block:
                qi = i % len(qvecs)
                if e.alive and (ids := _call(e, qvecs[qi], 10, None)) is not None:
                    e.recalls.append(len(truths[i] & set(ids)) / len(truths[i]))
    for k in (10, 50):
        cases = [(i % len(qvecs), f"c{i % CATEGORIES}") for i in range(filtered)]
        # rows that can be returned: min(k, rows matching the filter)
        possible = [len(exact_neighbours(data, data.queries[qi], k, c)) for qi, c in cases]
        for b, block in enumerate(_blocks(range(filtered))):
            for e in _rotation(live, b):
                for i in block:
                    qi, cat = cases[i]
                    if e.alive and (ids := _call(e, qvecs[qi], k, cat)) is not None:
                        frac = min(len(ids), possible[i]) / possible[i]
                        e.fracs.setdefault(k, []).append(frac)
    for e in live:
        if e.alive:
            e.res.p50_ms = statistics.median(e.lat)
            e.res.p95_ms = float(np.percentile(e.lat, 95))
            e.res.recall = statistics.fmean(e.recalls)
            e.res.filtered = {k: statistics.fmean(v) for k, v in e.fracs.items()}
            e.res.filtered_p50_ms = statistics.median(e.flat)


def finish(entries: list[Entry], dsn: str) -> None:
    """Close every system, then read how often each one's HNSW index was scanned."""
    for e in entries:
        with contextlib.suppress(Exception):
            e.system.close()
    time.sleep(0.5)
    for e in entries:
        with contextlib.suppress(Exception):
            e.res.hnsw_scans = hnsw_scans(dsn, e.system.tables)
