"""The table format (DESIGN.md §4), its catalog, and what the server can do.

Pure builders: every function returns ``psycopg.sql`` objects, so they can be rendered with
``as_string()`` and unit tested without a server.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from typing import Literal

from psycopg import sql

from ..errors import ExtensionError, InvalidInputError
from .records import Distance

__all__ = [
    "CATALOG_TABLE",
    "MIN_PGVECTOR",
    "NO_TEXT_SEARCH",
    "QUANTIZATIONS",
    "Quantization",
    "ServerInfo",
    "TableSpec",
    "VectorType",
    "catalog_ddl",
    "check_quantization",
    "check_sparse",
    "choose_vector_type",
    "distribute_ddl",
    "index_ddl",
    "index_name",
    "parse_version",
    "regclass_text",
    "sparse_column_ddl",
    "sparse_index_ddl",
    "table_ddl",
]

CATALOG_TABLE = "qwen_pg_collections"
NO_TEXT_SEARCH = "none"  # text_search value of tables without full-text search
MIN_PGVECTOR = (0, 5, 0)  # HNSW
HALFVEC_PGVECTOR = (0, 7, 0)
ITERATIVE_PGVECTOR = (0, 8, 0)
MAX_VECTOR_INDEX_DIM = 2000
MAX_HALFVEC_INDEX_DIM = 4000
MAX_VECTOR_DIM = 16000
MAX_BIT_INDEX_DIM = 64000
# Above this many bytes a PLAIN vector would not leave room for the rest of the row in an
# 8 kB page; such columns use MAIN (inline when possible, compressed, out of line last).
_PLAIN_LIMIT_BYTES = 7000

VectorType = Literal["vector", "halfvec"]
Quantization = Literal["halfvec", "binary"]
QUANTIZATIONS: tuple[str, ...] = ("halfvec", "binary")
QUANTIZED_PGVECTOR = (0, 7, 0)  # halfvec casts and binary_quantize()
SPARSE_PGVECTOR = (0, 7, 0)  # sparsevec

_OPCLASS_SUFFIX = {
    Distance.COSINE: "cosine_ops",
    Distance.L2: "l2_ops",
    Distance.INNER_PRODUCT: "ip_ops",
}
_OPERATOR = {Distance.COSINE: "<=>", Distance.L2: "<->", Distance.INNER_PRODUCT: "<#>"}


def parse_version(text: str | None) -> tuple[int, int, int] | None:
    """``"0.8.1"`` -> ``(0, 8, 1)``; ``None`` stays ``None``."""
    if not text:
        return None
    nums = [int(n) for n in re.findall(r"\d+", text)[:3]]
    while len(nums) < 3:
        nums.append(0)
    return (nums[0], nums[1], nums[2])


@dataclass(frozen=True)
class ServerInfo:
    """What the connected server offers.

    Attributes:
        server_version: ``server_version_num`` (e.g. 180006).
        current_schema: the schema unqualified names resolve to.
        pgvector: installed pgvector version, ``None`` if not installed (yet).
        ts_configs: text-search configurations backed by a Chinese parser (zhparser, pg_jieba).
        citus: the Citus extension's version when installed (a coordinator), else ``None``.
    """

    server_version: int
    current_schema: str
    pgvector: tuple[int, int, int] | None
    ts_configs: tuple[str, ...] = ()
    citus: tuple[int, int, int] | None = None

    @property
    def has_halfvec(self) -> bool:
        """pgvector >= 0.7 has the half-precision ``halfvec`` type."""
        return self.pgvector is not None and self.pgvector >= HALFVEC_PGVECTOR

    @property
    def has_sparsevec(self) -> bool:
        """pgvector >= 0.7 has the ``sparsevec`` type (and its HNSW operator classes)."""
        return self.pgvector is not None and self.pgvector >= SPARSE_PGVECTOR

    @property
    def has_iterative_scan(self) -> bool:
        """pgvector >= 0.8 can continue an index scan until enough filtered rows are found."""
        return self.pgvector is not None and self.pgvector >= ITERATIVE_PGVECTOR


def choose_vector_type(requested: str, dimension: int, server: ServerInfo) -> VectorType:
    """``vector`` up to 2000 dims, ``halfvec`` above (indexable up to 4000) when available."""
    if dimension <= 0 or dimension > MAX_VECTOR_DIM:
        raise InvalidInputError(f"dimension must be in 1..{MAX_VECTOR_DIM}, got {dimension}")
    if requested == "halfvec":
        if not server.has_halfvec:
            raise ExtensionError(
                f"halfvec needs pgvector >= 0.7 but the server has {_ver(server.pgvector)}: "
                "run ALTER EXTENSION vector UPDATE after upgrading the pgvector package, "
                "or use vector_type='vector'."
            )
        return "halfvec"
    if requested == "vector":
        return "vector"
    if requested != "auto":
        raise InvalidInputError(
            f"vector_type must be 'auto', 'vector' or 'halfvec', got {requested!r}"
        )
    if dimension > MAX_VECTOR_INDEX_DIM and server.has_halfvec:
        return "halfvec"
    return "vector"


def _ver(v: tuple[int, int, int] | None) -> str:
    return "no pgvector" if v is None else "pgvector " + ".".join(map(str, v))


@dataclass(frozen=True)
class TableSpec:
    """A collection table as recorded in the catalog.

    Attributes:
        schema: schema name.
        table: table name.
        dimension: embedding dimension.
        distance: search distance (fixes the index operator class).
        vector_type: ``vector`` or ``halfvec``.
        text_search: ``"jieba"`` (client-side segmentation into a ``simple`` tsvector), the name
            of a server text-search configuration, or ``"none"`` (no full-text column: writes
            skip it, keyword and hybrid search are refused).
        embedding_model: the model that made the vectors, if known.
        quantization: the vector index's quantization (``"halfvec"``: an index on
            ``embedding::halfvec(n)``; ``"binary"``: on ``binary_quantize(embedding)::bit(n)``,
            searched with an exact re-rank), ``None`` for an index on the column itself (or none).
        sparse_dimension: the dimension of the ``sparse_embedding sparsevec(n)`` column (with
            an HNSW ``sparsevec_ip_ops`` index), ``None`` for a table without sparse vectors.
        distributed: a Citus distributed table (sharded by ``id``), found in Citus's own
            metadata when the store opens it (not a catalog column).
        shard_count: its number of shards (``None`` when not distributed).
    """

    schema: str
    table: str
    dimension: int
    distance: Distance
    vector_type: VectorType
    text_search: str
    embedding_model: str | None = None
    quantization: Quantization | None = None
    sparse_dimension: int | None = None
    distributed: bool = False
    shard_count: int | None = None

    @property
    def sparse(self) -> bool:
        """True when the table stores sparse vectors."""
        return self.sparse_dimension is not None

    @property
    def ident(self) -> sql.Identifier:
        """The schema-qualified table identifier."""
        return sql.Identifier(self.schema, self.table)

    @property
    def client_segmentation(self) -> bool:
        """True when text is segmented on the client (jieba) before ``to_tsvector``."""
        return self.text_search == "jieba"

    @property
    def full_text(self) -> bool:
        """False when the table was created with ``text_search="none"``."""
        return self.text_search != NO_TEXT_SEARCH

    @property
    def client_tsvector(self) -> bool:
        """True when writes send the final ``content_tsv`` (built on the client, or NULL)."""
        return self.client_segmentation or not self.full_text

    @property
    def ts_config(self) -> str:
        """The text-search configuration passed to ``to_tsvector``."""
        return "simple" if self.client_segmentation else self.text_search

    @property
    def operator(self) -> sql.SQL:
        """The pgvector distance operator of this table."""
        return sql.SQL(_OPERATOR[self.distance])

    @property
    def opclass(self) -> sql.SQL:
        """The index operator class matching the operator and the column type."""
        return sql.SQL(f"{self.vector_type}_{_OPCLASS_SUFFIX[self.distance]}")

    @property
    def index_expression(self) -> sql.Composable:
        """What the vector index is built on, and what searches order by to use it."""
        return self.quantize(sql.SQL("embedding"))

    def quantize(self, value: sql.Composable) -> sql.Composable:
        """``value`` (a vector of this table) in the index's representation."""
        d = sql.Literal(int(self.dimension))
        if self.quantization == "binary":
            return sql.SQL("(binary_quantize({})::bit({}))").format(value, d)
        if self.quantization == "halfvec" and self.vector_type == "vector":
            return sql.SQL("({}::halfvec({}))").format(value, d)
        return value

    @property
    def index_operator(self) -> sql.SQL:
        """The operator the vector index orders by (Hamming distance for binary codes)."""
        return sql.SQL("<~>") if self.quantization == "binary" else self.operator

    @property
    def index_opclass(self) -> sql.SQL:
        """The operator class of the vector index."""
        if self.quantization == "binary":
            return sql.SQL("bit_hamming_ops")
        if self.quantization == "halfvec":
            return sql.SQL(f"halfvec_{_OPCLASS_SUFFIX[self.distance]}")
        return self.opclass

    @property
    def column_type(self) -> sql.Composable:
        """``vector(n)`` or ``halfvec(n)``."""
        return sql.SQL("{}({})").format(sql.SQL(self.vector_type), sql.Literal(int(self.dimension)))

    @property
    def storage(self) -> sql.SQL:
        """PLAIN keeps the vector in the heap row (see DESIGN.md §4); MAIN when it would not fit."""
        width = 2 if self.vector_type == "halfvec" else 4
        return sql.SQL("PLAIN" if self.dimension * width + 8 <= _PLAIN_LIMIT_BYTES else "MAIN")


