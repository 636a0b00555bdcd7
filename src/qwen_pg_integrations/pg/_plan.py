"""Sans-I/O plans: the store's logic is written once as generators of database operations;
a thin sync runner and a thin async runner execute them (no event loop in a thread).
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import psycopg
from psycopg import sql

__all__ = ["Copy", "Exec", "Plan", "run_async", "run_sync"]

T = TypeVar("T")


Query = sql.SQL | sql.Composed | bytes


@dataclass
class Exec:
    """Execute one statement; the plan receives the fetched rows (or the rowcount)."""

    query: Query
    params: dict[str, Any] | None = None
    fetch: Literal["all", "one", "rowcount", "none"] = "none"


@dataclass
class Copy:
    """``COPY ... FROM STDIN`` the rows with the given column types (binary)."""

    query: Query
    types: Sequence[str]
    rows: Iterable[Sequence[Any]] = field(default_factory=list)


Op = Exec | Copy
Plan = Generator[Op, Any, T]


def _result(cur: psycopg.Cursor[Any] | psycopg.AsyncCursor[Any], op: Exec, rows: Any) -> Any:
    if op.fetch == "rowcount":
        return cur.rowcount
    return rows


def run_sync(conn: psycopg.Connection[Any], plan: Plan[T]) -> T:
    """Run ``plan`` on a sync connection; database errors are thrown into the plan."""
    send: Any = None
    exc: BaseException | None = None
    while True:
        try:
            op = plan.throw(exc) if exc is not None else plan.send(send)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        send, exc = None, None
        try:
            if isinstance(op, Copy):
                with conn.cursor() as cur, cur.copy(op.query) as copy:
                    copy.set_types(list(op.types))
                    for row in op.rows:
                        copy.write_row(row)
            else:
                cur = conn.execute(op.query, op.params)
                rows: Any = None
                if op.fetch == "all":
                    rows = cur.fetchall()
                elif op.fetch == "one":
                    rows = cur.fetchone()
                send = _result(cur, op, rows)
        except psycopg.Error as err:
            exc = err


async def run_async(conn: psycopg.AsyncConnection[Any], plan: Plan[T]) -> T:
    """Run ``plan`` on an async connection; database errors are thrown into the plan."""
    send: Any = None
    exc: BaseException | None = None
    while True:
        try:
            op = plan.throw(exc) if exc is not None else plan.send(send)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        send, exc = None, None
        try:
            if isinstance(op, Copy):
                async with conn.cursor() as cur, cur.copy(op.query) as copy:
                    copy.set_types(list(op.types))
                    for row in op.rows:
                        await copy.write_row(row)
            else:
                acur = await conn.execute(op.query, op.params)
                rows: Any = None
                if op.fetch == "all":
                    rows = await acur.fetchall()
                elif op.fetch == "one":
                    rows = await acur.fetchone()
                send = _result(acur, op, rows)
        except psycopg.Error as err:
            exc = err
