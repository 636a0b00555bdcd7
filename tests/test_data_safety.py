"""Issue 14: no filter or input can silently delete or alter data, in any of the three stores.

Every case runs next to stored rows that are checked afterwards. The property-based tests
(hypothesis) round-trip arbitrary JSON metadata, text and ids through the core, LangChain and
LlamaIndex stores; the filter fuzzer checks that a malformed filter is always a ``FilterError``
and a well-formed one matches exactly what a reference evaluation in Python says.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.embeddings import Embeddings
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import MetadataFilters, VectorStoreQuery

from qwen_pg_integrations.errors import FilterError, InvalidInputError
from qwen_pg_integrations.langchain import PGVectorStore as LCStore
from qwen_pg_integrations.llama_index import PGVectorStore as LIStore
from qwen_pg_integrations.pg import PGStore, Record

DIM = 8


class HashEmbeddings(Embeddings):
    """Deterministic vectors from a hash of the text (empty text included)."""

    model = "hash-8"

    def _one(self, text: str) -> list[float]:
        seed = int(hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8], 16)
        v = np.random.default_rng(seed).normal(size=DIM)
        return list(v / np.linalg.norm(v))

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._one(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._one(text)


def _vec(i: int) -> list[float]:
    return [1.0, float(i)] + [0.5] * (DIM - 2)


ROWS = 20


@pytest.fixture
def core(pg_dsn: str, table_name: str) -> Iterator[PGStore]:
    store = PGStore(pg_dsn, table_name=table_name, dimension=DIM, embedding_model="hash-8")
    store.add(Record(f"v{i}", f"row {i}", {"i": i, "tag": "keep"}, _vec(i)) for i in range(ROWS))
    yield store
    store.drop()


def _intact(store: PGStore) -> None:
    assert store.count() == ROWS, "stored rows were lost"


# --- degenerate filters ----------------------------------------------------------------------

DEGENERATE = [
    {"$and": []},
    {"$or": []},
    {"$and": {}},
    {"$and": {"i": 1}},
    {"$or": [{}]},
    {"$and": [{"i": 1}, {}]},
    {"$not": {}},
    {"$not": []},
    {"$not": [{"i": 1}]},
    {"$not": "i"},
    {"$or": "i"},
    {"$and": [[]]},
    {"i": {"$not": {}}},
]
MATCH_EVERYTHING = [
    {},
    {"i": {"$nin": []}},
    {"$not": {"i": {"$in": []}}},
    {"$or": [{"i": 1}, {"tag": {"$nin": []}}]},
]


@pytest.mark.parametrize("bad", DEGENERATE, ids=str)
def test_malformed_logic_operators_are_filter_errors_in_every_core_path(
    bad: dict[str, Any], core: PGStore
) -> None:
    q = _vec(1)
    calls = [
        lambda: core.delete(filter=bad),
        lambda: core.delete(["v1"], filter=bad),
        lambda: core.search(q, filter=bad),
        lambda: core.mmr_search(q, filter=bad),
        lambda: core.hybrid_search(q, "row", filter=bad),
        lambda: core.text_search("row", filter=bad),
        lambda: core.get(filter=bad),
        lambda: core.count(filter=bad),
    ]
    for call in calls:
        with pytest.raises(FilterError):
            call()
    assert isinstance(FilterError("x"), ValueError)  # as peers raise
    _intact(core)


@pytest.mark.parametrize("everything", MATCH_EVERYTHING, ids=str)
def test_a_delete_that_would_match_every_row_refuses(
    everything: dict[str, Any], core: PGStore
) -> None:
    with pytest.raises(FilterError, match="matches every row"):
        core.delete(filter=everything)
    _intact(core)
    assert len(core.search(_vec(1), k=ROWS, filter=everything)) == ROWS  # a search may


async def test_degenerate_filters_async(core: PGStore) -> None:
    for bad in DEGENERATE[:5]:
        with pytest.raises(FilterError):
            await core.adelete(filter=bad)
        with pytest.raises(FilterError):
            await core.asearch(_vec(1), filter=bad)
    with pytest.raises(FilterError):
        await core.adelete(filter={})
    with pytest.raises(InvalidInputError):
        await core.adelete()
    assert await core.acount() == ROWS


def test_or_of_nothing_is_documented_as_an_error_and_clear_is_the_explicit_delete_all(
    core: PGStore,
) -> None:
    with pytest.raises(FilterError, match=r"\$or needs at least one condition"):
        core.get(filter={"$or": []})
    core.clear()
    assert core.count() == 0


def test_degenerate_filters_in_the_langchain_store(pg_dsn: str, table_name: str) -> None:
    store = LCStore(HashEmbeddings(), connection=pg_dsn, table_name=table_name)
    store.add_texts([f"t{i}" for i in range(5)], metadatas=[{"i": i} for i in range(5)])
    try:
        for bad in DEGENERATE:
            with pytest.raises(FilterError):
                store.delete(filter=bad)
            with pytest.raises(FilterError):
                store.similarity_search("t1", filter=bad)
            with pytest.raises(FilterError):
                store.max_marginal_relevance_search("t1", filter=bad)
        for everything in MATCH_EVERYTHING:
            with pytest.raises(FilterError):
                store.delete(filter=everything)
        with pytest.raises(InvalidInputError, match="clear"):
            store.delete()
        assert store.store.count() == 5
    finally:
        store.store.drop()


def test_degenerate_filters_in_the_llama_index_store(pg_dsn: str, table_name: str) -> None:
    store = LIStore(connection=pg_dsn, table_name=table_name, embed_dim=DIM)
    nodes = []
    for i in range(5):
        node = TextNode(id_=f"n{i}", text=f"t{i}", metadata={"i": i})
        node.embedding = _vec(i)
        nodes.append(node)
    store.add(nodes)
    try:
        empty = MetadataFilters(filters=[])
        nested_empty = MetadataFilters(filters=[MetadataFilters(filters=[])])
        for filters in (empty, nested_empty, None):
            with pytest.raises(InvalidInputError):
                store.delete_nodes(filters=filters)
        assert (
            len(store.query(VectorStoreQuery(_vec(1), similarity_top_k=10, filters=empty)).nodes)
            == 5
        )
        assert store.client.count() == 5
        store.clear()
        assert store.client.count() == 0
    finally:
        store.client.drop()


# --- NUL, surrogates, keys, ids --------------------------------------------------------------


def test_escaped_nul_text_in_metadata_comes_back_unchanged_and_real_nul_is_removed_by_value(
    core: PGStore,
) -> None:
    meta = {
        "s": "C:\\u0000temp",  # a backslash, not a NUL: must not become a TAB
        "path": "C:\\temp\\u0000x",
        "nul": "a\x00b",
        "deep": {"k\x00": ["x\x00", {"y": "\\u0000"}]},
    }
    core.add([Record("m", "te\x00xt", meta, _vec(1))])
    got = core.get(["m"])[0]
    assert got.content == "text"
    assert got.metadata == {
        "s": "C:\\u0000temp",
        "path": "C:\\temp\\u0000x",
        "nul": "ab",
        "deep": {"k": ["x", {"y": "\\u0000"}]},
    }
    # the same string as a filter value finds it (filters follow the storage rule)
    assert [r.id for r in core.get(filter={"nul": "a\x00b"})] == ["m"]
    assert [r.id for r in core.get(filter={"s": "C:\\u0000temp"})] == ["m"]


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ({"a\x00": 1, "a": 2}, "the same once the NUL"),
        ({"x": {"k\x00": 1, "k": 2}}, "the same once the NUL"),
        ({1: "a", "1": "b"}, "keys must be strings"),
        ({"x": {2: "nested"}}, "keys must be strings"),
        ({"x": "\ud800"}, "lone surrogate"),
        ({"\udfff": 1}, "lone surrogate"),
        ({"x": ["ok", "\ud83d"]}, "lone surrogate"),
    ],
)
def test_metadata_that_would_lose_or_corrupt_a_value_is_refused_before_writing(
    meta: dict[Any, Any], message: str, core: PGStore
) -> None:
    batch = [Record("ok", "fine", {}, _vec(1)), Record("bad", "x", meta, _vec(2))]
    with pytest.raises(InvalidInputError, match=message):
        core.add(batch)
    assert core.get(["ok", "bad"]) == []
    _intact(core)


@pytest.mark.parametrize(
    ("rid", "text", "message"),
    [
        ("a\x00b", "t", "NUL character"),
        ("\ud800", "t", "lone surrogate"),
        ("ok", "bad \udc00 text", "lone surrogate"),
        ("", "t", "non-empty strings"),
    ],
)
def test_bad_ids_and_text_are_refused_before_anything_is_written(
    rid: str, text: str, message: str, core: PGStore
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        core.add([Record("first", "x", {}, _vec(1)), Record(rid, text, {}, _vec(2))])
    assert core.get(["first"]) == []
    _intact(core)


def test_surrogates_in_reads_are_invalid_input_not_unicode_errors(core: PGStore) -> None:
    for call in (
        lambda: core.get(["\ud800"]),
        lambda: core.delete(["\ud800"]),
        lambda: core.search(_vec(1), ids=["\ud800"]),
        lambda: core.search(_vec(1), filter={"tag": "\ud800"}),
        lambda: core.get(filter={"\ud800": 1}),
    ):
        with pytest.raises(InvalidInputError):
            call()
    _intact(core)


def test_surrogates_through_the_framework_stores_are_invalid_input(
    pg_dsn: str, table_name: str
) -> None:
    lc = LCStore(HashEmbeddings(), connection=pg_dsn, table_name=table_name)
    li = LIStore(connection=pg_dsn, table_name=table_name, embed_dim=DIM)
    try:
        for kwargs in (
            {"texts": ["bad \ud800"]},
            {"texts": ["t"], "metadatas": [{"k": "\ud800"}]},
            {"texts": ["t"], "ids": ["\ud800"]},
        ):
            with pytest.raises(InvalidInputError):
                lc.add_texts(**kwargs)
        node = TextNode(id_="n", text="ok", metadata={"k": "\udc00"})
        node.embedding = _vec(1)
        with pytest.raises(InvalidInputError):
            li.add([node])
        assert lc.store.count() == 0
    finally:
        lc.store.drop()


# --- concurrent upserts of overlapping ids ---------------------------------------------------


def _hammer(store: PGStore, threads: int = 8, calls: int = 3, n: int = 300) -> list[str]:
    errors: list[str] = []

    def work(t: int) -> None:
        for rep in range(calls):
            ids = [f"id{i:04d}" for i in range(n)]
            random.Random(t * 100 + rep).shuffle(ids)
            try:
                store.add(Record(i, f"text {i} by {t}", {"t": t}, _vec(t)) for i in ids)
            except Exception as exc:  # collected and asserted below
                errors.append(f"{type(exc).__name__}: {exc}")

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return errors


@pytest.mark.parametrize("batch_size", [2000, 50, 7])
def test_concurrent_upserts_of_the_same_ids_never_deadlock(
    pg_dsn: str, table_name: str, batch_size: int
) -> None:
    store = PGStore(pg_dsn, table_name=table_name, dimension=DIM, batch_size=batch_size)
    try:
        errors = _hammer(store)
        assert errors == [], f"{len(errors)} of 24 calls failed: {errors[:2]}"
        rows = store.get([f"id{i:04d}" for i in range(300)])
        assert len(rows) == 300 and store.count() == 300
        assert all(r.content == f"text {r.id} by {r.metadata['t']}" for r in rows)
    finally:
        store.drop()


def test_serialization_failures_of_writes_are_retried(pg_dsn: str, table_name: str) -> None:
    """Under SERIALIZABLE, concurrent upserts of the same rows fail with SQLSTATE 40001; the
    store retries its own transaction, so no call fails and the rows are whole."""
    sep = "&" if "?" in pg_dsn else "?"
    dsn = f"{pg_dsn}{sep}options=-c%20default_transaction_isolation%3Dserializable"
    store = PGStore(dsn, table_name=table_name, dimension=DIM, batch_size=25)
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SHOW default_transaction_isolation").fetchone() == ("serializable",)
    try:
        store.setup()
        store.add([Record("seed", "s", {}, _vec(0))])
        store.close()  # backends flush their statistics when they exit
        before = _rollbacks(pg_dsn)
        errors = _hammer(store, threads=6, calls=3, n=100)
        assert errors == [], errors[:2]
        assert store.count() == 101
        store.close()
        time.sleep(0.5)
        assert _rollbacks(pg_dsn) > before, "no conflict happened: the test proves nothing"
    finally:
        store.close()
        PGStore(pg_dsn, table_name=table_name).drop()


def _rollbacks(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT xact_rollback FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    assert row is not None
    return int(row[0])


# --- property-based round trips --------------------------------------------------------------

_keys = st.text(min_size=0, max_size=8).filter(lambda k: not k.startswith("_node_"))
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**62), max_value=2**62)
    | st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15)
    | st.text(max_size=12)
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=4),
    max_leaves=12,
)
_metadata = st.dictionaries(_keys, _json, max_size=5)
_ids = st.text(min_size=1, max_size=20).filter(lambda s: "\x00" not in s)
_texts = st.text(max_size=60)


def _expected(value: Any) -> Any:
    """The documented storage rule, written independently of the store's code: NUL removed
    from strings and keys (a collision is an error, signalled by KeyError here)."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, list):
        return [_expected(v) for v in value]
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            name = k.replace("\x00", "")
            if name in out:
                raise KeyError(name)
            out[name] = _expected(v)
        return out
    return value


