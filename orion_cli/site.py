"""Site set-up: the lines a cluster needs in a batch script before the engine runs.

Pure. A site writes, in ``orion.toml`` or the user config::

    python = "/opt/orion/bin/python"            # the in-job runner's Python
    setup = ["module purge"]                    # every job
    env = {OMP_NUM_THREADS = "1"}

    [engines.qe]
    setup = ["module load qe/7.2"]              # jobs of this engine only
    env = {ESPRESSO_TMPDIR = "/scratch/tmp"}
    python = "/opt/qe-env/bin/python"           # wins over the global one

The batch script runs them in this order (general first, so an engine's lines win):
global ``setup``, global ``env``, ``[engines.NAME] setup``, ``[engines.NAME] env`` — after
orion's own ``ORION_JOB_ID``/``ORION_ATTEMPT`` exports, before ``cd`` into the job
directory and the runner. ``env`` values are literal (shell-quoted); write a ``setup`` line
(``export PATH=/opt/qe/bin:$PATH``) when the shell should expand something. The rendered
lines are stored with the job, so a retry runs what the first attempt ran.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orion_cli.errors import ConfigError

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: exported by the batch script itself
ORION_OWN_VARIABLES = frozenset({"ORION_JOB_ID", "ORION_ATTEMPT"})
MAX_LINE_CHARS = 4096


@dataclass(frozen=True)
class SiteSetup:
    """What a job's batch script runs before orion's runner, and with which Python."""

    python: str
    lines: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"python": self.python, "setup": list(self.lines)}


def _check_text(text: str, where: str) -> str:
    """Refuse control characters (a tab is fine): one setting value, one script line.

    >>> _check_text("module load qe/7.2", "setup")
    'module load qe/7.2'
    """
    if any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in text):
        raise ConfigError(
            f"{where} holds a control character ({text!r})",
            "write one command per list item, without newlines",
        )
    if len(text) > MAX_LINE_CHARS:
        raise ConfigError(f"{where} is longer than {MAX_LINE_CHARS} characters")
    return text


def setup_lines(value: Any, where: str) -> list[str]:
    """Read a ``setup`` setting: a list of lines (an ORION_* variable gives one line).

    >>> setup_lines(["module load qe", "ulimit -s unlimited"], "setup")
    ['module load qe', 'ulimit -s unlimited']
    """
    if value is None or value == "":
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise ConfigError(
            f"{where} must be a list of lines, got {value!r}",
            f'write {where} = ["module load qe/7.2"]',
        )
    return [_check_text(item, f"{where}[{n}]") for n, item in enumerate(items) if item.strip()]


def env_lines(value: Any, where: str) -> list[str]:
    """Render an ``env`` setting (a table; an ORION_* variable ``A=1,B=2``) as exports.

    >>> env_lines({"OMP_NUM_THREADS": 1, "TAG": "a b$c"}, "env")
    ['export OMP_NUM_THREADS=1', "export TAG='a b$c'"]
    """
    if value is None or value == "":
        return []
    if isinstance(value, str):
        pairs = [item.split("=", 1) for item in value.split(",") if item.strip()]
        if any(len(pair) != 2 for pair in pairs):
            raise ConfigError(f"{where} = {value!r} is not NAME=value,NAME=value")
        value = {k.strip(): v for k, v in pairs}
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{where} must be a table, got {value!r}", f'write {where} = {{OMP_NUM_THREADS = "1"}}'
        )
    lines = []
    for name, raw in value.items():
        if not _ENV_NAME.fullmatch(str(name)):
            raise ConfigError(
                f"{where}: '{name}' is not an environment variable name",
                "use letters, digits and _ (not starting with a digit)",
            )
        if name in ORION_OWN_VARIABLES:
            raise ConfigError(f"{where}: {name} is set by orion itself", "leave it out")
        if isinstance(raw, bool) or not isinstance(raw, str | int | float):
            raise ConfigError(f"{where}.{name} must be text or a number, got {raw!r}")
        text = _check_text(str(raw), f"{where}.{name}")
        lines.append(f"export {name}={shlex.quote(text)}")
    return lines


def site_setup(
    global_values: Mapping[str, Any],
    engine: str,
    engine_values: Mapping[str, Any],
    default_python: str,
) -> SiteSetup:
    """Build a job's site set-up from the global settings and ``[engines.<engine>]``.

    >>> site_setup({"setup": ["module purge"], "env": {"A": "1"}}, "qe",
    ...            {"setup": ["module load qe"], "python": "/opt/py"}, "/usr/bin/python3")
    SiteSetup(python='/opt/py', lines=('module purge', 'export A=1', 'module load qe'))
    """
    table = f"[engines.{engine}]"
    lines = [
        *setup_lines(global_values.get("setup"), "setup"),
        *env_lines(global_values.get("env"), "env"),
        *setup_lines(engine_values.get("setup"), f"{table} setup"),
        *env_lines(engine_values.get("env"), f"{table} env"),
    ]
    python = str(engine_values.get("python") or global_values.get("python") or default_python)
    where = f"{table} python" if engine_values.get("python") else "python"
    _check_text(python, where)
    if not python.strip():
        raise ConfigError(f"{where} is blank", "give the path of a Python with orion installed")
    return SiteSetup(python=python, lines=tuple(lines))
