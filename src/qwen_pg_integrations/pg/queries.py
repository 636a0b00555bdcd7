"""Pure SQL builders for reads and writes (render them with ``as_string()`` to inspect).

Every builder takes a :class:`~.filters.Params` collector and returns a ``psycopg.sql`` object;
values are always bound, identifiers always quoted.
"""

from __future__ import annotations

from typing import Any

from psycopg import sql

from .filters import Filter, Params, compile_delete_filter, compile_filter
from .schema import TableSpec

__all__ = [
    "STAGE_COLUMNS",
    "TABLE_COLUMNS",
    "count_sql",
    "delete_sql",
    "direct_copy_sql",
    "existing_ids_sql",
    "get_sql",
    "hybrid_sql",
    "nearest_sql",
    "probe_count_sql",
    "set_local_sql",
    "settings_sql",
    "sparse_search_sql",
    "stage_columns",
    "stage_copy_sql",
    "stage_ddl",
    "stage_truncate_sql",
    "table_columns",
    "text_search_sql",
    "tsquery_sql",
    "upsert_from_stage_sql",
    "vector_search_sql",
]

STAGE_COLUMNS = ("id", "content", "metadata", "embedding", "tsv_input")
TABLE_COLUMNS = ("id", "content", "metadata", "embedding", "content_tsv")
_SPARSE = ("sparse_embedding",)


def _stage(spec: TableSpec) -> sql.Identifier:
    suffix = ("tsv" if spec.client_tsvector else "txt") + ("_sparse" if spec.sparse else "")
    return sql.Identifier(f"_qwen_pg_stage_{spec.vector_type}_{suffix}")


def _columns(names: tuple[str, ...]) -> sql.Composable:
    return sql.SQL(", ").join(map(sql.Identifier, names))


def table_columns(spec: TableSpec) -> tuple[str, ...]:
    """The columns a write fills: :data:`TABLE_COLUMNS`, with ``sparse_embedding`` before the
    tsvector on tables with sparse vectors."""
    if not spec.sparse:
        return TABLE_COLUMNS
    return TABLE_COLUMNS[:4] + _SPARSE + TABLE_COLUMNS[4:]


def stage_columns(spec: TableSpec) -> tuple[str, ...]:
    """Staging columns: the table's own with a client-built tsvector, else the text to index."""
    cols = table_columns(spec)
    return cols if spec.client_tsvector else cols[:-1] + STAGE_COLUMNS[-1:]


def stage_ddl(spec: TableSpec) -> sql.Composed:
    """The session's temporary staging table for COPY (one per vector type, any dimension)."""
    last = "content_tsv tsvector" if spec.client_tsvector else "tsv_input text"
    sparse = ", sparse_embedding sparsevec" if spec.sparse else ""
    return sql.SQL(
        "CREATE TEMP TABLE IF NOT EXISTS {} "
        "(id text, content text, metadata jsonb, embedding {}{}, {})"
    ).format(_stage(spec), sql.SQL(spec.vector_type), sql.SQL(sparse), sql.SQL(last))


def stage_truncate_sql(spec: TableSpec) -> sql.Composed:
    """Empty the staging table (the batch may run inside a caller's longer transaction)."""
    return sql.SQL("TRUNCATE {}").format(_stage(spec))


def stage_copy_sql(spec: TableSpec) -> sql.Composed:
    """``COPY ... FROM STDIN (FORMAT BINARY)`` into the staging table."""
    return sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        _stage(spec), _columns(stage_columns(spec))
    )


def direct_copy_sql(spec: TableSpec) -> sql.Composed:
    """``COPY ... FROM STDIN (FORMAT BINARY)`` straight into the table (rows with new ids)."""
    return sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        spec.ident, _columns(table_columns(spec))
    )


def existing_ids_sql(spec: TableSpec, params: Params, ids: list[str]) -> sql.Composed:
    """Which of ``ids`` are already stored."""
    return sql.SQL("SELECT id FROM {} WHERE id = ANY({}::text[])").format(
        spec.ident, params.add(ids)
    )