_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def round_trip_tables(pg_dsn: str) -> Iterator[dict[str, Any]]:
    name = f"rt_{uuid.uuid4().hex[:8]}"
    stores = {
        "core": PGStore(pg_dsn, table_name=name + "_c", dimension=DIM, embedding_model="x"),
        "lc": LCStore(HashEmbeddings(), connection=pg_dsn, table_name=name + "_l"),
        "li": LIStore(connection=pg_dsn, table_name=name + "_i", embed_dim=DIM),
    }
    yield stores
    stores["core"].drop()
    stores["lc"].store.drop()
    stores["li"].client.drop()


@_SETTINGS
@given(rid=_ids, text=_texts, meta=_metadata)
def test_arbitrary_json_metadata_text_and_ids_round_trip_through_all_three_stores(
    round_trip_tables: dict[str, Any], rid: str, text: str, meta: dict[str, Any]
) -> None:
    try:
        want = _expected(meta)
    except KeyError:
        want = None  # two keys that differ only by NUL: every store must refuse
    core: PGStore = round_trip_tables["core"]
    lc: LCStore = round_trip_tables["lc"]
    li: LIStore = round_trip_tables["li"]
    node = TextNode(id_=rid, text=text, metadata=meta)
    node.embedding = _vec(1)
    writes = [
        lambda: core.add([Record(rid, text, meta, _vec(1))]),
        lambda: lc.add_texts([text], metadatas=[meta], ids=[rid]),
        lambda: li.add([node]),
    ]
    if want is None:
        for write in writes:
            with pytest.raises(InvalidInputError, match="NUL"):
                write()
        return
    for write in writes:
        write()
    got = core.get([rid])[0]
    assert (got.id, got.content, got.metadata) == (rid, text.replace("\x00", ""), want)
    doc = lc.get_by_ids([rid])[0]
    assert (doc.id, doc.page_content, doc.metadata) == (rid, text.replace("\x00", ""), want)
    back = li.get_nodes([rid])[0]
    assert (back.node_id, back.get_content(), back.metadata) == (
        rid,
        text.replace("\x00", ""),
        want,
    )


