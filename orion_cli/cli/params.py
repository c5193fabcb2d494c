"""Engine parameters from the command line: ``-p key=value`` and ``--params FILE``."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from orion_cli.errors import UsageError
from orion_cli.inputfile import check_regular
from orion_cli.units import parse_param_pairs


def read_params(pairs: list[str], params_file: Path | None) -> dict[str, Any]:
    """``-p key=value`` pairs over a ``--params`` file (TOML or JSON)."""
    params: dict[str, Any] = {}
    if params_file is not None:
        params = read_params_file(params_file)
    params.update(parse_param_pairs(pairs))
    return params


def read_params_file(path: Path) -> dict[str, Any]:
    """Read a TOML or JSON table of parameters; every way it can be wrong is one UsageError."""
    fix = "use a TOML or JSON file of key = value pairs"
    check_regular(path, "params file")  # a FIFO or /dev/zero: one line, no hang
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"params file '{path}' is not a UTF-8 text file", fix) from None
    except OSError as exc:
        raise UsageError(
            f"cannot read params file '{path}': {exc.strerror}", "check its permissions"
        ) from None
    try:
        if path.suffix == ".json":
            params = json.loads(text)
        else:
            params = tomllib.loads(text)
    except RecursionError:
        raise UsageError(f"params file '{path}' is nested too deeply", fix) from None
    except ValueError as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"cannot read parameters from '{path}': {detail}", fix) from None
    if not isinstance(params, dict):
        raise UsageError(f"'{path}' must hold a table of key = value pairs", fix)
    return params
