"""Install and remove the ``qwen_pg`` schema of in-database AI functions.

``install`` needs a superuser (plpython3u is an untrusted language) on a server that has
PL/Python 3 (Debian/Ubuntu: ``postgresql-plpython3-<major>``). It runs in one transaction: on
any failure nothing is left behind.
"""

from __future__ import annotations

import json
import os
import site
import sys
import sysconfig
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from pydantic import SecretStr

from .. import __version__
from ..config import redact_dsn, redact_text, resolve_api_key, resolve_base_url, resolve_dsn
from ..dashscope.compat import DIALECTS, detect_dialect, uses_compat
from ..dashscope.models import (
    DEFAULT_CHAT_MODEL,
    DEFAULT_EMBEDDING_MODEL,
    chat_model_spec,
    embedding_model_spec,
)
from ..errors import ConfigurationError, DatabaseConnectionError, PLPythonUnavailableError
from ..pg.connection import check_dsn
from . import _ddl

__all__ = ["InstallReport", "default_python_path", "install", "status", "uninstall"]

Connectable = str | psycopg.Connection[Any] | None
PYTHON_PATH_ENV = "QWEN_PG_PYTHON_PATH"

_NO_PLPYTHON = (
    "PostgreSQL {version} has no plpython3u (PL/Python 3), which the in-database functions need. "
    "On Debian/Ubuntu install the server package postgresql-plpython3-{major} and run "
    "`qwen-pg sql install` again; managed services (RDS, Cloud SQL, PolarDB, ...) and the embedded "
    "server do not offer it. The Python-side API (qwen_pg_integrations.langchain / .llama_index, "
    "`qwen-pg ask`) works without it."
)


@dataclass(frozen=True)
class InstallReport:
    """What :func:`install` set up."""

    schema: str
    vector_type: str  # "vector" (pgvector) or "real[]"
    server_python: str
    python_path: tuple[str, ...]
    package_file: str
    created_extensions: tuple[str, ...]


