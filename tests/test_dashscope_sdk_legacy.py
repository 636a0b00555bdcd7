"""The DashScope core tests again, on the oldest SDK the package accepts (dashscope 1.22.2).

1.22.2 differs where wrappers break (protocol notes §9): responses raise ``KeyError`` from
``getattr``, ``Message`` needs ``content``, no ``session=`` argument, a new aiohttp session per
call, other default headers. Opt-in, because the venv holds 2.x: unpack the 1.22.2 wheel into a
directory and point ``QWEN_PG_DASHSCOPE_LEGACY`` at it, e.g.::

    pip download dashscope==1.22.2 --no-deps -d /tmp/ds122
    python -m zipfile -e /tmp/ds122/dashscope-1.22.2-py3-none-any.whl /tmp/ds122/src
    QWEN_PG_DASHSCOPE_LEGACY=/tmp/ds122/src pytest tests/test_dashscope_sdk_legacy.py
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

LEGACY = os.environ.get("QWEN_PG_DASHSCOPE_LEGACY")
CORE_TESTS = [
    "test_dashscope_client.py",
    "test_dashscope_chat.py",
    "test_dashscope_embeddings.py",
    "test_dashscope_stream.py",
    "test_dashscope_errors.py",
]

pytestmark = pytest.mark.skipif(
    not LEGACY, reason="set QWEN_PG_DASHSCOPE_LEGACY=<dir holding dashscope 1.22.2> to run"
)


def test_core_tests_pass_on_dashscope_1_22_2() -> None:
    assert LEGACY is not None
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [LEGACY, os.environ.get("PYTHONPATH")])),
    }
    version = subprocess.run(
        [sys.executable, "-c", "import dashscope.version as v; print(v.__version__)"],
        capture_output=True, text=True, env=env, check=True,
    ).stdout.strip()  # fmt: skip
    assert version == "1.22.2", f"{LEGACY} holds dashscope {version}"
    here = Path(__file__).parent
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         *(str(here / name) for name in CORE_TESTS)],
        capture_output=True, text=True, env=env, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
