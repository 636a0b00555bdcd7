"""Running tasks (see ``_plan.py``): one method definition gives the sync and the async call.

A store method decorated with :class:`operation` builds a :data:`~._plan.Task`; accessed on a
store it runs that task synchronously, and ``operation.aio`` gives the coroutine version::

    class PGStore(Runner):
        @operation
        def count(self, filter=None) -> Task[int]:
            ...

        acount = count.aio

``store.count(f)`` and ``await store.acount(f)`` then share every line of their logic; only the
drivers below differ, in performing I/O with and without ``await``.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import random
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import AbstractContextManager, contextmanager
from types import MethodType
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

import psycopg
from psycopg.pq import TransactionStatus
from psycopg_pool import PoolTimeout

from ..errors import DatabaseConnectionError
from ._plan import Plan, Pull, Stepper, Task, Unit, run_async, run_sync
from ._replicas import ReadRouting, Replica, ReplicaBehind
from .connection import Engine

__all__ = ["CONFLICT_RETRIES", "Attempts", "Runner", "is_conflict", "operation"]

P = ParamSpec("P")
T = TypeVar("T")
S = TypeVar("S", bound="Runner")

CONFLICT_RETRIES = 5  # deadlocks / serialization failures of a write, retried this many times
_CONFLICT_WAIT = 0.02  # seconds before the first conflict retry, doubled each time
_CONFLICT_WAIT_MAX = 0.5


class Runner:
    """What the drivers need of a store: its connections and its error translation."""

    _engine: Engine
    _routing: ReadRouting | None = None

    def _errors(self) -> AbstractContextManager[None]:
        raise NotImplementedError


class Attempts(Generic[T]):
    """When a unit that failed with ``psycopg.OperationalError`` runs again.

    * The connection broke (server restart, killed backend): once more on a fresh connection,
      only on the package's own pools (:meth:`Engine.should_retry`); every store operation is
      idempotent.
    * A write was rolled back by a deadlock or a serialization failure (SQLSTATE class 40)
      in a transaction the store itself began: up to :data:`CONFLICT_RETRIES` more times,
      after a short randomised wait.
    """

    def __init__(self, engine: Engine, unit: Unit[T]) -> None:
        self.engine = engine
        self.unit = unit
        self.broken = 0
        self.conflicts = 0
        self.wait = 0.0
        self._conn: Any = None
        self._own_tx = False

    def plan(self, conn: Any) -> Plan[T]:
        """The unit's plan for this attempt on ``conn``."""
        self._conn = conn
        self._own_tx = conn.info.transaction_status == TransactionStatus.IDLE
        return self.unit.make()

    @contextmanager
    def guard(self) -> Iterator[Attempts[T]]:
        """Suppresses a failure that is worth another attempt (then :attr:`wait` says how long
        to wait first); anything else propagates."""
        self._conn, self.wait = None, 0.0
        try:
            yield self
        except psycopg.OperationalError as err:
            if is_conflict(err):
                if not (self.unit.conflicts and self._own_tx and self.conflicts < CONFLICT_RETRIES):
                    raise
                base = min(_CONFLICT_WAIT_MAX, _CONFLICT_WAIT * 2**self.conflicts)
                self.wait = base * random.uniform(0.5, 1.5)  # jitter, not a secret
                self.conflicts += 1
            elif self.engine.should_retry(self.broken, self._conn):
                self.broken += 1
            else:
                raise


def is_conflict(err: psycopg.Error) -> bool:
    """SQLSTATE class 40: the server rolled the transaction back (serialization failure,
    deadlock); running it again may succeed. (psycopg's ``SerializationFailure`` and
    ``DeadlockDetected`` are not subclasses of its ``TransactionRollback``.)"""
    return (err.sqlstate or "").startswith("40")


def _unit_sync(engine: Engine, unit: Unit[T]) -> T:
    attempts = Attempts(engine, unit)
    while True:
        with attempts.guard(), engine.connect() as conn:
            return run_sync(conn, attempts.plan(conn))
        time.sleep(attempts.wait)


async def _unit_async(engine: Engine, unit: Unit[T]) -> T:
    attempts = Attempts(engine, unit)
    while True:
        with attempts.guard():
            async with engine.aconnect() as conn:
                return await run_async(conn, attempts.plan(conn))
        await asyncio.sleep(attempts.wait)


# what sets a standby aside (the read then runs on the primary)
_REPLICA_FAILURES = (psycopg.OperationalError, DatabaseConnectionError, PoolTimeout)
# a table the primary has just created and the standby has not replayed yet: read on the primary
_NOT_YET = psycopg.errors.UndefinedTable


