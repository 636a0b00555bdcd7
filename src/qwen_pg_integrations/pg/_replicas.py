"""Read replicas: searches and gets on hot standbys (PolarDB read-only nodes, streaming
replicas), writes and DDL on the primary.

A store given ``read_connection=`` routes its read units here. Before a read runs on a standby,
a *gate* (a few statements on the same connection, only when needed) checks two things:

* **lag**: at most every :data:`LAG_CHECK_EVERY` seconds, how far the standby's replay is
  behind (0 when it has replayed all it received, else the age of the last replayed
  transaction); over ``max_lag`` the standby is set aside for :data:`RETRY_AFTER` seconds and
  reads go to the primary, with a warning;
* **read-your-writes** (``read_your_writes=True``): after this store wrote, the standby must
  have replayed the primary's WAL position taken right after that commit; the gate polls
  ``pg_last_wal_replay_lsn()`` up to ``wait`` seconds, then the read goes to the primary.

A standby that cannot be reached, or cancels the query (a conflict with recovery), is set
aside the same way and the read runs on the primary. With several standbys, reads rotate
among the ones not set aside.
"""

from __future__ import annotations

import itertools
import threading
import time
import warnings
from collections.abc import Sequence
from typing import Any, TypeVar, cast

from psycopg import sql

from ..errors import InvalidInputError, QwenPGWarning
from ._plan import Exec, Plan, Unit
from .connection import ConnectionArg, Engine

__all__ = ["LAG_CHECK_EVERY", "RETRY_AFTER", "ReadRouting", "Replica", "ReplicaBehind"]

T = TypeVar("T")

LAG_CHECK_EVERY = 1.0  # seconds between lag checks of one standby
RETRY_AFTER = 5.0  # seconds a standby that failed or lagged is left out
_POLL = 0.005  # seconds between replay-position polls while waiting for a write

_LSN_SQL = sql.SQL("SELECT pg_current_wal_lsn()::text")
_REPLAYED_SQL = sql.SQL(
    "SELECT pg_is_in_recovery() AND pg_last_wal_replay_lsn() >= %(lsn)s::pg_lsn, "
    "pg_is_in_recovery()"
)
_SLEEP_SQL = sql.SQL("SELECT pg_sleep(%(s)s)")
_LAG_SQL = sql.SQL(
    "SELECT pg_is_in_recovery(), CASE WHEN NOT pg_is_in_recovery() THEN 0 "
    "WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0 "
    "ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0) END"
)


class ReplicaBehind(Exception):
    """The gate found the standby behind (too much lag, or the write not replayed in time)."""

    def __init__(self, why: str, *, lagging: bool) -> None:
        super().__init__(why)
        self.lagging = lagging


class Replica:
    """One read connection (a DSN, pool or connection of a standby) and its health."""

    def __init__(self, connection: ConnectionArg, number: int) -> None:
        self.engine = Engine(connection)
        self.label = f"#{number} ({self.engine!r})"  # the DSN without its password
        self.set_aside_until = 0.0
        self.checked_at = float("-inf")
        self.warned = False

    def __repr__(self) -> str:
        return f"Replica({self.engine!r})"

    @property
    def available(self) -> bool:
        return time.monotonic() >= self.set_aside_until

    def set_aside(self, why: str) -> None:
        """Leave this standby out for :data:`RETRY_AFTER` seconds (warning once per outage)."""
        self.set_aside_until = time.monotonic() + RETRY_AFTER
        if not self.warned:
            self.warned = True
            warnings.warn(
                f"read replica {self.label} is not used for {RETRY_AFTER:g} s ({why}): reading "
                "from the primary meanwhile.",
                QwenPGWarning,
                stacklevel=4,
            )

    def healthy(self) -> None:
        self.warned = False


class ReadRouting:
    """Which connection a read runs on, and the gate a standby read passes first."""

    def __init__(
        self,
        connections: ConnectionArg | Sequence[ConnectionArg],
        *,
        read_your_writes: bool = False,
        max_lag: float | None = 30.0,
        wait: float = 1.0,
    ) -> None:
        items: list[ConnectionArg] = (
            list(connections)
            if isinstance(connections, (list, tuple))
            else [cast(ConnectionArg, connections)]
        )
        if not items:
            raise InvalidInputError("read_connection needs at least one DSN, pool or connection")
        if max_lag is not None and not max_lag > 0:
            raise InvalidInputError(f"max_replica_lag must be > 0 seconds or None, got {max_lag}")
        if not wait >= 0:
            raise InvalidInputError(f"read_your_writes_timeout must be >= 0, got {wait}")
        self.replicas = [Replica(conn, n + 1) for n, conn in enumerate(items)]
        self.read_your_writes = read_your_writes
        self.max_lag = max_lag
        self.wait = wait
        self.last_lsn: str | None = None  # the primary's WAL position after our last write
        self._next = itertools.cycle(range(len(self.replicas)))
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ReadRouting({self.replicas!r}, read_your_writes={self.read_your_writes})"

    def pick(self) -> Replica | None:
        """The next standby not set aside (round robin), or ``None``: read on the primary."""
        with self._lock:
            for _ in range(len(self.replicas)):
                replica = self.replicas[next(self._next)]
                if replica.available:
                    return replica
        return None

    # -- plans ---------------------------------------------------------------------------

    def after_write(self, unit: Unit[T]) -> Unit[T]:
        """``unit`` (on the primary), then the WAL position its commit reached, for
        read-your-writes."""
        if not self.read_your_writes or not unit.writes:
            return unit

        def plan() -> Plan[T]:
            result: T = yield from unit.make()
            row = yield Exec(_LSN_SQL, fetch="one")
            if row is not None:
                self.last_lsn = str(row[0])
            return result

        return Unit(plan, conflicts=unit.conflicts)

    def gated(self, replica: Replica, unit: Unit[T]) -> Unit[T]:
        """``unit`` on ``replica`` behind the gate (lag check, read-your-writes wait)."""

        def plan() -> Plan[T]:
            yield from self._gate(replica)
            result: T = yield from unit.make()
            return result

        return Unit(plan, conflicts=unit.conflicts)

    def _gate(self, replica: Replica) -> Plan[None]:
        now = time.monotonic()
        if self.max_lag is not None and now - replica.checked_at >= LAG_CHECK_EVERY:
            row = yield Exec(_LAG_SQL, fetch="one")
            replica.checked_at = now
            standby, lag = bool(row[0]), float(row[1] or 0)
            if standby and lag > self.max_lag:
                raise ReplicaBehind(
                    f"replay is {lag:.1f} s behind, over max_replica_lag={self.max_lag:g}",
                    lagging=True,
                )
        lsn = self.last_lsn if self.read_your_writes else None
        if lsn is None:
            return
        deadline = now + self.wait
        while True:
            row = yield Exec(_REPLAYED_SQL, {"lsn": lsn}, fetch="one")
            if row[0] or not row[1]:  # replayed, or not a standby at all (a primary)
                return
            if time.monotonic() >= deadline:
                raise ReplicaBehind(
                    f"this store's last write was not replayed within {self.wait:g} s",
                    lagging=False,
                )
            yield Exec(_SLEEP_SQL, {"s": _POLL})


def replicas_of(routing: ReadRouting | None) -> list[Any]:
    """The standbys' engines (for closing them)."""
    return [] if routing is None else [r.engine for r in routing.replicas]
