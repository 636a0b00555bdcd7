"""Without plpython3u (the embedded PostgreSQL 18, managed services) install fails clearly and the
Python-side flow keeps working; plus the pure parts of the SQL package (no server needed)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from qwen_pg_integrations import errors
from qwen_pg_integrations.sql import _ddl, install
from qwen_pg_integrations.sql._plpy import sqlstate_for


@pytest.fixture
def no_plpython_dsn(pg_dsn: str) -> str:
    with psycopg.connect(pg_dsn) as conn:
        available = conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'plpython3u'"
        ).fetchone()
    if available:
        pytest.skip("this server (QWEN_PG_DSN) has plpython3u; the test needs one without it")
    return pg_dsn


def test_install_on_a_server_without_plpython_names_what_is_missing(
    no_plpython_dsn: str, dashscope_emulator: Any
):
    with pytest.raises(errors.PLPythonUnavailableError) as info:
        install(no_plpython_dsn)
    message = str(info.value)
    assert "has no plpython3u (PL/Python 3)" in message
    with psycopg.connect(no_plpython_dsn) as conn:
        major = conn.execute("SELECT current_setting('server_version_num')::int / 10000").fetchone()
        assert f"postgresql-plpython3-{major[0]}" in message
        assert "Python-side API" in message
        # nothing was created
        assert conn.execute("SELECT to_regnamespace('qwen_pg')").fetchone() == (None,)


def test_python_side_flow_keeps_working_on_that_server(
    no_plpython_dsn: str, dashscope_emulator: Any, table_name: str
):
    from qwen_pg_integrations.dashscope import EmbeddingClient
    from qwen_pg_integrations.pg import PGStore, Record

    with pytest.raises(errors.PLPythonUnavailableError):
        install(no_plpython_dsn)
    client = EmbeddingClient()
    texts = ["pgvector stores embeddings", "cats sleep all day"]
    store = PGStore(no_plpython_dsn, table_name=table_name, embedding_model=client.model)
    try:
        store.add(
            Record(id=None, content=t, embedding=v)
            for t, v in zip(texts, client.embed_documents(texts), strict=True)
        )
        hits = store.search(client.embed_query("where are embeddings stored?"), k=1)
        assert hits[0].record.content == "pgvector stores embeddings"
    finally:
        store.drop()


def test_cli_reports_the_missing_plpython_as_a_one_line_error(
    no_plpython_dsn: str, dashscope_emulator: Any, capsys: pytest.CaptureFixture[str]
):
    from qwen_pg_integrations.sql.cli import main

    assert main(["install", "--dsn", no_plpython_dsn]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: PostgreSQL") and "plpython3u" in err


# --- pure parts ---------------------------------------------------------------------------


def test_every_function_has_a_fixed_search_path_and_quoted_names():
    for fn in _ddl.FUNCTIONS:
        text = _ddl.render_function(fn, 'we"ird', "public").as_string(None)
        assert text.startswith('CREATE OR REPLACE FUNCTION "we""ird".')
        assert 'SET search_path = "we""ird", pg_catalog, pg_temp' in text
        assert ("SECURITY DEFINER" in text) == fn.security_definer


def test_only_rag_and_the_trigger_installers_run_as_the_caller():
    invoker = {fn.name for fn in _ddl.FUNCTIONS if not fn.security_definer}
    assert invoker == {"rag", "sync_embedding", "unsync_embedding"}
    private = {fn.name for fn in _ddl.FUNCTIONS if not fn.public}
    assert private == {"_selftest"}


def test_embed_returns_real_arrays_without_pgvector():
    embed_one = next(fn for fn in _ddl.FUNCTIONS if fn.name == "embed")
    with_vector = _ddl.render_function(embed_one, "qwen_pg", "extensions").as_string(None)
    without = _ddl.render_function(embed_one, "qwen_pg", None).as_string(None)
    assert 'RETURNS "extensions"."vector"' in with_vector and "as_text=True" in with_vector
    assert "RETURNS real[]" in without and "as_text=False" in without


def test_grants_revoke_public_then_grant_roles():
    text = [g.as_string(None) for g in _ddl.render_grants("qwen_pg", "public", ["PUBLIC", "ro"])]
    assert text[0] == 'REVOKE ALL ON ALL FUNCTIONS IN SCHEMA "qwen_pg" FROM PUBLIC'
    assert 'GRANT USAGE ON SCHEMA "qwen_pg" TO PUBLIC' in text
    assert (
        'GRANT EXECUTE ON FUNCTION "qwen_pg"."embed"(text[], text, text, integer) TO "ro"' in text
    )
    assert not any("_selftest" in t for t in text)


@pytest.mark.parametrize(
    ("error", "state"),
    [
        (errors.AuthenticationError(), "QW401"),
        (errors.PermissionDeniedError(), "QW403"),
        (errors.NotFoundError(), "QW404"),
        (errors.DataInspectionFailed(), "QW451"),
        (errors.BadRequestError(), "QW400"),
        (errors.RateLimitError(), "QW429"),
        (errors.APITimeoutError(), "QW504"),
        (errors.APIConnectionError(), "QW503"),
        (errors.ServerError(), "QW500"),
        (errors.InvalidInputError("x"), "22023"),
        (errors.MissingAPIKeyError(), "QW001"),
    ],
)
def test_typed_errors_map_to_sqlstates(error: errors.QwenPGError, state: str):
    assert sqlstate_for(error) == state


def test_runtime_imports_no_psycopg_and_no_framework():
    import subprocess
    import sys

    code = (
        "import sys, qwen_pg_integrations.sql.runtime\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('psycopg', 'langchain_core', 'llama_index')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
