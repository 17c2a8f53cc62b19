"""How the package imports itself: at the top of each module, without a cycle, light where it must be.

The imports left inside functions are the lazy ones ``docs/architecture.md`` names (optional extras, the
packages the command line and ``unifocal.training.config`` must not load); their number is capped.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
MAX_IMPORTS_IN_FUNCTIONS = 30


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted((SRC / "unifocal").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imports_in_functions(tree: ast.AST) -> list[ast.stmt]:
    """Import statements inside a function (each once, however deeply the functions nest)."""
    found: list[ast.stmt] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom) and in_function:
                found.append(child)
            visit(child, in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef))

    visit(tree, False)
    return found


def _run_time_imports(body: list[ast.stmt]) -> list[ast.Import | ast.ImportFrom]:
    """The imports a module runs when it is imported: its body, including ``if`` / ``try`` / ``with``
    blocks, but not functions, classes or ``if TYPE_CHECKING:``."""
    out: list[ast.Import | ast.ImportFrom] = []
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            out.append(node)
        elif isinstance(node, ast.If):
            test = node.test
            if (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
                    isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"):
                out += _run_time_imports(node.orelse)
            else:
                out += _run_time_imports(node.body) + _run_time_imports(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                out += _run_time_imports(block)
        elif isinstance(node, ast.With):
            out += _run_time_imports(node.body)
    return out


def import_graph() -> dict[str, set[str]]:
    """``{module: project modules it imports at import time}``; ``from pkg import name`` points at the
    module ``pkg.name`` when there is one, else at ``pkg``."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in _run_time_imports(ast.parse(path.read_text(encoding="utf-8")).body):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            deps |= {t for t in targets if t in modules and t != name}
        graph[name] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (``[a, b, ..., a]``), or ``None``."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return [*path[path.index(dep):], dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_few_imports_inside_functions():
    where = {f"{path.relative_to(SRC)}:{node.lineno}"
             for path in _modules().values()
             for node in _imports_in_functions(ast.parse(path.read_text(encoding="utf-8")))}
    assert len(where) < MAX_IMPORTS_IN_FUNCTIONS, sorted(where)


def test_the_counter_counts_each_import_once():
    tree = ast.parse("def f():\n    import a\n    def g():\n        from b import c\n    return g\n"
                     "import d\nclass K:\n    def m(self):\n        import e\n")
    assert len(_imports_in_functions(tree)) == 3


def test_no_import_cycle_among_the_projects_modules():
    graph = import_graph()
    assert {"unifocal.study.plan", "unifocal.metrics"} <= graph["unifocal.study.results"]  # edges are seen
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def test_the_cycle_search_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("module", ["unifocal.cli", "unifocal.training.config", "unifocal.study", "unifocal.data"])
def test_light_modules_do_not_load_torch(module):
    """``unifocal --help`` and the configuration checks do not pay for torch (why a few imports stay lazy)."""
    code = f"import sys, {module}; heavy = {{'torch', 'monai'}} & set(sys.modules); assert not heavy, heavy"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
