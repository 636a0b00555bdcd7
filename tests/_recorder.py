"""A psycopg connection that records the statements it executes (tests assert on the SQL a
store sends, on a real server)."""

from __future__ import annotations

from typing import Any

import psycopg

__all__ = ["StatementRecorder"]


class StatementRecorder(psycopg.Connection[Any]):
    """``conn = StatementRecorder.connect(dsn, autocommit=True); conn.statements = []``."""

    statements: list[str]

    def execute(self, query: Any, params: Any = None, **kw: Any) -> Any:  # type: ignore[override]
        if isinstance(query, bytes):
            text = query.decode()
        else:
            text = query if isinstance(query, str) else query.as_string(self)
        self.statements.append(text)
        return super().execute(query, params, **kw)
