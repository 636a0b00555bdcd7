"""Maximal marginal relevance, shared by the LangChain and LlamaIndex stores."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import InvalidInputError

__all__ = ["maximal_marginal_relevance"]


def _unit_rows(matrix: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    m = np.asarray(matrix, dtype=np.float64)
    norms = np.linalg.norm(m, axis=-1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.asarray(m / norms, dtype=np.float64)


def maximal_marginal_relevance(
    query: npt.ArrayLike,
    candidates: npt.ArrayLike,
    *,
    k: int = 4,
    lambda_mult: float = 0.5,
) -> list[int]:
    """Pick ``k`` candidates that are relevant to ``query`` yet diverse among themselves.

    Each step takes the candidate maximising
    ``lambda_mult * sim(query, c) - (1 - lambda_mult) * max(sim(c, chosen))`` with cosine
    similarity. ``lambda_mult=1`` is pure relevance, ``0`` pure diversity.

    Args:
        query: the query vector, shape ``(d,)``.
        candidates: candidate vectors, shape ``(n, d)``.
        k: how many to pick (at most ``n``).
        lambda_mult: relevance/diversity trade-off in [0, 1].

    Returns:
        Indices into ``candidates`` in pick order.
    """
    if not 0.0 <= lambda_mult <= 1.0:
        raise InvalidInputError(f"lambda_mult must be in [0, 1], got {lambda_mult}")
    if k <= 0:
        raise InvalidInputError(f"k must be positive, got {k}")
    cand = np.asarray(candidates, dtype=np.float64)
    if cand.size == 0:
        return []
    if cand.ndim != 2:
        raise InvalidInputError(f"candidates must be a 2-d array, got shape {cand.shape}")
    q = np.asarray(query, dtype=np.float64).reshape(1, -1)
    if q.shape[1] != cand.shape[1]:
        raise InvalidInputError(
            f"query has {q.shape[1]} dimensions, candidates have {cand.shape[1]}"
        )
    unit = _unit_rows(cand)
    relevance = (unit @ _unit_rows(q).T).ravel()
    k = min(k, cand.shape[0])
    chosen = [int(np.argmax(relevance))]
    # running max similarity of every candidate to the chosen set
    redundancy = unit @ unit[chosen[0]]
    while len(chosen) < k:
        scores = lambda_mult * relevance - (1.0 - lambda_mult) * redundancy
        scores[chosen] = -np.inf
        nxt = int(np.argmax(scores))
        chosen.append(nxt)
        redundancy = np.maximum(redundancy, unit @ unit[nxt])
    return chosen
