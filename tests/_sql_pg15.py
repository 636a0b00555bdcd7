"""A throw-away Debian PostgreSQL 15 cluster (with plpython3u + pgvector) for the SQL tests.

Started once per test process on a unix socket in a private temp directory (no TCP port, so
nothing collides with another server), as the ``postgres`` OS user when the tests run as root
(PostgreSQL refuses to run as root). `.ci/system-deps` installs the packages. When they are
missing the tests skip with the reason, except with ``CI=true``, where they fail.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import psycopg
import pytest

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_LIB = Path("/usr/lib/postgresql/15/lib")
PORT = 5432  # only names the socket file inside our private directory


def missing_reason() -> str | None:
    """Why the PG15 + plpython3u + pgvector stack is unusable here, or ``None``."""
    needed = {
        PG_BIN / "initdb": "postgresql-15",
        PG_LIB / "plpython3.so": "postgresql-plpython3-15",
        PG_LIB / "vector.so": "pgvector for PG15 (built by .ci/system-deps)",
    }
    missing = [f"{what} ({path})" for path, what in needed.items() if not path.exists()]
    if missing:
        return "Debian PostgreSQL 15 stack missing: " + ", ".join(missing) + "; run .ci/system-deps"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root but there is no 'postgres' OS user to run the server as"
    return None


def require_pg15() -> None:
    """Skip (or fail under CI=true) when the stack is missing."""
    reason = missing_reason()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


class PG15Cluster:
    """initdb + pg_ctl in a temp dir; ``dsn(user)`` for psycopg, ``psql(...)`` for the CLI."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="qwen-pg15-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._as_root = os.geteuid() == 0
        if self._as_root:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self.env = {
            "PATH": f"{PG_BIN}:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "HOME": str(self.root),
            # the server's plpython calls the emulator on 127.0.0.1: never through a proxy
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = ["env", "-i", *(f"{k}={v}" for k, v in self.env.items()), *args]
        if self._as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120)

    def start(self) -> PG15Cluster:
        self._run(
            str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
            "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8",
        )  # fmt: skip
        options = f"-k {self.root} -c listen_addresses='' -p {PORT} -c fsync=off"
        self._run(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
            "-o", options, "-w", "start",
        )  # fmt: skip
        return self

    def readable_python_path(self) -> None:
        """Make the package importable by the server's OS user.

        ``install`` records where *this* interpreter finds the package; when the tests run as root
        from a directory the ``postgres`` user cannot traverse (``/root/...``), mirror those
        directories into the cluster's directory (hard links, else a copy) and point
        ``QWEN_PG_PYTHON_PATH`` at the mirror.
        """
        from qwen_pg_integrations.sql import default_python_path

        if not self._as_root or os.environ.get("QWEN_PG_PYTHON_PATH"):
            return
        paths = default_python_path()
        probes = [str(Path(paths[0]) / "qwen_pg_integrations" / "__init__.py"), *paths[1:]]
        check = ["runuser", "-u", "postgres", "--", "sh", "-c",
                 'for p; do test -r "$p" || exit 1; done', "sh", *probes]  # fmt: skip
        if subprocess.run(check, capture_output=True).returncode == 0:
            return
        mirror = []
        for i, path in enumerate(paths):
            dest = self.root / "python" / str(i)
            dest.parent.mkdir(parents=True, exist_ok=True)
            if subprocess.run(["cp", "-al", path, str(dest)], capture_output=True).returncode:
                shutil.rmtree(dest, ignore_errors=True)
                subprocess.run(["cp", "-a", path, str(dest)], check=True, capture_output=True)
            os.chmod(dest.parent, 0o755)
            mirror.append(str(dest))
        os.environ["QWEN_PG_PYTHON_PATH"] = os.pathsep.join(mirror)

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def dsn(self, user: str = "postgres", dbname: str = "postgres") -> str:
        return f"host={self.root} port={PORT} user={user} dbname={dbname}"

    def connect(self, user: str = "postgres", **kwargs: Any) -> psycopg.Connection[Any]:
        return psycopg.connect(self.dsn(user), autocommit=True, **kwargs)

    def psql(self, script: str, user: str = "postgres") -> str:
        """Run ``script`` through psql (echoing the queries) and return its output."""
        out = subprocess.run(
            [str(PG_BIN / "psql"), "-X", "-e", "-v", "ON_ERROR_STOP=0", self.dsn(user)],
            input=script,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=120,
            env={**os.environ, "PAGER": "cat"},
        )
        return out.stdout


_cluster: PG15Cluster | None = None


def get_cluster() -> PG15Cluster:
    """The process-wide cluster, started on first use and stopped at exit."""
    global _cluster
    require_pg15()
    if _cluster is None:
        cluster = PG15Cluster()
        try:
            cluster.start()
            cluster.readable_python_path()
        except subprocess.CalledProcessError as exc:
            log = cluster.log.read_text() if cluster.log.exists() else ""
            cluster.stop()
            pytest.fail(f"PG15 cluster did not start: {exc.stderr}\n{log}", pytrace=False)
        atexit.register(cluster.stop)
        _cluster = cluster
    return _cluster


# --- fixtures (imported by the tests/test_sql_*.py modules) ----------------------------------


@pytest.fixture(scope="module")
def pg15() -> PG15Cluster:
    """The PG15 cluster (skips, or fails under CI=true, when the stack is missing)."""
    return get_cluster()


@pytest.fixture(scope="module")
def emu(dashscope_emulator_session: Any) -> Any:
    """The session's DashScope emulator (the database server calls it over HTTP)."""
    return dashscope_emulator_session


@pytest.fixture(autouse=True)
def _reset_emulator(request: pytest.FixtureRequest) -> None:
    if "emu" in request.fixturenames:
        request.getfixturevalue("emu").reset()


def fresh_database(cluster: PG15Cluster, name: str) -> str:
    """Create (or re-create) database ``name``; its DSN."""
    with cluster.connect() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return cluster.dsn(dbname=name)


@pytest.fixture(scope="module")
def sql_dsn(pg15: PG15Cluster, emu: Any, request: pytest.FixtureRequest) -> str:
    """A fresh database of this module with qwen_pg installed against the emulator."""
    from qwen_pg_integrations.sql import install

    name = "db_" + request.module.__name__.rsplit(".", 1)[-1]
    dsn = fresh_database(pg15, name)
    install(dsn, api_key=emu.api_key, base_url=emu.base_url, max_retries=2, timeout=10.0)
    return dsn


@pytest.fixture(scope="module")
def db(sql_dsn: str) -> Any:
    """One autocommit connection per module (a new backend pays ~1 s to import the package)."""
    with psycopg.connect(sql_dsn, autocommit=True) as conn:
        yield conn
