"""Client-side segmentation and client-built tsvectors match what the server would build."""

from __future__ import annotations

import psycopg
import pytest

from qwen_pg_integrations.pg import maximal_marginal_relevance, segment
from qwen_pg_integrations.pg._tsvector import TsVector, TsVectorDumper, tsvector_binary
from qwen_pg_integrations.pg.text import segmented_text


def test_chinese_is_segmented_into_words_and_stopwords_dropped() -> None:
    words = segment("向量数据库支持相似度检索和混合检索。")
    assert {"向量", "数据库", "检索", "混合"} <= set(words)
    assert "和" not in words and "。" not in words
    assert segment("The Quick brown fox") == ["quick", "brown", "fox"]
    assert segment("") == [] and segmented_text("PolarDB 数据库") == "polardb 数据 据库 数据库"


def test_cjk_text_keeps_only_word_characters_of_each_jieba_token() -> None:
    # jieba returns punctuation, spaces and mixed tokens; segment() splits them into words the
    # same way for CJK and non-CJK text (underscore and punctuation are separators)
    words = segment("通义千问Qwen-Max，支持snake_case与PolarDB！ÀB 数据库")
    assert {"通义", "千问", "qwen", "max", "snake", "case", "polardb", "à", "数据库"} <= set(words)
    assert all(w and "_" not in w and "-" not in w and "，" not in w for w in words)
    assert segment("数据库 The database")[-1] == "database"


@pytest.mark.parametrize(
    "text",
    [
        "向量数据库支持相似度检索和混合检索 检索 PostgreSQL postgresql",
        "b c b c zz é ß 𝔘",
        "",
        " ".join(f"w{i % 700}" for i in range(17000)),  # positions past 16383, > 256 repeats
    ],
)
def test_client_tsvector_equals_server_to_tsvector(pg_dsn: str, text: str) -> None:
    words = segment(text)
    with psycopg.connect(pg_dsn) as conn:
        conn.adapters.register_dumper(TsVector, TsVectorDumper)
        row = conn.execute(
            "SELECT %b::tsvector = to_tsvector('simple', %s), %b::tsvector::text",
            [tsvector_binary(words), " ".join(words), tsvector_binary(words)],
        ).fetchone()
    assert row is not None and row[0], row[1][:300]


def test_mmr_core_function() -> None:
    cands = [[1.0, 0.0], [0.99, 0.01], [0.0, 1.0]]
    assert maximal_marginal_relevance([1.0, 0.0], cands, k=2, lambda_mult=1.0) == [0, 1]
    assert maximal_marginal_relevance([1.0, 0.0], cands, k=2, lambda_mult=0.3) == [0, 2]
    assert maximal_marginal_relevance([1.0, 0.0], [], k=2) == []
    assert sorted(maximal_marginal_relevance([1.0, 0.0], cands, k=10)) == [0, 1, 2]
