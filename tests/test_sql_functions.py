"""qwen_pg.embed / chat / chat_raw / rag inside Debian's PostgreSQL 15 (plpython3u), against the
emulator, which the database server calls over HTTP."""

# ruff: noqa: F811  (pytest fixtures imported from _sql_pg15 are parameters by design)
from __future__ import annotations

import json
import math
from typing import Any

import psycopg
import pytest

from _sql_pg15 import _reset_emulator, db, emu, pg15, sql_dsn  # noqa: F401
from qwen_pg_integrations.rag import NO_CONTEXT_ANSWERS
from qwen_pg_integrations.testing import Fault, ScriptedReply

pytestmark = pytest.mark.plpython


def _vec(text: str) -> list[float]:
    return [float(x) for x in text.strip("[]").split(",")]


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def test_embed_text_returns_a_pgvector_vector_of_the_model_default_dimension(db: Any, emu: Any):
    row = db.execute(
        "SELECT pg_typeof(qwen_pg.embed('hello world'))::text,"
        " vector_dims(qwen_pg.embed('hello world')), qwen_pg.embed(NULL::text) IS NULL"
    ).fetchone()
    assert row == ("vector", 1024, True)
    req = emu.requests[-1]
    assert req.endpoint == "embedding" and req.model == "text-embedding-v4"
    assert req.body["parameters"]["text_type"] == "document"


def test_embed_matches_the_python_core_vector_exactly(db: Any, emu: Any):
    from qwen_pg_integrations.dashscope import EmbeddingClient

    in_db = _vec(db.execute("SELECT qwen_pg.embed('pgvector 索引', 'query')::text").fetchone()[0])
    client = EmbeddingClient(api_key=emu.api_key, base_url=emu.base_url)
    assert in_db == client.embed_query("pgvector 索引")
    assert emu.requests[0].body["parameters"]["text_type"] == "query"


def test_embed_takes_model_and_dimensions_per_call(db: Any, emu: Any):
    dims = db.execute(
        "SELECT vector_dims(qwen_pg.embed('x', 'document', 'text-embedding-v3', 256))"
    )
    assert dims.fetchone()[0] == 256
    assert emu.requests[-1].model == "text-embedding-v3"


def test_embed_array_keeps_order_and_nulls_and_batches_by_model_limit(db: Any, emu: Any):
    texts = [f"document number {i}" for i in range(23)] + [None]
    rows = db.execute(
        "SELECT e::text FROM unnest(qwen_pg.embed(%s::text[])) AS e", [texts]
    ).fetchall()
    assert len(rows) == 24 and rows[-1][0] is None
    singles = [
        db.execute("SELECT qwen_pg.embed(%s)::text", [texts[i]]).fetchone()[0] for i in (0, 22)
    ]
    assert [rows[0][0], rows[22][0]] == singles
    # text-embedding-v4 takes at most 10 texts per call: 23 texts -> 3 calls (then the 2 singles)
    sizes = [len(r.body["input"]["texts"]) for r in emu.requests]
    assert sizes == [10, 10, 3, 1, 1]


def test_chat_returns_the_answer_text_and_sends_system_and_user(db: Any, emu: Any):
    emu.script(ScriptedReply(text="PostgreSQL 是一个数据库。"))
    answer = db.execute("SELECT qwen_pg.chat('Answer in Chinese.', 'What is PostgreSQL?')")
    assert answer.fetchone()[0] == "PostgreSQL 是一个数据库。"
    body = emu.requests[-1].body
    assert body["model"] == "qwen-plus"
    assert body["input"]["messages"] == [
        {"role": "system", "content": "Answer in Chinese."},
        {"role": "user", "content": "What is PostgreSQL?"},
    ]


def test_chat_model_and_options_are_passed_to_dashscope(db: Any, emu: Any):
    db.execute(
        "SELECT qwen_pg.chat(NULL, 'hi', 'qwen-turbo', '{\"temperature\": 0.1, \"seed\": 7}')"
    )
    body = emu.requests[-1].body
    assert body["model"] == "qwen-turbo"
    assert body["parameters"]["temperature"] == 0.1 and body["parameters"]["seed"] == 7
    assert [m["role"] for m in body["input"]["messages"]] == ["user"]


def test_chat_raw_returns_the_whole_response_as_jsonb(db: Any, emu: Any):
    emu.script(ScriptedReply(text="hello", reasoning="thinking...", finish_reason="stop"))
    raw = db.execute(
        "SELECT qwen_pg.chat_raw('s', 'p', 'qwen-plus', '{\"enable_thinking\": true}')"
    ).fetchone()[0]
    assert raw["content"] == "hello"
    assert raw["reasoning_content"] == "thinking..."
    assert raw["finish_reason"] == "stop"
    assert raw["model"] == "qwen-plus"
    assert raw["usage"]["total_tokens"] > 0 and raw["request_id"]
    kind = db.execute("SELECT pg_typeof(qwen_pg.chat_raw(NULL, 'x'))::text").fetchone()[0]
    assert kind == "jsonb"