def upsert_from_stage_sql(spec: TableSpec, params: Params) -> sql.Composed:
    """One ``INSERT ... ON CONFLICT (id) DO UPDATE`` for the whole staged batch.

    Rows are written in id order (bytewise, as :meth:`RowBatch.rows` sorts them), so two
    writers of overlapping ids take their row locks in the same order and cannot deadlock.
    """
    tsv: sql.Composable = (
        sql.SQL("content_tsv")
        if spec.client_tsvector
        else sql.SQL("to_tsvector({}::regconfig, tsv_input)").format(params.add(spec.ts_config))
    )
    sparse = sql.SQL("sparse_embedding, " if spec.sparse else "")
    return sql.SQL(
        "INSERT INTO {t} (id, content, metadata, embedding, {sp}content_tsv) "
        "SELECT id, content, metadata, embedding, {sp}{tsv} "
        'FROM {s} ORDER BY id COLLATE "C" '
        "ON CONFLICT (id) DO UPDATE SET content = EXCLUDED.content, "
        "metadata = EXCLUDED.metadata, embedding = EXCLUDED.embedding, {spu}"
        "content_tsv = EXCLUDED.content_tsv"
    ).format(
        t=spec.ident,
        s=_stage(spec),
        tsv=tsv,
        sp=sparse,
        spu=sql.SQL("sparse_embedding = EXCLUDED.sparse_embedding, " if spec.sparse else ""),
    )


def _ids_cond(params: Params, ids: list[str] | None, column: str = "id") -> sql.Composable | None:
    if ids is None:
        return None
    return sql.SQL("{} = ANY({}::text[])").format(sql.SQL(column), params.add(ids))


def _where(parts: list[sql.Composable | None]) -> sql.Composable:
    conds = [p for p in parts if p is not None]
    if not conds:
        return sql.SQL("")
    return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conds)


def delete_sql(
    spec: TableSpec, params: Params, ids: list[str] | None, filter: Filter | None
) -> sql.Composed:
    """``DELETE`` by ids and/or filter (both given: rows matching both).

    Without ids the filter must restrict the rows (:func:`~.filters.compile_delete_filter`):
    a delete never matches the whole table by accident.
    """
    parts: list[sql.Composable | None] = []
    if ids is not None:
        parts.append(sql.SQL("id = ANY({}::text[])").format(params.add(ids)))
        parts.append(compile_filter(filter, params))
    else:
        parts.append(compile_delete_filter(filter, params))
    return sql.SQL("DELETE FROM {}{}").format(spec.ident, _where(parts))


def get_sql(
    spec: TableSpec,
    params: Params,
    ids: list[str] | None,
    *,
    filter: Filter | None = None,
    include_embeddings: bool = False,
    limit: int | None = None,
) -> sql.Composed:
    """Select rows by ids and/or filter (``id, content, metadata[, embedding[,
    sparse_embedding]]``)."""
    cols = sql.SQL(
        ("id, content, metadata, embedding" + (", sparse_embedding" if spec.sparse else ""))
        if include_embeddings
        else "id, content, metadata"
    )
    parts: list[sql.Composable | None] = []
    if ids is not None:
        parts.append(sql.SQL("id = ANY({}::text[])").format(params.add(ids)))
    parts.append(compile_filter(filter, params))
    tail = (
        sql.SQL("") if limit is None else sql.SQL(" ORDER BY id LIMIT {}").format(params.add(limit))
    )
    return sql.SQL("SELECT {} FROM {}{}{}").format(cols, spec.ident, _where(parts), tail)


def count_sql(spec: TableSpec, params: Params, filter: Filter | None = None) -> sql.Composed:
    """``SELECT count(*)`` with an optional filter."""
    return sql.SQL("SELECT count(*) FROM {}{}").format(
        spec.ident, _where([compile_filter(filter, params)])
    )


def probe_count_sql(
    spec: TableSpec,
    params: Params,
    filter: Filter | None,
    ids: list[str] | None,
    limit: int,
) -> sql.Composed:
    """How many rows match, counting no further than ``limit`` (cheap even for big matches),
    and the table's estimated row count (``pg_class.reltuples``; -1 before any ANALYZE)."""
    return sql.SQL(
        "SELECT count(*), (SELECT c.reltuples FROM pg_class c JOIN pg_namespace n "
        "ON n.oid = c.relnamespace WHERE n.nspname = {} AND c.relname = {}) "
        "FROM (SELECT 1 FROM {}{} LIMIT {}) AS probe"
    ).format(
        params.add(spec.schema),
        params.add(spec.table),
        spec.ident,
        _where([_ids_cond(params, ids), compile_filter(filter, params)]),
        params.add(int(limit)),
    )