# --- the filter fuzzer -----------------------------------------------------------------------

FUZZ_ROWS = [
    {"a": a, "b": b, **({"c": c} if c != "missing" else {})}
    for a in (0, 1, 2, 3, "x")
    for b in ("p", "q")
    for c in (None, True, "missing")
]


def _eq(stored: Any, value: Any) -> bool:
    return type(stored) is type(value) and stored == value


def _leaf(draw: st.DrawFn) -> tuple[dict[str, Any], Any]:
    """A well-formed field condition and its reference predicate."""
    key = draw(st.sampled_from(["a", "b", "c", "zz"]))
    kind = draw(st.sampled_from(["eq", "ne", "range", "in", "nin", "exists", "not"]))
    value = draw(st.sampled_from([0, 1, 2, 3, "x", "p", None, True]))
    if kind == "eq":
        return {key: value}, lambda m: key in m and _eq(m[key], value)
    if kind == "ne":
        return {key: {"$ne": value}}, lambda m: not (key in m and _eq(m[key], value))
    if kind in ("range", "not"):
        op = draw(st.sampled_from(["$gt", "$gte", "$lt", "$lte"]))
        n = draw(st.integers(min_value=-1, max_value=4))
        cmp = {
            "$gt": lambda x: x > n,
            "$gte": lambda x: x >= n,
            "$lt": lambda x: x < n,
            "$lte": lambda x: x <= n,
        }[op]

        def pred(m: dict[str, Any]) -> bool:
            return key in m and type(m[key]) is int and cmp(m[key])

        if kind == "not":
            return {key: {"$not": {op: n}}}, lambda m: not pred(m)
        return {key: {op: n}}, pred
    if kind in ("in", "nin"):
        values = draw(st.lists(st.sampled_from([0, 1, 2, "x", "p", "q", None]), max_size=3))

        def member(m: dict[str, Any]) -> bool:
            return key in m and any(_eq(m[key], v) for v in values)

        if kind == "in":
            return {key: {"$in": values}}, member
        return {key: {"$nin": values}}, lambda m: not member(m)
    flag = draw(st.booleans())
    return {key: {"$exists": flag}}, lambda m: (key in m) == flag