def test_chat_raw_returns_tool_calls_requested_through_options(db: Any, emu: Any):
    emu.script(ScriptedReply(tool_calls=[{"name": "lookup", "arguments": {"q": "pg"}}]))
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
    raw = db.execute(
        "SELECT qwen_pg.chat_raw(NULL, 'look it up', NULL, %s)",
        [psycopg.types.json.Jsonb({"tools": tools})],
    ).fetchone()[0]
    assert raw["tool_calls"][0]["name"] == "lookup"
    assert json.loads(raw["tool_calls"][0]["arguments"]) == {"q": "pg"}


# --- RAG ------------------------------------------------------------------------------------

DOCS = [
    ("pg", "pgvector adds vector similarity search to PostgreSQL.", {"source": "pgvector.md"}),
    ("hnsw", "HNSW indexes make approximate nearest neighbour search fast.", {"source": "idx.md"}),
    ("cat", "Cats sleep for most of the day in warm places.", {"source": "cats.md"}),
    ("zh", "通义千问是阿里云的大语言模型。", {"source": "qwen.md"}),
]


@pytest.fixture(scope="module")
def docs_table(db: Any) -> str:
    """A table in the package's format (DESIGN.md §4), embedded in SQL with qwen_pg.embed."""
    db.execute(
        "CREATE TABLE kb (id text PRIMARY KEY, content text NOT NULL,"
        " metadata jsonb NOT NULL DEFAULT '{}', embedding vector(1024), content_tsv tsvector)"
    )
    with db.cursor() as cur:
        cur.executemany(
            "INSERT INTO kb (id, content, metadata) VALUES (%s, %s, %s)",
            [(i, c, psycopg.types.json.Jsonb(m)) for i, c, m in DOCS],
        )
    db.execute("UPDATE kb SET embedding = qwen_pg.embed(content)")
    return "kb"


def test_rag_answers_from_the_retrieved_rows_with_sources(db: Any, emu: Any, docs_table: str):
    row = db.execute(
        "SELECT answer, sources, no_context FROM qwen_pg.rag(%s, %s, 3, 0.2)",
        ["What does pgvector add to PostgreSQL?", docs_table],
    ).fetchone()
    answer, sources, no_context = row
    assert no_context is False
    # the emulator quotes the context sentence closest to the question: grounded in the rows
    assert "pgvector adds vector similarity search to PostgreSQL" in answer
    assert sources[0]["id"] == "pg"
    assert sources[0]["metadata"] == {"source": "pgvector.md"}
    assert all(s["similarity"] >= 0.2 for s in sources)
    assert [s["similarity"] for s in sources] == sorted(
        (s["similarity"] for s in sources), reverse=True
    )
    embed_req, chat_req = emu.requests
    assert embed_req.body["parameters"]["text_type"] == "query"
    user = chat_req.body["input"]["messages"][-1]["content"]
    assert "[1] source: pgvector.md" in user and "What does pgvector add" in user


def test_rag_similarity_is_cosine_of_the_query_embedding(db: Any, docs_table: str):
    sources = db.execute(
        "SELECT sources FROM qwen_pg.rag('HNSW nearest neighbour search', %s, 4, -1)",
        [docs_table],
    ).fetchone()[0]
    query = _vec(db.execute("SELECT qwen_pg.embed('HNSW nearest neighbour search', 'query')::text")
                 .fetchone()[0])  # fmt: skip
    stored = dict(db.execute("SELECT id, embedding::text FROM kb").fetchall())
    for source in sources:
        assert source["similarity"] == pytest.approx(_cosine(query, _vec(stored[source["id"]])))
    assert len(sources) == 4 and sources[0]["id"] == "hnsw"


def test_rag_below_threshold_says_it_does_not_know_without_calling_the_model(
    db: Any, emu: Any, docs_table: str
):
    row = db.execute(
        "SELECT (r).answer, (r).sources, (r).no_context"
        " FROM (SELECT qwen_pg.rag('quantum chromodynamics lattice', %s, 3, 0.95) AS r) s",
        [docs_table],
    ).fetchone()
    assert row == (NO_CONTEXT_ANSWERS["en"], [], True)
    assert [r.endpoint for r in emu.requests] == ["embedding"]