def index_name(table: str, suffix: str) -> str:
    """A per-table index name within PostgreSQL's 63-byte limit."""
    name = f"{table}_{suffix}"
    if len(name.encode()) <= 63:
        return name
    digest = hashlib.sha1(table.encode()).hexdigest()[:8]
    head = table.encode()[: 63 - len(suffix) - 10].decode(errors="ignore")
    return f"{head}_{digest}_{suffix}"


def catalog_ddl(schema: str) -> sql.Composed:
    """Create the catalog table (one row per collection table) if missing."""
    return sql.SQL(
        "CREATE TABLE IF NOT EXISTS {} ("
        "schema_name text NOT NULL, table_name text NOT NULL, embedding_model text, "
        "dimension integer NOT NULL, distance text NOT NULL, vector_type text NOT NULL, "
        "text_search text NOT NULL, package_version text NOT NULL, "
        "created_at timestamptz NOT NULL DEFAULT now(), quantization text, "
        "sparse_dimension integer, "
        "PRIMARY KEY (schema_name, table_name))"
    ).format(sql.Identifier(schema, CATALOG_TABLE))


def table_ddl(spec: TableSpec) -> list[sql.Composed]:
    """Statements creating the collection table and its GIN indexes, idempotently."""
    t = spec.ident
    stmts = [
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} ("
            "id text PRIMARY KEY, content text NOT NULL, "
            "metadata jsonb NOT NULL DEFAULT '{{}}'::jsonb, embedding {}, content_tsv tsvector{})"
        ).format(t, spec.column_type, _sparse_column(spec)),
        sql.SQL("ALTER TABLE {} ALTER COLUMN embedding SET STORAGE {}").format(t, spec.storage),
        sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING gin (metadata jsonb_path_ops)").format(
            sql.Identifier(index_name(spec.table, "metadata_gin")), t
        ),
    ]
    if spec.full_text:
        stmts.append(
            sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING gin (content_tsv)").format(
                sql.Identifier(index_name(spec.table, "tsv_gin")), t
            )
        )
    if spec.sparse:
        stmts.append(sparse_index_ddl(spec))
    return stmts


