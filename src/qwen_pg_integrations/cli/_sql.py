"""``qwen-pg sql install|uninstall``: the in-database functions (``qwen_pg.*``)."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console

from ..errors import ConfigurationError

__all__ = ["run_sql"]


def run_sql(args: argparse.Namespace, console: Console) -> int:
    """Install or remove the SQL functions on the configured server."""
    from .. import sql as sql_pkg

    action: Any = getattr(sql_pkg, args.action, None)
    if action is None:
        raise ConfigurationError(
            f"`qwen-pg sql {args.action}` is not available in this version of the package."
        )
    dsn = args.dsn
    if dsn is None:
        from ..pg.embedded import embedded_dsn

        dsn = embedded_dsn()
    action(dsn)
    console.print(f"in-database functions: {args.action} done.")
    return 0
