"""DashScopeEmulator conformance: native text embedding (protocol doc §3) via the real SDK."""

from __future__ import annotations

import time
from typing import Any

import dashscope
import numpy as np
import pytest

from qwen_pg_integrations.dashscope.models import EMBEDDING_MODELS
from qwen_pg_integrations.testing import DashScopeEmulator
from qwen_pg_integrations.testing._embed import BASELINE


def embed(emu: DashScopeEmulator, texts: Any, model: str = "text-embedding-v4", **kw: Any) -> Any:
    return dashscope.TextEmbedding.call(
        model=model, input=texts, api_key=emu.api_key, base_address=emu.base_url, **kw
    )


def vectors(resp: Any) -> np.ndarray:
    items = sorted(resp.output["embeddings"], key=lambda e: e["text_index"])
    return np.array([e["embedding"] for e in items])


@pytest.mark.parametrize("model", sorted(EMBEDDING_MODELS))
def test_default_dimension_and_max_batch_come_from_the_model_table(
    dashscope_emulator: DashScopeEmulator, model: str
) -> None:
    spec = EMBEDDING_MODELS[model]
    texts = [f"text number {i}" for i in range(spec.max_batch)]
    resp = embed(dashscope_emulator, texts, model=model)
    assert resp.status_code == 200
    items = resp.output["embeddings"]
    assert [e["text_index"] for e in items] == list(range(spec.max_batch))
    assert {len(e["embedding"]) for e in items} == {spec.default_dimension}
    assert resp.usage["total_tokens"] > 0


@pytest.mark.parametrize("model", sorted(EMBEDDING_MODELS))
def test_batch_too_big_has_the_service_message(
    dashscope_emulator: DashScopeEmulator, model: str
) -> None:
    limit = EMBEDDING_MODELS[model].max_batch
    resp = embed(dashscope_emulator, ["x"] * (limit + 1), model=model)
    assert (resp.status_code, resp.code) == (400, "InvalidParameter")
    assert resp.message == (
        "<400> InternalError.Algo.InvalidParameter: Value error, batch size is invalid, "
        f"it should not be larger than {limit}.: input.contents"
    )


def test_str_input_is_one_text(dashscope_emulator: DashScopeEmulator) -> None:
    resp = embed(dashscope_emulator, "a single string", model="text-embedding-v1")
    assert len(resp.output["embeddings"]) == 1
    assert dashscope_emulator.last_request.body["input"]["texts"] == ["a single string"]


@pytest.mark.parametrize(
    ("model", "dimension"),
    [("text-embedding-v3", 512), ("text-embedding-v3", 64), ("text-embedding-v4", 2048)],
)
def test_supported_dimensions(
    dashscope_emulator: DashScopeEmulator, model: str, dimension: int
) -> None:
    resp = embed(dashscope_emulator, ["hello"], model=model, dimension=dimension)
    assert vectors(resp).shape == (1, dimension)


def test_unsupported_dimension_is_a_400(dashscope_emulator: DashScopeEmulator) -> None:
    resp = embed(dashscope_emulator, ["hello"], model="text-embedding-v3", dimension=2048)
    assert (resp.status_code, resp.code) == (400, "InvalidParameter")
    assert "dimension" in resp.message


def test_v1_ignores_dimension(dashscope_emulator: DashScopeEmulator) -> None:
    resp = embed(dashscope_emulator, ["hello"], model="text-embedding-v1", dimension=512)
    assert vectors(resp).shape == (1, 1536)


@pytest.mark.parametrize("bad", ["", "   "])
def test_empty_text_is_a_400(dashscope_emulator: DashScopeEmulator, bad: str) -> None:
    resp = embed(dashscope_emulator, ["ok", bad])
    assert (resp.status_code, resp.code) == (400, "InvalidParameter")
    assert "index 1 is empty" in resp.message


def test_unknown_model_is_400_model_not_exist(dashscope_emulator: DashScopeEmulator) -> None:
    resp = embed(dashscope_emulator, ["x"], model="text-embedding-v9")
    assert (resp.status_code, resp.code, resp.message) == (
        400,
        "InvalidParameter",
        "Model not exist.",
    )


