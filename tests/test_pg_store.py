"""PGStore writes and reads on the real server: upserts, ids, bulk COPY, streaming, schemas."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest

from qwen_pg_integrations.errors import InvalidInputError, SchemaMismatchError
from qwen_pg_integrations.pg import PGStore, Record, stable_id


@pytest.fixture
def store(pg_dsn: str, table_name: str) -> Iterator[PGStore]:
    s = PGStore(pg_dsn, table_name=table_name)
    yield s
    s.drop()


def _vec(seed: int, dim: int = 8) -> np.ndarray[Any, Any]:
    return np.random.default_rng(seed).standard_normal(dim).astype(np.float32)


def _records(n: int, dim: int = 8, start: int = 0) -> Iterator[Record]:
    rng = np.random.default_rng(start)
    for i in range(start, start + n):
        yield Record(None, f"chunk {i}", {"i": i}, rng.standard_normal(dim))


def _distinct_xmins(dsn: str, table: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            psycopg.sql.SQL("SELECT count(DISTINCT xmin::text) FROM {}").format(
                psycopg.sql.Identifier(table)
            )
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_upsert_by_id_does_not_duplicate(store: PGStore) -> None:
    # llama-index's PGVectorStore inserts a second row for the same id
    store.add([Record("doc-1", "old text", {"v": 1}, _vec(1))])
    store.add([Record("doc-1", "new text", {"v": 2}, _vec(2))])
    assert store.count() == 1
    [rec] = store.get(["doc-1"], include_embeddings=True)
    assert rec.content == "new text" and rec.metadata == {"v": 2}
    assert rec.embedding is not None
    assert np.allclose(rec.embedding, _vec(2), atol=1e-6)
    assert store.text_search("new", k=5)[0].record.id == "doc-1"
    assert store.text_search("old", k=5) == []


def test_duplicate_ids_within_one_batch_keep_the_last(store: PGStore) -> None:
    ids = store.add([Record("x", "first", {}, _vec(1)), Record("x", "second", {}, _vec(2))])
    assert ids == ["x", "x"]
    assert [r.content for r in store.get(["x"])] == ["second"]


def test_reingest_without_ids_is_idempotent(store: PGStore) -> None:
    first = store.add(_records(50))
    second = store.add(_records(50))
    assert first == second
    assert store.count() == 50
    assert first[0] == stable_id("chunk 0", {"i": 0})
    assert stable_id("chunk 0", {"i": 0}) != stable_id("chunk 0", {"i": 1})


def test_string_ids_are_accepted(store: PGStore) -> None:
    # langchain-postgres v2 rejects ids that are not UUIDs
    ids = ["readme.md#0", "文档-1", "x' OR '1'='1", "42"]
    assert store.add(Record(i, f"text {i}", {}, _vec(n)) for n, i in enumerate(ids)) == ids
    assert [r.id for r in store.get(list(reversed(ids)))] == list(reversed(ids))
    assert store.get(["missing", "42", "missing2"])[0].id == "42"
    assert store.delete(["x' OR '1'='1", "nope"]) == 1
    assert store.count() == 3


def test_add_more_than_13107_rows_in_one_call_one_transaction_per_batch(
    pg_dsn: str, table_name: str
) -> None:
    # langchain-postgres v1 fails past 13,107 rows (65,535 bind parameters in one INSERT);
    # v2 commits one transaction per row.
    store = PGStore(pg_dsn, table_name=table_name, batch_size=2000)
    try:
        ids = store.add(_records(20_000, dim=4))
        assert len(ids) == 20_000 and len(set(ids)) == 20_000
        assert store.count() == 20_000
        # rows written by one transaction share xmin: 20,000 rows / 2,000 per batch
        assert _distinct_xmins(pg_dsn, table_name) == 10
    finally:
        store.drop()


def test_add_streams_batches_from_an_iterator(pg_dsn: str, table_name: str) -> None:
    store = PGStore(pg_dsn, table_name=table_name, batch_size=100)
    seen_in_db: list[int] = []

    def gen() -> Iterator[Record]:
        for i, rec in enumerate(_records(350)):
            if i in (150, 250, 349):  # earlier batches are already committed
                with psycopg.connect(pg_dsn) as conn:
                    row = conn.execute(
                        psycopg.sql.SQL("SELECT count(*) FROM {}").format(
                            psycopg.sql.Identifier(table_name)
                        )
                    ).fetchone()
                    seen_in_db.append(int(row[0]) if row else -1)
            yield rec

    try:
        assert len(store.add(gen())) == 350
        assert seen_in_db == [100, 200, 300]
        assert store.count() == 350
    finally:
        store.drop()


def test_delete_by_ids_by_filter_and_both(store: PGStore) -> None:
    store.add(Record(f"id{i}", f"t{i}", {"i": i, "even": i % 2 == 0}, _vec(i)) for i in range(10))
    assert store.delete(["id0", "id1", "nope"]) == 2
    assert store.delete(filter={"even": True}) == 4
    assert store.delete(["id3", "id5"], filter={"i": {"$gt": 4}}) == 1
    assert sorted(r.id or "" for r in store.get(filter={})) == ["id3", "id7", "id9"]
    assert store.delete([]) == 0
    with pytest.raises(InvalidInputError):
        store.delete()


def test_get_by_filter_with_limit_and_embeddings(store: PGStore) -> None:
    store.add(Record(f"id{i}", f"t{i}", {"i": i}, _vec(i)) for i in range(5))
    recs = store.get(filter={"i": {"$gte": 1}}, limit=2, include_embeddings=True)
    assert [r.id for r in recs] == ["id1", "id2"]
    assert all(r.embedding is not None and len(r.embedding) == 8 for r in recs)
    assert store.get([]) == []


def test_stores_of_different_dimensions_coexist_in_one_process(pg_dsn: str) -> None:
    # langchain-postgres v1 fixes one dimension per process
    stores = {dim: PGStore(pg_dsn, table_name=f"t_dims_{dim}") for dim in (3, 8, 1536, 2500)}
    try:
        for dim, s in stores.items():
            s.add(
                [Record(f"a{dim}", "x", {}, _vec(1, dim)), Record(f"b{dim}", "y", {}, _vec(2, dim))]
            )
        for dim, s in stores.items():
            hits = s.search(_vec(1, dim), k=1)
            assert hits[0].record.id == f"a{dim}"
            assert s.spec is not None and s.spec.dimension == dim
        assert stores[2500].spec is not None and stores[2500].spec.vector_type == "halfvec"
        assert stores[1536].spec is not None and stores[1536].spec.vector_type == "vector"
    finally:
        for s in stores.values():
            s.drop()


def test_reopening_with_another_dimension_is_a_schema_mismatch(
    pg_dsn: str, table_name: str
) -> None:
    s = PGStore(pg_dsn, table_name=table_name, embedding_model="text-embedding-v4")
    s.add([Record("a", "x", {}, _vec(1, 8))])
    try:
        with pytest.raises(SchemaMismatchError, match="dimension 8"):
            PGStore(pg_dsn, table_name=table_name, dimension=16).setup()
        with pytest.raises(SchemaMismatchError, match="distance"):
            PGStore(pg_dsn, table_name=table_name, distance="l2").setup()
        with pytest.raises(SchemaMismatchError, match="embedding model"):
            PGStore(pg_dsn, table_name=table_name, embedding_model="text-embedding-v2").setup()
        fresh = PGStore(pg_dsn, table_name=table_name)  # catalog gives dimension and model
        with pytest.raises(SchemaMismatchError):
            fresh.add([Record("b", "y", {}, _vec(1, 16))])
        with pytest.raises(SchemaMismatchError):
            fresh.search(_vec(1, 16))
        assert fresh.search(_vec(1, 8), k=1)[0].record.id == "a"
        assert fresh.spec is not None and fresh.spec.embedding_model == "text-embedding-v4"
    finally:
        s.drop()


def test_foreign_table_with_the_same_name_is_refused(pg_dsn: str, table_name: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            psycopg.sql.SQL("CREATE TABLE {} (id int, body text)").format(
                psycopg.sql.Identifier(table_name)
            )
        )
    try:
        with pytest.raises(SchemaMismatchError, match="not a qwen-pg-integrations table"):
            PGStore(pg_dsn, table_name=table_name).add([Record("a", "x", {}, _vec(1))])
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(
                psycopg.sql.SQL("DROP TABLE {}").format(psycopg.sql.Identifier(table_name))
            )


def test_table_format_matches_design(store: PGStore, pg_dsn: str) -> None:
    store.add([Record("a", "x", {}, _vec(1, 1024))])
    with psycopg.connect(pg_dsn) as conn:
        cols = dict(
            conn.execute(
                "SELECT attname::text, format_type(atttypid, atttypmod) || ' ' || attstorage::text "
                "FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0",
                [store.table_name],
            ).fetchall()
        )
        idx = {
            r[0]
            for r in conn.execute(
                "SELECT indexdef FROM pg_indexes WHERE tablename = %s", [store.table_name]
            ).fetchall()
        }
        cat = conn.execute(
            "SELECT dimension, distance, vector_type, text_search, package_version "
            "FROM qwen_pg_collections WHERE table_name = %s",
            [store.table_name],
        ).fetchone()
    assert cols["id"].startswith("text")
    assert cols["content"].startswith("text")
    assert cols["metadata"].startswith("jsonb")
    assert cols["embedding"] == "vector(1024) p"  # PLAIN: kept in the heap row, not TOASTed
    assert cols["content_tsv"].startswith("tsvector")
    assert any("gin (metadata jsonb_path_ops)" in d for d in idx)
    assert any("gin (content_tsv)" in d for d in idx)
    assert cat is not None and cat[:4] == (1024, "cosine", "vector", "jieba")


def test_bad_inputs_raise_typed_errors(store: PGStore) -> None:
    with pytest.raises(InvalidInputError):
        store.add([Record("a", "x", {}, None)])
    with pytest.raises(InvalidInputError):
        store.add([Record("a", "x", {}, [1.0, float("nan")])])
    with pytest.raises(InvalidInputError):
        store.add([Record("a", "x", {"bad": float("nan")}, [1.0, 2.0])])
    store.add([Record("a", "x\x00y", {"k": "v\x00"}, [1.0, 2.0])])  # NUL stripped
    assert store.get(["a"])[0].content == "xy"
    with pytest.raises(InvalidInputError):
        store.search([1.0, 2.0], k=0)
    with pytest.raises(InvalidInputError):
        PGStore(table_name="")


def test_empty_store_reads_return_nothing_before_the_table_exists(
    pg_dsn: str, table_name: str
) -> None:
    s = PGStore(pg_dsn, table_name=table_name)
    assert s.get(["a"]) == []
    assert s.count() == 0
    assert s.delete(["a"]) == 0
    assert s.text_search("hello") == []
    assert s.spec is None
    assert s.search([1.0, 0.0, 0.0], k=3) == []  # creates the table with the query's dimension
    assert s.spec is not None and s.spec.dimension == 3
    s.drop()


async def test_async_twins_write_read_delete(pg_dsn: str, table_name: str) -> None:
    s = PGStore(pg_dsn, table_name=table_name)

    async def agen() -> Any:
        for rec in _records(30):
            yield rec

    try:
        ids = await s.aadd(agen())
        assert len(ids) == 30 and await s.acount() == 30
        assert (await s.aadd(_records(30))) == ids  # idempotent, plain iterable too
        got = await s.aget([ids[3], ids[1]])
        assert [r.content for r in got] == ["chunk 3", "chunk 1"]
        hits = await s.asearch(np.asarray(got[0].embedding or _vec(0)), k=3)
        assert len(hits) == 3
        assert await s.adelete(filter={"i": {"$lt": 10}}) == 10
        assert await s.acount() == 20
        await s.aclear()
        assert await s.acount() == 0
    finally:
        s.drop()


def test_batch_mixing_new_and_existing_ids(store: PGStore) -> None:
    store.add([Record("old", "old text", {"v": 1}, _vec(1))])
    store.add([Record("new", "new row", {}, _vec(2)), Record("old", "updated", {"v": 2}, _vec(3))])
    got = {r.id: (r.content, r.metadata) for r in store.get(["old", "new"])}
    assert got == {"old": ("updated", {"v": 2}), "new": ("new row", {})}
    assert store.count() == 2


def test_concurrent_insert_of_the_same_id_falls_back_to_upsert(store: PGStore, pg_dsn: str) -> None:
    import threading
    import time

    store.add([Record("seed", "x", {}, _vec(0))])  # table exists
    other = psycopg.connect(pg_dsn)
    try:
        other.execute(
            psycopg.sql.SQL(
                "INSERT INTO {} (id, content, metadata, embedding) VALUES ('race', 'theirs', "
                "'{{}}', %s::vector)"
            ).format(psycopg.sql.Identifier(store.table_name)),
            [str(list(map(float, _vec(9))))],
        )  # uncommitted: our existence check cannot see it, our COPY must wait for it
        result: list[Any] = []
        t = threading.Thread(
            target=lambda: result.append(store.add([Record("race", "ours", {}, _vec(5))]))
        )
        t.start()
        time.sleep(0.5)
        other.commit()
        t.join(30)
        assert result == [["race"]]
    finally:
        other.close()
    assert [r.content for r in store.get(["race"])] == ["ours"]
    assert store.count() == 2


def test_streaming_add_keeps_memory_bounded(pg_dsn: str, table_name: str) -> None:
    import tracemalloc

    store = PGStore(pg_dsn, table_name=table_name, batch_size=500)
    rng = np.random.default_rng(0)

    def gen() -> Iterator[Record]:
        for i in range(10_000):  # 10,000 x 512 float32 = 20 MB if it were all held at once
            yield Record(
                f"r{i}",
                f"streamed chunk {i}",
                {"i": i},
                rng.standard_normal(512).astype(np.float32),
            )

    try:
        store.add([Record("warm", "x", {}, np.ones(512))])  # setup outside the measurement
        tracemalloc.start()
        store.add(gen())
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert store.count() == 10_001
        assert peak < 8 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"
    finally:
        store.drop()


def test_callers_own_copy_of_vectors_on_the_stores_connection_still_works(
    pg_dsn: str, table_name: str
) -> None:
    # the store registers a pass-through dumper for its pre-encoded vectors; on a connection
    # the caller lends it, the caller's own COPY of NumPy vectors must keep pgvector's behaviour
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        store = PGStore(conn, table_name=table_name)
        try:
            store.add([Record("a", "x", {}, _vec(1))])
            copy_sql = psycopg.sql.SQL(
                "COPY {} (id, content, embedding) FROM STDIN (FORMAT BINARY)"
            ).format(psycopg.sql.Identifier(table_name))
            with conn.cursor() as cur, cur.copy(copy_sql) as copy:
                copy.set_types(["text", "text", "vector"])
                copy.write_row(("b", "y", _vec(2)))
            [b] = store.get(["b"], include_embeddings=True)
            assert b.embedding is not None and np.allclose(b.embedding, _vec(2), atol=1e-6)
            assert [h.record.id for h in store.search(_vec(1), k=1)] == ["a"]
        finally:
            store.drop()
