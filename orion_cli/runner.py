"""The one place where orion runs external commands (sbatch, squeue, sacct, scancel, ...).

Schedulers receive a :class:`Runner`; tests may pass one that replays captured output.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)
TIMEOUT_RC = 124  # like timeout(1): the command did not finish in time
#: the longest any scheduler command (sbatch, scancel, ...) may take
COMMAND_TIMEOUT_S = 60.0
NOT_FOUND_RC = 127


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    elapsed_s: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def error_text(self) -> str:
        """The first non-empty line of stderr (or stdout), for one-line messages."""
        for text in (self.stderr, self.stdout):
            for line in text.splitlines():
                if line.strip():
                    return line.strip()
        return f"exit code {self.returncode}"


class Runner(Protocol):
    def __call__(
        self,
        argv: Sequence[str],
        *,
        input_text: str | None = None,
        timeout_s: float = COMMAND_TIMEOUT_S,
    ) -> CommandResult: ...


#: never handed to a scheduler command: sbatch exports its environment into the job (and
#: slurmctld stores it); compute nodes never open the database
SECRET_VARIABLES = ("ORION_DATABASE_URL", "PGPASSWORD")


def job_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` without the variables that hold database credentials.

    >>> job_environment({"PATH": "/bin", "ORION_DATABASE_URL": "postgresql://u:pw@h/db"})
    {'PATH': '/bin'}
    """
    return {k: v for k, v in environ.items() if k not in SECRET_VARIABLES}


def run(
    argv: Sequence[str], *, input_text: str | None = None, timeout_s: float = COMMAND_TIMEOUT_S
) -> CommandResult:
    """Run ``argv`` (no shell), capture its output; a missing program or a timeout is rc 127/124."""
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            list(argv),
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
            env=job_environment(os.environ),
        )
        result = CommandResult(
            tuple(argv), proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - start
        )
    except FileNotFoundError:
        result = CommandResult(
            tuple(argv),
            NOT_FOUND_RC,
            "",
            f"{argv[0]}: command not found",
            time.perf_counter() - start,
        )
    except subprocess.TimeoutExpired:
        result = CommandResult(
            tuple(argv),
            TIMEOUT_RC,
            "",
            f"{argv[0]}: no answer within {timeout_s:g} s",
            time.perf_counter() - start,
        )
    log.debug("ran %s -> %d in %.3f s", " ".join(argv), result.returncode, result.elapsed_s)
    return result
