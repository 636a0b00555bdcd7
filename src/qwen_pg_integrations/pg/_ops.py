"""Plans for the store's reads, searches and admin (shared by the sync and async methods).

Write plans live in ``_write.py`` and are re-exported here."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from psycopg import sql
from psycopg.types.json import Jsonb

from ..errors import InvalidInputError, SchemaMismatchError
from ._plan import Exec, Plan
from ._write import RowBatch, build_rows, write_plan
from ._write import vector_param as _vector_param
from .filters import Filter, Params
from .mmr import maximal_marginal_relevance
from .queries import (
    count_sql,
    delete_sql,
    get_sql,
    hybrid_sql,
    probe_count_sql,
    set_local_sql,
    settings_sql,
    sparse_search_sql,
    text_search_sql,
    vector_search_sql,
)
from .records import Record, SearchHit, check_vector
from .schema import ServerInfo, TableSpec
from .sparse import as_weights, query_sparse
from .text import segment

__all__ = [
    "RowBatch",
    "build_rows",
    "check_search_args",
    "check_threshold",
    "count_plan",
    "delete_plan",
    "get_plan",
    "hybrid_plan",
    "mmr_plan",
    "search_plan",
    "search_settings",
    "sparse_plan",
    "text_plan",
    "vector_settings",
    "write_plan",
]

DEFAULT_EF_SEARCH = 40
EXACT_FILTER_LIMIT = 1000
EXACT_FILTER_FRACTION = 0.02
MAX_EF_SEARCH = 1000
BINARY_OVERSAMPLE = 4


def query_vector(spec: TableSpec, embedding: Any) -> npt.NDArray[np.float32]:
    """The query embedding checked against the table's dimension."""
    arr = check_vector(embedding, None)
    if arr.size != spec.dimension:
        raise SchemaMismatchError(
            f"query vector has {arr.size} dimensions but table {spec.schema}.{spec.table} stores "
            f"{spec.dimension}: embed queries with the model the table was filled with."
        )
    return arr


def search_settings(
    server: ServerInfo,
    k: int,
    *,
    filtered: bool,
    ef_search: int | None,
    probes: int | None,
    oversampled: bool = False,
) -> dict[str, str]:
    """Transaction-local settings for one search (empty: none needed).

    ``hnsw.ef_search`` is at least ``k`` (HNSW never returns more than ef_search rows), and
    ``2 k`` for a large ``k`` (above pgvector's default of 40) unless the caller chose it or
    ``k`` already counts an oversampled candidate set: with ef_search = k, recall@100 was 0.94
    on 100k x 1024-d (bench/bench_scale.py); filtered
    searches on pgvector >= 0.8 turn on iterative index scans so they still return ``k`` rows
    when ``k`` rows match. Older pgvector gets a larger ef_search, and :func:`search_plan`
    reruns a filtered query that came back short as an exact scan.
    """
    _check_k(k)
    out: dict[str, str] = {}
    ef = max(ef_search or 0, k)
    if ef_search is None and not oversampled and k > DEFAULT_EF_SEARCH:
        ef = 2 * k
    if filtered and not server.has_iterative_scan:
        ef = max(ef, min(MAX_EF_SEARCH, k * 10, 400))
    if ef_search is not None or ef > DEFAULT_EF_SEARCH:
        out["hnsw.ef_search"] = str(min(MAX_EF_SEARCH, max(1, ef)))
    if probes is not None:
        if probes < 1:
            raise InvalidInputError(f"probes must be >= 1, got {probes}")
        out["ivfflat.probes"] = str(int(probes))
    if filtered and server.has_iterative_scan:
        out["hnsw.iterative_scan"] = "relaxed_order"
        out["ivfflat.iterative_scan"] = "relaxed_order"
    return out


def vector_settings(
    spec: TableSpec,
    server: ServerInfo,
    k: int,
    *,
    filtered: bool,
    ef_search: int | None,
    probes: int | None,
    candidates: int | None = None,
) -> dict[str, str]:
    """The settings of a top-``k`` vector search on this table (its candidates included)."""
    n = candidates_for(spec, k, candidates)
    return search_settings(
        server, n, filtered=filtered, ef_search=ef_search, probes=probes, oversampled=n > k
    )


