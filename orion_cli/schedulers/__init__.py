"""Scheduler backends: ``slurm`` (sbatch/squeue/sacct/scancel/scontrol), ``pyslurm`` (the same
through libslurm RPCs, optional) and ``local`` (background processes).

Backends are imported only when asked for.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from orion_cli.errors import UsageError

if TYPE_CHECKING:
    from orion_cli.schedulers.base import Scheduler

SCHEDULER_NAMES = ("slurm", "pyslurm", "local")


def default_scheduler_name() -> str:
    """``slurm`` where ``sbatch`` is on PATH, else ``local``."""
    return "slurm" if shutil.which("sbatch") else "local"


def get_scheduler(name: str, state_dir: Path) -> Scheduler:
    """Return the backend called ``name`` (``auto`` picks the default)."""
    if name == "auto":
        name = default_scheduler_name()
    if name == "slurm":
        from orion_cli.schedulers.slurm_cli import SlurmCli

        return SlurmCli()
    if name == "pyslurm":
        from orion_cli.schedulers.slurm_pyslurm import SlurmPyslurm

        return SlurmPyslurm()
    if name == "local":
        from orion_cli.schedulers.local import LocalScheduler

        return LocalScheduler(state_dir)
    raise UsageError(
        f"unknown scheduler '{name}'", f"use one of: {', '.join(SCHEDULER_NAMES)}"
    )


def pyslurm_status() -> tuple[bool, str]:
    """Tell whether the ``pyslurm`` backend could be used here, and why not (``orion doctor``)."""
    from orion_cli.schedulers.slurm_pyslurm import pyslurm_status as status

    return status()
