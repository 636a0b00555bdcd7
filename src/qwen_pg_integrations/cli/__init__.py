"""The ``qwen-pg`` command: ingest files, ask, search, status, the demo, in-database functions.

Start-up stays fast: only argparse is imported here; each command imports what it needs.

Environment (DESIGN.md §5): ``DASHSCOPE_API_KEY``, ``DASHSCOPE_HTTP_BASE_URL`` (region or emulator)
and ``QWEN_PG_DSN`` (unset: the embedded PostgreSQL + pgvector server). Global options override
them. Errors print one line that says what to do, and the exit code is non-zero.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["build_parser", "main"]

DEFAULT_TABLE = "qwen_pg_documents"
DEFAULT_EMBEDDING_MODEL = "text-embedding-v4"
DEFAULT_CHAT_MODEL = "qwen-plus"
DEFAULT_RERANK_MODEL = "qwen3-rerank"


def _threshold(value: str) -> float | str | None:
    if value.lower() in ("none", "off", ""):
        return None
    if value.lower() == "auto":
        return "auto"
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a number, 'auto' or 'none'") from None


_SPARSE_HELP = (
    "also embed DashScope sparse weights (v3/v4 dense&sparse output, same calls) and store them "
    "for sparse and hybrid search (pgvector >= 0.7)"
)
_SQL_OWN = frozenset({"--dsn", "--base-url", "--dialect", "--embedding-model", "--chat-model"})


def _global_options(
    g: argparse._ArgumentGroup, *, suppress: bool, skip: frozenset[str] = frozenset()
) -> None:
    """The global options; with ``suppress`` (on sub-commands) they only override when given."""

    def add(flag: str, *more: str, default: Any, **kwargs: Any) -> None:
        if flag not in skip:
            value = argparse.SUPPRESS if suppress else default
            g.add_argument(flag, *more, default=value, **kwargs)

    add(
        "--dsn",
        default=None,
        help="PostgreSQL/PolarDB DSN (default: $QWEN_PG_DSN, else the embedded server)",
    )
    add(
        "--read-dsn",
        action="append",
        default=None,
        metavar="DSN",
        help="read replica (hot standby / PolarDB read-only node) for searches; repeat for "
        "several; writes stay on --dsn (default: $QWEN_PG_READ_DSN, comma-separated)",
    )
    add("--table", default=DEFAULT_TABLE, help=f"collection table (default {DEFAULT_TABLE})")
    add(
        "--embedding-model",
        default=DEFAULT_EMBEDDING_MODEL,
        help=f"DashScope embedding model (default {DEFAULT_EMBEDDING_MODEL})",
    )
    add("--dimensions", type=int, default=None, help="embedding size (v3/v4; default: model's)")
    add(
        "--chat-model",
        default=DEFAULT_CHAT_MODEL,
        help=f"Qwen chat model (default {DEFAULT_CHAT_MODEL})",
    )
    add("-k", "--k", type=int, default=4, help="chunks to retrieve (default 4)")
    add(
        "--threshold",
        type=_threshold,
        default="auto",
        help=(
            "minimum relevance score 0..1 for a chunk to be used; 'none' turns it off "
            "(default auto: 0.45)"
        ),
    )
    add(
        "--base-url",
        default=None,
        help="DashScope endpoint or region (default: $DASHSCOPE_HTTP_BASE_URL, else Beijing), "
        "or an OpenAI-compatible server's base (vLLM, Ollama: see --dialect)",
    )
    add(
        "--dialect",
        choices=("native", "dashscope", "vllm", "ollama", "openai"),
        default=None,
        help="how to talk to --base-url: DashScope's native API, or the OpenAI-compatible "
        "dialect of DashScope, vLLM, Ollama or another server (default: from the URL; "
        "http://host:8000/v1 is vLLM, :11434/v1 Ollama)",
    )
    add(
        "--language",
        choices=("auto", "zh", "en"),
        default="auto",
        help="prompt language (default: the question's)",
    )
    add("--debug", action="store_true", default=False, help="show tracebacks")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: global options, then one sub-command (its options after it).

    Global options may also follow the sub-command (``qwen-pg ask "..." -k 6``).
    """
    parser = argparse.ArgumentParser(
        prog="qwen-pg",
        description=(
            "Qwen (DashScope) + PostgreSQL/PolarDB (pgvector): ingest documents, search them, "
            "and answer questions with sources. `qwen-pg demo` runs the whole flow, offline if "
            "DASHSCOPE_API_KEY is unset."
        ),
    )
    _global_options(parser.add_argument_group("global options"), suppress=False)
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"qwen-pg {__version__}")

    def command(
        name: str, help: str, skip: frozenset[str] = frozenset()
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help)
        _global_options(p.add_argument_group("global options"), suppress=True, skip=skip)
        return p

    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = command("ingest", "split, embed and store files (txt, md, html, pdf)")
    p.add_argument("paths", nargs="+", metavar="PATH", help="files or folders")
    p.add_argument("--chunk-size", type=int, default=None, help="characters per chunk (500)")
    p.add_argument("--chunk-overlap", type=int, default=None, help="overlap in characters (50)")
    p.add_argument(
        "--prune",
        action="store_true",
        help="also delete the chunks of files that were under the given folders but are gone",
    )
    p.add_argument("--index", choices=("hnsw", "ivfflat", "none"), default="hnsw",
                   help="vector index to make sure exists afterwards (default hnsw)")  # fmt: skip
    p.add_argument("--sparse", action="store_true", help=_SPARSE_HELP)

    p = command("ask", "answer a question from the stored documents, with sources")
    p.add_argument("question")
    p.add_argument("--show-prompt", action="store_true", help="print the prompt sent to Qwen")
    p.add_argument(
        "--rerank",
        nargs="?",
        const=DEFAULT_RERANK_MODEL,
        default=None,
        metavar="MODEL",
        help=f"rerank the candidates before answering (default model {DEFAULT_RERANK_MODEL}; "
        "one extra call; the threshold then applies to rerank scores, auto: 0.2)",
    )
    p.add_argument(
        "--fetch-k", type=int, default=None, help="candidates to rerank (default max(4k, 20))"
    )

    p = command("search", "ranked chunks for a text")
    p.add_argument("text")
    p.add_argument("--mode", choices=("vector", "text", "hybrid", "sparse"), default="vector")
    p.add_argument("--sparse", action="store_true", help=_SPARSE_HELP)

    command("status", "server, PostgreSQL/pgvector versions, tables, rows, indexes")

    p = command("demo", "ingest the bundled corpus and run the whole flow")
    p.add_argument(
        "--emulator",
        action="store_true",
        help="use the bundled DashScope emulator even if DASHSCOPE_API_KEY is set",
    )

    p = command("index", "build the vector index (quantized, sized, with progress)")
    from ._index import add_arguments as index_arguments

    index_arguments(p)

    p = command("sql", "install or remove the in-database functions (qwen_pg.*)", _SQL_OWN)
    # --dsn after `sql` works too; SUPPRESS keeps a global --dsn when it is not repeated here
    p.add_argument("--dsn", default=argparse.SUPPRESS, help="database (default: global --dsn)")
    from ..sql.cli import add_arguments

    add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``qwen-pg``; returns the exit code (0 ok, 1 error, 2 usage, 130 interrupted)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.dsn is None:
        args.dsn = os.environ.get("QWEN_PG_DSN") or None
    from ..errors import QwenPGError

    try:
        if args.dsn is not None:
            from ..pg.connection import check_dsn

            check_dsn(args.dsn)  # a malformed DSN is a connection error, before anything runs
        from ._commands import run

        return run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _closed_pipe()
    except QwenPGError as err:
        if args.debug:
            raise
        print(f"qwen-pg: error: {_one_line(err)}", file=sys.stderr)
        return 1
    except Exception as err:  # an unexpected failure: still one line unless --debug
        if args.debug:
            raise
        print(
            f"qwen-pg: unexpected {type(err).__name__}: {_one_line(err)} "
            "(run with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1


def _closed_pipe() -> int:
    """The reader of our output went away (``qwen-pg search x | head``): stop quietly.

    stdout is pointed at /dev/null so the interpreter's final flush does not fail again.
    """
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return 141  # 128 + SIGPIPE, as a shell reports a command killed by a closed pipe


def _one_line(err: BaseException) -> str:
    from ..errors import MissingAPIKeyError, TableNotFoundError

    if isinstance(err, TableNotFoundError):
        option = "" if err.table == DEFAULT_TABLE else f" --table {err.table}"
        return (
            f"table {err.schema}.{err.table} does not exist: ingest documents into it first "
            f"(qwen-pg ingest PATH{option}), or name another table with --table "
            "(qwen-pg status lists them). Nothing was created."
        )
    if isinstance(err, MissingAPIKeyError):
        return (
            "no DashScope API key: set DASHSCOPE_API_KEY (create one in the Model Studio "
            "console), or run `qwen-pg demo`, which works offline with the bundled emulator."
        )
    return " ".join(str(err).split()) or type(err).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
