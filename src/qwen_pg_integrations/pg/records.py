"""Framework-free record types shared by the LangChain and LlamaIndex adapters."""

from __future__ import annotations

import enum
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np
import numpy.typing as npt

from ..errors import InvalidInputError

__all__ = ["Distance", "EmbeddingLike", "Record", "SearchHit", "dumps_metadata", "stable_id"]

EmbeddingLike = Union[Sequence[float], npt.NDArray[Any]]  # noqa: UP007 - runtime alias on 3.10

_ID_NAMESPACE = uuid.UUID("6f0e5d1c-3a57-4d4e-9a52-7bb1c0de5a11")


class Distance(str, enum.Enum):
    """The distance a table is searched by (fixed per table, recorded in the catalog)."""

    COSINE = "cosine"
    L2 = "l2"
    INNER_PRODUCT = "inner_product"

    @classmethod
    def parse(cls, value: Distance | str) -> Distance:
        """Accept the enum or a common spelling (``"euclidean"``, ``"ip"``, ``"dot"``...)."""
        if isinstance(value, Distance):
            return value
        key = str(value).strip().lower().replace("-", "_").replace(" ", "_")
        aliases = {
            "cosine": cls.COSINE,
            "cos": cls.COSINE,
            "l2": cls.L2,
            "euclidean": cls.L2,
            "euclidean_distance": cls.L2,
            "inner_product": cls.INNER_PRODUCT,
            "ip": cls.INNER_PRODUCT,
            "dot": cls.INNER_PRODUCT,
            "dot_product": cls.INNER_PRODUCT,
            "max_inner_product": cls.INNER_PRODUCT,
        }
        if key not in aliases:
            raise InvalidInputError(
                f"Unknown distance {value!r}: use 'cosine', 'l2' or 'inner_product'."
            )
        return aliases[key]

    def score(self, distance: float) -> float:
        """Relevance in [0, 1] (higher is closer) for a raw pgvector distance."""
        if self is Distance.COSINE:
            return min(1.0, max(0.0, 1.0 - distance))
        if self is Distance.L2:
            return 1.0 / (1.0 + max(0.0, distance))
        return min(1.0, max(0.0, -distance))

    def max_distance(self, score_threshold: float) -> float | None:
        """The largest raw distance whose :meth:`score` is at least ``score_threshold``.

        ``None`` means every row qualifies (threshold <= 0).
        """
        if score_threshold <= 0:
            return None
        if self is Distance.COSINE:
            return 1.0 - score_threshold
        if self is Distance.L2:
            return 1.0 / score_threshold - 1.0
        return -score_threshold


@dataclass(frozen=True)
class Record:
    """One stored chunk.

    Attributes:
        id: The row id; ``None`` on writes means :func:`stable_id` of content and metadata.
        content: The chunk text.
        metadata: JSON-serialisable metadata (stored as jsonb).
        embedding: The vector; required for writes, returned on reads only when asked for.
    """

    id: str | None
    content: str
    metadata: Mapping[str, Any] = field(default_factory=dict)
    embedding: EmbeddingLike | None = None


@dataclass(frozen=True)
class SearchHit:
    """A search result.

    Attributes:
        record: The matching record.
        score: Relevance in [0, 1], higher is better (see :meth:`Distance.score`).
        distance: The raw pgvector distance; ``None`` for hits found by full-text search only.
    """

    record: Record
    score: float
    distance: float | None


def _default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=str)
    return str(obj)


def dumps_metadata(metadata: Mapping[str, Any], *, owner: str | None = None) -> str:
    """Serialise metadata as JSON for jsonb (non-JSON values become strings).

    Args:
        metadata: a mapping with string keys.
        owner: who the metadata belongs to (e.g. ``"record 'a1'"``), named in errors.

    Raises:
        InvalidInputError: not a mapping, non-string keys (other than numbers, booleans and
            ``None``, which JSON turns into strings), NaN/Infinity, or a reference cycle.
    """
    whose = f"metadata of {owner}" if owner else "metadata"
    if not isinstance(metadata, Mapping):
        raise InvalidInputError(
            f"{whose} must be a mapping (dict) with string keys, got {type(metadata).__name__}"
        )
    try:
        text = json.dumps(metadata, ensure_ascii=False, allow_nan=False, default=_default)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidInputError(
            f"{whose} cannot be stored as JSON ({exc}): metadata must be JSON-like (string "
            "keys, finite numbers, no reference cycles)."
        ) from exc
    # PostgreSQL text and jsonb cannot hold NUL characters.
    return text.replace("\\u0000", "")


def stable_id(content: str, metadata: Mapping[str, Any]) -> str:
    """A deterministic id for content + metadata, so re-ingesting the same chunk is idempotent."""
    payload = json.dumps(
        {"content": content, "metadata": json.loads(dumps_metadata(metadata))},
        ensure_ascii=False,
        sort_keys=True,
        separators=(",", ":"),
    )
    return str(uuid.uuid5(_ID_NAMESPACE, payload))


def check_vector(
    embedding: EmbeddingLike, dimension: int | None, dtype: npt.DTypeLike = np.float32
) -> npt.NDArray[np.float32]:
    """The embedding as a float32 array (``dtype``: another 4-byte float layout, e.g. the
    big-endian ``">f4"`` of the wire format), checked for shape and finiteness."""
    arr = np.asarray(embedding, dtype=dtype)
    if arr.ndim != 1 or arr.size == 0:
        raise InvalidInputError(
            f"an embedding must be a non-empty 1-d vector, got shape {arr.shape}"
        )
    if dimension is not None and arr.size != dimension:
        raise InvalidInputError(
            f"embedding has {arr.size} dimensions but this table stores {dimension}; "
            "use the same embedding model and dimension as the table, or another table."
        )
    if not np.isfinite(arr).all():
        raise InvalidInputError("embedding contains NaN or infinite values")
    return arr
