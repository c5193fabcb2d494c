"""QE's retry after an unconverged SCF (``--on-scf-fail``): check the change, rewrite pw.in.

The change is given as orion parameters (``mixing_beta=0.3``, ``electron_maxstep=200``) or
raw namelist keys (``electrons.mixing_mode=local-TF``), checked as ``-p`` is. What it changes
in pw.x's namelists is the difference between :func:`pw_input_data` before and after, so a
named parameter maps onto its key and unit exactly as at submit; that difference is written
into the existing ``pw.in`` (cards, positions and pseudopotentials stay as they were).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orion_cli.engines.qe_input import INPUT_NAME, pw_input_data
from orion_cli.errors import UsageError

#: parameters that change cards or the species, not namelist keys: not changeable on a retry
NOT_CHANGEABLE = ("kpoints", "kspacing_per_a", "spin", "input")
_NAMELIST_ORDER = ("control", "system", "electrons", "ions", "cell")


def checked_change(
    engine: Any, params: Mapping[str, Any], change: Mapping[str, Any], settings: Mapping[str, Any]
) -> dict[str, Any]:
    """Return the job's parameters with ``change`` applied, checked as ``-p`` would be.

    ``params`` are the job's checked parameters. Raises UsageError naming a key that is not
    the engine's, cannot change on a retry, or changes nothing.
    """
    if not change:
        raise UsageError(
            "--on-scf-fail needs key=value", "write e.g. --on-scf-fail mixing_beta=0.3"
        )
    raw = {name: value for name, value in params.items() if name != "input"}
    raw_input = {nl: dict(keys) for nl, keys in (params.get("input") or {}).items()}
    for key, value in change.items():
        if key in NOT_CHANGEABLE:
            raise UsageError(
                f"--on-scf-fail: '{key}' cannot change on a retry",
                "change pw.x namelist keys only, e.g. mixing_beta=0.3, "
                "electron_maxstep=200, electrons.mixing_mode=local-TF",
            )
        namelist, dot, name = key.partition(".")
        if dot:
            raw_input.setdefault(namelist, {})[name] = value
        elif key in params:
            raw[key] = value
        else:
            raise UsageError(
                f"--on-scf-fail: engine 'qe' has no parameter '{key}'",
                "use a parameter `orion engines` lists, or a namelist key such "
                "as electrons.mixing_mode",
            )
    new = engine.check({**raw, "input": raw_input}, settings)
    if not namelist_changes(params, new):
        raise UsageError(
            f"--on-scf-fail {_pairs(change)} changes nothing in pw.in",
            "give a value different from the job's own (e.g. mixing_beta=0.3)",
        )
    return dict(new)


def namelist_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[tuple[str, str], Any]:
    """(namelist, key) → new value (None: removed) between two parameter sets."""
    before, after = pw_input_data(old, Path(".")), pw_input_data(new, Path("."))
    changes: dict[tuple[str, str], Any] = {}
    for namelist in _NAMELIST_ORDER:
        a, b = before.get(namelist, {}), after.get(namelist, {})
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                changes[(namelist, key)] = b.get(key)
    return changes


def describe(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """Say what changed in pw.x's words: ``electrons.mixing_beta 0.7 → 0.3``."""
    before = pw_input_data(old, Path("."))
    return ", ".join(
        f"{nl}.{key} {before.get(nl, {}).get(key, 'unset')} → {'unset' if value is None else value}"
        for (nl, key), value in namelist_changes(old, new).items()
    )


def fortran_value(value: Any) -> str:
    """Write a namelist value as pw.x reads it.

    >>> fortran_value(True), fortran_value(0.3), fortran_value(100), fortran_value("local-TF")
    ('.true.', '0.3', '100', "'local-TF'")
    """
    if isinstance(value, bool):
        return ".true." if value else ".false."
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def with_changes(pw_in: str, changes: Mapping[tuple[str, str], Any]) -> str:
    """Set, replace or remove namelist keys in pw.in text; a missing namelist is added.

    >>> text = ("&CONTROL\\n   prefix = 'x'\\n/\\n"
    ...         "&ELECTRONS\\n   mixing_beta = 0.7\\n/\\nK_POINTS\\n")
    >>> print(with_changes(text, {("electrons", "mixing_beta"): 0.3,
    ...                           ("electrons", "electron_maxstep"): 200}), end="")
    &CONTROL
       prefix = 'x'
    /
    &ELECTRONS
       mixing_beta      = 0.3
       electron_maxstep = 200
    /
    K_POINTS
    """
    lines = pw_in.splitlines()
    for (namelist, key), value in changes.items():
        start, end = _block(lines, namelist)
        if start is None:
            at = _insert_point(lines, namelist)
            lines[at:at] = [f"&{namelist.upper()}", "/"]
            start, end = at, at + 1
        assert end is not None
        pattern = re.compile(rf"^\s*{re.escape(key)}\s*=", re.I)
        found = next((i for i in range(start + 1, end) if pattern.match(lines[i])), None)
        new_line = f"   {key:16} = {fortran_value(value)}"
        if found is not None and value is None:
            del lines[found]
        elif found is not None:
            lines[found] = new_line
        elif value is not None:
            lines.insert(end, new_line)
    return "\n".join(lines) + "\n"


def _block(lines: list[str], namelist: str) -> tuple[int | None, int | None]:
    """Line indexes of ``&NAMELIST`` and of its closing ``/``."""
    start = next(
        (i for i, line in enumerate(lines) if line.strip().lower() == f"&{namelist}"), None
    )
    if start is None:
        return None, None
    end = next(i for i in range(start + 1, len(lines)) if lines[i].strip() == "/")
    return start, end


def _insert_point(lines: list[str], namelist: str) -> int:
    """Where a missing namelist goes: after the last earlier one (pw.x reads them in order)."""
    at = 0
    for earlier in _NAMELIST_ORDER[: _NAMELIST_ORDER.index(namelist)]:
        _, end = _block(lines, earlier)
        if end is not None:
            at = end + 1
    return at


def rewrite_input(
    workdir: Path, old: Mapping[str, Any], new: Mapping[str, Any], failed_attempt: int
) -> None:
    """Keep the failed attempt's pw.in as ``pw-attempt-N.in``; write the changed one."""
    path = workdir / INPUT_NAME
    text = path.read_text()
    (workdir / f"pw-attempt-{failed_attempt}.in").write_text(text)
    path.write_text(with_changes(text, namelist_changes(old, new)))


def _pairs(change: Mapping[str, Any]) -> str:
    return " ".join(f"{key}={value}" for key, value in change.items())