def test_rag_in_chinese_uses_the_chinese_prompt(db: Any, emu: Any, docs_table: str):
    answer, sources, _ = db.execute(
        "SELECT * FROM qwen_pg.rag('通义千问是什么模型？', %s, 2, 0.1)", [docs_table]
    ).fetchone()
    assert sources[0]["id"] == "zh"
    assert answer.startswith("根据上下文：") and "通义千问是阿里云的大语言模型" in answer


def test_rag_over_a_table_written_by_the_pg_store_uses_its_recorded_model(
    db: Any, emu: Any, sql_dsn: str
):
    from qwen_pg_integrations.dashscope import EmbeddingClient
    from qwen_pg_integrations.pg import PGStore, Record

    client = EmbeddingClient("text-embedding-v3", dimensions=512, api_key=emu.api_key,
                             base_url=emu.base_url)  # fmt: skip
    texts = ["Qwen models are served by DashScope.", "PolarDB is compatible with PostgreSQL."]
    with psycopg.connect(sql_dsn) as conn:
        store = PGStore(conn, table_name="store_docs", embedding_model="text-embedding-v3")
        store.add(
            Record(id=None, content=t, metadata={"n": i}, embedding=v)
            for i, (t, v) in enumerate(zip(texts, client.embed_documents(texts), strict=True))
        )
        conn.commit()
    emu.clear_requests()
    answer, sources, _ = db.execute(
        "SELECT * FROM qwen_pg.rag('Which service serves Qwen models?', 'store_docs', 2, 0.2)"
    ).fetchone()
    assert sources[0]["content"] == texts[0] and sources[0]["metadata"] == {"n": 0}
    assert "Qwen models are served by DashScope" in answer
    embed_req = emu.requests[0]
    assert embed_req.model == "text-embedding-v3"
    assert embed_req.body["parameters"]["dimension"] == 512


@pytest.mark.parametrize("quantization", ["binary", "halfvec"])
def test_rag_over_a_quantized_table_uses_its_index_and_exact_similarities(
    db: Any, emu: Any, sql_dsn: str, quantization: str
):
    from qwen_pg_integrations.dashscope import EmbeddingClient
    from qwen_pg_integrations.pg import PGStore, Record

    client = EmbeddingClient(api_key=emu.api_key, base_url=emu.base_url)
    topics = ["cafeteria lunch", "parking rules", "holiday calendar", "printer toner", "team"]
    places = ["Hangzhou", "Beijing", "Shanghai", "Shenzhen", "Chengdu", "Wuhan", "Xi'an", "Suzhou"]
    texts = [f"{topics[i % 5]} note for the {places[i // 5]} office" for i in range(40)]
    texts += ["HNSW indexes make pgvector similarity search fast."]
    table = f"quant_{quantization}"
    with psycopg.connect(sql_dsn) as conn:
        store = PGStore(conn, table_name=table, embedding_model="text-embedding-v4")
        vectors = client.embed_documents(texts)
        store.add(
            Record(f"d{i}", t, {}, v) for i, (t, v) in enumerate(zip(texts, vectors, strict=True))
        )
        store.create_index("hnsw", quantization=quantization)
        conn.commit()
    db.execute("SET enable_seqscan = off")  # 41 rows: the planner would rightly scan them
    _, sources, no_context = db.execute(
        f"SELECT * FROM qwen_pg.rag('How do HNSW indexes make pgvector fast?', '{table}', 2, 0.5)"
    ).fetchone()
    db.execute("RESET enable_seqscan")
    assert not no_context and sources[0]["id"] == "d40"
    query = client.embed_query("How do HNSW indexes make pgvector fast?")
    assert sources[0]["similarity"] == pytest.approx(_cosine(query, vectors[40]), abs=1e-5)
    db.execute("SELECT pg_stat_force_next_flush()")
    db.execute("SELECT pg_stat_clear_snapshot()")
    (scans,) = db.execute(
        "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = %s",
        [f"{table}_embedding_hnsw_{quantization}"],
    ).fetchone()
    assert scans >= 1, "rag() did not use the quantized index"


def test_rag_on_a_table_without_embedding_column_is_a_clear_error(db: Any):
    db.execute("CREATE TABLE IF NOT EXISTS plain (id int, body text)")
    with pytest.raises(psycopg.Error) as info:
        db.execute("SELECT qwen_pg.rag('q', 'plain', 3, 0.5)")
    assert info.value.sqlstate == "22023"
    assert "not a table in the package's format" in str(info.value)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ("SELECT qwen_pg.rag('q', NULL)", "tbl is NULL"),
        ("SELECT qwen_pg.rag('q', NULL, 3, 0.5)", "tbl is NULL"),
        ("SELECT qwen_pg.rag(NULL, 'plain')", "question is empty"),
        ("SELECT qwen_pg.rag('q', 'plain', 0)", "k must be a positive number"),
    ],
)
def test_rag_with_null_or_bad_arguments_is_a_clear_error(db: Any, call: str, message: str):
    db.execute("CREATE TABLE IF NOT EXISTS plain (id int, body text)")
    with pytest.raises(psycopg.Error) as info:
        db.execute(call)
    assert info.value.sqlstate == "22023", str(info.value)
    assert message in str(info.value)
    assert "IndexError" not in str(info.value)


