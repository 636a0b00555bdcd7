"""Issue 14: the README's Python code blocks run, in order, offline (emulator + test database).

Every ```python block runs in one namespace, as a reader pasting them one after the other would;
a block preceded by ``<!-- readme-test: skip (why) -->`` is left out (it needs a server this
suite does not start). The emulator's realistic similarity ranges mean the documented 0.5
thresholds find their sources offline, as they do against DashScope.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import psycopg
import pytest

from qwen_pg_integrations.testing import DashScopeEmulator

README = Path(__file__).resolve().parent.parent / "README.md"
_BLOCK = re.compile(r"(<!-- readme-test: skip[^>]*-->\n)?```python\n(.*?)```", re.DOTALL)

pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.filterwarnings(
        "ignore::pydantic.warnings.PydanticDeprecatedSince20",
        "ignore::pydantic.warnings.PydanticDeprecatedSince211",
    ),
]


def _blocks() -> list[str]:
    return [code for skip, code in _BLOCK.findall(README.read_text()) if not skip]


def test_the_readme_has_runnable_blocks() -> None:
    assert len(_blocks()) >= 6


def test_readme_python_blocks_run_offline_and_find_their_sources(
    dashscope_emulator: DashScopeEmulator, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QWEN_PG_DSN", pg_dsn)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS docs")
        conn.execute(
            "DELETE FROM qwen_pg_collections WHERE table_name = 'docs'"
            if conn.execute("SELECT to_regclass('qwen_pg_collections')").fetchone() != (None,)
            else "SELECT 1"
        )
    namespace: dict[str, object] = {"__name__": "readme"}
    out = io.StringIO()
    try:
        for n, code in enumerate(_blocks(), start=1):
            with contextlib.redirect_stdout(out):
                try:
                    exec(compile(code, f"README.md python block {n}", "exec"), namespace)
                except Exception as exc:  # report which block broke
                    pytest.fail(f"README python block {n} failed: {type(exc).__name__}: {exc}")
        # the LangChain RAG chain found sources above its documented 0.5 threshold
        chain_out = namespace["out"]
        assert isinstance(chain_out, dict)
        assert chain_out["context"] and not chain_out["no_context"], chain_out
        assert all(d.metadata["score"] >= 0.5 for d in chain_out["context"])
        # and so did the LlamaIndex query engine
        response = namespace["response"]
        assert response.source_nodes and not response.metadata["no_context"]  # type: ignore[attr-defined]
        docs = namespace["docs"]
        assert isinstance(docs, list) and docs
    finally:
        for name in ("store",):
            store = namespace.get(name)
            close = getattr(store, "close", None)
            if callable(close):
                close()
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS docs")
            conn.execute("DELETE FROM qwen_pg_collections WHERE table_name = 'docs'")
