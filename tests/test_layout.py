"""The package layout shows the pipeline: stages never import the entry point or
the CLI, and no two modules import each other at run time.

Read from the source with ``ast`` (nothing is imported), so a new import that
breaks the layout fails here, not in a user's stack trace.
"""

from __future__ import annotations

import ast
from pathlib import Path

import dedup

PACKAGE = Path(dedup.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module, *, module_level_only: bool) -> set[str]:
    """The ``dedup`` modules a module imports at run time (``if TYPE_CHECKING:`` left out)."""
    found: set[str] = set()

    def visit(nodes: list[ast.stmt], top: bool) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and _is_type_checking(node):
                visit(node.orelse, top)
                continue
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
                # ``from dedup.stages import kernels`` imports a module too
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    nested = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                    if top and nested and module_level_only:
                        continue
                    visit([child], top and not nested)

    visit(tree.body, True)
    return found


def _graph(*, module_level_only: bool) -> dict[str, set[str]]:
    sources = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in sources.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        graph[name] = {
            m for m in _imports(tree, module_level_only=module_level_only) if m in sources
        } - {name}
    return graph


def test_stages_do_not_import_the_entry_point_or_the_cli() -> None:
    graph = _graph(module_level_only=False)
    forbidden = {"dedup.api", "dedup"} | {m for m in graph if m.startswith("dedup.cli")}
    offenders = {
        module: sorted(graph[module] & forbidden)
        for module in graph
        if module.startswith("dedup.stages") and graph[module] & forbidden
    }
    assert not offenders, offenders


def test_no_import_cycles_at_module_level() -> None:
    graph = _graph(module_level_only=True)
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def walk(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                walk(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module, [module])
    assert not cycles, cycles


def test_the_layout_test_sees_imports() -> None:
    """The checks above could pass on a parser that found nothing."""
    graph = _graph(module_level_only=True)
    assert "dedup.result" in graph["dedup.stages.report"]
    assert "dedup.stages.link" in graph["dedup.api"]
