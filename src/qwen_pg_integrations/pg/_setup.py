"""The setup plan: pgvector present and recent enough, catalog row, table created or checked."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import psycopg
from psycopg import sql

from .. import __version__
from ..errors import (
    ExtensionError,
    InvalidInputError,
    QwenPGWarning,
    SchemaMismatchError,
    StorageError,
    TableNotFoundError,
)
from ._plan import Exec, Plan
from .records import Distance
from .schema import (
    CATALOG_TABLE,
    MIN_PGVECTOR,
    NO_TEXT_SEARCH,
    QUANTIZATIONS,
    ServerInfo,
    TableSpec,
    VectorType,
    catalog_ddl,
    check_sparse,
    choose_vector_type,
    distribute_ddl,
    parse_version,
    regclass_text,
    sparse_column_ddl,
    table_ddl,
)

__all__ = ["Requested", "setup_plan"]

_SERVER_SQL = sql.SQL(
    "SELECT current_setting('server_version_num')::int, current_schema(), "
    "(SELECT extversion FROM pg_extension WHERE extname = 'vector'), "
    "(SELECT default_version FROM pg_available_extensions WHERE name = 'vector'), "
    "ARRAY(SELECT c.cfgname::text FROM pg_ts_config c JOIN pg_ts_parser p ON p.oid = c.cfgparser "
    "WHERE p.prsname IN ('zhparser', 'jieba') ORDER BY c.cfgname), current_database(), "
    "current_user, (SELECT extversion FROM pg_extension WHERE extname = 'citus')"
)
_DIST_SQL = sql.SQL(
    "SELECT (SELECT count(*) FROM pg_dist_shard s WHERE s.logicalrelid = p.logicalrelid) "
    "FROM pg_dist_partition p "
    "WHERE p.logicalrelid = format('%%I.%%I', %(s)s::text, %(t)s::text)::regclass"
)
_TRUNCATE_LOCAL_SQL = sql.SQL("SELECT truncate_local_data_after_distributing_table({})")
_LOCK_SQL = sql.SQL("SELECT pg_advisory_xact_lock(hashtext('qwen_pg_integrations.setup'))")
_EXT_SQL = sql.SQL("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
_REGCONFIG_SQL = sql.SQL(
    "SELECT c.oid FROM pg_ts_config c JOIN pg_namespace n ON n.oid = c.cfgnamespace "
    "WHERE (c.cfgname = %(c)s AND pg_ts_config_is_visible(c.oid)) "
    "OR n.nspname || '.' || c.cfgname = %(c)s LIMIT 1"
)
_REGCLASS_SQL = sql.SQL("SELECT to_regclass(format('%%I.%%I', %(s)s::text, %(t)s::text))")
_COLUMN_SQL = sql.SQL(
    "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
    "WHERE a.attrelid = format('%%I.%%I', %(s)s::text, %(t)s::text)::regclass "
    "AND a.attnum > 0 AND NOT a.attisdropped"
)
_CATALOG_COLUMNS = (
    "schema_name",
    "table_name",
    "embedding_model",
    "dimension",
    "distance",
    "vector_type",
    "text_search",
    "package_version",
    "sparse_dimension",
)


@dataclass(frozen=True)
class Requested:
    """What the caller asked for (``None`` / ``"auto"``: take it from the catalog or decide)."""

    table: str
    schema: str | None
    dimension: int | None
    distance: Distance | None  # None: the catalog's, cosine for a new table
    embedding_model: str | None
    text_search: str
    vector_type: str
    create_table: bool
    sparse_dimension: int | None = None  # None: the table's (no sparse column for a new one)
    distributed: bool = False  # a new table is sharded with Citus (an existing one: as it is)
    shard_count: int | None = None


def _ext_error(
    db: str, user: str, available: str | None, err: BaseException | None
) -> ExtensionError:
    if available is None:
        return ExtensionError(
            "pgvector is not installed on this PostgreSQL server: install it (e.g. the "
            "postgresql-<version>-pgvector package, or enable the 'vector' extension in the "
            "PolarDB / RDS console), then run CREATE EXTENSION vector in database "
            f"{db!r}."
        )
    why = f" ({str(err).strip().splitlines()[0]})" if err is not None else ""
    return ExtensionError(
        f"pgvector {available} is installed on the server but not enabled in database {db!r}, "
        f"and role {user!r} may not create it{why}: ask a superuser (or the database owner on "
        "PolarDB / RDS) to run CREATE EXTENSION vector in that database, or grant the privilege."
    )


def _not_found(schema: str, table: str, why: str) -> TableNotFoundError:
    return TableNotFoundError(
        f"table {schema}.{table} does not exist ({why}): add documents to it first (a store "
        "opened with create_table=True creates it), or check table_name and schema_name.",
        schema=schema,
        table=table,
    )


def _fmt(v: tuple[int, int, int]) -> str:
    return ".".join(map(str, v))


def _mismatch(spec_row: TableSpec, req: Requested) -> None:
    problems = []
    if req.dimension is not None and req.dimension != spec_row.dimension:
        problems.append(f"dimension {spec_row.dimension} (asked for {req.dimension})")
    if req.distance is not None and req.distance != spec_row.distance:
        problems.append(f"distance {spec_row.distance.value!r} (asked for {req.distance.value!r})")
    if (
        req.embedding_model
        and spec_row.embedding_model
        and req.embedding_model != spec_row.embedding_model
    ):
        problems.append(
            f"embedding model {spec_row.embedding_model!r} (asked for {req.embedding_model!r})"
        )
    if req.text_search != "auto" and req.text_search != spec_row.text_search:
        problems.append(f"text search {spec_row.text_search!r} (asked for {req.text_search!r})")
    if req.vector_type != "auto" and req.vector_type != spec_row.vector_type:
        problems.append(f"vector type {spec_row.vector_type!r} (asked for {req.vector_type!r})")
    if problems:
        raise SchemaMismatchError(
            f"table {spec_row.schema}.{spec_row.table} was created with "
            + ", ".join(problems)
            + ": vectors of different models or settings cannot be compared. Use the same "
            "settings, or another table_name (or drop the table to re-ingest)."
        )


_HAS_COLUMNS_SQL = sql.SQL(
    "SELECT array_agg(attname::text) FROM pg_attribute WHERE attrelid = "
    "format('%%I.%%I', %(s)s::text, %(t)s::text)::regclass "
    "AND attname IN ('quantization', 'sparse_dimension') AND NOT attisdropped"
)
_LATER_COLUMNS = (("quantization", "text"), ("sparse_dimension", "integer"))


def _catalog_later_columns(
    schema: str, cat: sql.Identifier, read_only: bool
) -> Plan[sql.Composable]:
    """The catalog columns added after its first release (``quantization``,
    ``sparse_dimension``), added to older catalogs under the setup lock; a read-only store
    reads NULL for a missing one instead."""
    row = yield Exec(_HAS_COLUMNS_SQL, {"s": schema, "t": CATALOG_TABLE}, fetch="one")
    present = set(row[0] or ()) if row else set()
    cols: list[sql.Composable] = []
    for name, kind in _LATER_COLUMNS:
        if name not in present and read_only:
            cols.append(sql.SQL("NULL::{}").format(sql.SQL(kind)))
            continue
        if name not in present:
            yield Exec(
                sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
                    cat, sql.Identifier(name), sql.SQL(kind)
                )
            )
        cols.append(sql.Identifier(name))
    return sql.SQL(", ").join(cols)


def _sparse_of_catalog(
    spec: TableSpec, req: Requested, server: ServerInfo, read_only: bool, table_exists: bool
) -> Plan[TableSpec]:
    """A catalogued table asked for sparse vectors it does not have yet: add the column (and
    its index) and record it; refuse a different sparse dimension."""
    want = req.sparse_dimension
    if want is None or want == spec.sparse_dimension:
        return spec
    where = f"table {spec.schema}.{spec.table}"
    if spec.sparse_dimension is not None:
        raise SchemaMismatchError(
            f"{where} stores sparse vectors of dimension {spec.sparse_dimension} (asked for "
            f"{want}): leave sparse_dimension out to use the table's, or use another table_name."
        )
    if read_only:
        raise SchemaMismatchError(
            f"{where} has no sparse vectors and the store was opened with create_table=False: "
            "open it once with create_table=True to add the sparse column, or leave "
            "sparse_dimension out."
        )
    check_sparse(want, server)
    spec = replace(spec, sparse_dimension=want)
    if table_exists:
        for stmt in sparse_column_ddl(spec):
            yield Exec(stmt)
    yield Exec(
        sql.SQL(
            "UPDATE {} SET sparse_dimension = %(d)s "
            "WHERE schema_name = %(s)s AND table_name = %(t)s"
        ).format(sql.Identifier(spec.schema, CATALOG_TABLE)),
        {"d": want, "s": spec.schema, "t": spec.table},
    )
    return spec


def _distribution(
    spec: TableSpec, req: Requested, server: ServerInfo, read_only: bool, created: bool
) -> Plan[TableSpec]:
    """The table as Citus holds it: a new table asked to be distributed is sharded by ``id``
    (after its storage settings, which Citus refuses to change later); an existing one is
    looked up in Citus's metadata, and sharded (its rows moved to the shards) when asked."""
    where = f"table {spec.schema}.{spec.table}"
    if req.distributed and server.citus is None:
        raise ExtensionError(
            f"{where} was asked to be distributed, but the Citus extension is not installed on "
            "this server: connect to a Citus coordinator (CREATE EXTENSION citus, workers added "
            "with citus_add_node), or leave distributed out for a single-node table."
        )
    if server.citus is None:
        return spec
    names = {"s": spec.schema, "t": spec.table}
    found = None if created else (yield Exec(_DIST_SQL, names, fetch="one"))
    if found is None and req.distributed:
        if read_only:
            raise SchemaMismatchError(
                f"{where} is not distributed and the store was opened with create_table=False: "
                "open it once with create_table=True to shard it, or leave distributed out."
            )
        yield Exec(distribute_ddl(spec, req.shard_count))
        if not created:  # the rows were copied to the shards: drop the coordinator's copy
            yield Exec(_TRUNCATE_LOCAL_SQL.format(sql.Literal(regclass_text(spec))))
        found = yield Exec(_DIST_SQL, names, fetch="one")
    if found is None:
        return spec
    return replace(spec, distributed=True, shard_count=int(found[0]))


