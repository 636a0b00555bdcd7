"""Sparse (learned lexical) vectors: checks, the 1,000-weight cap, pgvector's wire format.

A sparse vector is a mapping of term index (0-based, e.g. a tokenizer id, as DashScope's
``sparse_embedding`` items give it) to weight. pgvector stores it as ``sparsevec(n)`` (text form
1-based, ``{1:0.5,3:0.25}/n``); an HNSW index on it holds at most
:data:`MAX_INDEXED_NONZEROS` non-zero weights a row, so written vectors keep their largest
weights up to that cap (queries are not capped: they are not indexed).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from typing import Any, Union

from ..errors import InvalidInputError

try:
    from pgvector import SparseVector
except ImportError:  # pgvector-python < 0.4 keeps the classes in pgvector.utils
    from pgvector.utils import SparseVector  # type: ignore[no-redef]

__all__ = [
    "DEFAULT_SPARSE_DIMENSION",
    "MAX_INDEXED_NONZEROS",
    "MAX_SPARSE_DIMENSION",
    "SparseLike",
    "WireSparseVector",
    "as_weights",
    "check_sparse_dimension",
    "encode_sparse",
    "query_sparse",
    "sparse_weights",
]

SparseLike = Union[Mapping[int, float], SparseVector]  # noqa: UP007 - runtime alias on 3.10

MAX_INDEXED_NONZEROS = 1000  # pgvector's HNSW limit for sparsevec
MAX_SPARSE_DIMENSION = 1_000_000_000  # pgvector's sparsevec limit
# Comfortably above the vocabularies DashScope's sparse ids come from (Qwen tokenizers have
# ~152k ids; the emulator uses 250,000). The dimension costs nothing: sparsevec stores
# (index, weight) pairs only. Recorded per table; an index >= it is refused on write.
DEFAULT_SPARSE_DIMENSION = 1_000_000

_HEAD = struct.Struct("!iii")  # dimension, non-zeros, unused


class WireSparseVector(bytes):
    """A ``sparsevec`` value in pgvector's binary format (dim, nnz, 0, int4 indices, float4)."""


def check_sparse_dimension(value: Any) -> int:
    """A valid ``sparsevec`` dimension."""
    ok = isinstance(value, int) and not isinstance(value, bool)
    if not ok or not 1 <= value <= MAX_SPARSE_DIMENSION:
        raise InvalidInputError(
            f"sparse_dimension must be an integer in 1..{MAX_SPARSE_DIMENSION}, got {value!r}"
        )
    return int(value)


def sparse_weights(value: Any, dimension: int, owner: str = "sparse vector") -> dict[int, float]:
    """``value`` (a mapping index -> weight, or a pgvector ``SparseVector``) checked: integer
    indices in ``0..dimension-1``, finite weights; zero weights dropped.

    Raises:
        InvalidInputError: another type, a bad index or a NaN / infinite weight.
    """
    if isinstance(value, SparseVector):
        if value.dimensions() != dimension:
            raise InvalidInputError(
                f"{owner} has {value.dimensions()} dimensions but the table's sparse vectors "
                f"have {dimension}: use the table's sparse_dimension"
            )
        items: Any = zip(value.indices(), value.values(), strict=True)
    elif isinstance(value, Mapping):
        items = value.items()
    else:
        raise InvalidInputError(
            f"{owner} must be a mapping of term index to weight (as EmbeddingResult.sparse "
            f"gives) or a pgvector SparseVector, got {type(value).__name__}"
        )
    out: dict[int, float] = {}
    for index, weight in items:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < dimension:
            raise InvalidInputError(
                f"{owner} has index {index!r}: indices must be integers in 0..{dimension - 1} "
                "(create the table with a larger sparse_dimension for this model)"
            )
        if isinstance(weight, bool):
            raise InvalidInputError(f"{owner} has a non-numeric weight {weight!r}")
        if not isinstance(weight, (int, float)):
            try:
                weight = float(weight)  # numpy scalars
            except (TypeError, ValueError):
                raise InvalidInputError(f"{owner} has a non-numeric weight {weight!r}") from None
        w = float(weight)
        if not math.isfinite(w):
            raise InvalidInputError(f"{owner} has a NaN or infinite weight at index {index}")
        if w != 0.0:
            out[int(index)] = w
    return out


def _capped(weights: dict[int, float], cap: int) -> list[tuple[int, float]]:
    items = list(weights.items())
    if len(items) > cap:  # keep the largest weights (ties: the lower index)
        items.sort(key=lambda iv: (-abs(iv[1]), iv[0]))
        items = items[:cap]
    items.sort()
    return items


def encode_sparse(
    value: Any, dimension: int, owner: str, cap: int = MAX_INDEXED_NONZEROS
) -> WireSparseVector:
    """The wire bytes of a checked sparse vector, keeping its ``cap`` largest weights."""
    items = _capped(sparse_weights(value, dimension, owner), cap)
    n = len(items)
    return WireSparseVector(
        _HEAD.pack(dimension, n, 0)
        + struct.pack(f"!{n}i{n}f", *(i for i, _ in items), *(w for _, w in items))
    )


def query_sparse(value: Any, dimension: int) -> SparseVector:
    """A query's sparse vector (checked, not capped) as a pgvector ``SparseVector``."""
    weights = sparse_weights(value, dimension, "the query's sparse vector")
    if not weights:
        raise InvalidInputError(
            "the query's sparse vector has no non-zero weight: nothing can match it"
        )
    return SparseVector(weights, dimension)


def as_weights(value: Any) -> dict[int, float] | None:
    """A loaded ``sparsevec`` as a mapping index -> weight (``None`` stays ``None``)."""
    if value is None:
        return None
    if isinstance(value, SparseVector):
        return dict(zip(value.indices(), value.values(), strict=True))
    return dict(value)
