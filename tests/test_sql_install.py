"""install / uninstall / CLI of the in-database functions, and who can read the key."""

# ruff: noqa: F811  (pytest fixtures imported from _sql_pg15 are parameters by design)
from __future__ import annotations

from typing import Any

import psycopg
import pytest

from _sql_pg15 import PG15Cluster, _reset_emulator, emu, fresh_database, pg15  # noqa: F401
from qwen_pg_integrations.errors import PLPythonUnavailableError
from qwen_pg_integrations.sql import install, status, uninstall

pytestmark = pytest.mark.plpython


@pytest.fixture(scope="module")
def roles(pg15: PG15Cluster) -> None:
    with pg15.connect() as conn:
        for role in ("app", "analyst"):
            conn.execute(f"DROP ROLE IF EXISTS {role}")  # roles are cluster-wide
            conn.execute(f"CREATE ROLE {role} LOGIN")


@pytest.fixture
def dsn(pg15: PG15Cluster, request: pytest.FixtureRequest) -> str:
    """A fresh database per test (install state never leaks between tests)."""
    return fresh_database(pg15, "inst_" + request.node.name[5:40].lower())


def _dbname(dsn: str) -> str:
    return dsn.rsplit("dbname=", 1)[1]


def test_another_role_can_call_the_functions_but_never_read_the_key(
    pg15: PG15Cluster, emu: Any, dsn: str, roles: None
):
    install(dsn, api_key=emu.api_key, base_url=emu.base_url)
    with psycopg.connect(pg15.dsn("app", _dbname(dsn)), autocommit=True) as app:
        assert app.execute("SELECT vector_dims(qwen_pg.embed('hi'))").fetchone() == (1024,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute("SELECT value FROM qwen_pg.config WHERE key = 'api_key'")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute("SELECT qwen_pg._selftest()")
        # the schema comes first on the SECURITY DEFINER functions' search_path: nobody else
        # may create objects in it
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute("CREATE FUNCTION qwen_pg.config() RETURNS int LANGUAGE sql AS 'SELECT 1'")
        bodies = app.execute(
            "SELECT string_agg(prosrc, ' ') FROM pg_proc"
            " WHERE pronamespace = 'qwen_pg'::regnamespace"
        ).fetchone()[0]
        assert emu.api_key not in bodies
    with psycopg.connect(dsn) as owner:
        assert owner.execute(
            "SELECT value FROM qwen_pg.config WHERE key = 'api_key'"
        ).fetchone() == (emu.api_key,)
        definer = owner.execute(
            "SELECT proname, prosecdef, proconfig FROM pg_proc"
            " WHERE pronamespace = 'qwen_pg'::regnamespace ORDER BY proname"
        ).fetchall()
    security = {name: secdef for name, secdef, _ in definer}
    assert security["embed"] and security["chat"] and security["embedding_trigger"]
    assert not security["rag"] and not security["sync_embedding"]
    assert all(cfg == ["search_path=qwen_pg, pg_catalog, pg_temp"] for _, _, cfg in definer)


def test_grant_to_limits_who_may_spend_the_key(pg15: PG15Cluster, emu: Any, dsn: str, roles: None):
    install(dsn, api_key=emu.api_key, base_url=emu.base_url, grant_to=["analyst"])
    with (
        psycopg.connect(pg15.dsn("app", _dbname(dsn)), autocommit=True) as app,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        app.execute("SELECT qwen_pg.chat(NULL, 'hi')")
    with psycopg.connect(pg15.dsn("analyst", _dbname(dsn)), autocommit=True) as analyst:
        assert analyst.execute("SELECT qwen_pg.chat(NULL, 'hi')").fetchone()[0]


def test_rag_reads_the_table_with_the_callers_privileges(
    pg15: PG15Cluster, emu: Any, dsn: str, roles: None
):
    install(dsn, api_key=emu.api_key, base_url=emu.base_url)
    with psycopg.connect(dsn, autocommit=True) as owner:
        owner.execute(
            "CREATE TABLE secret (id text PRIMARY KEY, content text NOT NULL,"
            " metadata jsonb NOT NULL DEFAULT '{}', embedding vector(1024), content_tsv tsvector)"
        )
        owner.execute(
            "INSERT INTO secret (id, content, embedding)"
            " VALUES ('s1', 'the vault code is 1234', qwen_pg.embed('the vault code is 1234'))"
        )
    app_dsn = pg15.dsn("app", _dbname(dsn))
    with (
        psycopg.connect(app_dsn, autocommit=True) as app,
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="secret"),
    ):
        app.execute("SELECT * FROM qwen_pg.rag('what is the vault code?', 'secret', 3, 0)")
    with psycopg.connect(dsn, autocommit=True) as owner:
        owner.execute("GRANT SELECT ON secret TO app")
    with psycopg.connect(app_dsn, autocommit=True) as app:
        answer, sources, _ = app.execute(
            "SELECT * FROM qwen_pg.rag('what is the vault code?', 'secret', 3, 0)"
        ).fetchone()
        assert sources[0]["id"] == "s1" and "1234" in answer


def test_uninstall_removes_schema_functions_triggers_and_plpython(
    pg15: PG15Cluster, emu: Any, dsn: str
):
    report = install(dsn, api_key=emu.api_key, base_url=emu.base_url)
    assert set(report.created_extensions) == {"plpython3u", "vector"}
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE notes (body text, emb vector(1024))")
        conn.execute("SELECT qwen_pg.sync_embedding('notes', 'body', 'emb')")
        conn.execute("INSERT INTO notes VALUES ('kept after uninstall')")

    assert uninstall(dsn) is True

    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute("SELECT to_regnamespace('qwen_pg')").fetchone() == (None,)
        assert conn.execute(
            "SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal"
        ).fetchone() == (0,)
        assert conn.execute(
            "SELECT count(*) FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang"
            " WHERE l.lanname = 'plpython3u'"
        ).fetchone() == (0,)
        extensions = {r[0] for r in conn.execute("SELECT extname FROM pg_extension")}
        assert "plpython3u" not in extensions  # created by install, unused now: dropped
        assert "vector" in extensions  # created by install but a user column needs it: kept
        assert conn.execute("SELECT vector_dims(emb), body FROM notes").fetchone() == (
            1024,
            "kept after uninstall",
        )
        conn.execute("INSERT INTO notes VALUES ('no trigger any more')")
        assert conn.execute("SELECT count(*) FROM notes WHERE emb IS NULL").fetchone() == (1,)
    assert uninstall(dsn) is False


def test_install_keeps_extensions_it_did_not_create(pg15: PG15Cluster, emu: Any, dsn: str):
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION plpython3u")
        conn.execute("CREATE EXTENSION vector")
    assert install(dsn, api_key=emu.api_key, base_url=emu.base_url).created_extensions == ()
    uninstall(dsn)
    with psycopg.connect(dsn) as conn:
        extensions = {r[0] for r in conn.execute("SELECT extname FROM pg_extension")}
    assert {"plpython3u", "vector"} <= extensions


def test_reinstall_is_idempotent_and_rotates_the_key_for_open_sessions(
    pg15: PG15Cluster, emu: Any, dsn: str
):
    install(dsn, api_key=emu.api_key, base_url=emu.base_url)
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute("SELECT qwen_pg.chat(NULL, 'one')").fetchone()[0]
        install(dsn, api_key="sk-rotated-wrong", base_url=emu.base_url)
        with pytest.raises(psycopg.Error) as info:
            conn.execute("SELECT qwen_pg.chat(NULL, 'two')")
        assert info.value.sqlstate == "QW401"
        install(dsn, api_key=emu.api_key, base_url=emu.base_url, chat_model="qwen-turbo")
        assert conn.execute("SELECT qwen_pg.chat(NULL, 'three')").fetchone()[0]
    assert emu.requests[-1].model == "qwen-turbo"
    info = status(dsn)
    assert info is not None and info["api_key"] == "set" and info["chat_model"] == "qwen-turbo"
    assert emu.api_key not in str(info)


def test_install_fails_cleanly_when_the_server_python_cannot_import_the_package(emu: Any, dsn: str):
    with pytest.raises(PLPythonUnavailableError) as info:
        install(dsn, api_key=emu.api_key, base_url=emu.base_url, python_path=["/nonexistent"])
    message = str(info.value)
    assert "cannot import qwen_pg_integrations" in message
    assert "No module named 'qwen_pg_integrations'" in message
    assert "--python-path" in message and "pip install --target" in message
    with psycopg.connect(dsn) as conn:  # one transaction: nothing left behind
        assert conn.execute("SELECT to_regnamespace('qwen_pg')").fetchone() == (None,)
        assert conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'plpython3u'"
                            ).fetchone() == (0,)  # fmt: skip


