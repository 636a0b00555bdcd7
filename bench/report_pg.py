"""Markdown report of a ``bench_pg.py`` run: figures and ratios side by side, targets checked."""

from __future__ import annotations

from typing import Any


def _f(v: float | None, fmt: str = "{:.2f}") -> str:
    return "—" if v is None else fmt.format(v)


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def _pick(results: list[Any], kind: str, word: str = "") -> Any:
    for r in results:
        if r.kind == kind and word in r.name and not (r.skipped or r.error):
            return r
    return None


def _full_text(r: Any) -> bool:
    """Does the system's write build a full-text column (tsvector + GIN index)?"""
    if r.kind == "ours":
        return "text_search='none'" not in r.name
    if r.kind == "anchor":
        return "full text on" in r.name
    return bool(r.kind == "diagnostic")


def _targets(results: list[Any]) -> list[str]:
    raw = _pick(results, "raw")
    diag = _pick(results, "diagnostic")
    like: list[str] = []
    other: list[str] = []

    def line(out: list[str], label: str, value: float | None, op: str, target: float) -> None:
        if value is None:
            out.append(f"- {label}: not measured")
            return
        ok = value >= target if op == ">=" else value <= target
        out.append(
            f"- {label}: **{value:.2f}x** (target {op} {target}x) — {'met' if ok else 'MISSED'}"
        )

    ours = [r for r in results if r.kind == "ours" and not (r.skipped or r.error)]
    anchors = [r for r in results if r.kind == "anchor" and not (r.skipped or r.error)]
    for o in ours:
        ft = _full_text(o)
        base = diag if ft else raw
        if base is not None:
            line(
                like,
                f"ingest, {o.name} vs {base.name} (rate ratio)",
                _ratio(base.ingest_s, o.ingest_s),
                ">=",
                0.7,
            )
        if ft and raw is not None:
            line(
                other,
                f"ingest, {o.name} (full text) vs {raw.name} (none)",
                _ratio(raw.ingest_s, o.ingest_s),
                ">=",
                0.7,
            )
        for a in anchors:
            if _full_text(a) == ft:
                out = like
            elif ft:
                out = other
            else:
                continue  # ours without full text vs an anchor building it: not a comparison
            line(
                out,
                f"ingest, {o.name} vs {a.name} (speed-up)",
                _ratio(a.ingest_s, o.ingest_s),
                ">=",
                15,
            )
        line(
            like,
            f"k=10 p50, {o.name} / raw prepared SQL",
            _ratio(o.p50_ms, raw.p50_ms if raw else None),
            "<=",
            1.3,
        )
    for a in anchors:
        r = _ratio(a.p50_ms, raw.p50_ms if raw else None)
        other.append(f"- k=10 p50, {a.name} / raw prepared SQL: {_f(r)}x (anchors: typically 3-7x)")
    return [
        "Like for like (both sides do the same write work: with or without a full-text column):",
        "",
        *like,
        "",
        "Also measured (ours' default builds the full-text column, the other side does not):",
        "",
        *other,
    ]