def settings_sql(params: Params, settings: dict[str, str], *, local: bool = True) -> sql.Composed:
    """One ``SELECT set_config(name, value, true)`` per setting: ``SET LOCAL`` with bound values.

    Transaction-local, so nothing leaks into a pooled session (``local=False``: for the
    session, for statements that cannot run in a transaction; the caller resets them).
    """
    flag = sql.SQL("true" if local else "false")
    calls = [
        sql.SQL("set_config({}, {}, {})").format(params.add(k), params.add(v), flag)
        for k, v in settings.items()
    ]
    return sql.SQL("SELECT ") + sql.SQL(", ").join(calls)


def set_local_sql(settings: dict[str, str]) -> list[sql.Composed]:
    """``SET LOCAL`` statements for a Citus distributed table: Citus does not send
    ``set_config()`` to the shards, but with ``citus.propagate_set_commands = 'local'`` it
    sends the transaction's ``SET LOCAL`` commands (values quoted as literals: ``SET`` takes
    no bound parameters)."""
    out = [sql.Composed([sql.SQL("SET LOCAL citus.propagate_set_commands = 'local'")])]
    for name, value in settings.items():
        ident = sql.SQL(".").join(sql.Identifier(part) for part in name.split("."))
        out.append(sql.SQL("SET LOCAL {} = {}").format(ident, sql.Literal(str(value))))
    return out


def _query_vector(spec: TableSpec, params: Params, vector: Any) -> sql.Composable:
    return sql.SQL("{}::{}").format(params.add(vector), sql.SQL(spec.vector_type))


def nearest_sql(
    spec: TableSpec,
    params: Params,
    q: sql.Composable,
    where: sql.Composable,
    n: int,
    columns: sql.Composable,
) -> sql.Composed:
    """The ``n`` rows nearest to ``q`` in the vector index's order, with their exact distance.

    ``columns`` are selected as they are, then ``embedding <op> q AS distance`` (the float32
    distance, whatever the index stores). Without quantization this is the plain
    ``ORDER BY embedding <op> q LIMIT n`` the index serves; with a quantized index the rows come
    in the order of the quantized column (``embedding::halfvec(d)`` or
    ``binary_quantize(embedding)::bit(d)``, the expressions the index is built on) and the
    caller re-ranks them by the exact distance.
    """
    if spec.quantization is None or (
        spec.quantization == "halfvec" and spec.vector_type == "halfvec"
    ):
        return sql.SQL(
            "SELECT {cols}, embedding {op} {q} AS distance FROM {t}{where} "
            "ORDER BY embedding {op} {q} LIMIT {n}"
        ).format(cols=columns, op=spec.operator, q=q, t=spec.ident, where=where, n=params.add(n))
    return sql.SQL(
        "SELECT {cols}, embedding {op} {q} AS distance FROM ("
        "SELECT * FROM {t}{where} ORDER BY {qexpr} {qop} {qq} LIMIT {n}) AS candidates"
    ).format(
        cols=columns,
        op=spec.operator,
        q=q,
        t=spec.ident,
        where=where,
        qexpr=spec.index_expression,
        qop=spec.index_operator,
        qq=spec.quantize(q),
        n=params.add(n),
    )


def vector_search_sql(
    spec: TableSpec,
    params: Params,
    vector: Any,
    k: int,
    *,
    filter: Filter | None = None,
    max_distance: float | None = None,
    include_embeddings: bool = False,
    ids: list[str] | None = None,
    candidates: int | None = None,
) -> sql.Composed:
    """Nearest neighbours by the table's operator, best first: ``id, content, metadata, distance``.

    The inner query is what the vector index serves (:func:`nearest_sql`: ``candidates`` rows,
    default ``k``, in the index's order); the score threshold (as a distance bound), the exact
    re-rank and the final ordering (iterative scans may return slightly out of order) are
    applied outside it, in the same statement.
    """
    q = _query_vector(spec, params, vector)
    cols = sql.SQL(
        "id, content, metadata, embedding" if include_embeddings else "id, content, metadata"
    )
    where = _where([_ids_cond(params, ids), compile_filter(filter, params)])
    plain_index = spec.quantization is None or (
        spec.quantization == "halfvec" and spec.vector_type == "halfvec"
    )
    if spec.distributed and plain_index and max_distance is None and candidates is None:
        # Citus pushes ORDER BY ... LIMIT down to every shard and merges by the same order on
        # the coordinator; the nested form below would make it plan the inner query apart and
        # pass its rows on as an intermediate result (measured 1.8x the flat query's time).
        # Ties in distance are not ordered by id here.
        return sql.SQL(
            "SELECT {cols}, embedding {op} {q} AS distance FROM {t}{where} "
            "ORDER BY embedding {op} {q} LIMIT {k}"
        ).format(cols=cols, op=spec.operator, q=q, t=spec.ident, where=where, k=params.add(k))
    # callers pass integers (candidates >= k); no int() here: _ops caches this statement
    inner = nearest_sql(spec, params, q, where, k if candidates is None else candidates, cols)
    bound = (
        sql.SQL(" WHERE distance <= {}").format(params.add(max_distance))
        if max_distance is not None
        else sql.SQL("")
    )
    return sql.SQL("SELECT * FROM ({}) AS nearest{} ORDER BY distance, id LIMIT {}").format(
        inner, bound, params.add(k)
    )


