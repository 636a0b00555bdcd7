"""Vectors already in pgvector's binary wire format, for COPY.

The write path turns each caller vector into its wire bytes once, as the record joins its
batch (one NumPy conversion from the caller's list or array, checks included), instead of
keeping a float32 array that pgvector's dumper converts again per row during COPY. The
dumpers registered here pass those bytes through and hand anything else to the dumper
pgvector registered for the type, so a caller's own COPY on the same connection behaves as
before.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
from psycopg.adapt import Dumper
from psycopg.pq import Format
from psycopg.types import TypeInfo

__all__ = [
    "WireHalfVector",
    "WireVector",
    "encode_vector",
    "encode_vectors",
    "register_wire_dumpers",
]

_HEAD = struct.Struct("!HH")  # dimension, unused


class WireVector(bytes):
    """A ``vector`` value in pgvector's binary format (dimension, 0, float4 big-endian)."""


class WireHalfVector(bytes):
    """A ``halfvec`` value in pgvector's binary format (dimension, 0, float2 big-endian)."""


def encode_vector(arr: np.ndarray[Any, Any], halfvec: bool) -> bytes:
    """The wire bytes of a checked 1-d float32 (or big-endian float4) array."""
    if halfvec:
        return WireHalfVector(_HEAD.pack(arr.size, 0) + arr.astype(">f2").tobytes())
    if arr.dtype.str != ">f4":
        arr = arr.astype(">f4")
    return WireVector(_HEAD.pack(arr.size, 0) + arr.tobytes())


def encode_vectors(block: np.ndarray[Any, Any], halfvec: bool) -> list[bytes]:
    """The wire bytes of each row of a checked 2-d float32 (or big-endian float4) block."""
    head = _HEAD.pack(block.shape[1], 0)
    wire: type[bytes] = WireHalfVector if halfvec else WireVector
    data = block.astype(">f2" if halfvec else ">f4", copy=False)
    return [wire(head + row.tobytes()) for row in data]


def _passthrough(base: type[Dumper], wire: type[bytes]) -> type[Dumper]:
    class WireDumper(base):  # type: ignore[misc, valid-type]
        format = Format.BINARY

        def dump(self, obj: Any) -> Any:
            if isinstance(obj, wire):
                return obj
            return super().dump(obj)

    return WireDumper


def register_wire_dumpers(
    conn: Any, vector: TypeInfo, halfvec: TypeInfo | None, sparsevec: TypeInfo | None = None
) -> None:
    """Register the pass-through dumpers (after pgvector's ``register_*_info``)."""
    from .sparse import WireSparseVector

    adapters = conn.adapters
    pairs: tuple[tuple[TypeInfo | None, type[bytes]], ...] = (
        (vector, WireVector),
        (halfvec, WireHalfVector),
        (sparsevec, WireSparseVector),
    )
    for info, wire in pairs:
        if info is None:
            continue
        base = adapters.get_dumper_by_oid(info.oid, Format.BINARY)
        adapters.register_dumper(wire, _passthrough(base, wire))
