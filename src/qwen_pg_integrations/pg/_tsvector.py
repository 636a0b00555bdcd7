"""Client-built ``tsvector`` values in PostgreSQL's binary wire format.

With client-side segmentation the words are already known, so the ``tsvector`` is built here
and COPied (binary) with the row: no ``to_tsvector`` on the server and no second pass over
the data. The format is the one ``tsvector_send``/``tsvector_recv`` use: lexeme count, then per
lexeme the UTF-8 bytes, a NUL, the number of positions and the positions (sorted, unique).
"""

from __future__ import annotations

import struct
from typing import Any

from psycopg.adapt import Dumper
from psycopg.pq import Format

__all__ = ["TSVECTOR_OID", "TsVector", "TsVectorDumper", "tsvector_binary"]

TSVECTOR_OID = 3614  # built-in type oid, identical on every server
_MAX_LEXEME_BYTES = 2047  # MAXSTRLEN
_MAX_POSITIONS = 256  # MAXNUMPOS
_MAX_POSITION = 16383  # MAXENTRYPOS - 1
_MAX_TOTAL_BYTES = 1_000_000  # below MAXSTRPOS (1 MB of lexeme text)


class TsVector(bytes):
    """A ``tsvector`` already encoded in the binary wire format."""


class TsVectorDumper(Dumper):
    """Dumps :class:`TsVector` as binary ``tsvector`` (register it on a connection)."""

    format = Format.BINARY
    oid = TSVECTOR_OID

    def dump(self, obj: Any) -> bytes:
        return bytes(obj)


_COUNT = struct.Struct("!i")
_ONE_POSITION = struct.Struct("!xHH")  # NUL after the lexeme, npos = 1, the position


def tsvector_binary(words: list[str]) -> TsVector:
    """The binary ``tsvector`` of ``words`` (positions 1..n), like ``to_tsvector('simple', ...)``
    of the words joined by spaces."""
    positions: dict[str, list[int]] = {}
    for i, word in enumerate(words, 1):
        pos = positions.get(word)
        if pos is None:
            positions[word] = [i]
        elif len(pos) < _MAX_POSITIONS:
            pos.append(i)
    if len(words) > _MAX_POSITION:  # positions saturate at 16383 and must stay increasing
        for pos in positions.values():
            clamped = sorted({min(p, _MAX_POSITION) for p in pos})
            pos[:] = clamped
    entries = sorted((w.encode(), p) for w, p in positions.items())  # bytewise lexeme order
    out = bytearray()
    count = total = 0
    for lex, pos in entries:
        if len(lex) > _MAX_LEXEME_BYTES or total + len(lex) > _MAX_TOTAL_BYTES:
            continue
        total += len(lex)
        count += 1
        out += lex
        if len(pos) == 1:
            out += _ONE_POSITION.pack(1, pos[0])
        else:
            out += struct.pack(f"!xH{len(pos)}H", len(pos), *pos)
    return TsVector(_COUNT.pack(count) + out)