def filter_strategy(
    spec: TableSpec,
    filter: Filter | None,
    ids: Sequence[str] | None,
    *,
    exact_limit: int,
    allow_disable_bitmaps: bool = True,
    k: int = 10,
) -> Plan[dict[str, str]]:
    """Planner settings for a filtered vector search, from a bounded count of matching rows.

    PostgreSQL estimates ``metadata @> ...`` blindly (about 0.1 % of rows), so it may pick an
    exact scan through the GIN index for a filter that matches half the table, or the HNSW index
    for one that matches five rows (whose scan then stops before finding them). Counting at most
    ``exact_limit + 1`` matching rows settles it: few matches -> exact search (vector index
    off: exact and complete); many -> the vector index with its iterative scan (bitmap and
    sequential scans off, so the planner does not sort every match; without a vector index
    the exact scan remains). "Few" is at most ``exact_limit`` rows and at most
    :data:`EXACT_FILTER_FRACTION` of the table (``10 k`` rows at least): at 10 % selectivity
    the index's iterative scan finds ``k`` matches after about ``10 k`` candidates, while an
    exact scan reads every match (1,000 heap pages at 10k rows: 5 ms against 1 ms).
    """
    if not filter or exact_limit <= 0:
        return {}
    p = Params()
    id_list = None if ids is None else [str(i) for i in ids]
    query = probe_count_sql(spec, p, filter, id_list, exact_limit + 1)
    key = _probe_key(spec, query, p, exact_limit)
    key = (*key, k)
    few = _PROBES.get(key)
    if few is None:
        row = yield Exec(query, p.values, fetch="one")
        matches, rows = int(row[0]), float(row[1] or -1)
        fraction = max(int(rows * EXACT_FILTER_FRACTION), 10 * k) if rows > 0 else exact_limit
        few = matches <= min(exact_limit, fraction)
        _PROBES.put(key, few)
    if few:
        return {"enable_indexscan": "off"}
    if not allow_disable_bitmaps:
        return {}
    return {"enable_bitmapscan": "off", "enable_seqscan": "off"}


class _ProbeCache:
    """Recent filter probes: (table, filter) -> "few matches?", for ``PROBE_TTL`` seconds.

    The answer only picks the plan (both plans return complete results), so a slightly stale
    one costs speed at most, while a repeated filter (a tenant, a category) saves the probe's
    round trip and heap reads on every search.
    """

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self.items: dict[Any, tuple[float, bool]] = {}
        self.lock = threading.Lock()

    def get(self, key: Any) -> bool | None:
        hit = self.items.get(key)
        if hit is None or time.monotonic() - hit[0] > PROBE_TTL:
            return None
        return hit[1]

    def put(self, key: Any, few: bool) -> None:
        with self.lock:
            if len(self.items) >= self.size:
                self.items.clear()
            self.items[key] = (time.monotonic(), few)


PROBE_TTL = 30.0
_PROBES = _ProbeCache()


def _probe_key(spec: TableSpec, query: sql.Composed, p: Params, limit: int) -> Any:
    values = json.dumps(
        {k: (v.obj if isinstance(v, Jsonb) else v) for k, v in p.values.items()},
        sort_keys=True,
        default=str,
    )
    return (spec.schema, spec.table, query.as_bytes(None), values, limit)


def clear_probe_cache() -> None:
    """Forget the cached filter probes (e.g. after a bulk load changed what filters match)."""
    with _PROBES.lock:
        _PROBES.items.clear()


def _settings(spec: TableSpec, params: dict[str, str]) -> Plan[None]:
    """The search's transaction-local settings (on a Citus table: sent to every shard)."""
    if not params:
        return
    if spec.distributed:
        for stmt in set_local_sql(params):
            yield Exec(stmt)
        return
    p = Params()  # not fetched: in a pipeline it travels with the query that follows
    yield Exec(settings_sql(p, params), p.values)


def _embedding_list(value: Any) -> list[float] | None:
    if value is None:
        return None
    if hasattr(value, "to_list"):  # pgvector Vector / HalfVector
        return [float(x) for x in value.to_list()]
    return [float(x) for x in value]  # numpy array (older pgvector-python loaders)


def _record(row: Sequence[Any], with_embedding: bool, with_sparse: bool = False) -> Record:
    emb = _embedding_list(row[3]) if with_embedding else None
    sparse = as_weights(row[4]) if with_sparse else None
    return Record(
        id=row[0], content=row[1], metadata=row[2] or {}, embedding=emb, sparse_embedding=sparse
    )


