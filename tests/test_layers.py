"""The layer rule, pinned: who may import whom (docs/architecture.md draws it).

Layers, bottom to top::

    prompt_gym (core)  <-  prompt_gym.envs  <-  (nothing but core's registration line)
    prompt_gym (core)  <-  prompt_gym.agents  <-  prompt_gym.agents.appo
    everything         <-  prompt_gym.runs (train, compare, the CLI)

The graph is read from the source with ``ast``, function-level imports included, so an import
written inside a function cannot hide a wrong-way edge.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# setup.cfg's package_dir: the installed name of each source folder.
FOLDERS = {"prompt_gym": "prompt_gym", "agents": "prompt_gym.agents", "envs": "prompt_gym.envs"}


def _modules() -> dict[str, Path]:
    """Every product module by its installed dotted name."""
    modules = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join([package, *parts])] = path
    return modules


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The project module an import of ``name`` loads (its longest known prefix), or ``None``."""
    parts = name.split(".")
    while parts:
        if ".".join(parts) in MODULES:
            return ".".join(parts)
        parts.pop()
    return None


def _imports(module: str) -> Iterator[tuple[str, int, bool]]:
    """``(imported module, line, is function-level)`` for each project import in ``module``."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    nested = {id(node) for function in ast.walk(tree) if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
              for node in ast.walk(function)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            names = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in {_resolve(name) for name in names} - {None, module}:
            yield target, node.lineno, id(node) in nested


EDGES = [(source, target, line, lazy) for source in MODULES for target, line, lazy in _imports(source)]


def _layer(module: str) -> str:
    for prefix in ("prompt_gym.runs", "prompt_gym.agents.appo", "prompt_gym.agents", "prompt_gym.envs"):
        if module == prefix or module.startswith(prefix + "."):
            return prefix
    return "prompt_gym"


# Which layers each layer may import (its own included).
ALLOWED = {
    "prompt_gym": {"prompt_gym"},
    "prompt_gym.envs": {"prompt_gym", "prompt_gym.envs"},
    "prompt_gym.agents": {"prompt_gym", "prompt_gym.agents"},
    "prompt_gym.agents.appo": {"prompt_gym", "prompt_gym.agents", "prompt_gym.agents.appo"},
    "prompt_gym.runs": {"prompt_gym", "prompt_gym.agents", "prompt_gym.agents.appo", "prompt_gym.envs",
                        "prompt_gym.runs"},
}
# The one sanctioned exception: ``import prompt_gym`` registers the envs (Gymnasium's pattern). The
# agent registry names the built-in agents as "module:Class" strings, which are not imports.
EXCEPTIONS = {("prompt_gym", "prompt_gym.envs")}


def test_the_graph_was_read():
    assert {"prompt_gym", "prompt_gym.envs", "prompt_gym.agents", "prompt_gym.agents.appo"} <= set(MODULES)
    assert len(EDGES) > 50


def test_each_layer_imports_only_the_layers_below_it():
    wrong = [f"{MODULES[source].relative_to(ROOT)}:{line} imports {target}{' (inside a function)' if lazy else ''}"
             for source, target, line, lazy in EDGES
             if _layer(target) not in ALLOWED[_layer(source)]
             and (source, _layer(target)) not in EXCEPTIONS]
    assert not wrong, "imports that run against the layers:\n" + "\n".join(wrong)


@pytest.mark.parametrize("function_level", [False, True], ids=["module-level", "all imports"])
def test_no_import_cycles(function_level: bool):
    graph: dict[str, set[str]] = {module: set() for module in MODULES}
    for source, target, _, lazy in EDGES:
        if function_level or not lazy:
            graph[source].add(target)
    # A package's ``__init__`` importing its own submodules is not a cycle a reader trips over.
    for source in graph:
        graph[source] = {t for t in graph[source] if not (MODULES[source].name == "__init__.py" and t.startswith(source))}
    cycles = _strongly_connected(graph)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(sorted(c)) for c in cycles)


def _strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm: the components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in graph:
        if node not in index:
            visit(node)
    return found
