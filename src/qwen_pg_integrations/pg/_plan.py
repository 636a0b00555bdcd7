"""Sans-I/O plans: the store's logic is written once as generators of database operations;
a thin sync runner and a thin async runner execute them (no event loop in a thread).

Two levels:

* a **plan** runs on one connection: it yields :class:`Exec`, :class:`Copy`,
  :class:`Transaction` (a sub-plan inside a transaction) and :class:`Connection` (the
  connection object itself, to register adapters on it), and receives their results;
* a **task** is one call of a public method: it yields :class:`Unit` (a plan to run on a
  connection, retried by the store as a whole when the connection breaks or the server
  rolls it back) and :class:`Pull` (the next item of the caller's input), and returns the
  call's result.

The runners (:func:`run_sync` / :func:`run_async` here, the task drivers in ``store.py``)
only perform operations; every decision is in the plans.
"""

from __future__ import annotations

from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Sequence,
)
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

from ..errors import InvalidInputError

__all__ = [
    "END",
    "Connection",
    "Copy",
    "Exec",
    "Plan",
    "Pull",
    "Task",
    "Transaction",
    "Unit",
    "run_async",
    "run_sync",
]

T = TypeVar("T")


Query = sql.SQL | sql.Composed | bytes


@dataclass
class Exec:
    """Execute one statement; the plan receives the fetched rows (or the rowcount)."""

    query: Query
    params: dict[str, Any] | None = None
    fetch: Literal["all", "one", "rowcount", "none"] = "none"
    client_side: bool = False  # bind the values on the client (EXPLAIN under Citus needs it)


@dataclass
class Copy:
    """``COPY ... FROM STDIN`` the rows with the given column types (binary)."""

    query: Query
    types: Sequence[str]
    rows: Iterable[Sequence[Any]] = field(default_factory=list)


@dataclass
class Transaction:
    """Run ``plan`` inside a transaction (a savepoint inside the caller's); with
    ``required=False`` only when the connection is not in autocommit mode (there a bare
    statement would leave a transaction open).

    ``pipeline`` (reads only: no COPY): on an idle autocommit connection the plan runs in
    libpq's pipeline mode instead, where every statement up to the closing Sync is one
    implicit transaction, so ``SET LOCAL`` applies and nothing outlives the block, without
    the round trips of ``BEGIN`` and ``COMMIT``; statements whose results the plan does not
    fetch travel with the next one.
    """

    plan: Plan[Any]
    required: bool = True
    pipeline: bool = False


@dataclass
class Connection:
    """The plan receives the connection object (to register adapters; no I/O)."""


Op = Exec | Copy | Transaction | Connection
Plan = Generator[Op, Any, T]


@dataclass
class Unit(Generic[T]):
    """A plan to run on one connection, made afresh for each attempt.

    Attributes:
        make: builds the plan (called once per attempt).
        conflicts: also retry deadlocks and serialization failures (writes), when the store
            owns the transaction.
        read: the plan only reads: with read replicas it may run on a standby.
        writes: the plan may change rows a later read must see (read-your-writes takes the
            primary's WAL position after it); ``False`` for the setup checks.
    """

    make: Callable[[], Plan[T]]
    conflicts: bool = False
    read: bool = False
    writes: bool = True


class _End:
    def __repr__(self) -> str:
        return "END"


END: Any = _End()  # what a Pull receives when the input is exhausted


@dataclass
class Pull:
    """The task receives the next item of ``source`` (or :data:`END`)."""

    source: Iterator[Any] | AsyncIterator[Any]

    @classmethod
    def over(cls, items: Iterable[Any] | AsyncIterable[Any]) -> Pull:
        """A pull over a sync or async iterable."""
        if isinstance(items, AsyncIterable):
            return cls(aiter(items))
        return cls(iter(items))

    def next(self) -> Any:
        """The next item (sync callers)."""
        if not isinstance(self.source, Iterator):
            raise InvalidInputError(
                "an async iterable needs the async method (aadd); pass a list or a generator"
            )
        return next(self.source, END)

    async def anext(self) -> Any:
        """The next item (async callers: sync and async iterables)."""
        if isinstance(self.source, Iterator):
            return next(self.source, END)
        return await anext(self.source, END)


