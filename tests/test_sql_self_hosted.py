"""The in-database functions pointed at a self-hosted OpenAI-compatible server (the emulator's
vLLM and Ollama dialects): ``qwen-pg sql install --base-url http://host:8000/v1`` needs no
DashScope key, and ``qwen_pg.embed`` / ``chat`` / ``rag`` call that server from inside
PostgreSQL 15 (plpython3u)."""

# ruff: noqa: F811  (pytest fixtures imported from _sql_pg15 are parameters by design)
from __future__ import annotations

from typing import Any

import psycopg
import pytest

from _sql_pg15 import _reset_emulator, emu, fresh_database, pg15  # noqa: F401
from qwen_pg_integrations.sql import install

pytestmark = pytest.mark.plpython


@pytest.mark.parametrize("dialect", ["vllm", "ollama"])
def test_functions_call_a_self_hosted_server(pg15: Any, emu: Any, dialect: str) -> None:
    url = emu.vllm_base_url if dialect == "vllm" else emu.ollama_base_url
    dsn = fresh_database(pg15, f"db_self_hosted_{dialect}")
    install(
        dsn,
        base_url=url,
        dialect=dialect,
        embedding_model="Qwen/Qwen3-Embedding-0.6B",
        chat_model="Qwen/Qwen3-8B",
        max_retries=1,
        timeout=10.0,
    )  # no api_key, and none is needed
    with psycopg.connect(dsn, autocommit=True) as db:
        (vec,) = db.execute("SELECT qwen_pg.embed('PolarDB read-only nodes')::text").fetchone()
        assert len(vec.strip("[]").split(",")) == 1024
        (answer,) = db.execute("SELECT qwen_pg.chat('Be brief.', 'Hello from SQL')").fetchone()
        assert "Hello from SQL" in answer
        (key,) = db.execute("SELECT value FROM qwen_pg.config WHERE key = 'api_key'").fetchone()
        assert key == ""
    paths = {r.path for r in emu.requests}
    assert paths == {f"/{dialect}/v1/embeddings", f"/{dialect}/v1/chat/completions"}