def test_install_as_a_non_superuser_says_a_superuser_is_needed(
    pg15: PG15Cluster, emu: Any, dsn: str, roles: None
):
    with pytest.raises(PLPythonUnavailableError, match="needs a superuser"):
        install(pg15.dsn("app", _dbname(dsn)), api_key=emu.api_key, base_url=emu.base_url)


def test_install_without_a_key_is_refused_before_touching_the_database(
    dsn: str, monkeypatch: pytest.MonkeyPatch
):
    from qwen_pg_integrations.errors import MissingAPIKeyError

    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    with pytest.raises(MissingAPIKeyError):
        install(dsn)
    assert status(dsn) is None


def test_cli_install_status_uninstall_with_a_quoted_schema_name(
    pg15: PG15Cluster,
    emu: Any,
    dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    from qwen_pg_integrations.sql.cli import main

    monkeypatch.setenv("DASHSCOPE_API_KEY", emu.api_key)
    schema = "AI Funcs"
    common = ["--dsn", dsn, "--schema", schema]
    options = ["--base-url", emu.base_url, "--chat-model", "qwen-max", "--timeout", "20"]
    assert main(["install", *common, *options, "--max-retries", "1"]) == 0
    out = capsys.readouterr().out
    assert "installed schema AI Funcs" in out and "embeddings as vector" in out
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (body text, emb vector(64))")
        conn.execute("""SELECT "AI Funcs".sync_embedding('t', 'body', 'emb')""")
        conn.execute("INSERT INTO t VALUES ('quoted schema works')")
        assert conn.execute("SELECT vector_dims(emb) FROM t").fetchone() == (64,)
        assert conn.execute("""SELECT "AI Funcs".chat(NULL, 'hi')""").fetchone()[0]
    assert emu.requests[-1].model == "qwen-max"
    assert main(["status", *common]) == 0
    out = capsys.readouterr().out
    assert '"api_key": "set"' in out and emu.api_key not in out
    assert '"timeout": "20.0"' in out and '"max_retries": "1"' in out
    assert main(["uninstall", *common]) == 0
    assert "removed schema AI Funcs" in capsys.readouterr().out


def test_without_pgvector_embed_returns_real_arrays(pg15: PG15Cluster, emu: Any, dsn: str):
    from qwen_pg_integrations.dashscope import EmbeddingClient

    report = install(dsn, api_key=emu.api_key, base_url=emu.base_url, use_pgvector=False)
    assert report.vector_type == "real[]" and report.created_extensions == ("plpython3u",)
    with psycopg.connect(dsn, autocommit=True) as conn:
        kind, values = conn.execute(
            "SELECT pg_typeof(qwen_pg.embed('hello')), qwen_pg.embed('hello')"
        ).fetchone()
        assert kind == "real[]"
        expected = EmbeddingClient(api_key=emu.api_key, base_url=emu.base_url).embed_documents(
            ["hello"]
        )[0]
        assert values == pytest.approx(expected, rel=1e-6, abs=1e-7)  # float4 storage
        dims, middle = conn.execute(
            "SELECT array_dims(e), e[2:2][1:3] FROM qwen_pg.embed(ARRAY['a', NULL, 'b']) e"
        ).fetchone()
        assert dims == "[1:3][1:1024]" and middle == [[None, None, None]]
        assert conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'vector'"
                            ).fetchone() == (0,)  # fmt: skip


def test_install_keeps_the_key_out_of_the_server_log(pg15: PG15Cluster, emu: Any, dsn: str):
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE \"{_dbname(dsn)}\" SET log_statement = 'all'")
        conn.execute(f'ALTER DATABASE "{_dbname(dsn)}" SET log_min_duration_statement = 0')
    secret = "sk-never-in-the-log-4711"
    install(dsn, api_key=secret, base_url=emu.base_url)
    log = pg15.log.read_text(errors="replace")
    assert "CREATE SCHEMA IF NOT EXISTS" in log  # statements of the install were logged...
    assert secret not in log  # ...but not the key
