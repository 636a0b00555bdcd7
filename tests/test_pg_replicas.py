"""Read replicas for real: a primary and a streaming hot standby (``pg_basebackup -R``) from
the embedded PostgreSQL's binaries, the way PolarDB read-only nodes serve reads.

Reads (search, get, count, text/hybrid/sparse search) go to the standby, writes and DDL to the
primary; read-your-writes waits for the standby to replay the store's last write, else reads on
the primary; a standby that lags past the limit or is down is set aside with a warning; a write
that reaches a standby is a ``ReadOnlyServerError``.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
import pytest

from _recorder import StatementRecorder as _Recorder
from qwen_pg_integrations.errors import QwenPGWarning, ReadOnlyServerError
from qwen_pg_integrations.pg import PGStore, Record

pytestmark = pytest.mark.replicas

DIM = 4


def _rec(i: int) -> Record:
    return Record(f"d{i}", f"document {i} about replicas", {"i": i}, [1.0, float(i), 0.5, 0.1])


def _store(pair: Any, table: str, **kw: Any) -> PGStore:
    return PGStore(pair.primary_dsn, table_name=table, read_connection=pair.standby_dsn, **kw)


def test_reads_go_to_the_standby_and_writes_to_the_primary(
    replica_pair: Any, table_name: str
) -> None:
    standby = _Recorder.connect(replica_pair.standby_dsn, autocommit=True)
    standby.statements = []
    s = PGStore(replica_pair.primary_dsn, table_name=table_name, read_connection=standby)
    try:
        s.add([_rec(i) for i in range(20)])
        replica_pair.wait_replayed()
        assert s.search([1.0, 3.0, 0.5, 0.1], k=2)[0].record.id == "d3"
        assert s.count() == 20 and len(s.get(["d1", "d2"])) == 2
        assert s.text_search("replicas", k=3)
        ran = " ".join(standby.statements)
        assert "<=>" in ran and "count(*)" in ran and "ts_rank_cd" in ran
        assert not any(t.lstrip().upper().startswith(("INSERT", "COPY", "CREATE", "ALTER"))
                       for t in standby.statements)  # fmt: skip
        # with replay paused, the standby does not see a new write: proof reads are served there
        replica_pair.pause_replay()
        try:
            s.add([_rec(100)])
            assert s.get(["d100"]) == []
        finally:
            replica_pair.resume_replay()
    finally:
        s.drop()
        standby.close()


def test_read_your_writes_waits_for_replay_then_falls_back_to_the_primary(
    replica_pair: Any, table_name: str
) -> None:
    s = _store(replica_pair, table_name, read_your_writes=True, read_your_writes_timeout=0.3)
    try:
        s.add([_rec(0)])
        for i in range(1, 40):  # every read sees the write just made
            s.add([_rec(i)])
            assert [r.id for r in s.get([f"d{i}"])] == [f"d{i}"]
        replica_pair.pause_replay()
        try:
            s.add([_rec(500)])
            t0 = time.perf_counter()
            assert [r.id for r in s.get(["d500"])] == ["d500"]  # from the primary, after the wait
            waited = time.perf_counter() - t0
            assert 0.25 <= waited < 5, waited
        finally:
            replica_pair.resume_replay()
    finally:
        s.drop()


async def test_async_reads_with_read_your_writes(replica_pair: Any, table_name: str) -> None:
    s = _store(replica_pair, table_name, read_your_writes=True)
    try:
        for i in range(10):
            await s.aadd([_rec(i)])
            hits = await s.asearch([1.0, float(i), 0.5, 0.1], k=1, filter={"i": i})
            assert [h.record.id for h in hits] == [f"d{i}"]
    finally:
        await s.adrop()
        await s.aclose()


def test_a_lagging_standby_is_set_aside_with_a_warning(replica_pair: Any, table_name: str) -> None:
    s = _store(replica_pair, table_name, max_replica_lag=0.3)
    try:
        s.add([_rec(0)])
        replica_pair.wait_replayed()
        assert s.count() == 1
        replica_pair.pause_replay()
        try:
            s.add([_rec(1)])
            time.sleep(0.5)  # the standby's last replayed transaction is now > 0.3 s old
            with psycopg.connect(replica_pair.primary_dsn, autocommit=True) as c:
                c.execute("SELECT pg_switch_wal()")  # more WAL received than replayed
            time.sleep(1.1)  # past the lag-check interval
            with pytest.warns(QwenPGWarning, match="max_replica_lag"):
                assert s.count() == 2  # the primary's answer
        finally:
            replica_pair.resume_replay()
    finally:
        s.drop()


def test_a_standby_that_is_down_falls_back_to_the_primary(
    replica_pair: Any, table_name: str
) -> None:
    s = _store(replica_pair, table_name)
    try:
        s.add([_rec(i) for i in range(5)])
        replica_pair.wait_replayed()
        assert s.count() == 5
        replica_pair.stop_standby()
        try:
            with pytest.warns(QwenPGWarning, match="read replica #1"):
                hits = s.search([1.0, 2.0, 0.5, 0.1], k=1)
            assert [h.record.id for h in hits] == ["d2"]
            assert s.count() == 5  # set aside: no second warning, no wait
        finally:
            replica_pair.start_standby()
            replica_pair.wait_replayed()
    finally:
        s.drop()


def test_a_write_that_reaches_a_standby_says_so(replica_pair: Any, table_name: str) -> None:
    seed = PGStore(replica_pair.primary_dsn, table_name=table_name)
    try:
        seed.add([_rec(0)])
        replica_pair.wait_replayed()
        wrong = PGStore(replica_pair.standby_dsn, table_name=table_name)
        assert wrong.count() == 1  # reading from a standby directly works
        with pytest.raises(ReadOnlyServerError, match=r"25006.*read_connection") as info:
            wrong.add([_rec(1)])
        assert info.value.__cause__ is None
        assert seed.count() == 1
    finally:
        seed.drop()


def test_framework_stores_and_the_rag_chain_read_from_the_standby(
    dashscope_emulator: Any, replica_pair: Any, table_name: str
) -> None:
    from qwen_pg_integrations.langchain import (
        ChatQwen,
        DashScopeEmbeddings,
        PGVectorStore,
        create_rag_chain,
    )
    from qwen_pg_integrations.llama_index import DashScopeEmbedding
    from qwen_pg_integrations.llama_index import PGVectorStore as LlamaStore

    standby = _Recorder.connect(replica_pair.standby_dsn, autocommit=True)
    standby.statements = []
    store = PGVectorStore(
        DashScopeEmbeddings(),
        connection=replica_pair.primary_dsn,
        table_name=table_name,
        read_connection=standby,
        read_your_writes=True,
    )
    try:
        store.add_texts(["PolarDB read-only nodes share storage.", "Tea grows on hills."])
        docs = store.similarity_search("PolarDB read-only nodes", k=1)  # right after the write
        assert docs[0].page_content.startswith("PolarDB")
        chain = create_rag_chain(store, ChatQwen(), k=1, score_threshold=None)
        out = chain.invoke("What do PolarDB read-only nodes share?")
        assert out["context"][0].page_content.startswith("PolarDB")
        searches = [t for t in standby.statements if "<=>" in t]
        assert len(searches) >= 2  # the store's search and the chain's retrieval
        llama = LlamaStore(
            connection=replica_pair.primary_dsn,
            read_connection=standby,
            table_name=table_name,
            embed_model=DashScopeEmbedding(),
        )
        standby.statements.clear()
        nodes = llama.get_nodes()
        assert len(nodes) == 2 and any("FROM" in t for t in standby.statements)
    finally:
        store.store.drop()
        standby.close()


def test_cli_read_dsn_searches_on_the_standby(
    dashscope_emulator: Any,
    replica_pair: Any,
    table_name: str,
    tmp_path: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from qwen_pg_integrations.cli import main

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("PolarDB scales reads with read-only nodes.", encoding="utf-8")
    base = ["--dsn", replica_pair.primary_dsn, "--table", table_name, "--threshold", "none"]
    assert main([*base, "ingest", str(docs), "--index", "none"]) == 0
    replica_pair.wait_replayed()
    replica_pair.pause_replay()
    try:
        (docs / "b.md").write_text("Hangzhou tea is green.", encoding="utf-8")
        assert main([*base, "ingest", str(docs), "--index", "none"]) == 0
        capsys.readouterr()
        read = [*base, "--read-dsn", replica_pair.standby_dsn]
        assert main([*read, "search", "Hangzhou tea", "--mode", "text"]) == 0
        on_standby = capsys.readouterr().out
        assert main([*base, "search", "Hangzhou tea", "--mode", "text"]) == 0
        on_primary = capsys.readouterr().out
        assert "b.md" in on_primary and "b.md" not in on_standby  # not replayed there yet
    finally:
        replica_pair.resume_replay()
        PGStore(replica_pair.primary_dsn, table_name=table_name).drop()


def test_a_table_the_standby_has_not_replayed_yet_is_read_on_the_primary(
    replica_pair: Any, table_name: str
) -> None:
    replica_pair.pause_replay()
    try:
        PGStore(replica_pair.primary_dsn, table_name=table_name).add([_rec(1)])
        fresh = _store(replica_pair, table_name)
        assert [h.record.id for h in fresh.search([1.0, 1.0, 0.5, 0.1], k=1)] == ["d1"]
    finally:
        replica_pair.resume_replay()
        PGStore(replica_pair.primary_dsn, table_name=table_name).drop()