_SEARCH_CACHE: dict[tuple[Any, ...], tuple[bytes, tuple[str, ...], tuple[Any, ...]]] = {}
_VEC, _K, _N, _MAXD = (object() for _ in range(4))  # slots of a cached statement's values


def _cached_search(
    spec: TableSpec,
    vparam: Any,
    k: int,
    n: int,
    max_d: float | None,
    include_embeddings: bool,
) -> tuple[bytes, dict[str, Any]]:
    """The unfiltered search statement, composed once per table shape (it is the hot path)."""
    key = (spec, include_embeddings, max_d is not None, n != k)
    hit = _SEARCH_CACHE.get(key)
    if hit is None:
        p = Params()
        q = vector_search_sql(
            spec,
            p,
            _VEC,
            _K,  # type: ignore[arg-type]
            max_distance=_MAXD if max_d is not None else None,  # type: ignore[arg-type]
            include_embeddings=include_embeddings,
            candidates=_N if n != k else None,  # type: ignore[arg-type]
        )
        if len(_SEARCH_CACHE) > 256:
            _SEARCH_CACHE.clear()
        hit = _SEARCH_CACHE[key] = (q.as_bytes(None), tuple(p.values), tuple(p.values.values()))
    maxd = None if max_d is None else float(max_d)
    slots = {id(_VEC): vparam, id(_K): int(k), id(_N): int(n), id(_MAXD): maxd}
    return hit[0], {name: slots[id(v)] for name, v in zip(hit[1], hit[2], strict=True)}


def candidates_for(spec: TableSpec, k: int, candidates: int | None) -> int:
    """How many rows the vector index hands to the exact re-rank for a top ``k``.

    Binary codes keep 1 bit a dimension: their Hamming order only roughly follows the exact
    one, so :data:`BINARY_OVERSAMPLE` times ``k`` (at least ``k + 40``) candidates are re-ranked
    by their float32 distance. A halfvec index orders almost exactly: its ``k`` rows are only
    re-ordered by the exact distance. ``candidates`` overrides both (at least ``k``).
    """
    if candidates is not None:
        if isinstance(candidates, bool) or not isinstance(candidates, int) or candidates < 1:
            raise InvalidInputError(f"candidates must be a positive integer, got {candidates!r}")
        return max(candidates, k)
    if spec.quantization == "binary":
        return min(MAX_EF_SEARCH, max(BINARY_OVERSAMPLE * k, k + 40))
    return k


def search_plan(
    spec: TableSpec,
    server: ServerInfo,
    vector: npt.NDArray[np.float32],
    k: int,
    *,
    filter: Filter | None,
    score_threshold: float | None,
    ef_search: int | None,
    probes: int | None,
    include_embeddings: bool,
    ids: Sequence[str] | None = None,
    exact_limit: int = EXACT_FILTER_LIMIT,
    score_fn: Callable[[float], float] | None = None,
    candidates: int | None = None,
) -> Plan[list[SearchHit]]:
    """Nearest neighbours, best first, with relevance scores (``ids`` restricts the rows).

    On a quantized table (``spec.quantization``) the index hands ``candidates`` rows (see
    :func:`candidates_for`) to an exact re-rank in the same statement: distances and scores are
    always the float32 ones.

    ``score_fn`` replaces the table distance's relevance (:meth:`Distance.score`); the
    threshold then applies to its scores, after the ``k`` nearest rows are fetched (it should
    decrease as the distance grows).
    """
    check_search_args(k, score_threshold)
    restricted = bool(filter) or ids is not None
    n = candidates_for(spec, k, candidates)
    local = vector_settings(
        spec, server, k, filtered=restricted, ef_search=ef_search, probes=probes, candidates=n
    )
    strategy = yield from filter_strategy(spec, filter, ids, exact_limit=max(exact_limit, 0), k=k)
    yield from _settings(spec, {**local, **strategy})
    max_d = (
        spec.distance.max_distance(score_threshold)
        if score_threshold is not None and score_fn is None
        else None
    )
    vparam = _vector_param(spec, vector)
    q: bytes | sql.Composed
    if not restricted:
        q, values = _cached_search(spec, vparam, k, n, max_d, include_embeddings)
    else:
        p = Params()
        q = vector_search_sql(
            spec,
            p,
            vparam,
            k,
            filter=filter,
            max_distance=max_d,
            include_embeddings=include_embeddings,
            ids=None if ids is None else [str(i) for i in ids],
            candidates=n,
        )
        values = p.values
    rows = yield Exec(q, values, fetch="all")
    if restricted and len(rows) < k and strategy.get("enable_indexscan") != "off":
        # pgvector < 0.8 cannot continue an index scan past ef_search candidates, and an
        # iterative scan stops after hnsw.max_scan_tuples (20,000): a very selective filter
        # may come back short although k rows match. Rerun it exactly (complete).
        yield from _settings(spec, {"enable_indexscan": "off", "enable_bitmapscan": "on",
                              "enable_seqscan": "on"})  # fmt: skip
        rows = yield Exec(q, values, fetch="all")
    score = score_fn or spec.distance.score
    hits = [
        SearchHit(_record(r, include_embeddings), score(float(r[-1])), float(r[-1])) for r in rows
    ]
    if score_fn is not None and score_threshold is not None:
        hits = [h for h in hits if h.score >= score_threshold]
    return hits


