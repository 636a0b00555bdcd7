"""DashScopeEmbeddings against the emulator: the anchors' known defects are absent (issue 8).

Each ``test_*_defect_absent`` names the defect it guards against; the others cover the rest of
the contract (text_type, dimensions, usage, keys, errors).
"""

from __future__ import annotations

import time

import dashscope
import pytest

from qwen_pg_integrations.errors import (
    AuthenticationError,
    InvalidDimensionError,
    InvalidInputError,
    RateLimitError,
)
from qwen_pg_integrations.langchain import DashScopeEmbeddings
from qwen_pg_integrations.testing import DashScopeEmulator, Fault


def _texts(n: int) -> list[str]:
    return [f"document number {i} about pgvector and 通义千问" for i in range(n)]


def _embedding_calls(emu: DashScopeEmulator) -> list[list[str]]:
    return [r.body["input"]["texts"] for r in emu.requests if r.endpoint == "embedding"]


@pytest.mark.parametrize("model", ["text-embedding-v3", "text-embedding-v4"])
def test_llamaindex_batch_of_25_on_v3_v4_defect_absent(
    dashscope_emulator: DashScopeEmulator, model: str
) -> None:
    """llama-index sends 25 texts per call to v3/v4 (limit 10) and fails; we split to 10."""
    emb = DashScopeEmbeddings(model=model)
    texts = _texts(25)
    vectors = emb.embed_documents(texts)
    calls = _embedding_calls(dashscope_emulator)
    assert len(vectors) == 25
    assert max(len(c) for c in calls) == 10
    assert sorted(t for c in calls for t in c) == sorted(texts)
    # order preserved: each vector equals the text embedded on its own
    dashscope_emulator.clear_requests()
    assert emb.embed_documents([texts[17]])[0] == pytest.approx(vectors[17])


def test_v1_v2_use_their_larger_batch_of_25(dashscope_emulator: DashScopeEmulator) -> None:
    emb = DashScopeEmbeddings(model="text-embedding-v2")
    assert len(emb.embed_documents(_texts(60))) == 60
    assert sorted(len(c) for c in _embedding_calls(dashscope_emulator)) == [10, 25, 25]


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_community_sequential_batches_defect_absent(
    dashscope_emulator: DashScopeEmulator, use_async: bool
) -> None:
    """langchain-community sends batches one after another; ours keeps several in flight.

    8 batches with 0.25 s added to each call take >= 2 s one after another; with 4 in flight
    they take about 0.5 s. The bound (1.5 s) leaves room for a loaded machine.
    """
    dashscope_emulator.latency = 0.25
    emb = DashScopeEmbeddings(model="text-embedding-v4", max_concurrency=4)
    texts = _texts(80)
    start = time.perf_counter()
    vectors = await emb.aembed_documents(texts) if use_async else emb.embed_documents(texts)
    elapsed = time.perf_counter() - start
    assert len(vectors) == 80
    assert len(_embedding_calls(dashscope_emulator)) == 8
    assert elapsed < 1.5, f"batches look sequential: {elapsed:.2f} s for 8 x 0.25 s"


def test_community_process_wide_key_defect_absent(dashscope_emulator: DashScopeEmulator) -> None:
    """langchain-community sets dashscope.api_key: the last instance's key wins for all.

    Here each instance keeps its own key, whatever order they are built and used in, and the
    SDK's process-wide key is never touched.
    """
    before = dashscope.api_key
    good = DashScopeEmbeddings(api_key=dashscope_emulator.api_key)
    bad = DashScopeEmbeddings(api_key="sk-someone-else")
    assert len(good.embed_query("first")) == 1024
    with pytest.raises(AuthenticationError):
        bad.embed_query("second")
    assert len(good.embed_query("third")) == 1024
    auth = [r.headers["authorization"] for r in dashscope_emulator.requests]
    assert auth == [
        f"Bearer {dashscope_emulator.api_key}",
        "Bearer sk-someone-else",
        f"Bearer {dashscope_emulator.api_key}",
    ]
    assert dashscope.api_key == before


def test_text_type_is_document_for_documents_and_query_for_queries(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    emb = DashScopeEmbeddings()
    emb.embed_documents(["a stored chunk"])
    emb.embed_query("a question")
    types = [r.parameters.get("text_type") for r in dashscope_emulator.requests]
    assert types == ["document", "query"]


async def test_async_text_type_matches_sync(dashscope_emulator: DashScopeEmulator) -> None:
    emb = DashScopeEmbeddings()
    await emb.aembed_documents(["a stored chunk"])
    await emb.aembed_query("a question")
    types = [r.parameters.get("text_type") for r in dashscope_emulator.requests]
    assert types == ["document", "query"]


def test_default_model_is_v4_and_dimensions_reach_the_api(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    assert DashScopeEmbeddings().model == "text-embedding-v4"
    emb = DashScopeEmbeddings(dimensions=512)
    assert len(emb.embed_query("hello")) == 512
    req = dashscope_emulator.requests[-1]
    assert req.model == "text-embedding-v4"
    assert req.parameters["dimension"] == 512
    assert emb.embedding_dimensions == 512


def test_unsupported_dimension_is_refused_before_any_call(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    with pytest.raises(InvalidDimensionError):
        DashScopeEmbeddings(model="text-embedding-v3", dimensions=2048)
    assert dashscope_emulator.requests == []


def test_usage_is_available(dashscope_emulator: DashScopeEmulator) -> None:
    emb = DashScopeEmbeddings()
    assert emb.total_tokens == 0
    emb.embed_documents(_texts(12))
    after_docs = emb.total_tokens
    assert after_docs > 0
    result = emb.embed_with_usage(["one more text"], text_type="query")
    assert result.total_tokens > 0
    assert emb.total_tokens == after_docs + result.total_tokens
    assert len(result.request_ids) == 1


def test_empty_text_is_refused_before_any_call(dashscope_emulator: DashScopeEmulator) -> None:
    with pytest.raises(InvalidInputError, match="1"):
        DashScopeEmbeddings().embed_documents(["fine", "   "])
    assert dashscope_emulator.requests == []


def test_rate_limit_is_retried_then_raised_typed(dashscope_emulator: DashScopeEmulator) -> None:
    dashscope_emulator.inject(Fault(status=429, code="Throttling.RateQuota"), times=1)
    emb = DashScopeEmbeddings(max_retries=2)
    assert len(emb.embed_query("retried once")) == 1024
    dashscope_emulator.inject(Fault(status=429, code="Throttling.RateQuota"), times=10)
    with pytest.raises(RateLimitError) as info:
        emb.embed_query("throttled for good")
    assert info.value.code == "Throttling.RateQuota"
    assert len(dashscope_emulator.requests) == 2 + 3


def test_key_never_printed(dashscope_emulator: DashScopeEmulator) -> None:
    emb = DashScopeEmbeddings(api_key="sk-very-secret-123")
    for text in (repr(emb), str(emb), emb.model_dump_json(), str(emb.model_dump())):
        assert "sk-very-secret-123" not in text
    with pytest.raises(AuthenticationError) as info:
        emb.embed_query("x")
    assert "sk-very-secret-123" not in str(info.value)
