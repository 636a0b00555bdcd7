"""Write plans: record checks, batch rows, COPY (direct or staged) and the upsert."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.types.json import Jsonb

from ..errors import InvalidInputError, SchemaMismatchError

try:
    from pgvector import HalfVector
except ImportError:  # pgvector-python < 0.4 keeps the classes in pgvector.utils
    from pgvector.utils import HalfVector  # type: ignore[no-redef]
from ._plan import Copy, Exec, Plan
from ._tsvector import tsvector_binary
from ._wire import encode_vector, encode_vectors
from .filters import Params
from .queries import (
    direct_copy_sql,
    existing_ids_sql,
    stage_copy_sql,
    stage_ddl,
    stage_truncate_sql,
    upsert_from_stage_sql,
)
from .records import Record, check_id, check_text, check_vector, dumps_metadata, stable_id_of_json
from .schema import TableSpec
from .sparse import encode_sparse
from .text import segment

__all__ = ["RowBatch", "build_rows", "vector_param", "write_plan"]

_SAVEPOINT = sql.SQL("SAVEPOINT qwen_pg_direct_copy")
_ROLLBACK_TO = sql.SQL("ROLLBACK TO SAVEPOINT qwen_pg_direct_copy")
_RELEASE = sql.SQL("RELEASE SAVEPOINT qwen_pg_direct_copy")


_VECTOR_BLOCK = 256  # vectors converted together (bounded: ~8 MB of Python floats at 1024-d)


def _identity(text: Any) -> str:
    return str(text)


def vector_param(spec: TableSpec, arr: Any) -> Any:
    """The query/row value for the table's column type (halfvec needs its own class)."""
    return HalfVector(arr) if spec.vector_type == "halfvec" else arr


