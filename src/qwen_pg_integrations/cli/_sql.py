"""``qwen-pg sql install|uninstall|status``: the in-database functions (``qwen_pg.*``)."""

from __future__ import annotations

import argparse

from rich.console import Console

__all__ = ["run_sql"]


def run_sql(args: argparse.Namespace, console: Console) -> int:
    """Install, remove or describe the SQL functions on the configured server."""
    from ..sql.cli import run

    console.print(run(args, args.dsn))
    return 0