# --- errors ---------------------------------------------------------------------------------


def test_rate_limited_embedding_is_retried_inside_the_database(db: Any, emu: Any):
    emu.inject(Fault(status=429, code="Throttling.RateQuota"), times=2, endpoint="embedding")
    dims = db.execute("SELECT vector_dims(qwen_pg.embed('retry me'))").fetchone()[0]
    assert dims == 1024
    assert [r.endpoint for r in emu.requests] == ["embedding"] * 3


def test_rate_limit_that_outlasts_the_retries_is_a_qw429_error(db: Any, emu: Any):
    emu.inject(Fault(status=429, code="Throttling.RateQuota"), times=5, endpoint="embedding")
    with pytest.raises(psycopg.Error) as info:
        db.execute("SELECT qwen_pg.embed('still throttled')")
    err = info.value
    assert err.sqlstate == "QW429"
    assert "Throttling.RateQuota" in err.diag.message_primary
    assert "lower the concurrency" in err.diag.message_primary
    assert len(emu.requests) == 3  # max_retries=2 at install


def test_content_inspection_failure_is_a_qw451_error(db: Any, emu: Any):
    emu.script(ScriptedReply(error=(400, "DataInspectionFailed", "Input data may contain ...")))
    with pytest.raises(psycopg.Error) as info:
        db.execute("SELECT qwen_pg.chat(NULL, 'bad words')")
    assert info.value.sqlstate == "QW451"
    assert "DataInspectionFailed" in str(info.value)
    assert "rephrase" in info.value.diag.message_primary
    assert "code=DataInspectionFailed status=400" in info.value.diag.message_detail


def test_empty_text_is_refused_before_any_call(db: Any, emu: Any):
    with pytest.raises(psycopg.Error) as info:
        db.execute("SELECT qwen_pg.embed(ARRAY['ok', '  '])")
    assert info.value.sqlstate == "22023"
    assert emu.requests == []


def test_wrong_key_is_a_qw401_error_with_the_code_and_the_region_hint(
    pg15: Any, emu: Any, sql_dsn: str
):
    from qwen_pg_integrations.sql import install

    install(sql_dsn, schema="qwen_pg_badkey", api_key="sk-wrong-key-123", base_url=emu.base_url)
    with psycopg.connect(sql_dsn, autocommit=True) as conn:
        with pytest.raises(psycopg.Error) as info:
            conn.execute("SELECT qwen_pg_badkey.embed('x')")
        err = info.value
        assert err.sqlstate == "QW401"
        head = "AuthenticationError: DashScope 401 InvalidApiKey"
        assert err.diag.message_primary.startswith(head)
        assert "region" in err.diag.message_primary and "region" in err.diag.message_hint
        assert "qwen-pg sql install" in err.diag.message_hint
        assert "sk-wrong-key-123" not in str(err) + str(err.diag.message_detail)
        with pytest.raises(psycopg.Error) as info:
            conn.execute("SELECT qwen_pg_badkey.chat(NULL, 'x')")
        assert info.value.sqlstate == "QW401"
    assert len(emu.requests) == 2  # a 401 is not retried


def test_rag_and_trigger_work_on_halfvec_columns(db: Any, emu: Any):
    db.execute(
        "CREATE TABLE wide (id text PRIMARY KEY, content text NOT NULL,"
        " metadata jsonb NOT NULL DEFAULT '{}', embedding halfvec(2048), content_tsv tsvector)"
    )
    db.execute("SELECT qwen_pg.sync_embedding('wide', 'content', 'embedding')")
    db.execute(
        "INSERT INTO wide (id, content) VALUES ('a', 'Halfvec stores half precision vectors.'),"
        " ('b', 'Bananas are yellow.')"
    )
    assert db.execute("SELECT vector_dims(embedding) FROM wide WHERE id = 'a'").fetchone() == (
        2048,
    )
    emu.clear_requests()
    answer, sources, _ = db.execute(
        "SELECT * FROM qwen_pg.rag('Halfvec stores which precision vectors?', 'wide', 2, 0.2)"
    ).fetchone()
    assert sources[0]["id"] == "a" and "half precision" in answer
    assert emu.requests[0].body["parameters"]["dimension"] == 2048
