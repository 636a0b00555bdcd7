"""Deterministic embeddings: feature hashing of words and character n-grams.

Each text becomes a bag of features -- lower-cased Latin words (weight 1.0; common English
function words 0.25), character trigrams of those words (0.35), CJK characters (0.6) and CJK
character bigrams (1.0) -- hashed with a keyed BLAKE2 into signed buckets and L2-normalised.
Same text, same vector; texts that share words or characters are close.

Like a real embedding model's (DashScope text-embedding-v3/v4), the vectors share a common
direction, so cosine similarities sit in realistic ranges instead of near 0: with
:data:`BASELINE` = 0.35 every pair scores ``0.35 + 0.65 * lexical``, i.e. unrelated texts about
0.35-0.42 and on-topic question/chunk pairs about 0.5-0.7 on the bundled corpus, so thresholds
written for the service (0.45-0.5) behave the same offline. ``text_type`` does not change the
vector, so query/document similarity works as it does with the service.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from ._text import CJK_CHAR

__all__ = ["BASELINE", "embed_texts", "sparse_features"]

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_CJK_RUN = re.compile(CJK_CHAR.pattern + "+")
BASELINE = 0.35  # the cosine similarity of two texts with nothing in common
_FUNCTION_WORDS = frozenset(
    (  # noqa: SIM905 - a word list reads best as text
        "a an the is are was were be been it its of to in on for and or with by as at from  "
        "that this what which how does do did can could should would will i you we they he  "
        "she my your our their there here not no yes so if then than about into over under  "
        "also"
    ).split()
)


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
        add("w:" + word, 0.25 if word in _FUNCTION_WORDS else 1.0)
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
    lexical = np.zeros(dimension, dtype=np.float64)
    np.add.at(lexical, buckets, signs * weights)
    # coordinate 0 is the shared direction (cos = BASELINE + (1 - BASELINE) * lexical cos);
    # the lexical part lives in the other coordinates
    lexical[0] = 0.0
    norm = float(np.linalg.norm(lexical))
    vec = lexical * (np.sqrt(1.0 - BASELINE) / norm) if norm > 0 else lexical
    vec[0] = np.sqrt(BASELINE)
    return vec


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
