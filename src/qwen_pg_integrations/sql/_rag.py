"""The in-database ``rag()``: the package's RAG flow (:mod:`qwen_pg_integrations.rag`) in SQL.

Runs as the caller (SECURITY INVOKER): the search reads the table with the caller's privileges,
and the key is only used by ``embed()`` and ``chat()``, which it calls through SQL.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

from ..errors import InvalidInputError, QwenPGError
from ..rag import RagConfig, RetrievedChunk, rag_flow, run_flow
from ..rag.flow import check_question
from ..types import ChatMessage
from ._plpy import Plpy, raise_pg

# as pg._ops.candidates_for (imported here would load the psycopg-based core into the server)
BINARY_OVERSAMPLE = 4
BINARY_CANDIDATES_MAX = 1000

__all__ = ["rag"]

_TABLE_INFO = """
SELECT format('%I.%I', n.nspname, c.relname) AS qualified, n.nspname, c.relname,
       t.typname AS embedding_type, a.atttypmod AS dims,
       (SELECT format('%I', vn.nspname) FROM pg_extension e
          JOIN pg_namespace vn ON vn.oid = e.extnamespace WHERE e.extname = 'vector') AS vs,
       to_regclass(format('%I.qwen_pg_collections', n.nspname)) IS NOT NULL AS has_catalog
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'embedding'
       AND NOT a.attisdropped
  LEFT JOIN pg_type t ON t.oid = a.atttypid
 WHERE c.oid = $1
"""


def _table_info(plpy: Plpy, tbl: str) -> Mapping[str, Any]:
    rows = plpy.execute(plpy.prepare(_TABLE_INFO, ["regclass"]), [tbl])
    info: Mapping[str, Any] = rows[0]
    if info["embedding_type"] not in ("vector", "halfvec") or not info["vs"]:
        raise InvalidInputError(
            f"{info['qualified']} is not a table in the package's format: rag() needs an "
            "'embedding' vector/halfvec column (pgvector) next to id, content and metadata."
        )
    return info


def _catalog(plpy: Plpy, info: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The embedding model and index quantization the PG store recorded for the table."""
    if not info["has_catalog"]:
        return None, None
    catalog = plpy.quote_ident(info["nspname"]) + ".qwen_pg_collections"
    has_quant = plpy.execute(
        plpy.prepare(
            "SELECT 1 FROM pg_attribute WHERE attrelid = $1::regclass"
            " AND attname = 'quantization' AND NOT attisdropped",
            ["text"],
        ),
        [catalog],
    ).nrows()
    quant = "quantization" if has_quant else "NULL::text AS quantization"
    query = (
        f"SELECT embedding_model, {quant} FROM {catalog}"  # noqa: S608 (quoted by quote_ident)
        " WHERE schema_name = $1 AND table_name = $2"
    )
    rows = plpy.execute(plpy.prepare(query, ["text", "text"]), [info["nspname"], info["relname"]])
    if not rows.nrows():
        return None, None
    model = str(rows[0]["embedding_model"]) if rows[0]["embedding_model"] else None
    q = rows[0]["quantization"]
    return model, (q if q in ("halfvec", "binary") else None)


def _search(
    plpy: Plpy, info: Mapping[str, Any], vector: str, k: int, quantization: str | None
) -> list[RetrievedChunk]:
    vs = str(info["vs"])
    cast = f"{vs}.{info['embedding_type']}"
    op = f"OPERATOR({vs}.<=>)"
    # ORDER BY distance LIMIT k lets an HNSW/IVFFlat index answer; names were quoted by %I.
    # With a quantized index (pg.queries.nearest_sql, the same statement shape) the rows come
    # in the index's order of the quantized value and are re-ranked by the exact distance.
    dims = int(info["dims"])
    order, n = f"embedding {op} $1::{cast}", k
    if quantization == "binary":
        order = (
            f"{vs}.binary_quantize(embedding)::bit({dims}) OPERATOR({vs}.<~>)"
            f" {vs}.binary_quantize($1::{cast})::bit({dims})"
        )
        n = min(BINARY_CANDIDATES_MAX, max(BINARY_OVERSAMPLE * k, k + 40))
    elif quantization == "halfvec" and info["embedding_type"] == "vector":
        order = f"embedding::{vs}.halfvec({dims}) {op} $1::{cast}::{vs}.halfvec({dims})"
    query = (
        "SELECT id, content, metadata, similarity FROM ("  # noqa: S608
        "SELECT id::text AS id, content, metadata::text AS metadata,"
        f" 1 - (embedding {op} $1::{cast}) AS similarity FROM ("
        f"SELECT * FROM {info['qualified']} WHERE embedding IS NOT NULL"
        f" ORDER BY {order} LIMIT $3) AS candidates"
        ") AS nearest ORDER BY similarity DESC, id LIMIT $2"
    )
    # HNSW hands out at most ef_search rows: at least the candidates, for this query only
    # (set_config is transaction-local; the caller's value is put back right after)
    previous = plpy.execute("SELECT current_setting('hnsw.ef_search', true) AS v")[0]["v"]
    wanted = max(n, int(previous) if previous and str(previous).isdigit() else 40)
    set_ef = plpy.prepare("SELECT set_config('hnsw.ef_search', $1, true)", ["text"])
    plpy.execute(set_ef, [str(min(wanted, 1000))])
    try:
        rows = plpy.execute(plpy.prepare(query, ["text", "integer", "integer"]), [vector, k, n])
    finally:
        if previous:
            plpy.execute(set_ef, [str(previous)])
    return [
        RetrievedChunk(
            content=str(row["content"]),
            score=float(row["similarity"]),
            metadata=json.loads(row["metadata"]) if row["metadata"] else {},
            id=row["id"],
        )
        for row in rows
    ]


