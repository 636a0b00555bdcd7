"""Issue 7: the load bench (``bench/load.py``) at smoke size: zero errors, no leaked connection.

No timing is asserted here; the figures come from ``python bench/load.py`` (docs/reliability.md).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("qwen_pg_bench_load", ROOT / "bench" / "load.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_16_threads_and_16_tasks_searching_make_no_error_and_leak_no_connection(
    pg_dsn: str,
) -> None:
    load = _bench()
    result = load.run(load.Config(rows=300, dim=32, duration=1.5, clients=16, dsn=pg_dsn))
    assert result["rows"] == 300
    assert result["errors"] == 0, [p["error_types"] for p in result["phases"]]
    for phase in result["phases"]:
        assert phase["latency_ms"]["similarity"]["n"] > 0
        assert phase["latency_ms"]["hybrid"]["n"] > 0
    conns = result["connections"]
    assert conns["app_before"] == 0
    assert 0 < conns["app_open_after_load"] <= 16, "the pools grew past 8 sync + 8 async"
    assert conns["app_after_close"] == conns["app_before"], "leaked connections"
    assert "| threads | all |" in load.render(result)