def default_python_path() -> list[str]:
    """``QWEN_PG_PYTHON_PATH`` (``os.pathsep``-separated), else where this interpreter finds the
    package and its dependencies.

    The second is valid for a server on this machine whose Python has the same major.minor
    version (binary wheels are built per version), and whose OS user can read these directories.
    """
    env = os.environ.get(PYTHON_PATH_ENV)
    if env:
        return [p for p in env.split(os.pathsep) if p]
    package_root = str(Path(__file__).resolve().parents[2])
    paths = [package_root, sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    paths += site.getsitepackages()
    out: list[str] = []
    for path in paths:
        if path not in out and Path(path).is_dir():
            out.append(path)
    return out


@contextmanager
def _connection(connection: Connectable) -> Iterator[psycopg.Connection[Any]]:
    if isinstance(connection, psycopg.Connection):
        yield connection
        return
    dsn = resolve_dsn(connection)
    if dsn is None:  # like every store: no DSN and no QWEN_PG_DSN -> the embedded server
        from ..pg.embedded import embedded_dsn

        dsn = embedded_dsn()
    # the typed error is raised after the except block, so it has no __context__: psycopg's
    # error keeps the connection options, password included
    check_dsn(dsn)
    failure: DatabaseConnectionError | None = None
    try:
        conn = psycopg.connect(dsn)
    except psycopg.OperationalError as exc:
        failure = DatabaseConnectionError(
            f"Cannot connect to {redact_dsn(dsn)}: {redact_text(str(exc).strip(), dsn)}"
        )
    if failure is not None:
        raise failure
    try:
        yield conn
    finally:
        conn.close()


def _require_plpython(conn: psycopg.Connection[Any]) -> bool:
    """Create plpython3u if needed; True when this install created it."""
    row = conn.execute(
        "SELECT current_setting('server_version'), current_setting('server_version_num')::int,"
        " (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),"
        " EXISTS (SELECT 1 FROM pg_language WHERE lanname = 'plpython3u'),"
        " EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'plpython3u')"
    ).fetchone()
    assert row is not None
    version, version_num, superuser, installed, available = row
    if not installed and not available:
        raise PLPythonUnavailableError(
            _NO_PLPYTHON.format(version=version, major=int(version_num) // 10000)
        )
    if not superuser:
        raise PLPythonUnavailableError(
            "plpython3u is an untrusted language: creating it and functions in it needs a "
            "superuser. Run `qwen-pg sql install` as a superuser; grant_to= / --grant-to then "
            "lets other roles call the functions."
        )
    if installed:
        return False
    try:
        with conn.transaction():
            conn.execute("CREATE EXTENSION IF NOT EXISTS plpython3u")
    except psycopg.Error as exc:
        raise PLPythonUnavailableError(
            f"CREATE EXTENSION plpython3u failed on PostgreSQL {version}: "
            f"{str(exc).strip()}. Check that the server's postgresql-plpython3 package matches it."
        ) from None
    return True


def _ensure_vector(conn: psycopg.Connection[Any]) -> tuple[str | None, bool]:
    """(schema of pgvector or None, created by this install)."""
    row = conn.execute(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
        " WHERE e.extname = 'vector'"
    ).fetchone()
    if row is not None:
        return str(row[0]), False
    if conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone():
        try:
            with conn.transaction():
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except psycopg.Error:
            return None, False  # fall back to real[]
        return _ensure_vector(conn)[0], True
    return None, False


def _previous_config(conn: psycopg.Connection[Any], schema: str) -> dict[str, str]:
    exists = conn.execute(
        "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = 'config' AND c.relkind = 'r'",
        [schema],
    ).fetchone()
    if not exists:
        return {}
    rows = conn.execute(
        sql.SQL("SELECT key, value FROM {}").format(sql.Identifier(schema, "config"))
    ).fetchall()
    return {str(k): str(v) for k, v in rows}


def _quiet_logging(conn: psycopg.Connection[Any]) -> None:
    """Keep the key's INSERT out of the server log for this transaction.

    ``log_statement = 'all'`` or ``log_min_duration_statement`` would log the bound parameters,
    key included. (Extensions such as pgaudit have their own settings.)
    """
    conn.execute("SET LOCAL log_statement = 'none'")
    conn.execute("SET LOCAL log_min_duration_statement = -1")
    version = conn.execute("SELECT current_setting('server_version_num')::int").fetchone()
    if version and version[0] >= 130000:
        conn.execute("SET LOCAL log_parameter_max_length = 0")


def _selftest(
    conn: psycopg.Connection[Any], schema: str, paths: Sequence[str], explicit: bool
) -> dict[str, Any]:
    row = conn.execute(
        sql.SQL("SELECT {}()").format(sql.Identifier(schema, "_selftest"))
    ).fetchone()
    assert row is not None
    result: dict[str, Any] = row[0] if isinstance(row[0], dict) else json.loads(row[0])
    server_python = str(result.get("python", "?"))
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    how_to = (
        "Install the package for the server's Python where the server runs (for example "
        "`/usr/bin/python3 -m pip install --target /opt/qwen-pg/python qwen-pg-integrations`, "
        "readable by the postgres OS user) and pass python_path=['/opt/qwen-pg/python'] "
        "(`qwen-pg sql install --python-path /opt/qwen-pg/python`)."
    )
    if not explicit and not server_python.startswith(here + "."):
        raise PLPythonUnavailableError(
            f"The server's plpython3u runs Python {server_python}, but this package was found "
            f"for Python {here} ({', '.join(paths)}); its compiled dependencies would not load "
            f"there. {how_to}"
        )
    if not result.get("ok"):
        raise PLPythonUnavailableError(
            f"The server's Python {server_python} cannot import qwen_pg_integrations from "
            f"python_path {list(paths)}: {result.get('error', 'unknown error')}. {how_to}"
        )
    return result


def install(
    connection: Connectable = None,
    *,
    schema: str = "qwen_pg",
    api_key: str | SecretStr | None = None,
    base_url: str | None = None,
    embedding_model: str | None = None,
    embedding_dimensions: int | None = None,
    chat_model: str | None = None,
    python_path: Sequence[str] | None = None,
    grant_to: Sequence[str] = ("PUBLIC",),
    use_pgvector: bool = True,
    max_retries: int = 3,
    timeout: float = 60.0,
    dialect: str | None = None,
) -> InstallReport:
    """Install (or update) the in-database AI functions in ``schema``.

    Creates plpython3u (and pgvector, when the server has it) if missing, the schema, an
    owner-only ``config`` table holding the key and defaults, and the functions ``embed``,
    ``chat``, ``chat_raw``, ``rag``, ``embedding_trigger``, ``sync_embedding`` and
    ``unsync_embedding``. Idempotent: running it again updates the configuration.

    Args:
        connection: a DSN, a psycopg connection, or ``None`` for ``QWEN_PG_DSN``. The role must
            be a superuser (plpython3u is untrusted).
        schema: the schema to install into.
        api_key: DashScope key; default ``DASHSCOPE_API_KEY``. Stored in the owner-only table.
        base_url: DashScope endpoint; default ``DASHSCOPE_HTTP_BASE_URL``, else Beijing. Any
            other URL is an OpenAI-compatible server (vLLM, Ollama, DashScope's compatible
            mode) the functions then call (needs the ``openai`` package on ``python_path``).
        dialect: ``"native"``, ``"dashscope"``, ``"vllm"``, ``"ollama"`` or ``"openai"``
            (default: from ``base_url``); a self-hosted server needs no ``api_key``.
        embedding_model: default model of ``embed()`` and the trigger (``text-embedding-v4``).
        embedding_dimensions: default output size of ``embed()`` (model default when ``None``).
        chat_model: default model of ``chat()``, ``chat_raw()`` and ``rag()`` (``qwen-plus``).
        python_path: directories the server's Python puts first on ``sys.path`` to import the
            package and its dependencies; default: where this interpreter finds them
            (``QWEN_PG_PYTHON_PATH``, else :func:`default_python_path`: same machine and
            Python version only).
        grant_to: roles given USAGE on the schema and EXECUTE on the public functions
            (``"PUBLIC"`` = every role). They can spend the key, never read it.
        use_pgvector: return ``vector`` (creating pgvector when the server has it); ``False``
            returns ``real[]`` even where pgvector exists.
        max_retries: DashScope retries (429, 5xx, timeouts) inside the server.
        timeout: seconds per DashScope call inside the server.

    Returns:
        What was installed.

    Raises:
        PLPythonUnavailableError: no plpython3u, not a superuser, or the server's Python cannot
            import the package from ``python_path``. Nothing is left installed.
        MissingAPIKeyError: no key given and ``DASHSCOPE_API_KEY`` unset.

    Example:
        >>> from qwen_pg_integrations.sql import install
        >>> install("postgresql://postgres@localhost/app")  # doctest: +SKIP
        >>> # SELECT qwen_pg.chat('Be brief.', 'What is pgvector?');
    """
    embedding_model = embedding_model or DEFAULT_EMBEDDING_MODEL
    chat_model = chat_model or DEFAULT_CHAT_MODEL
    url = resolve_base_url(base_url)
    compat = uses_compat(url, dialect)
    wire = (dialect if dialect not in (None, "native") else detect_dialect(url)) if compat else ""
    if dialect is not None and dialect not in ("native", *DIALECTS):
        raise ConfigurationError(f"dialect must be native or one of {', '.join(DIALECTS)}")
    self_hosted = compat and wire != "dashscope"
    key = (
        (SecretStr(api_key) if isinstance(api_key, str) else api_key)
        if self_hosted
        else resolve_api_key(api_key)
    )
    if not compat:  # a self-hosted server's model names are its own
        embedding_model_spec(embedding_model).resolve_dimension(embedding_dimensions)
        chat_model_spec(chat_model)
    if not schema:
        raise ConfigurationError("schema must be a non-empty schema name.")
    explicit = python_path is not None or bool(os.environ.get(PYTHON_PATH_ENV))
    paths = [str(p) for p in python_path] if python_path is not None else default_python_path()
    with _connection(connection) as conn, conn.transaction():
        created: list[str] = []
        if _require_plpython(conn):
            created.append("plpython3u")
        vector_schema, vector_created = _ensure_vector(conn) if use_pgvector else (None, False)
        if vector_created:
            created.append("vector")
        previous = _previous_config(conn, schema)
        created = sorted(set(created) | set(json.loads(previous.get("created_extensions", "[]"))))
        for statement in _ddl.render_schema(schema):
            conn.execute(statement)
        has_type = conn.execute(
            "SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace"
            " WHERE n.nspname = %s AND t.typname = 'rag_answer'",
            [schema],
        ).fetchone()
        if not has_type:
            conn.execute(_ddl.render_rag_type(schema))
        for fn in _ddl.FUNCTIONS:
            conn.execute(_ddl.render_function(fn, schema, vector_schema))
        for statement in _ddl.render_grants(schema, vector_schema, grant_to):
            conn.execute(statement)
        config = {
            "api_key": key.get_secret_value() if key is not None else "",
            "base_url": url,
            "dialect": wire or "native",
            "embedding_model": embedding_model,
            "embedding_dimensions": str(embedding_dimensions or ""),
            "chat_model": chat_model,
            "max_retries": str(max_retries),
            "timeout": str(timeout),
            "python_path": json.dumps(paths),
            "vector_schema": vector_schema or "",
            "created_extensions": json.dumps(created),
            "package_version": __version__,
        }
        table = sql.Identifier(schema, "config")
        _quiet_logging(conn)
        conn.execute(sql.SQL("DELETE FROM {}").format(table))
        with conn.cursor() as cur:
            cur.executemany(
                sql.SQL("INSERT INTO {} (key, value) VALUES (%s, %s)").format(table),
                list(config.items()),
            )
        result = _selftest(conn, schema, paths, explicit)
    return InstallReport(
        schema=schema,
        vector_type="vector" if vector_schema else "real[]",
        server_python=str(result.get("python", "?")),
        python_path=tuple(paths),
        package_file=str(result.get("package_file", "?")),
        created_extensions=tuple(created),
    )


def uninstall(connection: Connectable = None, *, schema: str = "qwen_pg") -> bool:
    """Remove ``schema`` and everything in it, and the extensions :func:`install` created.

    ``DROP SCHEMA ... CASCADE`` also drops the triggers made by ``sync_embedding`` (the
    embedding columns and their values stay) and any view or column that uses the schema's
    functions or type. plpython3u / pgvector are dropped only if ``install`` created them and
    nothing else uses them.

    Returns:
        ``True`` if the schema existed.
    """
    with _connection(connection) as conn, conn.transaction():
        exists = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema]).fetchone()
        if not exists:
            return False
        previous = _previous_config(conn, schema)
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
        for extension in reversed(json.loads(previous.get("created_extensions", "[]"))):
            try:
                with conn.transaction():
                    conn.execute(
                        sql.SQL("DROP EXTENSION IF EXISTS {}").format(sql.Identifier(extension))
                    )
            except psycopg.errors.DependentObjectsStillExist:
                pass  # still used by something else: keep it
    return True


def status(connection: Connectable = None, *, schema: str = "qwen_pg") -> dict[str, Any] | None:
    """The installed configuration without the key (``None`` when not installed)."""
    with _connection(connection) as conn, conn.transaction():
        previous = _previous_config(conn, schema)
    if not previous:
        return None
    out: dict[str, Any] = {k: v for k, v in previous.items() if k != "api_key"}
    out["api_key"] = "set" if previous.get("api_key") else "missing"
    out["python_path"] = json.loads(previous.get("python_path", "[]"))
    out["created_extensions"] = json.loads(previous.get("created_extensions", "[]"))
    return out
