"""The core imports no framework (DESIGN.md §2)."""

from __future__ import annotations

import subprocess
import sys

CORE_MODULES = [
    "qwen_pg_integrations",
    "qwen_pg_integrations.errors",
    "qwen_pg_integrations.config",
    "qwen_pg_integrations.types",
    "qwen_pg_integrations.dashscope",
    "qwen_pg_integrations.pg",
]


def test_core_imports_no_framework() -> None:
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in CORE_MODULES)
        + "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('langchain_core', 'langchain', 'llama_index'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout.strip()
    assert out == "", f"core modules pulled in framework modules: {out}"
