"""``qwen-pg status``: the server, its PostgreSQL and pgvector versions, and the collections."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.table import Table

from ..config import redact_dsn
from ..errors import DatabaseConnectionError

__all__ = ["collect_status", "print_status"]

_CATALOGS = """
SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relname = 'qwen_pg_collections' AND c.relkind IN ('r', 'p') ORDER BY 1
"""
_INDEXES = """
SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = %s ORDER BY 1
"""


def _dsn(args: argparse.Namespace) -> tuple[str, str]:
    if args.dsn:
        return args.dsn, redact_dsn(args.dsn)
    from ..pg.embedded import default_data_dir, embedded_dsn

    return embedded_dsn(), f"embedded server (data in {default_data_dir()})"


def collect_status(dsn: str) -> dict[str, Any]:
    """Versions, and per collection: model, dimension, rows, size, indexes."""
    import psycopg
    from psycopg import sql

    from ..config import redact_text
    from ..pg.connection import check_dsn

    check_dsn(dsn)
    try:
        conn = psycopg.connect(dsn, connect_timeout=10, autocommit=True)
    except psycopg.OperationalError as err:
        reason = redact_text(" ".join(str(err).split())[:200], dsn)
        raise DatabaseConnectionError(
            f"cannot reach the database ({reason}); check --dsn / QWEN_PG_DSN, that the "
            "server runs and accepts connections from here."
        ) from None
    with conn:
        status: dict[str, Any] = {}
        row = conn.execute("SELECT current_setting('server_version'), version()").fetchone()
        assert row is not None
        status["postgresql"], status["version_string"] = row
        row = conn.execute(
            "SELECT (SELECT extversion FROM pg_extension WHERE extname = 'vector'), "
            "(SELECT default_version FROM pg_available_extensions WHERE name = 'vector'), "
            "current_database(), current_user"
        ).fetchone()
        assert row is not None
        status["pgvector"], status["pgvector_available"], status["database"], status["user"] = row
        collections = []
        for (schema,) in conn.execute(_CATALOGS).fetchall():
            catalog = sql.Identifier(schema, "qwen_pg_collections")
            rows = conn.execute(
                sql.SQL(
                    "SELECT table_name, embedding_model, dimension, distance, vector_type "
                    "FROM {} ORDER BY table_name"
                ).format(catalog)
            ).fetchall()
            for table, model, dim, distance, vector_type in rows:
                ident = sql.Identifier(schema, table)
                exists = conn.execute(
                    "SELECT to_regclass(%s) IS NOT NULL", (f'"{schema}"."{table}"',)
                ).fetchone()
                if not exists or not exists[0]:
                    continue
                count = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(ident)).fetchone()
                size = conn.execute(
                    "SELECT pg_size_pretty(pg_total_relation_size(%s::regclass))",
                    (f'"{schema}"."{table}"',),
                ).fetchone()
                indexes = conn.execute(_INDEXES, (schema, table)).fetchall()
                vector_indexes = [
                    name for name, ddl in indexes if " hnsw " in ddl or " ivfflat " in ddl
                ]
                collections.append(
                    {
                        "table": f"{schema}.{table}",
                        "embedding_model": model,
                        "dimension": dim,
                        "distance": distance,
                        "vector_type": vector_type,
                        "rows": count[0] if count else 0,
                        "size": size[0] if size else "?",
                        "vector_indexes": vector_indexes,
                        "indexes": [name for name, _ in indexes],
                    }
                )
        status["collections"] = collections
    return status


def print_status(args: argparse.Namespace, console: Console) -> None:
    """Print the status of the configured server."""
    dsn, shown = _dsn(args)
    status = collect_status(dsn)
    console.print(f"[bold]server[/]      {shown}")
    console.print(f"[bold]database[/]    {status['database']} (user {status['user']})")
    console.print(f"[bold]PostgreSQL[/]  {status['postgresql']}")
    if status["pgvector"]:
        console.print(f"[bold]pgvector[/]    {status['pgvector']}")
    elif status["pgvector_available"]:
        console.print(
            f"[bold]pgvector[/]    not created yet (version {status['pgvector_available']} is "
            "available; `qwen-pg ingest` creates it if this role may)"
        )
    else:
        console.print(
            "[bold]pgvector[/]    [red]not installed on this server[/]: install the pgvector "
            "package for this PostgreSQL (on PolarDB, enable the vector extension)"
        )
    table = Table(title="collections", title_justify="left")
    for col in ("table", "rows", "size", "embedding model", "dim", "distance", "vector index"):
        if col in ("rows", "dim"):
            table.add_column(col, justify="right", overflow="fold")
        else:
            table.add_column(col, overflow="fold")
    for c in status["collections"]:
        table.add_row(
            c["table"],
            str(c["rows"]),
            c["size"],
            str(c["embedding_model"]),
            f"{c['dimension']} {c['vector_type']}",
            str(c["distance"]),
            ", ".join(c["vector_indexes"]) or "[yellow]none (exact scan)[/]",
        )
    if status["collections"]:
        console.print(table)
    else:
        console.print("no collections yet: `qwen-pg ingest PATH` or `qwen-pg demo` creates one.")
