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


def _package_imports() -> dict[str, set[str]]:
    """Module -> the package's modules it imports (every import statement, lazy and
    type-only ones included: a circle through either still ties the modules together)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "src" / "qwen_pg_integrations"
    modules: dict[str, Path] = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join([*anchor, base]) if base else ".".join(anchor)
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    deps.add(full if full in modules else base)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
        # a package's own __init__ re-exports its modules: not an edge back from them
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


def test_imports_run_one_way_no_circles_between_modules() -> None:
    """Issue 15: no import circle between the package's modules (core -> adapters -> CLI)."""
    graph = _package_imports()
    packages = {m for m in graph if any(o.startswith(m + ".") for o in graph)}
    edges = {m: {d for d in deps if d not in packages} for m, deps in graph.items()}
    state: dict[str, int] = {}
    circles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(edges.get(node, ())):
            if state.get(dep) == 1:
                circles.append([*stack[stack.index(dep) :], dep])
            elif dep not in state:
                visit(dep, [*stack, dep])
        state[node] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert not circles, "import circles: " + "; ".join(" -> ".join(c) for c in circles)


def test_core_never_imports_adapters_or_cli() -> None:
    graph = _package_imports()
    upper = ("qwen_pg_integrations.langchain", "qwen_pg_integrations.llama_index")
    upper += ("qwen_pg_integrations.cli",)
    core = [
        m
        for m in graph
        if m.startswith(("qwen_pg_integrations.pg", "qwen_pg_integrations.dashscope"))
    ]
    bad = {m: sorted(d for d in graph[m] if d.startswith(upper)) for m in core}
    assert not {m: d for m, d in bad.items() if d}