def _sparse_column(spec: TableSpec) -> sql.Composable:
    if not spec.sparse:
        return sql.SQL("")
    return sql.SQL(", sparse_embedding sparsevec({})").format(
        sql.Literal(int(spec.sparse_dimension or 0))
    )


def distribute_ddl(spec: TableSpec, shard_count: int | None) -> sql.Composed:
    """Shard the table by ``id`` over the Citus workers (its indexes follow to every shard);
    ``shard_count`` ``None``: Citus's ``citus.shard_count``."""
    if shard_count is None:
        return sql.SQL("SELECT create_distributed_table({}, 'id')").format(
            sql.Literal(regclass_text(spec))
        )
    return sql.SQL("SELECT create_distributed_table({}, 'id', shard_count => {})").format(
        sql.Literal(regclass_text(spec)), sql.Literal(int(shard_count))
    )


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def regclass_text(spec: TableSpec) -> str:
    """``"schema"."table"``, quoted as a ``regclass`` argument expects."""
    return f"{_quote(spec.schema)}.{_quote(spec.table)}"


def sparse_index_ddl(spec: TableSpec) -> sql.Composed:
    """The HNSW index of the sparse column (inner product: learned-sparse scoring). It holds
    at most 1,000 non-zero weights a row, which is why writes keep the largest 1,000."""
    return sql.SQL(
        "CREATE INDEX IF NOT EXISTS {} ON {} USING hnsw (sparse_embedding sparsevec_ip_ops)"
    ).format(sql.Identifier(index_name(spec.table, "sparse_hnsw")), spec.ident)


def sparse_column_ddl(spec: TableSpec) -> list[sql.Composed]:
    """Add the sparse column and its index to an existing table (rows get NULL: re-add them
    with sparse vectors to make them findable by sparse search)."""
    return [
        sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS sparse_embedding sparsevec({})").format(
            spec.ident, sql.Literal(int(spec.sparse_dimension or 0))
        ),
        sparse_index_ddl(spec),
    ]


