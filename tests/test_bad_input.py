"""Issue 7: bad input gets a clear typed error (or a documented behaviour) and loses nothing.

Every store case runs next to a "victim" table of 20 rows whose count and content are checked
after the bad call; every DashScope case checks what reached the (emulated) service.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from qwen_pg_integrations.dashscope import ChatClient, DashScopeClient, EmbeddingClient
from qwen_pg_integrations.errors import (
    AuthenticationError,
    BadRequestError,
    FilterError,
    InvalidDimensionError,
    InvalidInputError,
    NotFoundError,
    QwenPGError,
    SchemaMismatchError,
    StorageError,
    UnsupportedModelError,
)
from qwen_pg_integrations.ingest import Chunk
from qwen_pg_integrations.pg import PGStore, Record
from qwen_pg_integrations.rag.knowledge_base import KnowledgeBase
from qwen_pg_integrations.testing import DashScopeEmulator, Fault
from qwen_pg_integrations.types import ChatMessage

DIM = 4
VICTIM_ROWS = 20


def _vec(i: int) -> list[float]:
    return [1.0, float(i), 0.5, -0.25]


@pytest.fixture
def victim(pg_dsn: str, table_name: str) -> Iterator[PGStore]:
    store = PGStore(pg_dsn, table_name=table_name, dimension=DIM)
    store.add(
        Record(f"v{i}", f"victim row {i}", {"i": i, "tag": "keep"}, _vec(i)) for i in range(20)
    )
    yield store
    _assert_intact(store)


def _assert_intact(store: PGStore) -> None:
    assert store.count() == VICTIM_ROWS, "rows already stored were lost"
    got = store.get([f"v{i}" for i in range(VICTIM_ROWS)])
    assert [r.content for r in got] == [f"victim row {i}" for i in range(VICTIM_ROWS)]


@pytest.fixture
def emu() -> Iterator[DashScopeEmulator]:
    with DashScopeEmulator() as e:
        yield e


def _client(emu: DashScopeEmulator, **kw: Any) -> DashScopeClient:
    return DashScopeClient(api_key=emu.api_key, base_url=emu.base_url, backoff_base=0.01, **kw)


# --- texts -----------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["", "   ", "\n\t \u3000"])
def test_empty_or_whitespace_text_is_refused_before_any_call_and_nothing_is_written(
    bad: str, emu: DashScopeEmulator, victim: PGStore
) -> None:
    emb = EmbeddingClient("text-embedding-v4", dimensions=DIM * 16, client=_client(emu))
    with pytest.raises(InvalidInputError, match=r"texts\[1\] is empty or whitespace"):
        emb.embed_documents(["fine", bad, "also fine"])
    with pytest.raises(InvalidInputError):
        emb.embed_query(bad)
    kb = KnowledgeBase(victim, emb)
    with pytest.raises(InvalidInputError):
        kb.add([Chunk("c1", "good text", {}), Chunk("c2", bad, {})])
    assert emu.requests_for("embedding") == [], "an empty text reached DashScope"


def test_langchain_add_texts_with_a_blank_text_raises_before_writing_its_batch(
    emu: DashScopeEmulator, pg_dsn: str, table_name: str
) -> None:
    from qwen_pg_integrations.langchain import DashScopeEmbeddings, PGVectorStore

    emb = DashScopeEmbeddings(dimensions=64, api_key=emu.api_key, base_url=emu.base_url)
    store = PGVectorStore(emb, connection=pg_dsn, table_name=table_name + "_lc")
    store.add_texts(["kept one", "kept two"])
    with pytest.raises(InvalidInputError, match="empty or whitespace"):
        store.add_texts(["new one", "  ", "new two"])
    assert store.store.count() == 2
    with pytest.raises(InvalidInputError, match="k must be a positive integer"):
        store.similarity_search("kept", k=0)
    assert store.store.count() == 2


def test_text_over_the_token_limit_is_refused_before_the_call_or_by_the_service(
    emu: DashScopeEmulator, victim: PGStore
) -> None:
    long_text = "word " * 50_000  # > 8,192 tokens of text-embedding-v4
    emb = EmbeddingClient("text-embedding-v4", client=_client(emu))
    with pytest.raises(InvalidInputError, match=r"8192 tokens per text\); split it"):
        emb.embed_documents(["short", long_text])
    assert emu.requests_for("embedding") == []
    unchecked = EmbeddingClient("text-embedding-v4", client=_client(emu), check_length=False)
    with pytest.raises(BadRequestError, match="input length"):
        unchecked.embed_documents([long_text])
    assert len(emu.requests_for("embedding")) == 1, "a 400 must not be retried"


# --- vectors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_or_inf_in_a_vector_is_refused_and_its_batch_writes_nothing(
    bad: float, victim: PGStore
) -> None:
    batch = [Record(f"n{i}", f"new {i}", {}, _vec(i)) for i in range(5)]
    batch.append(Record("bad", "bad vector", {}, [1.0, bad, 0.0, 0.0]))
    with pytest.raises(InvalidInputError, match="NaN or infinite"):
        victim.add(batch)
    with pytest.raises(InvalidInputError, match="NaN or infinite"):
        victim.search([bad, 0.0, 0.0, 1.0])
    with pytest.raises(InvalidInputError):
        victim.hybrid_search([0.0, bad, 0.0, 1.0], "victim")
    assert victim.get(["n0", "bad"]) == []


@pytest.mark.parametrize(
    ("bad", "error", "match"),
    [
        ([1.0, math.nan, 0.0, 0.0], InvalidInputError, "record 'bad'.*NaN or infinite"),
        ([1.0, 2.0, 3.0], SchemaMismatchError, "record 'bad' has 3 dimensions"),
        ([1.0, "x", 0.0, 0.0], InvalidInputError, "record 'bad'.*list of numbers"),
        ([[1.0, 2.0], [3.0, 4.0]], InvalidInputError, "record 'bad'.*1-d vector"),
    ],
)
@pytest.mark.parametrize("at", [0, 255, 256, 700])
def test_a_bad_vector_anywhere_in_a_large_batch_is_named_and_nothing_is_written(
    bad: list[Any], error: type[Exception], match: str, at: int, victim: PGStore
) -> None:
    """Vectors are converted a block (256) at a time: a bad one in any block, at any place,
    is found and named, and the batch writes nothing."""
    batch = [Record(f"n{i}", f"new {i}", {}, _vec(i)) for i in range(800)]
    batch[at] = Record("bad", "bad vector", {}, bad)
    with pytest.raises(error, match=match):
        victim.add(batch)
    assert victim.get(["n1", "n799", "bad"]) == []


def test_wrong_dimension_is_a_schema_mismatch_for_writes_and_queries(victim: PGStore) -> None:
    with pytest.raises(SchemaMismatchError, match="3 dimensions but table"):
        victim.add([Record("ok", "ok", {}, _vec(1)), Record("short", "x", {}, [1.0, 2.0, 3.0])])
    with pytest.raises(SchemaMismatchError, match="query vector has 5 dimensions"):
        victim.search([1.0, 2.0, 3.0, 4.0, 5.0])
    with pytest.raises(InvalidInputError):
        victim.search([])
    assert victim.get(["ok"]) == []


# --- metadata --------------------------------------------------------------------------------


def test_metadata_values_json_cannot_hold_are_stored_as_their_text(victim: PGStore) -> None:
    """Documented (pg/records.py dumps_metadata): non-JSON values become strings; dates in
    ISO 8601, the form filters compare them in."""
    when = datetime.datetime(2026, 11, 29, 12, 0)
    victim.add([Record("m1", "meta", {"when": when, "raw": b"\x01", "set": {2, 1}}, _vec(1))])
    meta = victim.get(["m1"])[0].metadata
    assert meta == {"when": "2026-11-29T12:00:00", "raw": "b'\\x01'", "set": [1, 2]}
    assert [r.id for r in victim.get(filter={"when": {"$gte": when}})] == ["m1"]
    assert victim.get(filter={"when": {"$gt": when}}) == []
    victim.delete(["m1"])


@pytest.mark.parametrize(
    "metadata",
    [{"x": math.nan}, {"x": [math.inf]}],
    ids=["nan", "inf"],
)
def test_metadata_json_cannot_represent_is_refused_typed(
    metadata: dict[str, Any], victim: PGStore
) -> None:
    with pytest.raises(InvalidInputError, match="cannot hold NaN or Infinity"):
        victim.add([Record("good", "g", {}, _vec(1)), Record("m", "m", metadata, _vec(2))])
    assert victim.get(["good", "m"]) == []


def test_circular_metadata_is_refused_typed(victim: PGStore) -> None:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    with pytest.raises(InvalidInputError, match="a reference cycle"):
        victim.add([Record("m", "m", loop, _vec(2))])


@pytest.mark.parametrize("metadata", [{(1, 2): "tuple key"}, [1, 2]], ids=["key", "list"])
def test_metadata_with_non_string_keys_or_not_a_mapping_is_refused_typed(
    metadata: Any, victim: PGStore
) -> None:
    with pytest.raises(InvalidInputError):
        victim.add([Record("m", "m", metadata, _vec(2))])


# --- filters ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"i": {"$regex": ".*"}},
        {"$xor": [{"i": 1}]},
        {"i": {"$gt": 1, "tag": "keep"}},
        {"i": {"$in": "not a list"}},
        {"": 1},
        {"a..b": 1},
        {"i": {"$gt": math.nan}},
    ],
    ids=["unknown-op", "unknown-top-op", "mixed", "in-not-list", "empty-key", "empty-path", "nan"],
)
def test_bad_filters_raise_filter_error_and_never_delete(
    bad: dict[str, Any], victim: PGStore
) -> None:
    with pytest.raises(FilterError):
        victim.search(_vec(1), filter=bad)
    with pytest.raises(FilterError):
        victim.delete(filter=bad)  # must not fall back to "delete everything"
    with pytest.raises(FilterError):
        victim.count(filter=bad)


INJECTIONS = [
    "i') OR 1=1; DROP TABLE {t}; --",
    'i" = 1 OR "1"="1',
    "i'}' OR true --",
    "i\\'; DELETE FROM {t}; --",
]


@pytest.mark.parametrize("key", INJECTIONS)
def test_injection_in_filter_keys_is_a_plain_key_matching_nothing(
    key: str, victim: PGStore
) -> None:
    key = key.replace("{t}", victim.table_name)
    assert victim.search(_vec(1), filter={key: 1}) == []
    assert victim.count(filter={key: {"$exists": True}}) == 0
    assert victim.delete(filter={key: 1}) == 0


@pytest.mark.parametrize("value", [*INJECTIONS, "keep' OR '1'='1", "%", "_"])
def test_injection_in_filter_values_is_a_plain_value_matching_nothing(
    value: str, victim: PGStore
) -> None:
    value = value.replace("{t}", victim.table_name)
    assert victim.search(_vec(1), filter={"tag": value}) == []
    assert victim.count(filter={"tag": {"$in": [value]}}) == 0
    assert victim.delete(filter={"tag": value}) == 0
    assert victim.delete(filter={"tag": {"$like": value + "x"}}) == 0


def test_injection_in_table_name_is_a_quoted_identifier(pg_dsn: str, victim: PGStore) -> None:
    """Documented: names are identifiers (psycopg.sql.Identifier), never SQL."""
    evil = f'x"; DROP TABLE {victim.table_name}; --'
    store = PGStore(pg_dsn, table_name=evil, dimension=DIM)
    store.add([Record("z", "z", {}, _vec(1))])
    assert store.count() == 1
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert conn.execute(
            "SELECT to_regclass(%s)", [sql.Identifier(evil).as_string(conn)]
        ).fetchone()
    store.drop()


@pytest.mark.parametrize("quote", ['"', "'"])
def test_injection_in_schema_name_fails_typed_and_drops_nothing(
    quote: str, pg_dsn: str, victim: PGStore
) -> None:
    target = PGStore(pg_dsn, table_name=f"rv_{victim.table_name[-8:]}", dimension=DIM)
    target.add([Record("t", "target row", {}, _vec(1))])
    schema = f"public{quote}; DROP TABLE {target.table_name}; --"
    store = PGStore(pg_dsn, table_name="evil_schema_t", schema_name=schema, dimension=DIM)
    with pytest.raises(StorageError, match="does not exist"):
        store.add([Record("z", "z", {}, _vec(1))])
    assert target.count() == 1
    target.drop()
    # a name too long to be an identifier is refused before any SQL
    with pytest.raises(InvalidInputError, match=r"1\.\.63 bytes"):
        PGStore(pg_dsn, schema_name=f"public{quote}; DROP TABLE {victim.table_name}; --")


@pytest.mark.parametrize("name", ["", "x" * 64, "a\x00b"])
def test_invalid_table_names_are_refused_before_any_sql(name: str, pg_dsn: str) -> None:
    with pytest.raises(InvalidInputError):
        PGStore(pg_dsn, table_name=name, dimension=DIM)


# --- k, thresholds and other knobs -----------------------------------------------------------


@pytest.mark.parametrize(
    "k",
    [
        0,
        -1,
        2.5,
        True,
        "3",
    ],
)
def test_k_not_a_positive_integer_is_refused(k: Any, victim: PGStore) -> None:
    for call in (
        lambda: victim.search(_vec(1), k=k),
        lambda: victim.text_search("victim", k=k),
        lambda: victim.hybrid_search(_vec(1), "victim", k=k),
        lambda: victim.mmr_search(_vec(1), k=k),
    ):
        with pytest.raises(InvalidInputError, match="k must be a positive integer"):
            call()


def test_mmr_lambda_and_hybrid_weights_out_of_range_are_refused(victim: PGStore) -> None:
    with pytest.raises(InvalidInputError, match="lambda_mult"):
        victim.mmr_search(_vec(1), lambda_mult=1.5)
    with pytest.raises(InvalidInputError):
        victim.hybrid_search(_vec(1), "victim", vector_weight=-1.0)
    with pytest.raises(InvalidInputError):
        victim.hybrid_search(_vec(1), "victim", vector_weight=0.0, text_weight=0.0)
    with pytest.raises(InvalidInputError):
        victim.search(_vec(1), probes=0)


def test_score_threshold_inside_zero_one_filters_in_sql(victim: PGStore) -> None:
    assert len(victim.search(_vec(1), k=20, score_threshold=0.0)) == 20
    hits = victim.search(_vec(1), k=20, score_threshold=0.99)
    assert hits and all(h.score >= 0.99 for h in hits)
    assert victim.search(_vec(1), k=20, score_threshold=1.0)[0].record.id == "v1"


@pytest.mark.parametrize("threshold", [1.5, -0.5, math.nan])
def test_score_threshold_out_of_range_is_refused(threshold: float, victim: PGStore) -> None:
    with pytest.raises(InvalidInputError):
        victim.search(_vec(1), score_threshold=threshold)


def test_text_search_with_blank_query_returns_nothing(victim: PGStore) -> None:
    """Documented behaviour: a blank query matches no text (no error, no full scan)."""
    assert victim.text_search("   ") == []


# --- models and keys -------------------------------------------------------------------------


def test_unknown_embedding_model_or_dimension_fails_at_construction(
    emu: DashScopeEmulator,
) -> None:
    with pytest.raises(UnsupportedModelError, match="text-embedding-v4"):
        EmbeddingClient("text-embedding-v9", client=_client(emu))
    with pytest.raises(InvalidDimensionError, match="choose one of"):
        EmbeddingClient("text-embedding-v4", dimensions=100, client=_client(emu))
    assert emu.requests == []


def test_unknown_chat_model_gets_the_services_404_as_not_found_without_retry(
    emu: DashScopeEmulator,
) -> None:
    """Documented: unknown chat names are sent (new models appear often); DashScope says 404."""
    emu.inject(Fault(status=404, code="ModelNotFound"), endpoint="generation")
    chat = ChatClient("qwen-does-not-exist", client=_client(emu))
    with pytest.raises(NotFoundError, match="Check the model name"):
        chat.chat([ChatMessage(role="user", content="hi")])
    assert len(emu.requests_for("generation")) == 1


def test_a_table_opened_with_another_embedding_model_is_refused(
    pg_dsn: str, victim: PGStore
) -> None:
    PGStore(pg_dsn, table_name=victim.table_name + "_m", embedding_model="text-embedding-v4").add(
        [Record("a", "a", {}, _vec(1))]
    )
    other = PGStore(
        pg_dsn, table_name=victim.table_name + "_m", embedding_model="text-embedding-v2"
    )
    with pytest.raises(SchemaMismatchError):
        other.search(_vec(1))


def test_wrong_key_is_an_authentication_error_not_retried(emu: DashScopeEmulator) -> None:
    client = DashScopeClient(api_key="sk-wrong", base_url=emu.base_url, backoff_base=0.01)
    with pytest.raises(AuthenticationError) as info:
        EmbeddingClient("text-embedding-v4", client=client).embed_query("pgvector")
    assert info.value.status_code == 401 and info.value.code == "InvalidApiKey"
    assert len(emu.requests) == 1
    assert "sk-wrong" not in str(info.value)


def test_key_of_another_region_names_the_region_mismatch() -> None:
    """Two emulated regions, each accepting only its own keys: a Beijing key sent to the
    international endpoint gets 401, and the message says keys are bound to a region and which
    endpoint was used."""
    with (
        DashScopeEmulator(api_key="sk-intl-key") as intl,
        DashScopeEmulator(api_key="sk-beijing-key") as beijing,
    ):
        ok = DashScopeClient(api_key="sk-beijing-key", base_url=beijing.base_url)
        assert EmbeddingClient("text-embedding-v4", client=ok).embed_query("pgvector")
        wrong = DashScopeClient(api_key="sk-beijing-key", base_url=intl.base_url)
        for call in (
            lambda: EmbeddingClient("text-embedding-v4", client=wrong).embed_query("pgvector"),
            lambda: ChatClient("qwen-plus", client=wrong).chat(
                [ChatMessage(role="user", content="hi")]
            ),
        ):
            with pytest.raises(AuthenticationError) as info:
                call()
            message = str(info.value)
            assert "bound to a region" in message
            assert intl.base_url in message
            assert "sk-beijing-key" not in message
        assert len(intl.requests) == 2, "a 401 must not be retried"


def test_every_bad_input_error_is_a_qwen_pg_error(victim: PGStore) -> None:
    """One ``except QwenPGError`` catches all of the above."""
    for call in (
        lambda: victim.search(_vec(1), k=0),
        lambda: victim.search(_vec(1), filter={"i": {"$regex": "x"}}),
        lambda: victim.add([Record("x", "x", {}, [math.nan] * DIM)]),
        lambda: victim.search([1.0]),
    ):
        with pytest.raises(QwenPGError):
            call()
