"""LAMMPS at the soft time limit: stop on request, save a restart file, continue on retry.

orion's md and minimize scripts look for ``orion.STOP`` every 10 steps (``fix halt`` on
``is_file()``); the runner creates it on SIGUSR1. LAMMPS then stops the run, writes
``orion.restart`` and quits. The next attempt keeps the stopped one's files
(``log-attempt-N.lammps``, ``lammps-attempt-N.out``, ``in-attempt-N.lammps``, its dumps) and
runs the original script with ``read_restart orion.restart`` instead of ``read_data`` and
without the initial ``velocity`` command; md's ``run N upto`` then runs to the same last step.
"""

from __future__ import annotations

import re
from pathlib import Path

from orion_cli.engines import _command
from orion_cli.engines.lammps_input import DATA_NAME, DUMP_NAME, RESTART_NAME, STOP_FILE

SCRIPT_NAME = "in.lammps"
LOG_NAME = "log.lammps"
STDOUT_NAME = "lammps.out"
_HALTED = re.compile(r"Fix halt condition for fix-id orion_halt met on step (\d+)")


def stopped_step(log: str) -> int | None:
    """The step at which orion's stop request halted LAMMPS, or None.

    >>> stopped_step("Fix halt condition for fix-id orion_halt met on step 120 with value 1")
    120
    """
    found = _HALTED.findall(log)
    return int(found[-1]) if found else None


def continued(script: str) -> str:
    """The script that continues from ``orion.restart``: no read_data, no new velocities.

    >>> print(continued("units metal\\nread_data structure.data\\n"
    ...                 "velocity all create 40 1 dist gaussian mom yes\\nrun 10 upto\\n"), end="")
    units metal
    read_restart orion.restart
    run 10 upto
    """
    lines = []
    for line in script.splitlines():
        if line.strip() == f"read_data {DATA_NAME}":
            line = f"read_restart {RESTART_NAME}"
        elif line.startswith("velocity all create "):
            continue
        lines.append(line)
    return "\n".join(lines) + "\n"


def prepare_attempt(workdir: Path, attempt: int, dump_names: list[str]) -> None:
    """Before lmp starts: clear the stop file; keep the last attempt's files; continue.

    The previous attempt continues from ``orion.restart`` unless it ended with an ERROR of
    its own (then the retry starts from the input structure again).
    """
    (workdir / STOP_FILE).unlink(missing_ok=True)
    log = workdir / LOG_NAME
    if attempt <= 1 or not log.is_file():
        return
    before = attempt - 1
    text = _command.read_text(log) or ""
    script = workdir / SCRIPT_NAME
    original = workdir / "in-attempt-1.lammps"
    if not original.is_file():
        original.write_text(script.read_text())
    elif before > 1:
        (workdir / f"in-attempt-{before}.lammps").write_text(script.read_text())
    for name in dump_names:
        stem, dot, ext = name.rpartition(".")
        if (workdir / name).is_file():
            (workdir / name).replace(
                workdir / (f"{stem}-attempt-{before}.{ext}" if dot else f"{name}-attempt-{before}")
            )
    (workdir / DUMP_NAME).unlink(missing_ok=True)
    log.replace(workdir / f"log-attempt-{before}.lammps")
    if (workdir / STDOUT_NAME).is_file():
        (workdir / STDOUT_NAME).replace(workdir / f"lammps-attempt-{before}.out")
    restart = workdir / RESTART_NAME
    if re.search(r"^ERROR", text, re.M):
        restart.unlink(missing_ok=True)
    if restart.is_file():
        script.write_text(continued(original.read_text()))
    else:
        script.write_text(original.read_text())
