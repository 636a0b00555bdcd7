"""LlamaIndex DashScopeEmbedding against the DashScope emulator (unchanged SDK on the wire).

Anchor defects (llama-index-embeddings-dashscope, protocol notes §7.2) shown absent here:
text_type nested where the server never reads it; embed_batch_size=25 failing on v3/v4; a
blocking async path; errors turned into ``None`` vectors.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from llama_index.core.schema import TextNode

from qwen_pg_integrations.errors import AuthenticationError, BadRequestError, RateLimitError
from qwen_pg_integrations.llama_index import DashScopeEmbedding
from qwen_pg_integrations.testing import DashScopeEmulator, Fault


def _embedding_bodies(emu: DashScopeEmulator) -> list[dict]:
    return [r.body for r in emu.requests if r.endpoint == "embedding"]


def test_text_type_query_and_document_reach_the_server_top_level(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    embed = DashScopeEmbedding(model_name="text-embedding-v4", dimensions=256)
    embed.get_query_embedding("什么是 pgvector?")
    embed.get_text_embedding_batch(["pgvector stores vectors", "PolarDB 支持向量检索"])
    embed.get_text_embedding("one more document")
    bodies = _embedding_bodies(dashscope_emulator)
    assert [b["parameters"]["text_type"] for b in bodies] == ["query", "document", "document"]
    for body in bodies:
        assert "kwargs" not in body["parameters"]  # the anchor sent parameters.kwargs.text_type
        assert body["parameters"]["dimension"] == 256


async def test_async_text_type_query_and_document(dashscope_emulator: DashScopeEmulator) -> None:
    embed = DashScopeEmbedding(model_name="text-embedding-v3")
    await embed.aget_query_embedding("query text")
    await embed.aget_text_embedding_batch(["doc a", "doc b"])
    bodies = _embedding_bodies(dashscope_emulator)
    assert [b["parameters"]["text_type"] for b in bodies] == ["query", "document"]


@pytest.mark.parametrize(("model", "limit"), [("text-embedding-v3", 10), ("text-embedding-v4", 10)])
def test_embed_batch_size_25_on_v3_v4_is_split_by_model_limit(
    dashscope_emulator: DashScopeEmulator, model: str, limit: int
) -> None:
    # The anchor's embed_batch_size=25 made v3/v4 answer 400 and produced None vectors.
    embed = DashScopeEmbedding(model_name=model, embed_batch_size=25, dimensions=64)
    texts = [f"document number {i} 文档 {i}" for i in range(25)]
    vectors = embed.get_text_embedding_batch(texts)
    assert len(vectors) == 25
    assert all(len(v) == 64 and all(isinstance(x, float) for x in v) for v in vectors)
    sizes = [len(b["input"]["texts"]) for b in _embedding_bodies(dashscope_emulator)]
    assert sum(sizes) == 25 and max(sizes) <= limit
    # order preserved: each vector equals the one of its text embedded alone
    assert embed.get_text_embedding(texts[17]) == pytest.approx(vectors[17])


def test_v1_batches_up_to_25(dashscope_emulator: DashScopeEmulator) -> None:
    embed = DashScopeEmbedding(model_name="text-embedding-v1")
    vectors = embed.get_text_embedding_batch([f"text {i}" for i in range(30)])
    assert len(vectors) == 30 and len(vectors[0]) == 1536
    assert max(len(b["input"]["texts"]) for b in _embedding_bodies(dashscope_emulator)) == 25


async def test_async_embedding_does_not_block_the_event_loop(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    dashscope_emulator.latency = 0.4
    embed = DashScopeEmbedding(model_name="text-embedding-v4", dimensions=64)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.02)
            ticks += 1

    tick_task = asyncio.create_task(ticker())
    start = time.perf_counter()
    results = await asyncio.gather(*(embed.aget_query_embedding(f"q {i}") for i in range(4)))
    elapsed = time.perf_counter() - start
    tick_task.cancel()
    assert len(results) == 4
    # Four 0.4 s calls overlapped (a blocking path would take >= 1.6 s and starve the ticker).
    assert elapsed < 1.2
    assert ticks >= 10


def test_bad_request_raises_typed_error_not_none_vectors(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    dashscope_emulator.inject(Fault(status=400, code="InvalidParameter"), endpoint="embedding")
    embed = DashScopeEmbedding(model_name="text-embedding-v4")
    with pytest.raises(BadRequestError) as info:
        embed.get_text_embedding_batch(["a", "b"])
    assert info.value.code == "InvalidParameter"


async def test_async_errors_raise_typed_errors(dashscope_emulator: DashScopeEmulator) -> None:
    dashscope_emulator.inject(
        Fault(status=429, code="Throttling.RateQuota"), times=10, endpoint="embedding"
    )
    embed = DashScopeEmbedding(model_name="text-embedding-v4", max_retries=1)
    with pytest.raises(RateLimitError):
        await embed.aget_text_embedding_batch(["a", "b"])


def test_wrong_key_raises_authentication_error(dashscope_emulator: DashScopeEmulator) -> None:
    embed = DashScopeEmbedding(api_key="sk-wrong", base_url=dashscope_emulator.base_url)
    with pytest.raises(AuthenticationError):
        embed.get_query_embedding("hello")


def test_errors_propagate_through_node_embedding(dashscope_emulator: DashScopeEmulator) -> None:
    dashscope_emulator.inject(Fault(status=400, code="InvalidParameter"), endpoint="embedding")
    embed = DashScopeEmbedding(model_name="text-embedding-v4")
    with pytest.raises(BadRequestError):
        embed([TextNode(text="x"), TextNode(text="y")])


def test_key_never_in_repr_or_serialisation(dashscope_emulator: DashScopeEmulator) -> None:
    embed = DashScopeEmbedding(api_key="sk-very-secret-123", base_url=dashscope_emulator.base_url)
    assert "sk-very-secret-123" not in repr(embed)
    assert "sk-very-secret-123" not in str(embed)
    assert "sk-very-secret-123" not in embed.to_json()
    assert "sk-very-secret-123" not in str(embed.to_payload())


def test_dimensions_resolved_from_model_table(dashscope_emulator: DashScopeEmulator) -> None:
    assert DashScopeEmbedding(model_name="text-embedding-v4").dimensions == 1024
    assert DashScopeEmbedding(model_name="text-embedding-v2").dimensions == 1536
    assert len(DashScopeEmbedding(model_name="text-embedding-v3").get_query_embedding("x")) == 1024


def test_public_names_of_the_llama_index_package() -> None:
    import qwen_pg_integrations.llama_index as pkg

    assert sorted(pkg.__all__) == [
        "DashScopeEmbedding",
        "DashScopeRerank",
        "PGVectorStore",
        "Qwen",
        "create_query_engine",
    ]
