"""Retrieval quality on the bundled bilingual corpus: hit@k and MRR for each retrieval stage.

The corpus (``qwen_pg_integrations/data/corpus``, 12 files, English and Chinese) is ingested
with the package's defaults; ``bench/data/retrieval_questions.json`` holds labelled questions
(English, Chinese, and some whose answer is in the other language), each with the files that
answer it. A hit at rank r = the r-th chunk comes from one of those files. Stages:

* ``dense``: vector search (DashScope text-embedding-v4, cosine, HNSW);
* ``full text``: keyword search (jieba words, ``ts_rank_cd``);
* ``hybrid``: both fused by RRF in one statement;
* ``sparse``: DashScope's sparse weights (``output_type="dense&sparse"``, stored in a pgvector
  ``sparsevec`` column with an HNSW inner-product index), searched alone;
* ``hybrid + sparse``: dense, full text and sparse fused by RRF in one statement;
* ``dense + rerank`` / ``hybrid + rerank`` / ``hybrid + sparse + rerank``: 20 candidates
  reranked by qwen3-rerank (one call).

The corpus is ingested once with ``sparse=True`` (the same embedding calls return both); the
dense, full-text and hybrid stages ignore the sparse column.

    python bench/bench_retrieval.py             # offline: the DashScope emulator
    DASHSCOPE_API_KEY=sk-... python bench/bench_retrieval.py --dashscope   # the real service

Offline numbers test the plumbing (every stage runs, ranks are computed the same way, the
reranker costs one call per question), not model quality: the emulator's embeddings and rerank
scores are word-overlap functions, not neural models. Only a ``--dashscope`` run measures the
models. Results: ``bench/results/retrieval_<offline|dashscope>.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from qwen_pg_integrations.dashscope import (  # noqa: E402
    DashScopeClient,
    EmbeddingClient,
    RerankClient,
)
from qwen_pg_integrations.data import corpus_dir  # noqa: E402
from qwen_pg_integrations.rag import RetrievedChunk  # noqa: E402
from qwen_pg_integrations.rag.flow import rerank_chunks  # noqa: E402
from qwen_pg_integrations.rag.knowledge_base import KnowledgeBase  # noqa: E402

QUESTIONS = ROOT / "bench" / "data" / "retrieval_questions.json"
TABLE = "bench_retrieval_quality"
DEPTH = 10  # ranks looked at (MRR@10)
FETCH = 20  # candidates for the reranker


@contextlib.contextmanager
def _service(online: bool) -> Iterator[dict[str, Any]]:
    if online:
        yield {}
        return
    from qwen_pg_integrations.testing import DashScopeEmulator

    with DashScopeEmulator() as emu:
        yield {"api_key": emu.api_key, "base_url": emu.base_url, "emulator": emu}


def _source(chunk: RetrievedChunk) -> str:
    return Path(str(chunk.metadata.get("source", ""))).name


def _metrics(ranked: list[list[RetrievedChunk]], labels: list[set[str]]) -> dict[str, float]:
    firsts = []
    for chunks, wanted in zip(ranked, labels, strict=True):
        rank = next((i for i, c in enumerate(chunks[:DEPTH], 1) if _source(c) in wanted), None)
        firsts.append(rank)
    n = len(firsts)
    out = {f"hit@{k}": sum(1 for r in firsts if r is not None and r <= k) / n for k in (1, 3, 5)}
    out["MRR@10"] = sum(1 / r for r in firsts if r is not None) / n
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--dashscope", action="store_true", help="use the real service (needs a key)")
    ap.add_argument("--dsn", default=None, help="PostgreSQL (default: the embedded server)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    data = json.loads(QUESTIONS.read_text(encoding="utf-8"))["questions"]
    questions = [d["q"] for d in data]
    labels = [set(d["sources"]) for d in data]
    kind = "dashscope" if args.dashscope else "offline"
    with _service(args.dashscope) as svc:
        emu = svc.pop("emulator", None)
        kb = KnowledgeBase.open(args.dsn, table_name=TABLE, chat_model=None, **svc)
        kb.store.drop()
        kb = KnowledgeBase.open(args.dsn, table_name=TABLE, chat_model=None, sparse=True, **svc)
        dense_kb = KnowledgeBase(kb.store, EmbeddingClient(client=DashScopeClient(**svc)))
        try:
            summary = kb.ingest([corpus_dir()])
            reranker = RerankClient(client=DashScopeClient(**svc))
            stages: dict[str, Callable[[str], list[RetrievedChunk]]] = {
                "dense": lambda q: kb.search(q, k=DEPTH, mode="vector"),
                "full text": lambda q: kb.search(q, k=DEPTH, mode="text"),
                "hybrid": lambda q: dense_kb.search(q, k=DEPTH, mode="hybrid"),
                "sparse": lambda q: kb.search(q, k=DEPTH, mode="sparse"),
                "hybrid + sparse": lambda q: kb.search(q, k=DEPTH, mode="hybrid"),
                "dense + rerank": lambda q: list(
                    rerank_chunks(reranker, q, kb.search(q, k=FETCH, mode="vector"), DEPTH)
                ),
                "hybrid + rerank": lambda q: list(
                    rerank_chunks(reranker, q, dense_kb.search(q, k=FETCH, mode="hybrid"), DEPTH)
                ),
                "hybrid + sparse + rerank": lambda q: list(
                    rerank_chunks(reranker, q, kb.search(q, k=FETCH, mode="hybrid"), DEPTH)
                ),
            }
            rows = []
            for name, run in stages.items():
                before = len(emu.requests_for("rerank")) if emu else 0
                times, ranked = [], []
                for q in questions:
                    t0 = time.perf_counter()
                    ranked.append(run(q))
                    times.append((time.perf_counter() - t0) * 1000)
                calls = (len(emu.requests_for("rerank")) - before) / len(questions) if emu else None
                rows.append((name, _metrics(ranked, labels), statistics.median(times), calls))
        finally:
            kb.store.drop()
            kb.close()
    lines = [
        f"# Retrieval quality ({kind}): bench/bench_retrieval.py",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {len(questions)} labelled "
        f"questions over the bundled corpus ({summary.files} files, {summary.chunks} chunks, "
        "default chunking); a hit = a chunk from a file that answers the question.",
        "",
        (
            "**Offline: the DashScope emulator.** Its embeddings and rerank scores are word-"
            "overlap functions, so these figures test the plumbing (every stage runs end to "
            "end; the reranker costs one call per question), not model quality. Run with "
            "`--dashscope` and a key to measure the models."
            if not args.dashscope
            else "**DashScope**: text-embedding-v4 (1024-d) and qwen3-rerank."
        ),
        "",
        "| stage | hit@1 | hit@3 | hit@5 | MRR@10 | p50 ms | rerank calls / question |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, m, p50, calls in rows:
        c = "n/a" if calls is None else f"{calls:.2f}"
        lines.append(
            f"| {name} | {m['hit@1']:.3f} | {m['hit@3']:.3f} | {m['hit@5']:.3f} | "
            f"{m['MRR@10']:.3f} | {p50:.1f} | {c} |"
        )
    report = "\n".join(lines) + "\n"
    print(report)
    out = args.out or ROOT / "bench" / "results" / f"retrieval_{kind}.md"
    out.write_text(report, encoding="utf-8")
    print(f"(written to {out})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
