"""Framework-free record types shared by the LangChain and LlamaIndex adapters."""

from __future__ import annotations

import datetime as _dt
import enum
import json
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np
import numpy.typing as npt

from ..errors import InvalidInputError

__all__ = [
    "Distance",
    "EmbeddingLike",
    "Record",
    "SearchHit",
    "check_id",
    "check_text",
    "clean_metadata",
    "dumps_metadata",
    "stable_id",
]

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
        sparse_embedding: Sparse weights (term index, 0-based -> weight, e.g.
            :attr:`EmbeddingResult.sparse <qwen_pg_integrations.types.EmbeddingResult.sparse>`),
            for tables with sparse vectors; the largest 1,000 are stored.
    """

    id: str | None
    content: str
    metadata: Mapping[str, Any] = field(default_factory=dict)
    embedding: EmbeddingLike | None = None
    sparse_embedding: Mapping[int, float] | None = None


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


_MAX_META_DEPTH = 100
_NONE = type(None)


def check_text(value: str, what: str) -> str:
    """``value`` without NUL characters (PostgreSQL text cannot hold them), refused when it
    cannot be encoded as UTF-8 (lone surrogates such as ``"\\ud800"``)."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidInputError(
                f"{what} is not valid Unicode text: it holds a lone surrogate "
                f"({value[exc.start : exc.end]!r} at position {exc.start}), which UTF-8 cannot "
                "encode. Decode the source with errors='replace' (or 'surrogatepass' and fix "
                "it), then add it again."
            ) from None
    return value


def check_id(value: Any) -> str:
    """A row id: a non-empty string without NUL characters or lone surrogates."""
    if not isinstance(value, str) or not value:
        raise InvalidInputError(f"ids must be non-empty strings, got {value!r}")
    if "\x00" in value:
        raise InvalidInputError(
            f"id {value!r} contains a NUL character, which PostgreSQL text cannot hold; ids "
            "are kept exactly, so remove it yourself"
        )
    return check_text(value, f"id {value!r}")


def _clean(value: Any, where: str, depth: int) -> Any:
    """``value`` as plain JSON data (see :func:`dumps_metadata` for the rules)."""
    t = type(value)
    if t is str:
        return check_text(value, where)
    if t is int or t is bool or t is _NONE:
        return value
    if isinstance(value, float):  # float, np.float64
        if not math.isfinite(value):
            raise InvalidInputError(
                f"{where} is {value}: JSON (and jsonb) cannot hold NaN or Infinity; store "
                "None or a string instead"
            )
        return float(value)
    if depth > _MAX_META_DEPTH:
        raise InvalidInputError(
            f"{where} is nested deeper than {_MAX_META_DEPTH} levels (a reference cycle?)"
        )
    if isinstance(value, Mapping):
        return _clean_mapping(value, where, depth + 1)
    if isinstance(value, (list, tuple)):
        return [_clean(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, (set, frozenset)):
        return [_clean(v, f"{where}[]", depth + 1) for v in sorted(value, key=str)]
    if isinstance(value, bool):  # np.bool_ is not a bool, handled by np.generic below
        return bool(value)
    if isinstance(value, int):  # IntEnum and other int subclasses: their number
        return int(value)
    if isinstance(value, str):  # str subclasses (StrEnum ...): their text
        return check_text(str.__str__(value), where)
    if isinstance(value, np.generic):
        return _clean(value.item(), where, depth + 1)
    if isinstance(value, np.ndarray):
        return _clean(value.tolist(), where, depth + 1)
    if isinstance(value, (_dt.date, _dt.time)):  # as filters compare them (ISO 8601)
        return value.isoformat()
    return check_text(str(value), where)  # Decimal, UUID, bytes, objects: their text


def _clean_mapping(meta: Mapping[Any, Any], where: str, depth: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    original: dict[str, str] = {}
    for key, value in meta.items():
        if not isinstance(key, str):
            raise InvalidInputError(
                f"{where} has the key {key!r} ({type(key).__name__}): metadata keys must be "
                "strings (JSON would turn it into a string and it could collide with another "
                f"key); use {str(key)!r}"
            )
        name = check_text(str.__str__(key), f"key {key!r} of {where}")
        if name in out:
            raise InvalidInputError(
                f"{where} has the keys {original[name]!r} and {key!r}, which are the same once "
                "the NUL characters PostgreSQL cannot store are removed: rename one of them"
            )
        original[name] = key
        out[name] = _clean(value, f"{where}[{name!r}]", depth)
    return out


def _plain(meta: Mapping[str, Any]) -> bool:
    """True for the common flat metadata of strings, ints, bools and None without NUL: it is
    stored as it is (no copy)."""
    if type(meta) is not dict:
        return False
    for key, value in meta.items():
        if type(key) is not str or "\x00" in key or not key.isascii():
            return False
        t = type(value)
        if t is str:
            if "\x00" in value:
                return False
        elif not (t is int or t is bool or t is _NONE):
            return False
    return True


def _encodable(meta: Mapping[str, Any]) -> bool:
    for value in meta.values():
        if type(value) is str and not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return False  # the full check names the key
    return True


def clean_metadata(metadata: Any, *, owner: str | None = None) -> dict[str, Any]:
    """``metadata`` as plain JSON data, checked (the rules of :func:`dumps_metadata`)."""
    whose = f"metadata of {owner}" if owner else "metadata"
    if not isinstance(metadata, Mapping):
        raise InvalidInputError(
            f"{whose} must be a mapping (dict) with string keys, got {type(metadata).__name__}"
        )
    return _clean_mapping(metadata, whose, 0)


def dumps_metadata(metadata: Mapping[str, Any], *, owner: str | None = None) -> str:
    """Serialise metadata as JSON for jsonb.

    The rules, the same for every store:

    * keys must be strings (a number key would become a string and could collide);
    * strings (keys and values) lose their NUL characters, which PostgreSQL cannot store;
      two keys that become equal that way are refused;
    * strings that UTF-8 cannot encode (lone surrogates) are refused;
    * NaN and Infinity are refused (JSON has no such numbers);
    * values JSON cannot hold are stored as text: dates and times in ISO 8601 (as filters
      compare them), others as ``str(value)`` (Decimals, UUIDs, bytes, objects); sets become
      sorted lists, NumPy values numbers and lists.

    Args:
        metadata: a mapping with string keys.
        owner: who the metadata belongs to (e.g. ``"record 'a1'"``), named in errors.

    Raises:
        InvalidInputError: any of the refusals above, a value nested deeper than 100 levels
            (a reference cycle), or metadata that is not a mapping.
    """
    if _plain(metadata) and _encodable(metadata):  # the common case: nothing to convert
        return json.dumps(metadata, ensure_ascii=False)
    return json.dumps(clean_metadata(metadata, owner=owner), ensure_ascii=False, allow_nan=False)


def stable_id(content: str, metadata: Mapping[str, Any]) -> str:
    """A deterministic id for content + metadata, so re-ingesting the same chunk is idempotent."""
    return stable_id_of_json(check_text(content, "content"), dumps_metadata(metadata))


def stable_id_of_json(content: str, metadata_json: str) -> str:
    """:func:`stable_id` of checked content and metadata already serialised by
    :func:`dumps_metadata`."""
    payload = json.dumps(
        {"content": content, "metadata": json.loads(metadata_json)},
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
    try:
        arr = np.asarray(embedding, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"an embedding must be a list of numbers, got {type(embedding).__name__} ({exc})"
        ) from None
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
