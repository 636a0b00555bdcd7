"""Vector index plans: sized builds, quantized indexes, the catalog record, build progress.

An HNSW build keeps its graph in ``maintenance_work_mem``; when the graph outgrows it, pgvector
goes on on disk, several times slower. :func:`graph_bytes` estimates the graph from the row count
and the element size (the indexed value plus its neighbour lists), and the build asks for that
much, capped by a fraction of the server's memory when the server lets us read it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from psycopg import sql

from ..errors import InvalidInputError
from ._plan import Exec, Plan
from .filters import Params
from .queries import set_local_sql, settings_sql
from .schema import CATALOG_TABLE, ServerInfo, TableSpec, check_quantization, index_ddl

__all__ = [
    "IndexBuild",
    "IndexProgress",
    "build_settings",
    "graph_bytes",
    "index_plan",
    "progress_plan",
]

MIN_BUILD_MEMORY = 64 << 20
DEFAULT_MEMORY_CAP = 1 << 30  # when the server's memory cannot be read
_ELEMENT_OVERHEAD = 200  # bytes of an in-memory HNSW element besides its value and neighbours
_NEIGHBOUR_BYTES = 16  # one neighbour candidate (item pointer, distance) in the build graph

_ROWS_SQL = sql.SQL(
    "SELECT c.reltuples::bigint, pg_relation_size(c.oid) FROM pg_class c "
    "WHERE c.oid = format('%%I.%%I', %(s)s::text, %(t)s::text)::regclass"
)
_MEMINFO_SQL = sql.SQL(
    "SELECT CASE WHEN pg_has_role('pg_read_server_files', 'MEMBER') "
    "THEN pg_read_file('/proc/meminfo', 0, 200) END"
)
_PROGRESS_SQL = sql.SQL(
    "SELECT p.pid, p.phase, p.blocks_done, p.blocks_total, p.tuples_done, p.tuples_total, "
    "i.relname::text FROM pg_stat_progress_create_index p "
    "LEFT JOIN pg_class i ON i.oid = p.index_relid "
    "WHERE p.relid = format('%%I.%%I', %(s)s::text, %(t)s::text)::regclass"
)


@dataclass(frozen=True)
class IndexBuild:
    """How an index was (to be) built.

    Attributes:
        name: the index name.
        quantization: ``None``, ``"halfvec"`` or ``"binary"``.
        rows: the row estimate the sizing used.
        maintenance_work_mem: what the build asked for (``None``: the server's setting).
        estimated_graph_bytes: the estimated in-memory HNSW graph (0 for IVFFlat).
    """

    name: str
    quantization: str | None
    rows: int
    maintenance_work_mem: str | None
    estimated_graph_bytes: int


@dataclass(frozen=True)
class IndexProgress:
    """One running ``CREATE INDEX`` on the table (``pg_stat_progress_create_index``).

    Attributes:
        pid: the building backend.
        phase: e.g. ``"building index: loading tuples"``.
        tuples_done, tuples_total: tuples processed (HNSW: inserted into the graph).
        blocks_done, blocks_total: table blocks scanned.
        index: the index name.
    """

    pid: int
    phase: str
    tuples_done: int
    tuples_total: int
    blocks_done: int
    blocks_total: int
    index: str | None

    @property
    def fraction(self) -> float | None:
        """Done so far, 0..1 (``None`` while the phase has no totals)."""
        if self.tuples_total > 0:
            return min(1.0, self.tuples_done / self.tuples_total)
        if self.blocks_total > 0:
            return min(1.0, self.blocks_done / self.blocks_total)
        return None


def value_bytes(spec: TableSpec, quantization: str | None) -> int:
    """Bytes of one indexed value (vector, halfvec or bit code, with its header)."""
    if quantization == "binary":
        return 8 + math.ceil(spec.dimension / 8)
    if quantization == "halfvec" or spec.vector_type == "halfvec":
        return 8 + 2 * spec.dimension
    return 8 + 4 * spec.dimension


def graph_bytes(spec: TableSpec, rows: int, *, m: int, quantization: str | None) -> int:
    """Estimated size of the HNSW graph pgvector builds in memory for ``rows`` rows.

    An element holds its value, ``2 m`` layer-0 neighbour candidates (16 bytes each) and about
    200 bytes of bookkeeping. Measured with pgvector 0.8 (the row count at which its "graph no
    longer fits" notice appears, m = 16, 1024 dims): 4,818 bytes a row for vector, 2,765 for
    halfvec, 842 for binary codes; this formula gives 4,816 / 2,768 / 848, plus 5 % margin.
    """
    element = value_bytes(spec, quantization) + 2 * m * _NEIGHBOUR_BYTES + _ELEMENT_OVERHEAD
    return int(rows * element * 1.05)


def _mem_total(meminfo: str | None) -> int | None:
    if not meminfo:
        return None
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            parts = line.split()
            try:
                return int(parts[1]) * 1024
            except (IndexError, ValueError):
                return None
    return None


def _size(nbytes: int) -> str:
    return f"{max(1, nbytes >> 20)}MB"


def build_settings(
    spec: TableSpec,
    kind: str,
    *,
    rows: int,
    m: int,
    quantization: str | None,
    maintenance_work_mem: str | None,
    memory_fraction: float,
    server_memory: int | None,
    workers: int | None,
) -> tuple[dict[str, str], int]:
    """The settings of one build and the estimated graph bytes (pure: unit-testable)."""
    if not 0 < memory_fraction <= 1:
        raise InvalidInputError(f"memory_fraction must be in (0, 1], got {memory_fraction!r}")
    out: dict[str, str] = {}
    estimate = graph_bytes(spec, rows, m=m, quantization=quantization) if kind == "hnsw" else 0
    if maintenance_work_mem == "auto":
        cap = int(server_memory * memory_fraction) if server_memory else DEFAULT_MEMORY_CAP
        want = max(MIN_BUILD_MEMORY, estimate if kind == "hnsw" else MIN_BUILD_MEMORY * 4)
        out["maintenance_work_mem"] = _size(min(want, max(cap, MIN_BUILD_MEMORY)))
    elif maintenance_work_mem:
        out["maintenance_work_mem"] = str(maintenance_work_mem)
    if workers is not None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
            raise InvalidInputError(f"workers must be a whole number >= 0, got {workers!r}")
        out["max_parallel_maintenance_workers"] = str(workers)
    return out, estimate


def index_plan(
    spec: TableSpec,
    server: ServerInfo,
    kind: str,
    *,
    m: int,
    ef_construction: int,
    lists: int | None,
    maintenance_work_mem: str | None,
    quantization: str | None = None,
    concurrently: bool = False,
    memory_fraction: float = 0.25,
    workers: int | None = None,
) -> Plan[IndexBuild]:
    """Create the vector index, record its quantization in the catalog, then ANALYZE.

    Runs in a transaction (settings ``SET LOCAL``), except with ``concurrently``, which
    PostgreSQL refuses inside one: the settings are then set for the session and reset after.
    """
    kind = kind.lower()
    quant = check_quantization(quantization, server)
    p = Params()
    size = yield Exec(_ROWS_SQL, {"s": spec.schema, "t": spec.table}, fetch="one")
    rows = int(size[0]) if size is not None else -1
    if rows < 0:  # never analyzed: count
        counted = yield Exec(sql.SQL("SELECT count(*) FROM {}").format(spec.ident), fetch="one")
        rows = int(counted[0])
    memory = None
    if maintenance_work_mem == "auto" and kind == "hnsw":
        info = yield Exec(_MEMINFO_SQL, fetch="one")
        memory = _mem_total(info[0] if info else None)
    # a distributed table builds one index per shard (several at a time on each worker):
    # size each build for its shard
    shard_rows = rows // max(1, spec.shard_count or 1) if spec.distributed else rows
    settings, estimate = build_settings(
        spec,
        kind,
        rows=shard_rows,
        m=m,
        quantization=quant,
        maintenance_work_mem=maintenance_work_mem,
        memory_fraction=memory_fraction,
        server_memory=memory,
        workers=workers,
    )
    name, stmt = index_ddl(
        spec,
        server,
        kind,
        m=m,
        ef_construction=ef_construction,
        lists=lists,
        row_count=rows,
        quantization=quant,
        concurrently=concurrently,
    )
    if settings and spec.distributed and not concurrently:  # reaches every shard's build
        for set_stmt in set_local_sql(settings):
            yield Exec(set_stmt)
    elif settings:
        yield Exec(settings_sql(p, settings, local=not concurrently), p.values, fetch="one")
    try:
        yield Exec(stmt)
    finally:
        if concurrently:  # session settings: give the connection back as it was
            for setting in settings:
                yield Exec(sql.SQL("RESET {}").format(sql.Identifier(setting)))
    yield Exec(
        sql.SQL(
            "UPDATE {} SET quantization = %(q)s WHERE schema_name = %(s)s AND table_name = %(t)s"
        ).format(sql.Identifier(spec.schema, CATALOG_TABLE)),
        {"q": quant, "s": spec.schema, "t": spec.table},
    )
    yield Exec(sql.SQL("ANALYZE {}").format(spec.ident))
    return IndexBuild(name, quant, rows, settings.get("maintenance_work_mem"), estimate)


def quantized(spec: TableSpec, build: IndexBuild) -> TableSpec:
    """The spec searches use after ``build``."""
    return replace(spec, quantization=build.quantization)  # type: ignore[arg-type]


def progress_plan(spec: TableSpec) -> Plan[list[IndexProgress]]:
    """The running index builds on the table."""
    rows: Any = yield Exec(_PROGRESS_SQL, {"s": spec.schema, "t": spec.table}, fetch="all")
    return [
        IndexProgress(
            pid=int(r[0]),
            phase=str(r[1]),
            blocks_done=int(r[2] or 0),
            blocks_total=int(r[3] or 0),
            tuples_done=int(r[4] or 0),
            tuples_total=int(r[5] or 0),
            index=r[6],
        )
        for r in rows
    ]
