"""Raw engine input keys: the escape hatch beside orion's named parameters.

A user writes ``-p system.nbnd=16`` (qe), ``-p incar.ISYM=0`` (vasp), ``-p calc.sigma=3.4``
(ase), or a table in ``--params FILE``. :func:`gather_table` moves such dotted keys into one
nested table parameter (``input``, ``incar``, ``calc``) so that the job stores one canonical
form; the engine then checks the keys it can (known names, no clash with a named parameter).
Pure and import-light: no ASE here.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from orion_cli.errors import UsageError


def engine_params(
    params: Mapping[str, Any], engine: str, engines: Collection[str]
) -> dict[str, Any]:
    """Lift the ``[<engine>]`` table of a parameter file; drop other engines' tables.

    One file may serve several engines: ``[qe.input.system]`` and ``[vasp.incar]``.

    >>> engine_params({"qe": {"input": {"system": {"nbnd": 16}}}, "vasp": {"incar": {}},
    ...                "ecutwfc_ry": 30}, "qe", ["qe", "vasp"])
    {'ecutwfc_ry': 30, 'input': {'system': {'nbnd': 16}}}
    """
    lifted = {k: v for k, v in params.items() if k not in engines or not isinstance(v, Mapping)}
    own = params.get(engine)
    if isinstance(own, Mapping):
        for key, value in own.items():
            if key in lifted:
                raise UsageError(
                    f"parameter '{key}' is given both at the top and in [{engine}]",
                    "keep one of the two",
                )
            lifted[key] = value
    return lifted


def gather_table(
    engine: str, params: Mapping[str, Any], table: str, heads: Collection[str] = ()
) -> dict[str, Any]:
    """Return ``params`` with ``table.key`` (and ``head.key``, head in ``heads``) nested.

    >>> gather_table("qe", {"system.nbnd": 16, "input": {"control": {"verbosity": "high"}},
    ...                     "ecutwfc_ry": 30}, "input", ["system", "control"])
    {'ecutwfc_ry': 30, 'input': {'control': {'verbosity': 'high'}, 'system': {'nbnd': 16}}}
    """
    out: dict[str, Any] = {}
    nested: dict[str, Any] = {}
    given = params.get(table)
    if given is not None:
        if not isinstance(given, Mapping):
            raise UsageError(
                f"engine '{engine}': '{table}' must be a table, got {given!r}",
                f"write e.g. -p {table}.KEY=value or a [{table}] table in --params",
            )
        _merge(engine, nested, given, table)
    for key, value in params.items():
        if key == table:
            continue
        head, dot, rest = key.partition(".")
        if dot and head.lower() == table:
            path = rest.split(".")
        elif dot and head.lower() in heads:
            path = [head.lower(), *rest.split(".")]
        else:
            out[key] = value
            continue
        if not all(path):
            raise UsageError(
                f"engine '{engine}': parameter name '{key}' has an empty part",
                f"write e.g. -p {table}.KEY=value",
            )
        leaf: dict[str, Any] = {path[-1]: value}
        for part in reversed(path[:-1]):
            leaf = {part: leaf}
        _merge(engine, nested, leaf, table)
    if nested or given is not None:
        out[table] = nested
    return out


def _merge(engine: str, into: dict[str, Any], new: Mapping[str, Any], where: str) -> None:
    for key, value in new.items():
        key = str(key)
        if isinstance(value, Mapping):
            if not isinstance(into.setdefault(key, {}), dict):
                raise UsageError(f"engine '{engine}': {where}.{key} is given twice")
            _merge(engine, into[key], value, f"{where}.{key}")
        elif key in into and into[key] != value:
            raise UsageError(
                f"engine '{engine}': {where}.{key} is given twice ({into[key]!r} and {value!r})",
                "keep one of the two",
            )
        else:
            into[key] = value


def check_scalar(engine: str, where: str, value: Any, lists: bool = False) -> None:
    """Refuse values an input file cannot hold: tables, control characters, NaN.

    >>> check_scalar("qe", "system.nbnd", 16)
    >>> check_scalar("qe", "system.input_dft", "pbe\\n&control")
    Traceback (most recent call last):
    ...
    orion_cli.errors.UsageError: engine 'qe': system.input_dft holds a control character
    """
    if lists and isinstance(value, list):
        for item in value:
            check_scalar(engine, where, item)
        return
    if isinstance(value, str):
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise UsageError(
                f"engine '{engine}': {where} holds a control character",
                "write the value on one line",
            )
        return
    if isinstance(value, bool | int):
        return
    if isinstance(value, float) and value == value and abs(value) != float("inf"):
        return
    raise UsageError(
        f"engine '{engine}': {where}={value!r} is not a number, string or boolean",
        "give one plain value per key" + (" (or a list)" if lists else ""),
    )


def refuse_named(
    engine: str, where: str, key: str, named: Mapping[str, str], reserved: Mapping[str, str]
) -> None:
    """Refuse a raw key that duplicates a named parameter or that orion itself sets."""
    if key in named:
        raise UsageError(
            f"engine '{engine}': {where} duplicates orion's parameter '{named[key]}'",
            f"use -p {named[key]}=... (orion's named parameter, with its unit)",
        )
    if key in reserved:
        raise UsageError(
            f"engine '{engine}': {where} is set by orion ({reserved[key]})", "leave it out"
        )
