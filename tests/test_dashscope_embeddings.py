"""EmbeddingClient: batching to model limits, order, text_type, dimensions, concurrency, async."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import pytest

from qwen_pg_integrations.dashscope import DashScopeClient, EmbeddingClient
from qwen_pg_integrations.errors import (
    ConfigurationError,
    InvalidDimensionError,
    InvalidInputError,
    RateLimitError,
    UnsupportedModelError,
)
from qwen_pg_integrations.testing import DashScopeEmulator, Fault


def emb(emu: DashScopeEmulator, model: str = "text-embedding-v4", **kw: Any) -> EmbeddingClient:
    client = DashScopeClient(
        api_key=emu.api_key, base_url=emu.base_url, backoff_base=0.001, backoff_max=0.01
    )
    return EmbeddingClient(model, client=client, **kw)


def texts(n: int) -> list[str]:
    return [f"document number {i} 文档{i}" for i in range(n)]


def batch_sizes(emu: DashScopeEmulator) -> list[int]:
    return sorted((len(r.body["input"]["texts"]) for r in emu.requests), reverse=True)


def test_23_texts_on_v3_take_three_calls_of_at_most_10(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    result = emb(dashscope_emulator, "text-embedding-v3").embed(texts(23))
    assert batch_sizes(dashscope_emulator) == [10, 10, 3]
    assert len(result.vectors) == 23 and result.dimensions == 1024
    assert len(result.request_ids) == 3


def test_30_texts_on_v1_take_two_calls(dashscope_emulator: DashScopeEmulator) -> None:
    result = emb(dashscope_emulator, "text-embedding-v1").embed(texts(30))
    assert batch_sizes(dashscope_emulator) == [25, 5]
    assert {len(v) for v in result.vectors} == {1536}
    assert all("dimension" not in r.parameters for r in dashscope_emulator.requests)


@pytest.mark.parametrize("use_async", [False, True])
def test_vectors_are_in_input_order(dashscope_emulator: DashScopeEmulator, use_async: bool) -> None:
    items = texts(37)
    client = emb(dashscope_emulator, "text-embedding-v4", dimensions=256, max_concurrency=3)
    result = asyncio.run(client.aembed(items)) if use_async else client.embed(items)
    expected = dashscope_emulator.embed(items, 256)
    assert len(result.vectors) == 37
    for got, want in zip(result.vectors, expected, strict=True):
        assert got == pytest.approx(want)
    assert all(r.parameters["dimension"] == 256 for r in dashscope_emulator.requests)


@pytest.mark.parametrize("use_async", [False, True])
def test_text_type_reaches_the_server(
    dashscope_emulator: DashScopeEmulator, use_async: bool
) -> None:
    client = emb(dashscope_emulator)
    if use_async:
        asyncio.run(client.aembed_query("what is pgvector?"))
        asyncio.run(client.aembed_documents(["pgvector is an extension"]))
    else:
        client.embed_query("what is pgvector?")
        client.embed_documents(["pgvector is an extension"])
    sent = [r.parameters.get("text_type") for r in dashscope_emulator.requests]
    assert sent == ["query", "document"]


def test_query_and_document_vectors_are_close_for_related_text(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    client = emb(dashscope_emulator, dimensions=512)
    q = client.embed_query("PolarDB 向量检索")
    docs = client.embed_documents(["PolarDB 支持向量检索", "今天天气很好"])
    sims = [sum(a * b for a, b in zip(q, d, strict=True)) for d in docs]
    assert sims[0] > sims[1]
    assert math.isclose(sum(x * x for x in q), 1.0, rel_tol=1e-6)


@pytest.mark.parametrize(
    ("model", "dimensions"),
    [("text-embedding-v3", 2048), ("text-embedding-v4", 100), ("text-embedding-v1", 512)],
)
def test_bad_dimension_is_refused_before_any_call(
    dashscope_emulator: DashScopeEmulator, model: str, dimensions: int
) -> None:
    with pytest.raises(InvalidDimensionError, match="choose one of"):
        emb(dashscope_emulator, model, dimensions=dimensions)
    assert dashscope_emulator.requests == []


def test_unknown_model_is_refused(dashscope_emulator: DashScopeEmulator) -> None:
    with pytest.raises(UnsupportedModelError):
        emb(dashscope_emulator, "text-embedding-v9")


def test_v1_accepts_its_only_dimension_without_sending_it(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    client = emb(dashscope_emulator, "text-embedding-v2", dimensions=1536)
    assert client.dimensions == 1536
    client.embed(["x"])
    assert "dimension" not in dashscope_emulator.requests[0].parameters


@pytest.mark.parametrize("bad", ["", "   \n\t"])
@pytest.mark.parametrize("use_async", [False, True])
def test_empty_text_is_refused_naming_its_index(
    dashscope_emulator: DashScopeEmulator, bad: str, use_async: bool
) -> None:
    client = emb(dashscope_emulator)
    items = ["fine", "also fine", bad, "fine again"]
    with pytest.raises(InvalidInputError, match=r"texts\[2\]"):
        asyncio.run(client.aembed(items)) if use_async else client.embed(items)
    assert dashscope_emulator.requests == []


def test_certainly_too_long_text_is_refused_before_any_call(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    client = emb(dashscope_emulator, "text-embedding-v1")
    with pytest.raises(InvalidInputError, match=r"texts\[1\].*2048 tokens"):
        client.embed(["short", "向量" * 5000])
    assert dashscope_emulator.requests == []
    # a long-but-plausible text is not second-guessed
    client.embed(["word " * 1500])


def test_usage_totals_accumulate(dashscope_emulator: DashScopeEmulator) -> None:
    client = emb(dashscope_emulator, "text-embedding-v3")
    first = client.embed(texts(12))
    second = asyncio.run(client.aembed(texts(3)))
    assert first.total_tokens > 0 and second.total_tokens > 0
    assert client.total_tokens == first.total_tokens + second.total_tokens


def test_empty_list_makes_no_call(dashscope_emulator: DashScopeEmulator) -> None:
    client = emb(dashscope_emulator)
    assert client.embed_documents([]) == []
    assert asyncio.run(client.aembed_documents([])) == []
    assert client.embed([]).vectors == []
    assert dashscope_emulator.requests == []


@pytest.mark.parametrize("use_async", [False, True])
def test_concurrency_is_bounded(dashscope_emulator: DashScopeEmulator, use_async: bool) -> None:
    # 6 batches, 2 at a time, 0.25 s each: at least 3 rounds (bounded), well under 6 (concurrent)
    dashscope_emulator.latency = 0.25
    client = emb(dashscope_emulator, "text-embedding-v4", max_concurrency=2)
    start = time.perf_counter()
    asyncio.run(client.aembed(texts(60))) if use_async else client.embed(texts(60))
    elapsed = time.perf_counter() - start
    assert len(dashscope_emulator.requests) == 6
    assert 0.74 <= elapsed < 1.4, elapsed  # serial would take 1.5 s


@pytest.mark.parametrize("use_async", [False, True])
def test_a_throttled_batch_is_retried_alone(
    dashscope_emulator: DashScopeEmulator, use_async: bool
) -> None:
    dashscope_emulator.inject(Fault(status=429, code="Throttling.RateQuota"), times=1)
    client = emb(dashscope_emulator, "text-embedding-v3")
    items = texts(25)
    result = asyncio.run(client.aembed(items)) if use_async else client.embed(items)
    assert len(dashscope_emulator.requests) == 4  # 3 batches + 1 resend, not a restart
    assert result.vectors[24] == pytest.approx(dashscope_emulator.embed([items[24]])[0])


def test_a_failing_batch_raises_the_typed_error(dashscope_emulator: DashScopeEmulator) -> None:
    dashscope_emulator.inject(Fault(status=429, code="Throttling.RateQuota"), times=50)
    client = EmbeddingClient(
        "text-embedding-v3",
        api_key=dashscope_emulator.api_key,
        base_url=dashscope_emulator.base_url,
        max_retries=0,
    )
    with pytest.raises(RateLimitError):
        client.embed(texts(30))
    with pytest.raises(RateLimitError):
        asyncio.run(client.aembed(texts(30)))


async def test_aembed_does_not_block_the_event_loop(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    dashscope_emulator.latency = 0.3
    client = emb(dashscope_emulator, "text-embedding-v3", max_concurrency=2)
    ticks = 0
    done = False

    async def ticker() -> None:
        nonlocal ticks
        while not done:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.ensure_future(ticker())
    result = await client.aembed(texts(20))
    done = True
    await task
    assert len(result.vectors) == 20
    assert ticks >= 5  # ~0.3 s of waiting at 10 ms per tick (~30); a blocked loop gives 0-1


def test_async_path_sends_the_same_request_as_the_sdk(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    client = emb(dashscope_emulator, "text-embedding-v3", dimensions=512)
    client.embed_query("数据库")
    asyncio.run(client.aembed_query("数据库"))
    sdk, ours = dashscope_emulator.requests
    assert sdk.path == ours.path == "/api/v1/services/embeddings/text-embedding/text-embedding"
    assert sdk.body == ours.body
    for header in ("authorization", "content-type", "accept", "x-dashscope-sdk-client"):
        assert ours.headers.get(header) == sdk.headers.get(header), header
    assert ours.headers["user-agent"].startswith("dashscope/")


def test_batch_size_cannot_exceed_the_model_limit(dashscope_emulator: DashScopeEmulator) -> None:
    with pytest.raises(ConfigurationError, match="between 1 and 10"):
        emb(dashscope_emulator, "text-embedding-v4", batch_size=25)
    emb(dashscope_emulator, "text-embedding-v4", batch_size=4).embed(texts(9))
    assert batch_sizes(dashscope_emulator) == [4, 4, 1]


def test_vectors_are_placed_by_text_index_not_by_answer_order() -> None:
    client = EmbeddingClient("text-embedding-v4", api_key="sk-x", dimensions=64)
    (batch,) = client._batches(["a", "b", "c"])
    answer = {
        "status_code": 200,
        "request_id": "r",
        "output": {
            "embeddings": [
                {"text_index": 2, "embedding": [2.0]},
                {"text_index": 0, "embedding": [0.0]},
                {"text_index": 1, "embedding": [1.0]},
            ]
        },
        "usage": {"total_tokens": 3},
    }
    vectors: list[list[float] | None] = [None, None, None]
    assert client._place(batch, answer, vectors, [None, None, None]) == (3, "r")
    assert vectors == [[0.0], [1.0], [2.0]]


# --- sparse output (protocol doc §12.1) -----------------------------------------------------


def test_dense_and_sparse_in_one_call_keyed_by_index(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    client = emb(dashscope_emulator, output_type="dense&sparse")
    result = client.embed(texts(12))
    assert len(result.vectors) == 12 and result.sparse is not None and len(result.sparse) == 12
    for weights in result.sparse:
        assert weights and all(isinstance(i, int) and i >= 0 for i in weights)
        assert all(isinstance(v, float) and v > 0 for v in weights.values())
    bodies = [r.body for r in dashscope_emulator.requests_for("embedding")]
    assert {b["parameters"]["output_type"] for b in bodies} == {"dense&sparse"}
    assert len(bodies) == 2  # the same batching as dense: the price of one call
    # texts sharing words share sparse indices
    a, b = client.embed_sparse(["pgvector HNSW index", "HNSW index build"])
    assert set(a) & set(b)


async def test_sparse_only_and_async_agree(dashscope_emulator: DashScopeEmulator) -> None:
    client = emb(dashscope_emulator, output_type="sparse")
    sync = client.embed(texts(3))
    assert sync.vectors == [] and sync.sparse is not None
    got = await client.aembed(texts(3))
    assert got.sparse == sync.sparse


def test_sparse_needs_v3_or_v4_and_a_sparse_client() -> None:
    with pytest.raises(ConfigurationError, match="no sparse output"):
        EmbeddingClient("text-embedding-v2", output_type="dense&sparse", api_key="sk-test")
    with pytest.raises(ConfigurationError, match="output_type must be"):
        EmbeddingClient(output_type="both", api_key="sk-test")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="dense vectors only"):
        EmbeddingClient(api_key="sk-test").embed_sparse(["x"])


def test_duplicate_sparse_indices_keep_the_largest_weight() -> None:
    from qwen_pg_integrations.dashscope.embeddings import _sparse_weights

    got = _sparse_weights([{"index": 7, "value": 0.2}, {"index": 7, "value": 0.5, "token": "a"},
                           {"index": 3, "value": 0.0}])  # fmt: skip
    assert got == {7: 0.5}