def _source(chunk: RetrievedChunk) -> dict[str, Any]:
    return {
        "id": chunk.id,
        "content": chunk.content,
        "metadata": dict(chunk.metadata),
        "similarity": chunk.score,
    }


def rag(
    plpy: Plpy,
    gd: MutableMapping[str, Any],
    question: str | None,
    tbl: str | None,
    k: int | None,
    threshold: float | None,
    model: str | None,
    embedding_model: str | None,
) -> dict[str, Any]:
    """``rag(question, tbl, k, threshold, model, embedding_model)`` -> ``rag_answer``.

    Embeds the question as a *query* (``embed(..., 'query')``, with the model the store recorded
    for the table, else ``embedding_model``, else the configured one, at the column's dimension),
    takes the ``k`` nearest rows by cosine distance, keeps those whose cosine similarity is at
    least ``threshold``, and asks Qwen (``chat()``) to answer from them with numbered sources.
    With nothing above the threshold the model is not called and the answer says so.
    """
    del gd  # everything that needs the key goes through SQL (embed, chat)
    try:
        check_question(question)
        if tbl is None:
            raise InvalidInputError(
                "tbl is NULL: pass the collection table, e.g. "
                "SELECT * FROM qwen_pg.rag('question', 'my_docs')."
            )
        if k is not None and k < 1:
            raise InvalidInputError(f"k must be a positive number of chunks, not {k}.")
        if threshold is not None and not -1.0 <= threshold <= 1.0:
            raise InvalidInputError(
                f"threshold is a cosine similarity in [-1, 1], not {threshold}."
            )
        # The SQL threshold is a raw cosine similarity in [-1, 1] (the stores' relevance scores,
        # which RagConfig checks, are in [0, 1]), so retrieve() applies it; the flow then sees
        # only chunks that passed and answers "nothing found" when none did.
        config = RagConfig(k=5 if k is None else k)
        info = _table_info(plpy, tbl)
        recorded_model, quantization = _catalog(plpy, info)
        emb_model = embedding_model or recorded_model
        dims = int(info["dims"]) if info["dims"] and int(info["dims"]) > 0 else None
        flow = rag_flow(question or "", config)
    except QwenPGError as exc:
        raise_pg(plpy, exc)

    embed_plan = plpy.prepare(
        "SELECT embed($1, 'query', $2, $3)::text AS v", ["text", "text", "int4"]
    )
    chat_plan = plpy.prepare("SELECT chat($1, $2, $3) AS answer", ["text", "text", "text"])

    def retrieve(query: str, n: int) -> Sequence[RetrievedChunk]:
        vector = str(plpy.execute(embed_plan, [query, emb_model, dims])[0]["v"])
        chunks = _search(plpy, info, vector, n, quantization)
        if threshold is None:
            return chunks
        return [c for c in chunks if c.score is not None and c.score >= threshold]

    def generate(messages: Sequence[ChatMessage]) -> str:
        system = "\n".join(m.content for m in messages if m.role == "system")
        prompt = "\n".join(m.content for m in messages if m.role != "system")
        return str(plpy.execute(chat_plan, [system, prompt, model])[0]["answer"])

    try:
        result = run_flow(flow, retrieve=retrieve, generate=generate)
    except QwenPGError as exc:  # input errors of the flow; SQL errors pass through unchanged
        raise_pg(plpy, exc)
    sources = [_source(c) for c in result.chunks]
    return {
        "answer": result.answer,
        "sources": json.dumps(sources, ensure_ascii=False),
        "no_context": result.no_context,
    }