def tsquery_sql(spec: TableSpec, params: Params, query: str | list[str]) -> sql.Composed:
    """A tsquery OR-ing every lexeme of the query (``NULL`` if it has none).

    With client-side segmentation ``query`` is the list of words (as they are stored); with a
    server configuration it is the raw text and the lexemes come from ``to_tsvector`` itself.
    Each lexeme is quoted as a tsquery literal, so query text is never parsed as tsquery syntax.
    """
    if isinstance(query, list):
        source = sql.SQL("unnest({}::text[]) AS lexeme").format(params.add(query))
    else:
        source = sql.SQL("unnest(to_tsvector({}::regconfig, {}::text))").format(
            params.add(spec.ts_config), params.add(query)
        )
    return sql.SQL(
        "(SELECT string_agg(DISTINCT '''' || replace(replace(lexeme, '\\', '\\\\'), '''', '''''') "
        "|| '''', ' | ')::tsquery FROM {})"
    ).format(source)


def text_search_sql(
    spec: TableSpec,
    params: Params,
    query_text: str | list[str],
    k: int,
    *,
    filter: Filter | None = None,
    ids: list[str] | None = None,
) -> sql.Composed:
    """Full-text search ranked by ``ts_rank_cd`` (normalised to [0, 1)): ``..., rank``."""
    return sql.SQL(
        "WITH q AS (SELECT {tsq} AS tsq) "
        "SELECT t.id, t.content, t.metadata, ts_rank_cd(t.content_tsv, q.tsq, 32) AS rank "
        "FROM {t} AS t, q WHERE t.content_tsv @@ q.tsq{ids}{filt} "
        "ORDER BY rank DESC, t.id LIMIT {k}"
    ).format(
        tsq=tsquery_sql(spec, params, query_text),
        t=spec.ident,
        ids=_and(_ids_cond(params, ids, "t.id")),
        filt=_and(compile_filter(filter, params, sql.SQL("t.metadata"))),
        k=params.add(int(k)),
    )


def _and(cond: sql.Composable | None) -> sql.Composable:
    return sql.SQL("") if cond is None else sql.SQL(" AND ") + cond


def _sparse_ranked(
    spec: TableSpec,
    params: Params,
    sparse: Any,
    n: int,
    columns: str,
    filter: Filter | None,
    ids: list[str] | None,
) -> sql.Composed:
    """The ``n`` rows of highest sparse inner product (the HNSW ``sparsevec_ip_ops`` order),
    ``columns`` and ``distance`` (the negative inner product); rows sharing no term with the
    query (inner product 0) are left out, as full-text search leaves out non-matches."""
    sq = sql.SQL("{}::sparsevec({})").format(
        params.add(sparse), sql.Literal(int(spec.sparse_dimension or 0))
    )
    where = _where(
        [
            sql.SQL("sparse_embedding IS NOT NULL"),
            _ids_cond(params, ids),
            compile_filter(filter, params),
        ]
    )
    return sql.SQL(
        "SELECT * FROM (SELECT {cols}, sparse_embedding <#> {q} AS distance FROM {t}{where} "
        "ORDER BY sparse_embedding <#> {q} LIMIT {n}) AS ranked WHERE distance < 0"
    ).format(cols=sql.SQL(columns), q=sq, t=spec.ident, where=where, n=params.add(int(n)))


