"""In-database AI: plpython3u SQL functions that call Qwen and the embedding models.

``install(connection)`` creates the schema ``qwen_pg`` with ``embed``, ``chat``, ``chat_raw``,
``rag``, ``embedding_trigger``, ``sync_embedding`` and ``unsync_embedding``; ``uninstall``
removes it. The functions run the package's own core inside the server (see ``runtime``).

The installer is imported lazily: the server's plpython3u imports
``qwen_pg_integrations.sql.runtime``, which must not drag psycopg into a PostgreSQL backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .installer import InstallReport, default_python_path, install, status, uninstall

__all__ = ["InstallReport", "default_python_path", "install", "status", "uninstall"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import installer

        return getattr(installer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
