"""The shape of the house: import layers, function sizes, private names, our own imports.

The import layers are import-linter's contracts in pyproject.toml (run here so that CI runs
them); McCabe complexity is ruff's C901 (max 12, also in pyproject.toml).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "orion_cli"
MAX_BODY_LINES = 60

#: functions still over the budget, with their body's length today. The list only shrinks:
#: a function may not grow, and one that fits the budget must leave the list.
OVER_BUDGET = {
    "services/queries/stats.py::collect": 83,
    "api.py::submit": 69,
    "services/queries/metrics.py::render": 64,
}


def _modules() -> list[tuple[str, ast.Module]]:
    return [
        (path.relative_to(PACKAGE).as_posix(), ast.parse(path.read_text()))
        for path in sorted(PACKAGE.rglob("*.py"))
        if "migrations" not in path.parts
    ]


def body_lines(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of a function's body: its signature and docstring are not counted.

    >>> source = 'def f(\\n  x: int,\\n) -> int:\\n    "Doc."\\n    return x\\n'
    >>> body_lines(ast.parse(source).body[0])
    1
    """
    body = function.body
    if len(body) > 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    return (function.end_lineno or 0) - body[0].lineno + 1


def _functions() -> dict[str, int]:
    sizes = {}
    for name, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                sizes[f"{name}::{node.name}"] = max(
                    body_lines(node), sizes.get(f"{name}::{node.name}", 0)
                )
    return sizes


def test_import_contracts_hold() -> None:
    from importlinter.cli import lint_imports

    assert lint_imports(no_cache=True) == 0  # its report says which import breaks which


def test_no_function_body_over_the_budget() -> None:
    sizes = _functions()
    over = {name: n for name, n in sizes.items() if n > MAX_BODY_LINES}
    unlisted = {name: n for name, n in over.items() if name not in OVER_BUDGET}
    assert not unlisted, f"over {MAX_BODY_LINES} lines: split them: {unlisted}"
    grown = {name: n for name, n in over.items() if n > OVER_BUDGET[name]}
    assert not grown, f"these grew beyond their allowance: {grown}"
    fits = [name for name in OVER_BUDGET if sizes.get(name, 0) <= MAX_BODY_LINES]
    assert not fits, f"these fit the budget now: remove them from OVER_BUDGET: {fits}"


def test_no_private_name_is_imported_from_another_module() -> None:
    """``from orion_cli.x import _y`` only for a private module ``_y`` of the same package."""
    found = []
    for name, tree in _modules():
        package = "orion_cli." + ".".join(Path(name).parent.parts)
        for node in ast.walk(tree):
            module = node.module or "" if isinstance(node, ast.ImportFrom) else ""
            if not module.startswith("orion_cli"):
                continue
            for alias in node.names:  # type: ignore[attr-defined]
                private = alias.name.startswith("_") and not alias.name.endswith("__")
                own_module = module.rstrip(".") == package.rstrip(".") and _is_module(
                    f"{module}.{alias.name}"
                )
                if private and not own_module:
                    found.append(f"{name}: from {module} import {alias.name}")
    assert not found, found


def _is_module(dotted: str) -> bool:
    return (PACKAGE.parent / (dotted.replace(".", "/") + ".py")).exists()


@pytest.mark.parametrize("where", ["services", "jobrun.py", "queues.py", "engines"])
def test_our_own_imports_are_at_module_level(where: str) -> None:
    """Only the cli imports our modules inside functions (services load SQLAlchemy, and
    `orion --help` must not); type-only imports sit under TYPE_CHECKING."""
    found = []
    for name, tree in _modules():
        if not name.startswith(where):
            continue
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("orion_cli"):
                    found.append(f"{name}:{node.lineno} {function.name}: {node.module}")
    assert not found, found