Step = Unit[Any] | Pull
Task = Generator[Step, Any, T]


class Stepper(Generic[T]):
    """Steps a generator: hands out its next operation, takes back the outcome."""

    def __init__(self, gen: Generator[Any, Any, T]) -> None:
        self.gen = gen
        self.value: Any = None
        self.error: BaseException | None = None
        self.done = False
        self.result: T

    def next(self) -> Any:
        """The next operation, or ``None`` when the generator returned (``result``)."""
        value, error = self.value, self.error
        self.value = self.error = None
        try:
            return self.gen.throw(error) if error is not None else self.gen.send(value)
        except StopIteration as stop:
            self.done = True
            self.result = stop.value
            return None


def _fetch(op: Exec, cur: Any, rows: Any) -> Any:
    return cur.rowcount if op.fetch == "rowcount" else rows


def _sync_op(conn: psycopg.Connection[Any], op: Op) -> Any:
    if isinstance(op, Exec):
        cur: Any
        if op.client_side:
            cur = psycopg.ClientCursor(conn).execute(op.query, op.params)
        else:
            cur = conn.execute(op.query, op.params)
        rows = (
            cur.fetchall() if op.fetch == "all" else cur.fetchone() if op.fetch == "one" else None
        )
        return _fetch(op, cur, rows)
    if isinstance(op, Copy):
        with conn.cursor() as cur, cur.copy(op.query) as copy:
            copy.set_types(list(op.types))
            for row in op.rows:
                copy.write_row(row)
        return None
    if isinstance(op, Transaction):
        if _pipelined(conn, op):
            with conn.pipeline():
                return run_sync(conn, op.plan)
        if op.required or not conn.autocommit:
            with conn.transaction():
                return run_sync(conn, op.plan)
        return run_sync(conn, op.plan)
    return conn


def _pipelined(conn: Any, op: Transaction) -> bool:
    return (
        op.pipeline
        and op.required
        and conn.autocommit
        and conn.info.transaction_status == TransactionStatus.IDLE
    )


async def _async_op(conn: psycopg.AsyncConnection[Any], op: Op) -> Any:
    if isinstance(op, Exec):
        acur: Any
        if op.client_side:
            acur = await psycopg.AsyncClientCursor(conn).execute(op.query, op.params)
        else:
            acur = await conn.execute(op.query, op.params)
        if op.fetch == "all":
            return await acur.fetchall()
        return _fetch(op, acur, await acur.fetchone() if op.fetch == "one" else None)
    if isinstance(op, Copy):
        async with conn.cursor() as cur, cur.copy(op.query) as acopy:
            acopy.set_types(list(op.types))
            for row in op.rows:
                await acopy.write_row(row)
        return None
    if isinstance(op, Transaction):
        if _pipelined(conn, op):
            async with conn.pipeline():
                return await run_async(conn, op.plan)
        if op.required or not conn.autocommit:
            async with conn.transaction():
                return await run_async(conn, op.plan)
        return await run_async(conn, op.plan)
    return conn


def run_sync(conn: psycopg.Connection[Any], plan: Plan[T]) -> T:
    """Run ``plan`` on a sync connection; database errors are thrown into the plan."""
    step = Stepper(plan)
    while (op := step.next()) is not None:
        try:
            step.value = _sync_op(conn, op)
        except psycopg.Error as err:
            step.error = err
    return step.result


async def run_async(conn: psycopg.AsyncConnection[Any], plan: Plan[T]) -> T:
    """Run ``plan`` on an async connection; database errors are thrown into the plan."""
    step = Stepper(plan)
    while (op := step.next()) is not None:
        try:
            step.value = await _async_op(conn, op)
        except psycopg.Error as err:
            step.error = err
    return step.result
