"""Deterministic benchmark data: documents with precomputed, normalised embeddings.

Every system in ``bench_pg.py`` gets exactly the same rows: the same ids (UUID strings, because
langchain-postgres v2 accepts nothing else), texts (half English, half Chinese), metadata and
vectors (``list[float]``, the shape an embedding client returns).  The vectors are clustered
(centroids plus noise) so an HNSW graph behaves as it does on real embeddings; the metadata
``category`` is independent of the clusters, so a filter on it is a real post-filter for an
approximate index.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

NAMESPACE = uuid.UUID("6f1d2c4e-1a6b-4c1e-9a55-0b8d1c0a7e42")
LATENT = 48  # intrinsic dimension of the synthetic embeddings
CATEGORIES = 10  # a ``{"category": "c3"}`` filter keeps 10 % of the rows
WORDS = [
    *("postgres", "vector", "index", "query", "embedding", "qwen", "model", "table", "search"),
    *("filter", "document", "chunk", "answer", "context", "metadata", "store", "memory"),
    *("latency", "cluster", "graph", "neighbour", "distance", "cosine"),
]
WORDS_ZH = [
    *("向量", "检索", "数据库", "通义千问", "模型", "索引", "查询", "文档", "元数据", "过滤"),
    *("相似度", "嵌入", "知识库", "回答", "上下文", "阿里云", "云原生", "延迟", "内存", "聚类"),
]


@dataclass
class Dataset:
    """Rows for the ingest and the query phases.

    Attributes:
        ids: One UUID string per row.
        texts: One short text per row.
        metadatas: One metadata dict per row (``category``, ``n``, ``source``).
        vectors: Unit-length float32 vectors, shape ``(rows, dim)``.
        queries: Unit-length query vectors, shape ``(queries, dim)``.
    """

    ids: list[str]
    texts: list[str]
    metadatas: list[dict[str, object]]
    vectors: np.ndarray
    queries: np.ndarray
    _lists: list[list[float]] | None = field(default=None, repr=False)

    @property
    def rows(self) -> int:
        """Number of documents."""
        return len(self.ids)

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return int(self.vectors.shape[1])

    def embeddings(self) -> list[list[float]]:
        """The vectors as ``list[list[float]]`` (built once, outside every timed region)."""
        if self._lists is None:
            self._lists = self.vectors.tolist()
        return self._lists


def doc_id(i: int) -> str:
    """Stable UUID string of row ``i``."""
    return str(uuid.uuid5(NAMESPACE, f"doc-{i}"))


def doc_text(i: int, rng: np.random.Generator) -> str:
    """A short pseudo-sentence for row ``i``: English for even rows, Chinese for odd rows."""
    if i % 2:
        return f"文档 {i}：" + "".join(str(w) for w in rng.choice(WORDS_ZH, size=24)) + "。"
    return f"document {i}: " + " ".join(str(w) for w in rng.choice(WORDS, size=24))


def doc_metadata(i: int) -> dict[str, object]:
    """Metadata of row ``i``; ``category`` cycles through ``CATEGORIES`` values."""
    return {"category": f"c{i % CATEGORIES}", "n": i, "source": f"file-{i // 100}.txt"}


def _unit(a: np.ndarray) -> np.ndarray:
    out: np.ndarray = (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)
    return out


def make_dataset(rows: int, dim: int, queries: int, seed: int = 7) -> Dataset:
    """Build ``rows`` documents and ``queries`` query vectors deterministically.

    Args:
        rows: Number of documents.
        dim: Vector dimension.
        queries: Number of query vectors (drawn near the data, as real questions are).
        seed: Random seed.

    Returns:
        The dataset.
    """
    rng = np.random.default_rng(seed)
    # Real embeddings have a low intrinsic dimension: clusters in a LATENT-d space, projected to
    # ``dim`` with a little full-rank noise.
    proj = rng.standard_normal((LATENT, dim)).astype(np.float32) / np.sqrt(LATENT)
    centroids = rng.standard_normal((max(1, rows // 40), LATENT)).astype(np.float32)
    assign = rng.integers(0, len(centroids), size=rows)
    latent = centroids[assign] + 0.5 * rng.standard_normal((rows, LATENT)).astype(np.float32)
    vectors = _unit(latent @ proj + 0.05 * rng.standard_normal((rows, dim)).astype(np.float32))
    picks = rng.integers(0, rows, size=queries)
    q_latent = latent[picks] + 0.3 * rng.standard_normal((queries, LATENT)).astype(np.float32)
    qv = _unit(q_latent @ proj)
    return Dataset(
        ids=[doc_id(i) for i in range(rows)],
        texts=[doc_text(i, rng) for i in range(rows)],
        metadatas=[doc_metadata(i) for i in range(rows)],
        vectors=vectors,
        queries=qv,
    )


def stream_documents(
    rows: int, dim: int, seed: int = 11
) -> Iterator[tuple[str, str, dict[str, object], list[float]]]:
    """Yield ``(id, text, metadata, embedding)`` one at a time, never holding more than one block.

    Used by the memory probe: the whole set (100,000 x 1024 floats is 400 MB as float32, several GB
    as Python lists) never exists at once, so any growth in RSS is the store's own buffering.
    """
    rng = np.random.default_rng(seed)
    block = 256
    for start in range(0, rows, block):
        n = min(block, rows - start)
        vecs = _unit(rng.standard_normal((n, dim)).astype(np.float32))
        for j in range(n):
            i = start + j
            yield doc_id(i), doc_text(i, rng), doc_metadata(i), vecs[j].tolist()


def exact_neighbours(data: Dataset, query: np.ndarray, k: int, category: str | None) -> list[str]:
    """Exact cosine top-k ids (ground truth for recall), optionally within one category."""
    scores = data.vectors @ query
    if category is not None:
        mask = np.array([m["category"] == category for m in data.metadatas])
        scores = np.where(mask, scores, -np.inf)
    top = np.argsort(-scores)[:k]
    return [data.ids[i] for i in top if np.isfinite(scores[i])]
