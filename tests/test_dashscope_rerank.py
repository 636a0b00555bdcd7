"""RerankClient: the real SDK against the emulator's rerank endpoint (protocol doc §11)."""

from __future__ import annotations

import asyncio
from typing import Any

import dashscope
import pytest

from qwen_pg_integrations.dashscope import DashScopeClient, RerankClient
from qwen_pg_integrations.errors import (
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    InvalidInputError,
    RateLimitError,
    UnsupportedModelError,
)
from qwen_pg_integrations.testing import DashScopeEmulator, Fault

DOCS = [
    "Qwen is a family of large language models.",
    "PolarDB for PostgreSQL supports the pgvector extension for vector search.",
    "The weather in Hangzhou is mild in spring.",
    "pgvector adds HNSW indexes to PostgreSQL for vector search.",
]
QUERY = "Which PostgreSQL extension gives vector search with HNSW indexes?"


def rr(emu: DashScopeEmulator, model: str = "qwen3-rerank", **kw: Any) -> RerankClient:
    client = DashScopeClient(
        api_key=emu.api_key, base_url=emu.base_url, backoff_base=0.001, backoff_max=0.01
    )
    return RerankClient(model, client=client, **kw)


def test_results_are_best_first_mapped_by_index_and_the_wire_is_the_sdks(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    got = rr(dashscope_emulator).rerank(QUERY, DOCS, top_n=2)
    assert [r.index for r in got] == [3, 1]
    assert got[0].relevance_score > got[1].relevance_score > 0
    assert all(r.document is None for r in got)
    (req,) = dashscope_emulator.requests_for("rerank")
    assert req.body["model"] == "qwen3-rerank"
    assert req.body["input"] == {"query": QUERY, "documents": DOCS}
    assert req.body["parameters"] == {"top_n": 2}


def test_the_emulator_agrees_with_the_unchanged_sdk(dashscope_emulator: DashScopeEmulator) -> None:
    resp: Any = dashscope.TextReRank.call(
        model="qwen3-rerank",
        query=QUERY,
        documents=DOCS,
        return_documents=True,
        api_key=dashscope_emulator.api_key,
        base_address=dashscope_emulator.base_url,
    )
    assert resp.status_code == 200
    assert resp.output.results[0].index == 3
    # SDK 2.0.2 quirk: ``result.document`` is the dataclass default (None) shadowing the dict
    # key; the text is there as ``result["document"]``, which is what RerankClient reads.
    assert resp.output.results[0]["document"]["text"] == DOCS[3]
    assert resp.usage.total_tokens > 0


def test_return_documents_model_and_instruct_are_sent_and_kept(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    client = rr(dashscope_emulator, "gte-rerank-v2", instruct="Retrieve semantically similar text.")
    got = client.rerank(QUERY, DOCS, return_documents=True)
    assert [r.document for r in got] == [DOCS[r.index] for r in got]
    assert len(got) == len(DOCS)
    (req,) = dashscope_emulator.requests_for("rerank")
    assert req.body["model"] == "gte-rerank-v2"
    assert req.body["parameters"] == {
        "return_documents": True,
        "instruct": "Retrieve semantically similar text.",
    }
    assert client.total_tokens > 0


def test_more_than_500_documents_are_batched_and_merged_over_all(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    docs = [f"filler text number {i}" for i in range(1203)]
    docs[1100] = DOCS[3]
    docs[7] = DOCS[1]
    got = rr(dashscope_emulator).rerank(QUERY, docs, top_n=3)
    assert [r.index for r in got[:2]] == [1100, 7]
    sizes = [len(r.body["input"]["documents"]) for r in dashscope_emulator.requests_for("rerank")]
    assert sorted(sizes, reverse=True) == [500, 500, 203]
    # top_n is applied after the merge, so no request carries it
    assert all(
        "top_n" not in r.body["parameters"] for r in dashscope_emulator.requests_for("rerank")
    )


def test_the_request_token_budget_splits_long_documents(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    long_doc = "向量检索" * 1000  # 4,000 CJK characters: one document is a whole item budget
    docs = [long_doc] * 20  # 20 x 4,000 tokens is over gte-rerank-v2's 30,000 per request
    got = rr(dashscope_emulator, "gte-rerank-v2").rerank("向量检索是什么", docs)
    assert sorted(r.index for r in got) == list(range(20))
    assert len(dashscope_emulator.requests_for("rerank")) >= 3


async def test_async_gives_the_same_ranking(dashscope_emulator: DashScopeEmulator) -> None:
    client = rr(dashscope_emulator)
    sync = client.rerank(QUERY, DOCS)
    docs = [f"filler {i}" for i in range(600)] + DOCS
    got, batched = await asyncio.gather(client.arerank(QUERY, DOCS), client.arerank(QUERY, docs))
    assert got == sync
    assert [r.index for r in batched[:2]] == [603, 601]


def test_empty_input_is_refused_or_empty_before_any_call(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    client = rr(dashscope_emulator)
    assert client.rerank(QUERY, []) == []
    with pytest.raises(InvalidInputError, match="query is empty"):
        client.rerank("  ", DOCS)
    with pytest.raises(InvalidInputError, match=r"documents\[1\]"):
        client.rerank(QUERY, ["a", 3])  # type: ignore[list-item]
    with pytest.raises(InvalidInputError, match="not one string"):
        client.rerank(QUERY, "one string")
    with pytest.raises(ConfigurationError, match="top_n"):
        client.rerank(QUERY, DOCS, top_n=0)
    assert dashscope_emulator.requests_for("rerank") == []


def test_retired_and_unknown_models_are_refused_up_front() -> None:
    with pytest.raises(UnsupportedModelError, match=r"discontinued.*qwen3-rerank"):
        RerankClient("gte-rerank", api_key="sk-test")
    with pytest.raises(UnsupportedModelError, match="Unknown rerank model"):
        RerankClient("nope", api_key="sk-test")


def test_service_errors_are_typed_and_429_is_retried(dashscope_emulator: DashScopeEmulator) -> None:
    dashscope_emulator.inject(Fault(status=429, code="Throttling.RateQuota"), endpoint="rerank")
    assert rr(dashscope_emulator).rerank(QUERY, DOCS)[0].index == 3
    assert len(dashscope_emulator.requests_for("rerank")) == 2
    dashscope_emulator.inject(Fault(status=400, code="InvalidParameter"), endpoint="rerank")
    with pytest.raises(BadRequestError):
        rr(dashscope_emulator).rerank(QUERY, DOCS)
    dashscope_emulator.inject(Fault(status=429, code="Throttling.RateQuota"), times=10)
    with pytest.raises(RateLimitError):
        rr(dashscope_emulator).rerank(QUERY, DOCS)
    bad = RerankClient(
        client=DashScopeClient(api_key="sk-wrong", base_url=dashscope_emulator.base_url)
    )
    with pytest.raises(AuthenticationError) as info:
        bad.rerank(QUERY, DOCS)
    assert "sk-wrong" not in str(info.value) and "sk-wrong" not in repr(bad)


def test_the_emulator_enforces_the_services_limits(dashscope_emulator: DashScopeEmulator) -> None:
    common: dict[str, Any] = {
        "api_key": dashscope_emulator.api_key,
        "base_address": dashscope_emulator.base_url,
    }
    many: Any = dashscope.TextReRank.call(
        model="qwen3-rerank", query="q", documents=["d"] * 501, **common
    )
    assert many.status_code == 400
    assert "should not be empty or larger than 500" in many.message
    gone: Any = dashscope.TextReRank.call(model="gte-rerank", query="q", documents=["d"], **common)
    assert gone.status_code == 400 and gone.output is None


def test_score_threshold_keeps_only_documents_at_or_above_it(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    client = rr(dashscope_emulator)
    everything = client.rerank(QUERY, DOCS)
    cut = everything[1].relevance_score
    kept = client.rerank(QUERY, DOCS, score_threshold=cut)
    assert kept == everything[:2] and all(r.relevance_score >= cut for r in kept)
    assert client.rerank(QUERY, DOCS, score_threshold=1.5) == []


def test_the_clis_default_rerank_model_is_the_cores() -> None:
    from qwen_pg_integrations.cli import DEFAULT_RERANK_MODEL as cli_default
    from qwen_pg_integrations.dashscope.models import DEFAULT_RERANK_MODEL, RERANK_MODELS

    assert cli_default == DEFAULT_RERANK_MODEL and cli_default in RERANK_MODELS
