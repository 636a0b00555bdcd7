"""Issue 7: DashScope faults during ingestion lose nothing and duplicate nothing.

The ingest path is the package's own: ``KnowledgeBase`` (``qwen_pg_integrations.rag``) as the
sink of ``qwen_pg_integrations.ingest.ingest_files`` -> ``EmbeddingClient`` (retries, typed
errors) -> ``PGStore`` (COPY + upsert by id). The emulator fails a seeded 20% of embedding
calls with 429 / 500 / 503 / hangs past the client timeout / dropped connections.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest
from psycopg import sql

from _rel_support import (
    FAULT_KINDS,
    PASS,
    embed_log,
    paragraph,
    record_figures,
    schedule_faults,
    write_corpus,
)
from qwen_pg_integrations.dashscope import DashScopeClient, EmbeddingClient
from qwen_pg_integrations.errors import (
    APIConnectionError,
    APITimeoutError,
    DashScopeError,
    RateLimitError,
    ServerError,
)
from qwen_pg_integrations.ingest import chunk_id, source_key
from qwen_pg_integrations.pg import PGStore
from qwen_pg_integrations.rag.knowledge_base import KnowledgeBase
from qwen_pg_integrations.testing import DashScopeEmulator, Fault

MODEL = "text-embedding-v4"
DIM = 128
CLIENT_TIMEOUT = 0.8  # seconds; the emulator's "timeout" fault hangs for 1 s


@pytest.fixture
def emulator() -> Iterator[DashScopeEmulator]:
    with DashScopeEmulator(log_limit=None) as emu:
        yield emu
        assert emu.internal_errors == []


def _kb(
    emu: DashScopeEmulator, dsn: str, table: str, *, retries: int, concurrency: int
) -> KnowledgeBase:
    client = DashScopeClient(
        api_key=emu.api_key,
        base_url=emu.base_url,
        max_retries=retries,
        timeout=CLIENT_TIMEOUT,
        backoff_base=0.01,
        backoff_max=0.05,
    )
    embeddings = EmbeddingClient(MODEL, dimensions=DIM, client=client, max_concurrency=concurrency)
    store = PGStore(dsn, table_name=table, dimension=DIM, embedding_model=MODEL)
    return KnowledgeBase(store, embeddings)


def _table_stats(dsn: str, table: str) -> tuple[int, int, int, dict[str, int]]:
    """(rows, distinct ids, distinct contents, rows per source file)."""
    ident = sql.Identifier(table)
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows, ids, contents = conn.execute(
            sql.SQL("SELECT count(*), count(DISTINCT id), count(DISTINCT content) FROM {}").format(
                ident
            )
        ).fetchone() or (0, 0, 0)
        per_source = dict(
            conn.execute(
                sql.SQL("SELECT metadata->>'source', count(*) FROM {} GROUP BY 1").format(ident)
            ).fetchall()
        )
    return int(rows), int(ids), int(contents), {str(k): int(v) for k, v in per_source.items()}


def _expected_ids(paths: list[Path], chunks_per_file: int) -> set[str]:
    """The ids the corpus must end up with (the paragraphs are the chunks, see _rel_support)."""
    return {
        chunk_id(source_key(p), paragraph(f, c))
        for f, p in enumerate(paths)
        for c in range(chunks_per_file)
    }


def test_5000_chunks_with_20_percent_embedding_faults_are_stored_exactly_once(
    emulator: DashScopeEmulator, pg_dsn: str, table_name: str, tmp_path: Path
) -> None:
    files, per_file = 50, 100
    paths = write_corpus(tmp_path / "corpus", files, per_file)
    planned = schedule_faults(emulator, calls=1000, rate=0.20)
    kb = _kb(emulator, pg_dsn, table_name, retries=8, concurrency=4)

    started = time.perf_counter()
    summary = kb.ingest([tmp_path / "corpus"])  # no error may surface
    seconds = time.perf_counter() - started

    log = embed_log(emulator)
    rows, ids, contents, per_source = _table_stats(pg_dsn, table_name)
    assert summary.chunks == summary.new == files * per_file == 5000
    assert rows == ids == contents == 5000, "every chunk exactly once, no duplicates"
    assert set(per_source.values()) == {per_file}
    assert {r.id for r in kb.store.get(sorted(_expected_ids(paths, per_file)))} == _expected_ids(
        paths, per_file
    )
    # every text was answered exactly once: no batch was embedded twice (retries only resend
    # what failed)
    assert log.texts_answered == 5000, log
    # the faults really happened, at the planned share, in every kind
    failed_share = log.failed_calls / log.calls
    assert 0.10 <= failed_share <= 0.35, log
    for status in ("429", "500", "503", "no answer"):
        assert log.by_status.get(status, 0) > 0, log
    # every vector is the one the service gives for that text (no batch misplaced by a retry)
    sample = kb.store.get(sorted(_expected_ids(paths, per_file))[:500], include_embeddings=True)
    want = np.asarray(emulator.embed([r.content for r in sample], DIM), dtype=np.float32)
    got = np.asarray([r.embedding for r in sample], dtype=np.float32)
    assert np.allclose(got, want, atol=1e-6)
    record_figures(
        "ingest_faults_retries_on",
        chunks=5000,
        rows=rows,
        duplicates=rows - contents,
        embedding_calls=log.calls,
        batches=log.ok_calls,
        failed_calls=log.failed_calls,
        failed_share=round(failed_share, 3),
        by_status=log.by_status,
        planned_faults=dict(planned),
        retries=log.calls - log.ok_calls,
        errors_surfaced=0,
        seconds=round(seconds, 1),
    )


EXPECTED = {
    "429": RateLimitError,
    "500": ServerError,
    "503": ServerError,
    "timeout": APITimeoutError,
    "drop": APIConnectionError,
}


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_retries_off_raises_typed_error_leaves_no_half_file_and_resume_embeds_only_the_rest(
    kind: str, emulator: DashScopeEmulator, pg_dsn: str, table_name: str, tmp_path: Path
) -> None:
    files, per_file = 10, 50  # 5 embedding calls per file (10 texts per call)
    write_corpus(tmp_path / "corpus", files, per_file)
    # calls 1-22 pass (files 0-3 and two batches of file 4), call 23 fails
    emulator.inject(PASS, times=22, endpoint="embedding")
    # the SDK resends once on a dropped keep-alive connection: drop twice to make it final
    emulator.inject(FAULT_KINDS[kind], times=2 if kind == "drop" else 1, endpoint="embedding")
    kb = _kb(emulator, pg_dsn, table_name, retries=0, concurrency=1)

    with pytest.raises(DashScopeError) as info:
        kb.ingest([tmp_path / "corpus"])
    assert type(info.value) is EXPECTED[kind]

    rows, _, contents, per_source = _table_stats(pg_dsn, table_name)
    # a file of 50 chunks is one embed-and-store slice (ingest_files adds 64 at a time)
    assert set(per_source.values()) <= {per_file}, f"a half-written batch remains: {per_source}"
    assert rows == contents == 4 * per_file
    first = embed_log(emulator)

    emulator.clear_requests()
    summary = kb.ingest([tmp_path / "corpus"])
    again = embed_log(emulator)
    rows2, ids2, contents2, per_source2 = _table_stats(pg_dsn, table_name)
    assert summary.new == files * per_file - rows
    assert summary.skipped == rows
    assert again.texts_sent == files * per_file - rows, "stored chunks were embedded again"
    assert again.failed_calls == 0
    assert rows2 == ids2 == contents2 == files * per_file
    assert set(per_source2.values()) == {per_file}
    record_figures(
        f"ingest_retries_off_{kind}",
        error=type(info.value).__name__,
        rows_after_failure=rows,
        half_written_files=sum(1 for n in per_source.values() if n != per_file),
        texts_embedded_first_run=first.texts_sent,
        texts_embedded_on_resume=again.texts_sent,
        rows_after_resume=rows2,
        duplicates=rows2 - contents2,
    )


def test_a_timeout_shorter_than_the_hang_is_retried_not_waited_out(
    emulator: DashScopeEmulator,
) -> None:
    """The "timeout" fault must cost one client timeout, not the emulator's hang."""
    emulator.inject(Fault(timeout=True, hang_seconds=5.0), endpoint="embedding")
    client = DashScopeClient(
        api_key=emulator.api_key,
        base_url=emulator.base_url,
        max_retries=2,
        timeout=CLIENT_TIMEOUT,
        backoff_base=0.01,
    )
    started = time.perf_counter()
    vec = EmbeddingClient(MODEL, dimensions=DIM, client=client).embed_query("pgvector")
    assert len(vec) == DIM
    assert time.perf_counter() - started < 4.0