def test_wrong_key_is_401(dashscope_emulator: DashScopeEmulator) -> None:
    resp = dashscope.TextEmbedding.call(
        model="text-embedding-v4",
        input=["x"],
        api_key="k",
        base_address=dashscope_emulator.base_url,
    )
    assert (resp.status_code, resp.code) == (401, "InvalidApiKey")


def test_text_type_is_recorded_and_query_matches_document(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    doc = vectors(embed(dashscope_emulator, ["pgvector index"], text_type="document"))
    query = vectors(embed(dashscope_emulator, ["pgvector index"], text_type="query"))
    assert dashscope_emulator.last_request.parameters["text_type"] == "query"
    assert np.allclose(doc, query)
    bad = embed(dashscope_emulator, ["x"], text_type="passage")
    assert bad.status_code == 400


def test_vectors_are_unit_length_and_deterministic(dashscope_emulator: DashScopeEmulator) -> None:
    texts = ["PostgreSQL with pgvector", "通义千问大模型"]
    first = vectors(embed(dashscope_emulator, texts))
    with DashScopeEmulator() as other:
        second = vectors(embed(other, texts))
    assert np.allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(first, second)
    assert np.allclose(first, np.array(dashscope_emulator.embed(texts)))


def test_shared_words_are_closer_than_unrelated_texts(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    texts = [
        "How do I create an HNSW index in pgvector?",
        "Creating an HNSW index with pgvector is one SQL statement.",
        "The chef cooked a delicious tomato soup for dinner.",
        "如何在数据库中存储向量？",
        "向量可以存储在 PostgreSQL 数据库中。",
        "今天天气晴朗，适合去公园散步。",
    ]
    v = vectors(embed(dashscope_emulator, texts))
    sim = v @ v.T
    assert sim[0, 1] > sim[0, 2] + 0.2
    assert sim[3, 4] > sim[3, 5] + 0.2
    # like a real model's, unrelated texts are not orthogonal: they sit near the baseline
    assert abs(sim[0, 2] - BASELINE) < 0.1 and abs(sim[3, 5] - BASELINE) < 0.1
    assert sim[0, 1] > 0.5 and sim[3, 4] > 0.5


def test_similarity_ranges_are_realistic_on_the_bundled_corpus() -> None:
    """On-topic question/chunk pairs score 0.5-0.7 and off-topic questions stay below 0.45,
    so the thresholds written for DashScope (0.45-0.5) behave the same offline."""
    import numpy as np

    from qwen_pg_integrations.data import corpus_files
    from qwen_pg_integrations.ingest import load_and_split
    from qwen_pg_integrations.testing._embed import embed_texts

    chunks = [c.content for f in corpus_files() for c in load_and_split(f)]
    on_topic = [
        "How does PolarDB separate compute from storage?",
        "pgvector 的 HNSW 和 IVFFlat 索引应该怎么选择？",
        "What is pgvector?",
        "PolarDB 如何实现存储计算分离？",
    ]
    off_topic = ["今天北京的天气怎么样？", "How do I bake sourdough bread?"]
    docs = np.array(embed_texts(chunks, 1024))
    best = np.array(embed_texts(on_topic + off_topic, 1024)) @ docs.T
    assert (best[: len(on_topic)].max(axis=1) > 0.5).all(), best.max(axis=1)
    assert (best[: len(on_topic)].max(axis=1) < 0.8).all()
    assert (best[len(on_topic) :].max(axis=1) < 0.45).all(), best.max(axis=1)


def test_sparse_output(dashscope_emulator: DashScopeEmulator) -> None:
    resp = embed(dashscope_emulator, ["sparse vectors rock"], output_type="dense&sparse")
    item = resp.output["embeddings"][0]
    assert len(item["embedding"]) == 1024
    tokens = {s["token"] for s in item["sparse_embedding"]}
    assert {"sparse", "vectors", "rock"} <= tokens


def test_embedding_is_fast(dashscope_emulator: DashScopeEmulator) -> None:
    texts = [f"document {i} about vector search in PostgreSQL and pgvector" for i in range(10)]
    dashscope_emulator.embed(texts)  # warm the feature cache like a long test run would
    start = time.perf_counter()
    for i in range(20):
        dashscope_emulator.embed([f"{t} {i}" for t in texts], 1024)
    per_batch = (time.perf_counter() - start) / 20
    assert per_batch < 0.02, f"{per_batch * 1000:.2f} ms per 10x1024 batch"