def sparse_search_sql(
    spec: TableSpec,
    params: Params,
    sparse: Any,
    k: int,
    *,
    filter: Filter | None = None,
    ids: list[str] | None = None,
) -> sql.Composed:
    """Sparse-vector search, best first: ``id, content, metadata, distance`` (``distance`` is
    the negative inner product, pgvector's ``<#>``)."""
    inner = _sparse_ranked(spec, params, sparse, k, "id, content, metadata", filter, ids)
    return sql.SQL("SELECT * FROM ({}) AS s ORDER BY distance, id").format(inner)


def hybrid_sql(
    spec: TableSpec,
    params: Params,
    vector: Any,
    query_text: str | list[str] | None,
    k: int,
    *,
    fetch_k: int,
    filter: Filter | None = None,
    rrf_k: int = 60,
    vector_weight: float = 1.0,
    text_weight: float = 1.0,
    ids: list[str] | None = None,
    candidates: int | None = None,
    sparse: Any = None,
    sparse_weight: float = 1.0,
) -> sql.Composed:
    """Vector, full-text (``query_text`` not ``None``) and sparse (``sparse`` not ``None``)
    rankings, each of ``fetch_k`` rows, fused by reciprocal rank fusion in one statement:
    ``sum(weight / (rrf_k + rank))`` over the rankings a row is in.

    Returns ``id, content, metadata, rrf, distance`` (``distance`` is NULL for rows the
    vector ranking did not find).
    """
    q = _query_vector(spec, params, vector)
    vec_filter = _where([_ids_cond(params, ids), compile_filter(filter, params)])
    near = nearest_sql(
        spec, params, q, vec_filter, max(int(candidates or fetch_k), int(fetch_k)), sql.SQL("id")
    )
    n = params.add(int(fetch_k))
    rk = params.add(float(rrf_k))
    ctes: list[sql.Composable] = [
        sql.SQL(
            "vec AS (SELECT id, distance, row_number() OVER (ORDER BY distance, id) AS rnk FROM ("
            "SELECT * FROM ({near}) AS c ORDER BY distance, id LIMIT {n}) AS v)"
        ).format(near=near, n=n)
    ]
    ranks: list[sql.Composable] = [
        sql.SQL("SELECT id, rnk, {}::float8 AS w, distance FROM vec").format(
            params.add(float(vector_weight))
        )
    ]
    if query_text is not None:
        txt_filter = _and(_ids_cond(params, ids, "t.id")) + _and(
            compile_filter(filter, params, sql.SQL("t.metadata"))
        )
        ctes.append(
            sql.SQL("q AS (SELECT {} AS tsq)").format(tsquery_sql(spec, params, query_text))
        )
        ctes.append(
            sql.SQL(
                "txt AS (SELECT id, row_number() OVER (ORDER BY rank DESC, id) AS rnk FROM ("
                "SELECT t.id, ts_rank_cd(t.content_tsv, q.tsq, 32) AS rank FROM {t} AS t, q "
                "WHERE t.content_tsv @@ q.tsq{tf} ORDER BY rank DESC, t.id LIMIT {n}) AS x)"
            ).format(t=spec.ident, tf=txt_filter, n=n)
        )
        ranks.append(
            sql.SQL("SELECT id, rnk, {}::float8, NULL::float8 FROM txt").format(
                params.add(float(text_weight))
            )
        )
    if sparse is not None:
        ranked = _sparse_ranked(spec, params, sparse, int(fetch_k), "id", filter, ids)
        ctes.append(
            sql.SQL(
                "sp AS (SELECT id, row_number() OVER (ORDER BY distance, id) AS rnk FROM ({}) AS s)"
            ).format(ranked)
        )
        ranks.append(
            sql.SQL("SELECT id, rnk, {}::float8, NULL::float8 FROM sp").format(
                params.add(float(sparse_weight))
            )
        )
    return sql.SQL(
        "WITH {ctes}, fused AS (SELECT id, sum(w / ({rk}::float8 + rnk)) AS rrf, "
        "min(distance) AS distance FROM ({ranks}) AS r GROUP BY id) "
        "SELECT d.id, d.content, d.metadata, fused.rrf, fused.distance "
        "FROM fused JOIN {t} AS d ON d.id = fused.id ORDER BY fused.rrf DESC, d.id LIMIT {k}"
    ).format(
        ctes=sql.SQL(", ").join(ctes),
        rk=rk,
        ranks=sql.SQL(" UNION ALL ").join(ranks),
        t=spec.ident,
        k=params.add(int(k)),
    )