def test_langchain_add_texts_under_20_percent_faults_stores_each_text_once(
    emulator: DashScopeEmulator, pg_dsn: str, table_name: str
) -> None:
    """The same guarantee through the LangChain adapter (its own default backoff)."""
    from qwen_pg_integrations.langchain import DashScopeEmbeddings, PGVectorStore

    texts = [paragraph(900, i) for i in range(1000)]
    schedule_faults(emulator, calls=300, rate=0.20, seed=11)
    emb = DashScopeEmbeddings(
        model=MODEL,
        dimensions=DIM,
        api_key=emulator.api_key,
        base_url=emulator.base_url,
        max_retries=8,
        timeout=CLIENT_TIMEOUT,
    )
    store = PGVectorStore(emb, connection=pg_dsn, table_name=table_name)
    ids = store.add_texts(texts, metadatas=[{"n": i} for i in range(1000)])
    log = embed_log(emulator)
    rows, distinct_ids, contents, _ = _table_stats(pg_dsn, table_name)
    assert len(set(ids)) == 1000
    assert rows == distinct_ids == contents == 1000
    assert log.failed_calls > 0
    record_figures(
        "langchain_add_texts_faults",
        texts=1000,
        rows=rows,
        duplicates=rows - contents,
        embedding_calls=log.calls,
        failed_calls=log.failed_calls,
        by_status=log.by_status,
    )