def check_sparse(spec_dimension: int | None, server: ServerInfo) -> None:
    """Refuse sparse vectors on pgvector older than 0.7 with what to do."""
    if spec_dimension is not None and not server.has_sparsevec:
        raise ExtensionError(
            f"sparse vectors need pgvector >= 0.7 (sparsevec) but the server has "
            f"{_ver(server.pgvector)}: upgrade the pgvector package and run ALTER EXTENSION "
            "vector UPDATE, or open the store without sparse vectors (dense, full-text and "
            "hybrid search work on any pgvector >= 0.5)."
        )


def index_ddl(
    spec: TableSpec,
    server: ServerInfo,
    kind: str,
    *,
    m: int = 16,
    ef_construction: int = 64,
    lists: int | None = None,
    row_count: int = 0,
    quantization: str | None = None,
    concurrently: bool = False,
) -> tuple[str, sql.Composed]:
    """``CREATE INDEX`` for HNSW or IVFFlat with the operator class of the table's distance,
    on the column or (``quantization``) on its half-precision or binary form.

    Returns:
        The index name and the statement.

    Raises:
        ExtensionError: the column type cannot be indexed on this pgvector version.
    """
    kind = kind.lower()
    if kind not in ("hnsw", "ivfflat"):
        raise InvalidInputError(f"index kind must be 'hnsw' or 'ivfflat', got {kind!r}")
    quant = check_quantization(quantization, server)
    spec = replace(spec, quantization=quant)
    if kind == "hnsw" and server.pgvector is not None and server.pgvector < MIN_PGVECTOR:
        raise ExtensionError("HNSW needs pgvector >= 0.5; upgrade pgvector or use kind='ivfflat'.")
    if quant == "binary":
        limit = MAX_BIT_INDEX_DIM
    elif spec.vector_type == "halfvec" or quant == "halfvec":
        limit = MAX_HALFVEC_INDEX_DIM
    else:
        limit = MAX_VECTOR_INDEX_DIM
    if spec.dimension > limit:
        hint = (
            "pgvector >= 0.7 stores such vectors as halfvec, which indexes up to 4000 "
            "dimensions: upgrade pgvector (then ALTER EXTENSION vector UPDATE) and recreate the "
            "table, or use a smaller embedding dimension."
            if spec.vector_type == "vector"
            else "use a smaller embedding dimension."
        )
        raise ExtensionError(
            f"pgvector cannot index {spec.vector_type}({spec.dimension}) (limit {limit} "
            f"dimensions); {hint} Until then searches scan the table exactly."
        )
    name = index_name(spec.table, f"embedding_{kind}" + (f"_{quant}" if quant else ""))
    if kind == "hnsw":
        if not (2 <= m <= 100) or not (4 <= ef_construction <= 1000):
            raise InvalidInputError("hnsw needs 2 <= m <= 100 and 4 <= ef_construction <= 1000")
        with_ = sql.SQL("m = {}, ef_construction = {}").format(
            sql.Literal(int(m)), sql.Literal(int(ef_construction))
        )
    else:
        if lists is None:
            # pgvector's advice: rows / 1000 up to 1M rows, sqrt(rows) above.
            lists = max(1, row_count // 1000 if row_count <= 1_000_000 else int(row_count**0.5))
        if not (1 <= lists <= 32768):
            raise InvalidInputError("ivfflat needs 1 <= lists <= 32768")
        with_ = sql.SQL("lists = {}").format(sql.Literal(int(lists)))
    stmt = sql.SQL("CREATE INDEX {}IF NOT EXISTS {} ON {} USING {} ({} {}) WITH ({})").format(
        sql.SQL("CONCURRENTLY " if concurrently else ""),
        sql.Identifier(name),
        spec.ident,
        sql.SQL(kind),
        spec.index_expression,
        spec.index_opclass,
        with_,
    )
    return name, stmt


def check_quantization(quantization: str | None, server: ServerInfo) -> Quantization | None:
    """``None``, ``"halfvec"`` or ``"binary"``, available on this server.

    Raises:
        InvalidInputError: another value.
        ExtensionError: pgvector older than 0.7 (no halfvec casts, no ``binary_quantize``).
    """
    if quantization is None or quantization == "none":
        return None
    if quantization not in QUANTIZATIONS:
        raise InvalidInputError(
            f"quantization must be None, 'halfvec' or 'binary', got {quantization!r}"
        )
    if server.pgvector is not None and server.pgvector < QUANTIZED_PGVECTOR:
        raise ExtensionError(
            f"quantization={quantization!r} needs pgvector >= 0.7 but the server has "
            f"{_ver(server.pgvector)}: upgrade the pgvector package and run ALTER EXTENSION "
            "vector UPDATE, or create the index without quantization."
        )
    return "binary" if quantization == "binary" else "halfvec"