class RowBatch:
    """Checked rows of one write batch, built record by record so the caller's records (and their
    vectors, often lists of Python floats) can be freed as soon as they are read.

    Later duplicates of an id win. Rows hold the vector in its wire format (4 bytes a dimension,
    so a batch stays small whatever the caller's vectors were) and the text; :func:`_copy_rows`
    adds the tsvector while COPY streams.
    """

    def __init__(self, spec: TableSpec) -> None:
        self.spec = spec
        self.by_id: dict[str, list[Any]] = {}
        self.ids: list[str] = []
        self._pending: list[tuple[list[Any], Any, str]] = []  # (row, embedding, owner)
        self._halfvec = spec.vector_type == "halfvec"
        self._sparse_dim = spec.sparse_dimension
        # one conversion from the caller's lists: straight to the wire's big-endian float4
        # (halfvec rounds through float32, as pgvector's own conversion does)
        self._dtype: Any = np.float32 if self._halfvec else ">f4"

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, rec: Record) -> None:
        """Check one record and add its row (vectors are converted a block at a time)."""
        if not isinstance(rec, Record):
            raise InvalidInputError(f"expected Record, got {type(rec).__name__}")
        if not isinstance(rec.content, str):
            raise InvalidInputError(f"content must be a string, got {type(rec.content).__name__}")
        if rec.embedding is None:
            raise InvalidInputError(f"record {rec.id!r} has no embedding")
        owner = f"record {rec.id!r}" if rec.id is not None else f"record {rec.content[:40]!r}"
        if rec.metadata is not None and not isinstance(rec.metadata, Mapping):
            raise InvalidInputError(
                f"metadata of {owner} must be a mapping (dict) with string keys, got "
                f"{type(rec.metadata).__name__}"
            )
        meta = rec.metadata or {}
        meta_json = dumps_metadata(meta, owner=owner)
        # NUL removed (PostgreSQL text cannot hold it), lone surrogates refused
        content = check_text(rec.content, f"the text of {owner}")
        rid = check_id(rec.id) if rec.id is not None else stable_id_of_json(content, meta_json)
        self.by_id.pop(rid, None)
        row: list[Any] = [rid, content, Jsonb(meta_json, dumps=_identity), None]
        if self._sparse_dim is not None:
            sparse = getattr(rec, "sparse_embedding", None)
            row.append(
                None
                if sparse is None
                else encode_sparse(sparse, self._sparse_dim, f"the sparse vector of {owner}")
            )
        elif getattr(rec, "sparse_embedding", None) is not None:
            spec = self.spec
            raise SchemaMismatchError(
                f"{owner} has a sparse vector but table {spec.schema}.{spec.table} stores none: "
                "open the store with sparse_dimension=... (the column is added to the table), "
                "or leave sparse_embedding out."
            )
        self.by_id[rid] = row
        self.ids.append(rid)
        self._pending.append((row, rec.embedding, owner))
        if len(self._pending) >= _VECTOR_BLOCK:
            self._convert()

    def _convert(self) -> None:
        """The pending vectors to wire bytes: one NumPy conversion for the whole block (a
        tenth of the per-row cost for lists of Python floats), checked for shape and NaN."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        try:
            block = np.asarray([e for _, e, _ in pending], dtype=self._dtype)
        except (ValueError, TypeError):  # ragged or not numbers: find the culprit
            block = None
        if block is None or block.ndim != 2 or block.shape[1] != self.spec.dimension:
            for row, embedding, owner in pending:
                row[3] = self._one(embedding, owner)
            return
        finite = np.isfinite(block).all(axis=1)
        if not finite.all():
            owner = pending[int(np.argmin(finite))][2]
            raise InvalidInputError(f"embedding of {owner} contains NaN or infinite values")
        for (row, _, _), wire in zip(pending, encode_vectors(block, self._halfvec), strict=True):
            row[3] = wire

    def _one(self, embedding: Any, owner: str) -> bytes:
        try:
            arr = check_vector(embedding, None, self._dtype)
        except InvalidInputError as exc:
            raise InvalidInputError(f"{owner}: {exc}") from None
        if arr.size != self.spec.dimension:
            spec = self.spec
            raise SchemaMismatchError(
                f"embedding of {owner} has {arr.size} dimensions but table {spec.schema}."
                f"{spec.table} stores {spec.dimension}: use the embedding model and dimension "
                "the table was made with, or another table_name."
            )
        return encode_vector(arr, self._halfvec)

    def rows(self) -> list[list[Any]]:
        """The rows, one per id, in id order (code points, i.e. bytewise UTF-8 = ``COLLATE
        "C"``): concurrent writers of overlapping ids lock rows in the same order."""
        self._convert()
        by_id = self.by_id
        return [by_id[rid] for rid in sorted(by_id)]


def build_rows(spec: TableSpec, records: Iterable[Record]) -> tuple[list[list[Any]], list[str]]:
    """Rows for ``records`` as one batch, and the ids in input order."""
    batch = RowBatch(spec)
    for rec in records:
        batch.add(rec)
    return batch.rows(), batch.ids


def _copy_rows(spec: TableSpec, rows: Sequence[Sequence[Any]]) -> Iterator[tuple[Any, ...]]:
    seg = spec.client_segmentation
    server_side = not spec.client_tsvector  # the upsert runs to_tsvector on this text
    for row in rows:
        content = row[1]
        tsv: Any = tsvector_binary(segment(content)) if seg else content if server_side else None
        yield (*row, tsv)


def _row_types(spec: TableSpec) -> tuple[str, ...]:
    last = "tsvector" if spec.client_tsvector else "text"
    sparse = ("sparsevec",) if spec.sparse else ()
    return ("text", "text", "jsonb", spec.vector_type, *sparse, last)


def _staged_upsert(spec: TableSpec, rows: Sequence[Sequence[Any]]) -> Plan[None]:
    yield Exec(stage_ddl(spec))
    yield Exec(stage_truncate_sql(spec))
    yield Copy(stage_copy_sql(spec), _row_types(spec), _copy_rows(spec, rows))
    p = Params()
    yield Exec(upsert_from_stage_sql(spec, p), p.values)


def write_plan(spec: TableSpec, rows: Sequence[Sequence[Any]]) -> Plan[None]:
    """Write one batch (run it in one transaction).

    Rows whose ids are stored already are COPied (binary) into a staging table and merged with
    one ``INSERT ... ON CONFLICT (id) DO UPDATE``. With client-side segmentation (or no full
    text) the rows are complete (tsvector included, or NULL), so a batch of new ids only is
    COPied straight into the table; if a concurrent writer adds one of those ids meanwhile,
    the batch falls back to the upsert. Rows are written in id order either way.
    """
    if not spec.client_tsvector:
        yield from _staged_upsert(spec, rows)
        return
    p = Params()
    found = yield Exec(existing_ids_sql(spec, p, [r[0] for r in rows]), p.values, fetch="all")
    if found:
        # some ids are stored: the whole batch goes through the upsert, so its rows are
        # locked in one id order (a direct COPY of the new ones first, then the upsert of
        # the others, would lock out of order and deadlock with a concurrent writer)
        yield from _staged_upsert(spec, rows)
        return
    yield Exec(_SAVEPOINT)
    try:
        yield Copy(direct_copy_sql(spec), _row_types(spec), _copy_rows(spec, rows))
    except pg_errors.UniqueViolation:  # a concurrent writer added one of these ids meanwhile
        yield Exec(_ROLLBACK_TO)
        yield from _staged_upsert(spec, rows)
    else:
        yield Exec(_RELEASE)