def test_async_embed_and_store_under_20_percent_faults_keep_every_vector_in_place(
    emulator: DashScopeEmulator, pg_dsn: str, table_name: str
) -> None:
    """The aiohttp path (``aembed``) retries the same faults; vectors stay with their texts."""
    import asyncio

    from qwen_pg_integrations.pg import Record

    texts = [paragraph(800, i) for i in range(1000)]
    schedule_faults(emulator, calls=300, rate=0.20, seed=5)
    client = DashScopeClient(
        api_key=emulator.api_key,
        base_url=emulator.base_url,
        max_retries=8,
        timeout=CLIENT_TIMEOUT,
        backoff_base=0.01,
        backoff_max=0.05,
    )
    emb = EmbeddingClient(MODEL, dimensions=DIM, client=client, max_concurrency=8)
    store = PGStore(pg_dsn, table_name=table_name, dimension=DIM)

    async def run() -> list[str]:
        vectors = await emb.aembed_documents(texts)
        return await store.aadd(
            Record(f"a{i}", t, {"i": i}, v)
            for i, (t, v) in enumerate(zip(texts, vectors, strict=True))
        )

    ids = asyncio.run(run())
    log = embed_log(emulator)
    rows, distinct_ids, contents, _ = _table_stats(pg_dsn, table_name)
    assert len(ids) == rows == distinct_ids == contents == 1000
    assert log.failed_calls > 0
    got = store.get([f"a{i}" for i in range(0, 1000, 7)], include_embeddings=True)
    want = emulator.embed([texts[i] for i in range(0, 1000, 7)], DIM)
    assert np.allclose(np.asarray([r.embedding for r in got]), np.asarray(want), atol=1e-6)
    record_figures(
        "async_embed_faults",
        texts=1000,
        rows=rows,
        duplicates=rows - contents,
        embedding_calls=log.calls,
        failed_calls=log.failed_calls,
        by_status=log.by_status,
    )


def test_retries_off_failure_inside_a_file_keeps_whole_slices_and_resume_adds_only_the_rest(
    emulator: DashScopeEmulator, pg_dsn: str, table_name: str, tmp_path: Path
) -> None:
    """A 100-chunk file is embedded and stored in slices (64 + 36 chunks; 7 + 4 calls)."""
    write_corpus(tmp_path / "corpus", 3, 100)
    emulator.inject(PASS, times=8, endpoint="embedding")  # slice 1 (7 calls) + 1 call of slice 2
    emulator.inject(FAULT_KINDS["503"], endpoint="embedding")
    kb = _kb(emulator, pg_dsn, table_name, retries=0, concurrency=1)
    with pytest.raises(ServerError):
        kb.ingest([tmp_path / "corpus"])
    rows, _, _, per_source = _table_stats(pg_dsn, table_name)
    assert list(per_source.values()) == [64], per_source  # the first slice, whole
    emulator.clear_requests()
    summary = kb.ingest([tmp_path / "corpus"])
    again = embed_log(emulator)
    rows2, ids2, contents2, per_source2 = _table_stats(pg_dsn, table_name)
    assert summary.skipped == 64 and summary.new == 300 - 64
    assert again.texts_sent == 300 - 64, "stored chunks were embedded again"
    assert rows2 == ids2 == contents2 == 300
    assert set(per_source2.values()) == {100}
    record_figures(
        "ingest_retries_off_mid_file",
        rows_after_failure=rows,
        texts_embedded_on_resume=again.texts_sent,
        rows_after_resume=rows2,
        duplicates=rows2 - contents2,
    )
