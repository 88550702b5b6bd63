"""The house's rules that a linter does not check: no import circle among allies' modules (every
import counted, those inside functions and TYPE_CHECKING blocks too), and one module that knows
where Flask keeps the services. The layers themselves are import-linter's contracts (pyproject)."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "src" / "allies"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    """Every module, the C extension (`_logscan.c`, which imports nothing of allies) among them."""
    return {_module_name(path): path for path in [*PACKAGE.rglob("*.py"), *PACKAGE.rglob("*.c")]}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The allies modules that `name` imports anywhere in its text."""
    if path.suffix == ".c":
        return set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:  # `from X import y`: the module X.y when there is one, else X
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {module for module in found if module in known and module != name}


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def test_the_import_graph_is_read_whole():
    graph = import_graph()
    assert "allies.config" in graph["allies.keyfile"]  # a module-level import
    assert "allies.web.server" in graph["allies.cli.service"]  # an import inside a function
    assert "allies.triage.remediation" in graph["allies.cli.logs"]  # `from ..triage import remediation`


def test_no_import_circle_counting_every_import():
    graph = import_graph()
    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        raise AssertionError(f"import circle: {' -> '.join(exc.args[1])}") from None
    assert len(order) == len(graph)


def test_a_circle_would_be_found():
    graph = import_graph()
    graph["allies.failures"] = {"allies.config"}  # config imports failures: a circle
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError:
        return
    raise AssertionError("the circle was not found")


def test_one_module_knows_where_flask_keeps_the_services():
    python = {name: path for name, path in _modules().items() if path.suffix == ".py"}
    users = sorted(name for name, path in python.items() if "extensions[" in path.read_text())
    assert users == ["allies.web.services"]
