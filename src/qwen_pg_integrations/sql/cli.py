"""``qwen-pg sql install|uninstall|status``: arguments and actions for the CLI.

The ``qwen-pg`` CLI adds these to its ``sql`` sub-command (:func:`add_arguments`, then
:func:`run`); :func:`main` runs them stand-alone (``python -m qwen_pg_integrations.sql.cli``).
The key is never an argument (command lines are visible to other users): it comes from
``DASHSCOPE_API_KEY``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

__all__ = ["add_arguments", "main", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the action and the options of ``qwen-pg sql`` to ``parser``."""
    parser.add_argument("action", choices=("install", "uninstall", "status"))
    parser.add_argument("--schema", default="qwen_pg", help="schema to (un)install (qwen_pg)")
    parser.add_argument(
        "--base-url",
        default=None,
        help="DashScope endpoint (default DASHSCOPE_HTTP_BASE_URL), or an OpenAI-compatible "
        "server the functions call (vLLM http://host:8000/v1, Ollama http://host:11434/v1)",
    )
    parser.add_argument(
        "--dialect",
        choices=("native", "dashscope", "vllm", "ollama", "openai"),
        default=None,
        help="how to talk to --base-url (default: from the URL)",
    )
    parser.add_argument("--embedding-model", default=None, help="default model of embed()")
    parser.add_argument(
        "--embedding-dimensions", type=int, default=None, help="default size of embed()"
    )
    parser.add_argument("--chat-model", default=None, help="default model of chat() and rag()")
    parser.add_argument(
        "--python-path",
        action="append",
        default=None,
        metavar="DIR",
        help="directory the server's Python imports the package from (repeatable; default: "
        "this interpreter's, valid on the same machine and Python version)",
    )
    parser.add_argument(
        "--grant-to",
        action="append",
        default=None,
        metavar="ROLE",
        help="role allowed to call the functions (repeatable; default PUBLIC)",
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds per DashScope call in the server (60)"
    )
    parser.add_argument(
        "--max-retries", type=int, default=3, help="retries on throttling/5xx/timeouts (3)"
    )
    if not any(a.dest == "dsn" for a in parser._actions):
        parser.add_argument("--dsn", default=None, help="database (default QWEN_PG_DSN)")


def run(args: argparse.Namespace, dsn: str | None = None) -> str:
    """Perform ``args.action`` on ``dsn`` (else ``args.dsn``, else ``QWEN_PG_DSN``).

    Returns:
        A short human-readable summary (never the key).
    """
    from .installer import install, status, uninstall

    target = dsn or getattr(args, "dsn", None)
    schema = args.schema
    if args.action == "install":
        report = install(
            target,
            schema=schema,
            base_url=args.base_url,
            embedding_model=args.embedding_model,
            embedding_dimensions=args.embedding_dimensions,
            chat_model=args.chat_model,
            python_path=args.python_path,
            grant_to=tuple(args.grant_to or ("PUBLIC",)),
            max_retries=args.max_retries,
            timeout=args.timeout,
            dialect=getattr(args, "dialect", None),
        )
        return (
            f"installed schema {report.schema} (embeddings as {report.vector_type}; server "
            f"Python {report.server_python} imports {report.package_file}). Try: "
            f"SELECT {report.schema}.chat('Be brief.', 'Hello');"
        )
    if args.action == "uninstall":
        removed = uninstall(target, schema=schema)
        return f"removed schema {schema}." if removed else f"schema {schema} was not installed."
    info = status(target, schema=schema)
    if info is None:
        return f"schema {schema} is not installed."
    return json.dumps(info, indent=2, ensure_ascii=False)


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point; returns the exit code (0 ok, 1 error)."""
    from ..errors import QwenPGError

    parser = argparse.ArgumentParser(prog="qwen-pg sql", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        print(run(args))
    except QwenPGError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