def mmr_plan(
    spec: TableSpec,
    server: ServerInfo,
    vector: npt.NDArray[np.float32],
    k: int,
    *,
    fetch_k: int,
    lambda_mult: float,
    filter: Filter | None,
    score_threshold: float | None,
    ef_search: int | None,
    probes: int | None,
    include_embeddings: bool,
    ids: Sequence[str] | None = None,
    exact_limit: int = EXACT_FILTER_LIMIT,
    score_fn: Callable[[float], float] | None = None,
    candidates: int | None = None,
) -> Plan[list[SearchHit]]:
    """Fetch ``fetch_k`` candidates with their vectors, pick ``k`` by MMR in numpy."""
    check_search_args(k, score_threshold)
    fetch_k = max(fetch_k, k)
    hits = yield from search_plan(
        spec,
        server,
        vector,
        fetch_k,
        filter=filter,
        score_threshold=score_threshold,
        ef_search=max(ef_search or 0, fetch_k),
        probes=probes,
        include_embeddings=True,
        ids=ids,
        exact_limit=exact_limit,
        score_fn=score_fn,
        candidates=candidates,
    )
    if not hits:
        return []
    cands = np.asarray([h.record.embedding for h in hits], dtype=np.float32)
    order = maximal_marginal_relevance(vector, cands, k=k, lambda_mult=lambda_mult)
    picked = [hits[i] for i in order]
    if include_embeddings:
        return picked
    return [
        SearchHit(Record(h.record.id, h.record.content, h.record.metadata), h.score, h.distance)
        for h in picked
    ]


def text_plan(
    spec: TableSpec,
    query: str,
    k: int,
    *,
    filter: Filter | None,
    ids: Sequence[str] | None = None,
) -> Plan[list[SearchHit]]:
    """Full-text search (client-side jieba segmentation or the server configuration)."""
    _check_full_text(spec, "keyword (full-text) search")
    _check_k(k)
    p = Params()
    qtext = segment(query) if spec.client_segmentation else query
    id_list = None if ids is None else [str(i) for i in ids]
    stmt = text_search_sql(spec, p, qtext, k, filter=filter, ids=id_list)
    rows = yield Exec(stmt, p.values, fetch="all")
    return [SearchHit(_record(r, False), float(r[3]), None) for r in rows]