def _failure(err: BaseException) -> str:
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def _routed_sync(store: Runner, unit: Unit[T]) -> T:
    """A unit on the right server: reads on a standby when there is one that passes the
    gate, everything else (and reads the standbys cannot serve) on the primary."""
    routing = store._routing
    if routing is None:
        return _unit_sync(store._engine, unit)
    if not unit.read:
        return _unit_sync(store._engine, routing.after_write(unit))
    replica = routing.pick()
    if replica is not None:
        try:
            result = _unit_sync(replica.engine, routing.gated(replica, unit))
        except ReplicaBehind as why:
            _behind(replica, why)
        except _NOT_YET:
            pass
        except _REPLICA_FAILURES as err:
            replica.set_aside(_failure(err))
        else:
            replica.healthy()
            return result
    return _unit_sync(store._engine, unit)


async def _routed_async(store: Runner, unit: Unit[T]) -> T:
    """Async :func:`_routed_sync`."""
    routing = store._routing
    if routing is None:
        return await _unit_async(store._engine, unit)
    if not unit.read:
        return await _unit_async(store._engine, routing.after_write(unit))
    replica = routing.pick()
    if replica is not None:
        try:
            result = await _unit_async(replica.engine, routing.gated(replica, unit))
        except ReplicaBehind as why:
            _behind(replica, why)
        except _NOT_YET:
            pass
        except _REPLICA_FAILURES as err:
            replica.set_aside(_failure(err))
        else:
            replica.healthy()
            return result
    return await _unit_async(store._engine, unit)


def _behind(replica: Replica, why: ReplicaBehind) -> None:
    if why.lagging:  # a lagging standby is left out a while; a write not yet replayed is not
        replica.set_aside(str(why))


def drive_sync(store: Runner, task: Task[T]) -> T:
    """Run a task with blocking I/O."""
    step = Stepper(task)
    with store._errors():
        while (item := step.next()) is not None:
            step.value = item.next() if isinstance(item, Pull) else _routed_sync(store, item)
    return step.result


async def drive_async(store: Runner, task: Task[T]) -> T:
    """Run a task with asyncio I/O."""
    step = Stepper(task)
    with store._errors():
        while (item := step.next()) is not None:
            if isinstance(item, Pull):
                step.value = await item.anext()
            else:
                step.value = await _routed_async(store, item)
    return step.result


def _signature(fn: Callable[..., Any], returns: str) -> inspect.Signature:
    sig = inspect.signature(fn)
    ret = sig.return_annotation
    if isinstance(ret, str) and ret.startswith("Task[") and ret.endswith("]"):
        ret = ret[5:-1]
    return sig.replace(return_annotation=returns.format(ret) if ret is not sig.empty else ret)


class operation(Generic[S, P, T]):  # lower case: used as a decorator
    """A store method written once as a task; runs synchronously when called on a store.

    ``operation.aio`` is the same method as a coroutine function (assign it in the class body
    under the ``a``-prefixed name).
    """

    def __init__(self, make: Callable[Concatenate[S, P], Task[T]]) -> None:
        self.make = make

        def run(store: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
            return drive_sync(store, make(store, *args, **kwargs))

        functools.update_wrapper(run, make)
        run.__signature__ = _signature(make, "{}")  # type: ignore[attr-defined]
        self._run = run
        self.aio: async_operation[S, P, T] = async_operation(make)
        """The coroutine version."""

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> operation[S, P, T]: ...

    @overload
    def __get__(self, obj: S, owner: type[Any]) -> Callable[P, T]: ...

    def __get__(self, obj: S | None, owner: type[Any]) -> Any:
        return self if obj is None else MethodType(self._run, obj)


class async_operation(Generic[S, P, T]):
    """The coroutine version of an :class:`operation` (``await store.acount()``)."""

    def __init__(self, make: Callable[Concatenate[S, P], Task[T]]) -> None:
        async def run(store: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
            return await drive_async(store, make(store, *args, **kwargs))

        functools.update_wrapper(run, make)
        run.__name__ = run.__qualname__ = "a" + make.__name__
        run.__doc__ = f"Async :meth:`{make.__name__}`.\n\n{inspect.getdoc(make) or ''}"
        run.__signature__ = _signature(make, "Coroutine[Any, Any, {}]")  # type: ignore[attr-defined]
        self._run = run

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> async_operation[S, P, T]: ...

    @overload
    def __get__(self, obj: S, owner: type[Any]) -> Callable[P, Coroutine[Any, Any, T]]: ...

    def __get__(self, obj: S | None, owner: type[Any]) -> Any:
        return self if obj is None else MethodType(self._run, obj)
