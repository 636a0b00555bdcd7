"""Every example in examples/ runs end to end against the emulator and the test database."""

from __future__ import annotations

import runpy
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from qwen_pg_integrations.testing import DashScopeEmulator, ScriptedReply

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def run_example(
    dashscope_emulator: DashScopeEmulator,
    pg_dsn: str,
    table_name: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Callable[[str], str]:
    monkeypatch.setenv("QWEN_PG_DSN", pg_dsn)
    monkeypatch.setenv("EXAMPLE_TABLE", table_name)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the examples add their folder

    def run(name: str) -> str:
        runpy.run_path(str(EXAMPLES / name), run_name="__main__")
        return capsys.readouterr().out

    return run


def test_every_example_is_covered() -> None:
    scripts = {p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")}
    assert scripts == {
        "langchain_rag_chain.py",
        "llama_index_query_engine.py",
        "agent_with_tools.py",
        "hybrid_search_zh.py",
    }


def test_langchain_rag_chain_example(
    run_example: Callable[[str], str], dashscope_emulator: DashScopeEmulator
) -> None:
    # the emulator cannot rewrite questions: script what qwen-turbo (the rewriter) would say
    rewrite = "Is PolarDB compatible with PostgreSQL?"
    dashscope_emulator.script(ScriptedReply(text=rewrite, model="qwen-turbo"))
    out = run_example("langchain_rag_chain.py")
    assert "A: Based on the context: PolarDB separates compute from storage." in out
    assert "polardb_overview.md score=" in out
    assert "sources: pgvector_zh.md" in out
    assert f"Q: Is it compatible with PostgreSQL? -> {rewrite}" in out
    assert "A: Based on the context: PolarDB for PostgreSQL is compatible with PostgreSQL" in out
    assert "知识库中没有" in out and "(no_context=True)" in out


def test_llama_index_query_engine_example(run_example: Callable[[str], str]) -> None:
    out = run_example("llama_index_query_engine.py")
    assert "A: 根据上下文：" in out and "polardb_zh.md score=" in out
    assert "dashscope_embeddings.txt score=" in out
    assert "(no_context=True)" in out


def test_agent_with_tools_example(
    run_example: Callable[[str], str], dashscope_emulator: DashScopeEmulator
) -> None:
    out = run_example("agent_with_tools.py")
    assert "agent calls search_knowledge_base(" in out
    assert "tool search_knowledge_base returned:\n[1] source: pgvector" in out
    assert "final answer: According to the tool result: [1] source: pgvector" in out


def test_hybrid_search_zh_example(run_example: Callable[[str], str]) -> None:
    out = run_example("hybrid_search_zh.py")
    hybrid = out.split("hybrid search: 倒数排名融合 RRF 怎么计算")[1].splitlines()[1]
    assert "hybrid_search_zh.md" in hybrid  # the keyword side finds the RRF paragraph first
    chinese_only = out.split("Chinese files only")[1].splitlines()[1:4]
    assert chinese_only and all("_zh." in line for line in chinese_only)
