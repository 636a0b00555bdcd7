"""Deterministic embeddings: feature hashing of words and character n-grams.

Each text becomes a bag of features -- lower-cased Latin words (weight 1.0), character trigrams of
those words (0.35), CJK characters (0.6) and CJK character bigrams (1.0) -- hashed with a keyed
BLAKE2 into ``dimension`` signed buckets and L2-normalised. Same text, same vector; texts that
share words or characters have a high cosine similarity; unrelated texts are close to orthogonal.
``text_type`` does not change the vector, so query/document similarity works as it does with the
service.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from ._text import CJK_CHAR

__all__ = ["embed_texts", "sparse_features"]

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_CJK_RUN = re.compile(CJK_CHAR.pattern + "+")


def _features(text: str) -> dict[str, float]:
    lowered = text.lower()
    feats: dict[str, float] = {}

    def add(key: str, weight: float) -> None:
        feats[key] = feats.get(key, 0.0) + weight

    for run in _CJK_RUN.findall(lowered):
        for i, ch in enumerate(run):
            add("c:" + ch, 0.6)
            if i + 1 < len(run):
                add("b:" + run[i : i + 2], 1.0)
    latin = _CJK_RUN.sub(" ", lowered)
    for word in _WORD.findall(latin):
        add("w:" + word, 1.0)
        padded = f"<{word}>"
        for i in range(len(padded) - 2):
            add("g:" + padded[i : i + 3], 0.35)
    # A faint whole-text feature keeps distinct texts (e.g. case variants) from colliding exactly.
    add("t:" + text, 0.05)
    return feats


@lru_cache(maxsize=65536)
def _digest(feature: str) -> int:
    raw = hashlib.blake2b(feature.encode("utf-8"), digest_size=8, key=b"qwen-pg-emu").digest()
    return int.from_bytes(raw, "little")


def _vector(text: str, dimension: int) -> npt.NDArray[np.float64]:
    feats = _features(text)
    digests = np.fromiter((_digest(f) for f in feats), dtype=np.uint64, count=len(feats))
    weights = np.fromiter(feats.values(), dtype=np.float64, count=len(feats))
    buckets = (digests % np.uint64(dimension)).astype(np.intp)
    signs = np.where((digests >> np.uint64(63)) == 1, -1.0, 1.0)
    vec = np.zeros(dimension, dtype=np.float64)
    np.add.at(vec, buckets, signs * weights)
    norm = float(np.linalg.norm(vec))
    return vec / norm if norm > 0 else vec


def embed_texts(texts: list[str], dimension: int) -> list[list[float]]:
    """Unit vectors of ``dimension`` floats, one per text, rounded to 7 decimals for the wire."""
    if not texts:
        return []
    matrix = np.vstack([_vector(t, dimension) for t in texts])
    rounded: list[list[float]] = np.round(matrix, 7).tolist()
    return rounded


def sparse_features(text: str, limit: int = 64) -> list[dict[str, object]]:
    """The ``sparse_embedding`` items of the service shape: ``{"index", "value", "token"}``."""
    feats = [(k, v) for k, v in _features(text).items() if k[0] in "wcb"]
    feats.sort(key=lambda kv: (-kv[1], kv[0]))
    total = sum(v for _, v in feats[:limit]) or 1.0
    return [
        {"index": _digest(k) % 250_000, "value": round(v / total, 6), "token": k[2:]}
        for k, v in feats[:limit]
    ]