def _parse_sparse_type(text: str | None) -> int | None:
    """``sparsevec(n)`` -> ``n`` (``None`` for no column or another type)."""
    if not text or not text.startswith("sparsevec(") or not text.endswith(")"):
        return None
    try:
        return int(text[len("sparsevec(") : -1])
    except ValueError:
        return None


def _parse_column_type(text: str) -> tuple[VectorType, int] | None:
    name, _, rest = text.partition("(")
    if name not in ("vector", "halfvec") or not rest.endswith(")"):
        return None
    try:
        return ("halfvec" if name == "halfvec" else "vector"), int(rest[:-1])
    except ValueError:
        return None


def setup_plan(req: Requested, dim_hint: int | None) -> Plan[tuple[ServerInfo, TableSpec | None]]:
    """Check/create pgvector, the catalog and the table; ``spec`` is ``None`` when the table does
    not exist yet and no dimension is known (nothing to create it with)."""
    row = yield Exec(_SERVER_SQL, fetch="one")
    num, cur_schema, installed, available, cfgs, db, user, citus = row
    yield Exec(_LOCK_SQL)
    if installed is None:
        # re-check under the lock: another process may just have created it
        again = yield Exec(_EXT_SQL, fetch="one")
        installed = again[0] if again else None
    read_only = not req.create_table  # a store that may not create anything: no DDL, no rows
    if installed is None and read_only:  # no table of the format can exist; say why
        raise _ext_error(db, user, available, None)
    if installed is None:
        if available is None:
            raise _ext_error(db, user, None, None)
        try:
            yield Exec(sql.SQL("CREATE EXTENSION IF NOT EXISTS vector"))
        except psycopg.Error as err:
            raise _ext_error(db, user, available, err) from err
        installed = (yield Exec(_EXT_SQL, fetch="one"))[0]
    version = parse_version(installed)
    assert version is not None
    if version < MIN_PGVECTOR:
        raise ExtensionError(
            f"pgvector {installed} is too old (HNSW needs >= {_fmt(MIN_PGVECTOR)}): upgrade the "
            "pgvector package and run ALTER EXTENSION vector UPDATE."
        )
    server = ServerInfo(
        server_version=int(num),
        current_schema=str(cur_schema),
        pgvector=version,
        ts_configs=tuple(cfgs),
        citus=parse_version(citus),
    )
    schema = req.schema or server.current_schema
    if schema is None or schema == "None":
        raise StorageError("no current schema: pass schema_name=... or fix the search_path")
    cat = sql.Identifier(schema, CATALOG_TABLE)
    names = {"s": schema, "t": req.table}
    cat_exists = (yield Exec(_REGCLASS_SQL, {"s": schema, "t": CATALOG_TABLE}, fetch="one"))[0]
    if cat_exists is None and not read_only:
        yield Exec(catalog_ddl(schema))
    found = None
    if cat_exists is not None or not read_only:
        later_cols = yield from _catalog_later_columns(schema, cat, read_only)
        found = yield Exec(
            sql.SQL(
                "SELECT dimension, distance, vector_type, text_search, embedding_model, {} "
                "FROM {} WHERE schema_name = %(s)s AND table_name = %(t)s"
            ).format(later_cols, cat),
            names,
            fetch="one",
        )
    regclass = (yield Exec(_REGCLASS_SQL, names, fetch="one"))[0]
    if regclass is None and read_only:
        raise _not_found(schema, req.table, "the store was opened with create_table=False")
    if found is not None:
        dim, dist, vtype, ts, model, quant, sparse_dim = found
        quant = quant if quant in QUANTIZATIONS else None
        spec = TableSpec(
            schema,
            req.table,
            int(dim),
            Distance.parse(dist),
            vtype,
            ts,
            model,
            quant,
            None if sparse_dim is None else int(sparse_dim),
        )
        _mismatch(spec, req)
        spec = yield from _sparse_of_catalog(spec, req, server, read_only, regclass is not None)
        if regclass is None:
            for stmt in table_ddl(spec):
                yield Exec(stmt)
        spec = yield from _distribution(spec, req, server, read_only, created=regclass is None)
        return server, spec
    dimension = req.dimension or dim_hint
    if regclass is not None:
        cols = dict((yield Exec(_COLUMN_SQL, names, fetch="all")))
        parsed = _parse_column_type(cols.get("embedding", ""))
        needed = {"id", "content", "metadata", "embedding", "content_tsv"}
        if parsed is None or not needed <= set(cols):
            raise SchemaMismatchError(
                f"table {schema}.{req.table} exists but is not a qwen-pg-integrations table "
                f"(columns {sorted(cols)}): use another table_name."
            )
        vtype, dim = parsed
        sparse_dim = _parse_sparse_type(cols.get("sparse_embedding"))
        vector_type: VectorType
        if dimension is not None and dimension != dim:
            raise SchemaMismatchError(
                f"table {schema}.{req.table} stores {vtype}({dim}) but vectors have {dimension} "
                "dimensions: use the same embedding model and dimension, or another table_name."
            )
        dimension = dim
        vector_type = vtype
    elif dimension is None:
        return server, None
    else:
        vector_type = choose_vector_type(req.vector_type, dimension, server)
        sparse_dim = req.sparse_dimension
        check_sparse(sparse_dim, server)
    text_search = req.text_search
    if text_search == "auto":
        text_search = server.ts_configs[0] if server.ts_configs else "jieba"
    elif text_search not in ("jieba", NO_TEXT_SEARCH):
        found_cfg = yield Exec(_REGCONFIG_SQL, {"c": text_search}, fetch="one")
        if found_cfg is None:
            raise InvalidInputError(
                f"text search configuration {text_search!r} does not exist on this server: use "
                "text_search='auto' (jieba segmentation, or zhparser / pg_jieba when installed), "
                "'none', or the name of a configuration listed by \\dF in psql."
            )
    spec = TableSpec(
        schema,
        req.table,
        dimension,
        req.distance or Distance.COSINE,
        vector_type,
        text_search,
        req.embedding_model,
        sparse_dimension=sparse_dim,
    )
    if regclass is not None and req.sparse_dimension not in (None, sparse_dim):
        if sparse_dim is not None or read_only:
            raise SchemaMismatchError(
                f"table {schema}.{req.table} has sparse vectors of dimension {sparse_dim} "
                f"(asked for {req.sparse_dimension}): leave sparse_dimension out, or use "
                "another table_name."
            )
        check_sparse(req.sparse_dimension, server)
        spec = replace(spec, sparse_dimension=req.sparse_dimension)
        for stmt in sparse_column_ddl(spec):
            yield Exec(stmt)
    if regclass is None:
        for stmt in table_ddl(spec):
            yield Exec(stmt)
    if regclass is None or server.citus is not None:
        spec = yield from _distribution(spec, req, server, read_only, created=regclass is None)
    if regclass is None and spec.embedding_model is None:
        warnings.warn(
            f"table {schema}.{req.table} was created without an embedding model recorded: "
            "the catalog cannot refuse vectors of another model later. Pass "
            "embedding_model=... (LangChain: embeddings with a 'model' attribute; "
            "LlamaIndex: embed_model=...).",
            QwenPGWarning,
            stacklevel=2,
        )
    if read_only:  # an existing table in the format but without a catalog row: not recorded
        return server, spec
    values = (
        schema,
        req.table,
        spec.embedding_model,
        spec.dimension,
        spec.distance.value,
        spec.vector_type,
        spec.text_search,
        __version__,
        spec.sparse_dimension,
    )
    yield Exec(
        sql.SQL(
            "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT (schema_name, table_name) DO NOTHING"
        ).format(
            cat,
            sql.SQL(", ").join(map(sql.Identifier, _CATALOG_COLUMNS)),
            sql.SQL(", ").join(map(sql.Placeholder, _CATALOG_COLUMNS)),
        ),
        dict(zip(_CATALOG_COLUMNS, values, strict=True)),
    )
    return server, spec
