"""Smoke run of bench/bench_langchain_dashscope.py (no timing assertions: it must just run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench_langchain_dashscope.py"


def test_langchain_dashscope_benchmark_runs_quick() -> None:
    # The test venv has no langchain-community (it is not a dependency): our side runs alone.
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--allow-missing-anchors"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "embeddings  ours        60 texts  3 calls" in done.stdout
    assert "stream      ours" in done.stdout