def render(results: list[Any], mem: list[dict[str, Any]], meta: dict[str, Any], smoke: bool) -> str:
    """Render the whole report as markdown."""
    raw = _pick(results, "raw")
    ours_lc = _pick(results, "ours", "LangChain") or _pick(results, "ours")
    head = [
        "# Vector-store benchmark (bench/bench_pg.py)" + (" — SMOKE sizes" if smoke else ""),
        "",
        f"Run {meta['started']}; PostgreSQL {meta['postgres']} + pgvector {meta['pgvector']} "
        f"(shared_buffers {meta['shared_buffers']}: every table stays cached; "
        f"maintenance_work_mem {meta['maintenance_work_mem']}, "
        f"hnsw.ef_search {meta['hnsw.ef_search']}); Python "
        f"{meta['python']}; {meta['cpus']} CPUs. One server, one process, same data for every "
        f"system: {meta['rows']:,} documents x {meta['dim']}-d precomputed unit vectors "
        "(list[float] input), cosine distance, HNSW m=16 ef_construction=64.",
        "",
    ]
    ingest = [
        f"## Ingest: {meta['rows']:,} documents, precomputed {meta['dim']}-d vectors",
        "",
        "| system | seconds | rows/s | rate ÷ raw COPY | ours (LangChain) is N x faster | "
        "rows stored | HNSW build s | runs (s) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    query = [
        "## k=10 query latency with HNSW (after ANALYZE)",
        "",
        f"{meta['queries']} queries per system after a warm-up, the systems taking turns in "
        "blocks of 10 queries (background load hits all alike); the full call through each "
        "system's public search method (raw: execute + fetchall of a prepared statement).",
        "",
        "| system | p50 ms | p95 ms | p50 ÷ raw | recall@10 vs exact | "
        "HNSW index scans / queries |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    filt = [
        "## Filtered queries: completeness (rows returned / k)",
        "",
        f'Filter `{{"category": "cN"}}` keeps 10 % of the rows; {meta["filtered_queries"]} '
        "queries per k; mean of rows returned / min(k, rows matching): 1.00 = always complete.",
        "",
        "| system | k=10 | k=50 | filtered k=10 p50 ms |",
        "| --- | ---: | ---: | ---: |",
    ]
    notes: list[str] = []
    for r in results:
        if r.skipped:
            notes.append(f"- {r.name}: skipped — {r.skipped}")
            continue
        if r.error:
            notes.append(f"- {r.name}: FAILED — {r.error}")
        rate = _ratio(r.rows_stored, r.ingest_s)
        ingest.append(
            f"| {r.name} | {_f(r.ingest_s)} | {_f(rate, '{:,.0f}')} | "
            f"{_f(_ratio(raw.ingest_s if raw else None, r.ingest_s))} | "
            f"{_f(_ratio(r.ingest_s, ours_lc.ingest_s if ours_lc else None), '{:.1f}')} | "
            f"{r.rows_stored if r.rows_stored is not None else '—'} | {_f(r.index_s)} | "
            f"{' / '.join(f'{x:.2f}' for x in r.ingest_runs) or '—'} |"
        )
        scans = "—" if r.hnsw_scans is None else f"{r.hnsw_scans} / {r.queries_run}"
        query.append(
            f"| {r.name} | {_f(r.p50_ms)} | {_f(r.p95_ms)} | "
            f"{_f(_ratio(r.p50_ms, raw.p50_ms if raw else None))} | {_f(r.recall)} | {scans} |"
        )
        filt.append(
            f"| {r.name} | {_f(r.filtered.get(10))} | {_f(r.filtered.get(50))} | "
            f"{_f(r.filtered_p50_ms)} |"
        )
    memory = [
        "## Memory: ingesting documents streamed from a generator (fresh interpreter each)",
        "",
        "| system | documents | RSS growth MB | peak RSS MB | seconds | docs/s | "
        "the vectors alone as float32 MB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for m in mem:
        if "error" in m:
            memory.append(f"| {m.get('system', '?')} | {m['rows']:,} | failed: {m['error']} |||||")
            continue
        memory.append(
            f"| {m['system']} | {m['rows']:,} | {m['rss_growth_mb']:.1f} | "
            f"{m['peak_rss_mb']:.1f} | {m['seconds']:.2f} | {m['rows'] / m['seconds']:,.0f} | "
            f"{m['rows'] * meta['dim'] * 4 / 1e6:,.1f} |"
        )
    parts = [
        *head,
        "## Targets",
        "",
        *_targets(results),
        "",
        *ingest,
        "",
        *query,
        "",
        *filt,
        "",
        *memory,
        "",
    ]
    if notes:
        parts += ["## Skipped or failed", "", *notes, ""]
    parts += [
        "Method: each system creates its table untimed, then the timed ingest is its public "
        "write call with all rows (median of 3 fresh ingests when one takes under 5 s, else one); "
        "the HNSW index is built after ingest with the system's own index call (langchain-postgres "
        "v1 has none: plain SQL); every table is ANALYZEd; HNSW scans come from "
        "pg_stat_user_indexes. Ratios: rate ÷ raw COPY > 1 is faster than raw; p50 ÷ raw < 1 is "
        "faster than raw. Ours by default also builds the full-text column (content_tsv, "
        "client-side segmentation, GIN index) on every write; the raw table and the anchors as "
        "configured here do not, nor does ours with text_search='none' (the like-for-like rows). "
        "Anchors: v1 `add_embeddings` (one multi-row INSERT), v2 `add_embeddings` with `category` "
        "as a metadata column (v2 filters only on columns), llama-index `add` of TextNodes built "
        "before the clock starts, HNSW via `hnsw_kwargs` (ef_search 40). The anchors' 'full text "
        "on' rows turn on their own hybrid search (v2: `HybridSearchConfig()` with its GIN "
        "index made before the ingest; llama-index: `hybrid_search=True`), which computes "
        "`to_tsvector('english', ...)` on the server (a Chinese sentence stays one token).",
        "",
    ]
    return "\n".join(parts)
