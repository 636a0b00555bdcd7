"""Scale-out overhead: a Citus-distributed collection (8 shards on 2 workers) beside a
single-node collection holding the same rows, one run, ratios printed.

Both tables live on the same Citus coordinator (the single-node one is a plain local table of
the coordinator), so the only difference is the distribution. Measured for each: ingest
(``PGStore.add``: COPY), HNSW build, k=10 search latency (p50 / p95) unfiltered and with a 10 %
metadata filter, recall@10 against exact search (NumPy), and throughput with 4 concurrent
clients; beside each, the same k=10 search as hand-written SQL on the same table (the limit of
what any library could do there), run alternately with ours query by query so both see the same
cache, and ours / raw.

**One 2-core machine measures overhead, not speed-up**: the coordinator and both workers
share the same two cores and the same disk, so every distributed query pays the fan-out (8
shard queries, the merge on the coordinator, extra connections) without the extra CPUs and
memory real workers bring. On N machines each worker searches its 1/N of the data in
parallel; see docs/scale.md ("Growing to N machines").

    python bench/bench_citus.py                 # 100k x 1024-d (~10 min on 2 cores)
    python bench/bench_citus.py --rows 5000 --dim 64 --queries 20   # a quick look

Citus is built from the vendored source by ``tests/_cluster.py`` (cached), the cluster runs in
a temporary directory and is removed afterwards. Results: ``bench/results/citus_<rows>.md``.
Not a test: CI runs the ``citus`` tests, not this.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from _cluster import CitusCluster  # noqa: E402
from bench_scale import Data  # noqa: E402
from qwen_pg_integrations.pg import PGStore  # noqa: E402

CLIENTS = 4


def _pct(times: list[float], p: float) -> float:
    return float(np.percentile(np.array(times) * 1000, p))


def _searches(
    store: PGStore, queries: np.ndarray, **kw: Any
) -> tuple[list[list[str]], list[float]]:
    for q in queries[:5]:  # warm
        store.search(q, k=10, **kw)
    got, times = [], []
    for q in queries:
        t0 = time.perf_counter()
        hits = store.search(q, k=10, **kw)
        times.append(time.perf_counter() - t0)
        got.append([str(h.record.id) for h in hits])
    return got, times


class _Raw:
    """The same k=10 search as hand-written SQL (pgvector's plain ``ORDER BY ... LIMIT``, values
    bound by psycopg) on one dedicated connection: what the store is compared with."""

    def __init__(self, dsn: str, table: str) -> None:
        from pgvector.psycopg import register_vector
        from psycopg import sql

        self.conn = psycopg.connect(dsn, autocommit=True)
        register_vector(self.conn)
        self.stmt = sql.SQL(
            "SELECT id, content, metadata, embedding <=> %(q)s AS distance FROM {} "
            "ORDER BY embedding <=> %(q)s LIMIT 10"
        ).format(sql.Identifier(table))

    def search(self, q: np.ndarray) -> None:
        self.conn.execute(self.stmt, {"q": q}).fetchall()


def _side_by_side(
    store: PGStore, raw: _Raw, queries: np.ndarray
) -> tuple[list[list[str]], list[float], list[float]]:
    """Ours and raw SQL per query, alternating which goes first, so both see the same cache."""
    for q in queries[:5]:  # warm
        store.search(q, k=10)
        raw.search(q)
    got, ours, rawt = [], [], []
    for n, q in enumerate(queries):
        order = (0, 1) if n % 2 == 0 else (1, 0)
        for who in order:
            t0 = time.perf_counter()
            if who == 0:
                hits = store.search(q, k=10)
                ours.append(time.perf_counter() - t0)
                got.append([str(h.record.id) for h in hits])
            else:
                raw.search(q)
                rawt.append(time.perf_counter() - t0)
    return got, ours, rawt


def _throughput(store: PGStore, queries: np.ndarray, seconds: float = 10.0) -> float:
    done = [0] * CLIENTS
    stop = time.perf_counter() + seconds

    def client(n: int) -> None:
        i = n
        while time.perf_counter() < stop:
            store.search(queries[i % len(queries)], k=10)
            done[n] += 1
            i += CLIENTS

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / seconds


def _recall(got: list[list[str]], want: list[list[str]]) -> float:
    return sum(len(set(g) & set(w[:10])) for g, w in zip(got, want, strict=True)) / (10 * len(want))


def run(rows: int, dim: int, nq: int, shards: int) -> dict[str, dict[str, float]]:
    data = Data(rows, dim, nq)
    truth = data.exact(10)
    cluster = CitusCluster().start()
    results: dict[str, dict[str, float]] = {}
    try:
        stores = {
            "single node": PGStore(
                cluster.coordinator_dsn, table_name="bench_single", text_search="none"
            ),
            f"Citus {shards} shards / 2 workers": PGStore(
                cluster.coordinator_dsn,
                table_name="bench_dist",
                text_search="none",
                distributed=True,
                shard_count=shards,
            ),
        }

        def measure(name: str, store: PGStore, r: dict[str, float]) -> None:
            raw = _Raw(cluster.coordinator_dsn, store.table_name)
            got, times, raw_times = _side_by_side(store, raw, data.queries)
            raw.conn.close()
            r["recall@10"] = _recall(got, truth)
            r["p50 ms"], r["p95 ms"] = _pct(times, 50), _pct(times, 95)
            r["raw SQL p50 ms"] = _pct(raw_times, 50)
            r["ours / raw SQL p50"] = r["p50 ms"] / r["raw SQL p50 ms"]
            _, ftimes = _searches(store, data.queries, filter={"c": 3})
            r["filtered 10% p50 ms"] = _pct(ftimes, 50)
            r[f"QPS ({CLIENTS} clients)"] = _throughput(store, data.queries)
            results[name] = r
            print(name, {k: round(v, 3) for k, v in r.items()}, flush=True)

        for name, store in stores.items():
            r: dict[str, float] = {}
            t0 = time.perf_counter()
            store.add(data.records())
            r["ingest s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            store.create_index("hnsw")
            r["index build s"] = time.perf_counter() - t0
            measure(name, store, r)
        # Citus keeps one connection per worker between transactions by default: a query
        # fanning out to 4 shards on a worker opens 3 more each time. Caching them:
        dist_name, dist = list(stores.items())[1]
        with psycopg.connect(cluster.coordinator_dsn, autocommit=True) as conn:
            conn.execute(
                f"ALTER DATABASE postgres SET citus.max_cached_conns_per_worker = {shards}"
            )
        dist.close()  # new pooled connections pick the setting up
        tuned = dict(results[dist_name])
        measure(f"{dist_name}, max_cached_conns_per_worker={shards}", dist, tuned)
        for store in stores.values():
            store.drop()
            store.close()
    finally:
        cluster.close()
    return results


def report(results: dict[str, dict[str, float]], rows: int, dim: int, nq: int) -> str:
    single, *others = list(results)
    metrics = list(results[single])
    lines = [
        f"# Citus overhead: bench/bench_citus.py ({rows:,} x {dim}-d)",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on one 2-core machine: the "
        "coordinator and both workers share its CPUs and disk, so this measures the overhead of "
        "distribution, not the speed-up N machines give. Same rows, same coordinator, same "
        f"defaults (HNSW m=16, ef_construction=64, ef_search 40); {nq} queries.",
        "",
        "| metric | "
        + " | ".join([single, *others])
        + " | "
        + " | ".join(f"({n + 1}) / single" for n in range(len(others)))
        + " |",
        "| --- |" + " ---: |" * (1 + 2 * len(others)),
    ]
    for m in metrics:
        a = results[single][m]
        vals = [results[o][m] for o in others]
        ratios = [f"{v / a:.2f}x" if a else "n/a" for v in vals]
        cells = [f"{a:.3f}", *(f"{v:.3f}" for v in vals), *ratios]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Ingest and index build of the tuned row are the same table's (only searches were "
        "re-measured after `ALTER DATABASE ... SET citus.max_cached_conns_per_worker`).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    results = run(args.rows, args.dim, args.queries, args.shards)
    text = report(results, args.rows, args.dim, args.queries)
    print(text)
    out = args.out or ROOT / "bench" / "results" / f"citus_{args.rows}.md"
    out.write_text(text, encoding="utf-8")
    print(f"(written to {out})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