def hybrid_plan(
    spec: TableSpec,
    server: ServerInfo,
    vector: npt.NDArray[np.float32],
    query: str | None,
    k: int,
    *,
    fetch_k: int | None,
    filter: Filter | None,
    rrf_k: int,
    vector_weight: float,
    text_weight: float,
    ef_search: int | None,
    probes: int | None,
    ids: Sequence[str] | None = None,
    exact_limit: int = EXACT_FILTER_LIMIT,
    candidates: int | None = None,
    sparse: Any = None,
    sparse_weight: float = 1.0,
) -> Plan[list[SearchHit]]:
    """Vector + full-text (+ sparse) ranks fused by reciprocal rank fusion in one statement."""
    _check_k(k)
    sparse_q = None
    if sparse is not None:
        _check_sparse(spec, "a sparse ranking in hybrid search")
        sparse_q = query_sparse(sparse, int(spec.sparse_dimension or 0))
    if query is not None and not isinstance(query, str):
        raise InvalidInputError(f"query must be a string or None, got {type(query).__name__}")
    if query is not None and (spec.full_text or sparse_q is None):
        _check_full_text(spec, "hybrid search with a text query")
    elif sparse_q is None:
        raise InvalidInputError(
            "hybrid search needs a text query or a sparse vector besides the embedding"
        )
    with_text = query is not None and spec.full_text
    weights = [vector_weight, text_weight, sparse_weight]
    if rrf_k < 0 or any(
        isinstance(w, bool) or not isinstance(w, (int, float)) or not w >= 0 for w in weights
    ):
        raise InvalidInputError("rrf_k and the weights must be numbers >= 0")
    total = vector_weight + (text_weight if with_text else 0) + (sparse_weight if sparse_q else 0)
    if total == 0:
        raise InvalidInputError("the weights of the rankings used must not all be 0")
    n = max(fetch_k or max(4 * k, 20), k)
    cand = candidates_for(spec, n, candidates)
    local = search_settings(
        server,
        cand,
        oversampled=cand > n,
        filtered=bool(filter) or ids is not None,
        ef_search=ef_search,
        probes=probes,
    )
    # the text ranking needs its GIN bitmap scan: only the few-matches (exact) side applies
    strategy = yield from filter_strategy(
        spec, filter, ids, exact_limit=max(exact_limit, 0), allow_disable_bitmaps=False
    )
    yield from _settings(spec, {**local, **strategy})
    qtext: str | list[str] | None = None
    if with_text:
        assert query is not None
        qtext = segment(query) if spec.client_segmentation else query
    p = Params()
    stmt = hybrid_sql(
        spec,
        p,
        _vector_param(spec, vector),
        qtext,
        k,
        fetch_k=n,
        filter=filter,
        rrf_k=rrf_k,
        vector_weight=vector_weight,
        text_weight=text_weight,
        ids=None if ids is None else [str(i) for i in ids],
        candidates=cand,
        sparse=sparse_q,
        sparse_weight=sparse_weight,
    )
    rows = yield Exec(stmt, p.values, fetch="all")
    best = total / (rrf_k + 1)
    return [
        SearchHit(
            _record(r, False),
            min(1.0, float(r[3]) / best),
            None if r[4] is None else float(r[4]),
        )
        for r in rows
    ]


def sparse_plan(
    spec: TableSpec,
    server: ServerInfo,
    sparse: Any,
    k: int,
    *,
    filter: Filter | None,
    ids: Sequence[str] | None,
    ef_search: int | None,
    exact_limit: int = EXACT_FILTER_LIMIT,
) -> Plan[list[SearchHit]]:
    """Sparse-vector search (HNSW ``sparsevec_ip_ops``): rows sharing terms with the query."""
    _check_k(k)
    _check_sparse(spec, "sparse search")
    q = query_sparse(sparse, int(spec.sparse_dimension or 0))
    restricted = bool(filter) or ids is not None
    local = search_settings(server, k, filtered=restricted, ef_search=ef_search, probes=None)
    strategy = yield from filter_strategy(spec, filter, ids, exact_limit=max(exact_limit, 0), k=k)
    yield from _settings(spec, {**local, **strategy})
    p = Params()
    id_list = None if ids is None else [str(i) for i in ids]
    rows = yield Exec(
        sparse_search_sql(spec, p, q, k, filter=filter, ids=id_list), p.values, fetch="all"
    )
    return [
        SearchHit(_record(r, False), min(1.0, max(0.0, -float(r[3]))), float(r[3])) for r in rows
    ]


def _check_sparse(spec: TableSpec, what: str) -> None:
    if not spec.sparse:
        raise SchemaMismatchError(
            f"table {spec.schema}.{spec.table} stores no sparse vectors, so {what} is not "
            "available: open the store with sparse_dimension=... (the column is added) and "
            "add the documents with sparse vectors (DashScope output_type='dense&sparse')."
        )


def get_plan(
    spec: TableSpec,
    ids: Sequence[str] | None,
    *,
    filter: Filter | None,
    limit: int | None,
    include_embeddings: bool,
) -> Plan[list[Record]]:
    """Rows by ids (in the order asked, missing ones skipped) and/or filter."""
    id_list = None if ids is None else [str(i) for i in ids]
    p = Params()
    q = get_sql(spec, p, id_list, filter=filter, include_embeddings=include_embeddings, limit=limit)
    rows = yield Exec(q, p.values, fetch="all")
    with_sparse = include_embeddings and spec.sparse
    records = [_record(r, include_embeddings, with_sparse) for r in rows]
    if id_list is None:
        return records
    by_id = {r.id: r for r in records}
    seen: set[str] = set()
    out = []
    for i in id_list:
        if i in by_id and i not in seen:
            seen.add(i)
            out.append(by_id[i])
    return out