@st.composite
def _filters(draw: st.DrawFn, depth: int = 0) -> tuple[Any, Any]:
    """(filter, predicate); predicate ``None`` means the filter is malformed."""
    choice = draw(st.integers(min_value=0, max_value=9 if depth < 3 else 0))
    if choice <= 2:
        return _leaf(draw)
    if choice in (3, 4):  # $and / $or over sub-filters, sometimes malformed
        op = draw(st.sampled_from(["$and", "$or"]))
        subs = draw(st.lists(_filters(depth + 1), max_size=3))
        shape = draw(st.sampled_from(["list", "list", "list", "dict", "with_empty"]))
        if shape == "dict":
            return {op: {f"k{i}": s for i, (s, _) in enumerate(subs)}}, None
        parts = [s for s, _ in subs]
        preds = [p for _, p in subs]
        if shape == "with_empty":
            return {op: [*parts, {}]}, None
        if not parts or any(p is None for p in preds):
            return {op: parts}, None
        combine = all if op == "$and" else any
        return {op: parts}, lambda m: combine(p(m) for p in preds)
    if choice in (5, 6):  # $not
        sub, pred = draw(_filters(depth + 1))
        shape = draw(st.sampled_from(["mapping", "mapping", "list", "empty"]))
        if shape == "list":
            return {"$not": [sub]}, None
        if shape == "empty":
            return {"$not": {}}, None
        return {"$not": sub}, (None if pred is None else (lambda m: not pred(m)))
    if choice == 7:  # two conditions side by side in one mapping (an implicit AND)
        (s1, p1), (s2, p2) = draw(_leaf_pair())
        merged = {**s1, **s2}
        if len(merged) < 2:
            return s1, p1
        return merged, lambda m: p1(m) and p2(m)
    return _leaf(draw)


