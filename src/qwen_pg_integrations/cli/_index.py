"""``qwen-pg index create|progress``: vector index builds with a progress bar."""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

__all__ = ["add_arguments", "run_index"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``index`` sub-command's own options."""
    p.add_argument("action", choices=("create", "progress"), help="build an index, or show builds")
    p.add_argument("--kind", choices=("hnsw", "ivfflat"), default="hnsw")
    p.add_argument(
        "--quantization",
        choices=("none", "halfvec", "binary"),
        default="none",
        help="index the vectors as they are, as halfvec (1/2 the size) or as binary codes "
        "(1/32, searched with an exact re-rank); the stored vectors stay float32",
    )
    p.add_argument("--m", type=int, default=16, help="HNSW neighbours per node (16)")
    p.add_argument("--ef-construction", type=int, default=64, help="HNSW build list (64)")
    p.add_argument("--lists", type=int, default=None, help="IVFFlat lists (default from rows)")
    p.add_argument(
        "--maintenance-work-mem",
        default="auto",
        help="'auto' (sized to the graph, capped by --memory-fraction), a size like 2GB, "
        "or 'server' for the server's setting",
    )
    p.add_argument("--memory-fraction", type=float, default=0.25)
    p.add_argument("--workers", type=int, default=None, help="parallel build workers")
    p.add_argument(
        "--concurrently", action="store_true", help="CREATE INDEX CONCURRENTLY (writes go on)"
    )


def _progress_table(rows: list[Any]) -> Table:
    table = Table(title="index builds running", title_justify="left")
    for name in ("pid", "index", "phase", "tuples", "blocks"):
        table.add_column(name)
    for p in rows:
        table.add_row(
            str(p.pid),
            p.index or "",
            p.phase,
            f"{p.tuples_done}/{p.tuples_total}",
            f"{p.blocks_done}/{p.blocks_total}",
        )
    return table


def run_index(args: argparse.Namespace, console: Console) -> int:
    """Build the table's vector index while showing ``pg_stat_progress_create_index``."""
    from ..pg import PGStore

    store = PGStore(args.dsn, table_name=args.table, create_table=False)
    try:
        if args.action == "progress":
            running = store.index_progress()
            if running:
                console.print(_progress_table(running))
            else:
                console.print(f"no index build is running on {args.table}.")
            return 0
        return _create(store, args, console)
    finally:
        store.close()


def _create(store: Any, args: argparse.Namespace, console: Console) -> int:
    mwm = None if args.maintenance_work_mem == "server" else args.maintenance_work_mem
    outcome: dict[str, Any] = {}

    def build() -> None:
        try:
            outcome["name"] = store.create_index(
                args.kind,
                m=args.m,
                ef_construction=args.ef_construction,
                lists=args.lists,
                quantization=None if args.quantization == "none" else args.quantization,
                maintenance_work_mem=mwm,
                memory_fraction=args.memory_fraction,
                workers=args.workers,
                concurrently=args.concurrently,
            )
        except BaseException as err:  # re-raised in the main thread below
            outcome["error"] = err

    store.count()  # the table exists (TableNotFoundError otherwise), before the build starts
    started = time.perf_counter()
    worker = threading.Thread(target=build, name="qwen-pg-index", daemon=True)
    worker.start()
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("starting", total=None)
        while worker.is_alive():
            worker.join(0.5)
            for p in store.index_progress():
                total = p.tuples_total or p.blocks_total or None
                done = p.tuples_done if p.tuples_total else p.blocks_done
                progress.update(task, description=p.phase, total=total, completed=done)
        progress.update(task, description="done", total=1, completed=1)
    if "error" in outcome:
        raise outcome["error"]
    info = store.last_index_build
    summary = Table(title="index", title_justify="left")
    for name in ("name", "quantization", "rows", "maintenance_work_mem", "est. graph", "time"):
        summary.add_column(name)
    summary.add_row(
        outcome["name"],
        info.quantization or "none",
        str(info.rows),
        info.maintenance_work_mem or "server's",
        f"{info.estimated_graph_bytes / 2**20:.0f} MB" if info.estimated_graph_bytes else "-",
        f"{time.perf_counter() - started:.1f} s",
    )
    console.print(summary)
    return 0
