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
OVER_BUDGET: dict[str, int] = {}


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


#: a job's lifecycle columns: its status and what the scheduler says of it
LIFECYCLE_COLUMNS = {
    "status", "failure_reason", "attempt", "submitted_at", "started_at", "finished_at",
    "next_attempt_at", "submit_unknown_since", "scheduler_job_id", "held",
    "exit_code", "exit_signal", "raw_state", "missing_since", "progress_pct", "current_step",
}  # fmt: skip
#: where they are written: the one writer (and the places that only make objects of their own)
WRITERS = ("services/lifecycle/state.py", "schedulers/", "db/")


def _targets(target: ast.expr) -> list[ast.expr]:
    """What one assignment target assigns to (``a, b.c = ...`` is ``a`` and ``b.c``)."""
    if isinstance(target, ast.Tuple | ast.List):
        return [t for element in target.elts for t in _targets(element)]
    return _targets(target.value) if isinstance(target, ast.Starred) else [target]


def _assigned_attributes(tree: ast.Module) -> list[tuple[int, str]]:
    """Attributes assigned in ``tree`` (not those of ``self``: an object's own)."""
    found = []
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = [t for target in node.targets for t in _targets(target)]
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        found += [
            (t.lineno, t.attr)
            for t in targets
            if isinstance(t, ast.Attribute) and getattr(t.value, "id", "") != "self"
        ]
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "setattr":
            name = node.args[1] if len(node.args) > 1 else None
            if isinstance(name, ast.Constant) and isinstance(name.value, str):
                found.append((node.lineno, name.value))
    return found


def test_lifecycle_columns_have_one_writer() -> None:
    """Status, times, attempt, held, exit code and signal, raw state, missing-since and
    progress change only in services/lifecycle/state.py (transition, observe, set_held...)."""
    found = [
        f"{name}:{line} .{attr} ="
        for name, tree in _modules()
        if not name.startswith(WRITERS)
        for line, attr in _assigned_attributes(tree)
        if attr in LIFECYCLE_COLUMNS
    ]
    assert not found, found