def delete_plan(spec: TableSpec, ids: Sequence[str] | None, filter: Filter | None) -> Plan[int]:
    """Delete by ids and/or filter; returns the number of rows deleted."""
    p = Params()
    id_list = None if ids is None else [str(i) for i in ids]
    n = yield Exec(delete_sql(spec, p, id_list, filter), p.values, fetch="rowcount")
    return int(n)


def count_plan(spec: TableSpec, filter: Filter | None) -> Plan[int]:
    """Number of rows (matching ``filter``)."""
    p = Params()
    row = yield Exec(count_sql(spec, p, filter), p.values, fetch="one")
    return int(row[0])


def _check_full_text(spec: TableSpec, what: str) -> None:
    if not spec.full_text:
        raise SchemaMismatchError(
            f"table {spec.schema}.{spec.table} was created with text_search='none' (no "
            f"full-text column), so {what} is not available: use similarity search, or create "
            "a table with text_search='auto' (the default) and add the documents there."
        )


def _check_k(k: int) -> None:
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise InvalidInputError(f"k must be a positive integer, got {k!r}")


def check_threshold(score_threshold: float | None) -> None:
    """Refuse a ``score_threshold`` that is not a finite number in [0, 1] (``None`` is fine)."""
    t = score_threshold
    if t is None:
        return
    if (
        isinstance(t, bool)
        or not isinstance(t, (int, float))
        or not math.isfinite(t)
        or not 0.0 <= t <= 1.0
    ):
        raise InvalidInputError(
            f"score_threshold must be a number in [0, 1] (minimum relevance), got {t!r}"
        )


def check_search_args(k: int, score_threshold: float | None = None) -> None:
    """Validate ``k`` and ``score_threshold`` before anything touches the database."""
    _check_k(k)
    check_threshold(score_threshold)


def as_mapping(value: Any) -> Mapping[str, Any]:
    """Metadata from the database (always a dict)."""
    return value if isinstance(value, Mapping) else {}


def drop_plan(spec: TableSpec) -> Plan[None]:
    """Drop the table and its catalog row."""
    from .schema import CATALOG_TABLE

    yield Exec(sql.SQL("DROP TABLE IF EXISTS {}").format(spec.ident))
    yield Exec(
        sql.SQL("DELETE FROM {} WHERE schema_name = %(s)s AND table_name = %(t)s").format(
            sql.Identifier(spec.schema, CATALOG_TABLE)
        ),
        {"s": spec.schema, "t": spec.table},
    )


def clear_plan(spec: TableSpec) -> Plan[None]:
    """Delete every row."""
    yield Exec(sql.SQL("TRUNCATE {}").format(spec.ident))


def explain_plan(
    spec: TableSpec,
    server: ServerInfo,
    vector: npt.NDArray[np.float32],
    k: int,
    *,
    filter: Filter | None,
    ef_search: int | None,
    probes: int | None,
    analyze: bool,
    settings: Mapping[str, str] | None = None,
    ids: Sequence[str] | None = None,
    exact_limit: int = EXACT_FILTER_LIMIT,
    candidates: int | None = None,
) -> Plan[str]:
    """``EXPLAIN`` of the statement :func:`search_plan` runs, under the same settings."""
    _check_k(k)
    restricted = bool(filter) or ids is not None
    n = candidates_for(spec, k, candidates)
    local = vector_settings(
        spec, server, k, filtered=restricted, ef_search=ef_search, probes=probes, candidates=n
    )
    strategy = yield from filter_strategy(spec, filter, ids, exact_limit=max(exact_limit, 0), k=k)
    yield from _settings(spec, {**local, **strategy, **(settings or {})})
    p = Params()
    id_list = None if ids is None else [str(i) for i in ids]
    q = vector_search_sql(
        spec, p, _vector_param(spec, vector), k, filter=filter, ids=id_list, candidates=n
    )
    head = sql.SQL("EXPLAIN (ANALYZE, BUFFERS) " if analyze else "EXPLAIN ")
    if spec.distributed:  # Citus: every shard's plan; server-side parameters fail in EXPLAIN
        yield Exec(sql.SQL("SET LOCAL citus.explain_all_tasks = on"))
    rows = yield Exec(head + q, p.values, fetch="all", client_side=spec.distributed)
    return "\n".join(str(r[0]) for r in rows)