@st.composite
def _leaf_pair(draw: st.DrawFn) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
    first = _leaf(draw)
    second = _leaf(draw)
    if set(first[0]) & set(second[0]):
        return first, first
    return first, second


@pytest.fixture(scope="module")
def fuzz_store(pg_dsn: str) -> Iterator[PGStore]:
    store = PGStore(pg_dsn, table_name=f"fuzz_{uuid.uuid4().hex[:8]}", dimension=DIM)
    store.add(Record(f"r{i:02d}", f"row {i}", meta, _vec(i)) for i, meta in enumerate(FUZZ_ROWS))
    yield store
    store.drop()


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=_filters())
def test_filter_fuzzer_malformed_is_filter_error_well_formed_matches_exactly(
    fuzz_store: PGStore, case: tuple[Any, Any]
) -> None:
    flt, pred = case
    if pred is None:
        with pytest.raises(FilterError):
            fuzz_store.get(filter=flt)
        with pytest.raises(FilterError):
            fuzz_store.delete(filter=flt)
        assert fuzz_store.count() == len(FUZZ_ROWS)
        return
    want = {f"r{i:02d}" for i, meta in enumerate(FUZZ_ROWS) if pred(meta)}
    got = {r.id for r in fuzz_store.get(filter=flt)}
    assert got == want, flt
    hits = fuzz_store.search(_vec(1), k=len(FUZZ_ROWS), filter=flt)
    assert {h.record.id for h in hits} == want, flt
