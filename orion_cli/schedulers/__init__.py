"""Schedulers: ``slurm`` and ``local`` (background processes).

SLURM is reached through sbatch/squeue/sacct/scancel/scontrol, or in-process through pyslurm
when asked for (``slurm_backend = pyslurm``); jobs only record ``slurm``, so either can poll
them.

Backends are imported only when asked for.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from orion_cli.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from orion_cli.config import Settings
    from orion_cli.schedulers.base import Scheduler

SCHEDULER_NAMES = ("slurm", "local")
SLURM_BACKENDS = ("auto", "cli", "pyslurm")
#: the deterministic scheduler of orion's own tests (orion_cli.schedulers.scripted)
TEST_SCHEDULER = "test"
#: ``1``: the test scheduler may be chosen; ``auto``: and it runs every job that may start
TEST_SCHEDULER_VARIABLE = "ORION_TEST_SCHEDULER"


def test_scheduler_enabled() -> bool:
    """Whether the test scheduler may be chosen (``ORION_TEST_SCHEDULER`` = ``1`` or
    ``auto``, tests only)."""
    return os.environ.get(TEST_SCHEDULER_VARIABLE) in ("1", "auto")


def test_scheduler_auto() -> bool:
    """Whether the test scheduler runs every job that may start (``ORION_TEST_SCHEDULER`` =
    ``auto``)."""
    return os.environ.get(TEST_SCHEDULER_VARIABLE) == "auto"


def known_scheduler(name: str) -> bool:
    """Whether ``name`` is a scheduler a job may record.

    >>> known_scheduler("slurm"), known_scheduler("pbs")
    (True, False)
    """
    return name in SCHEDULER_NAMES or (name == TEST_SCHEDULER and test_scheduler_enabled())


#: where Slurm's tools look for the cluster's configuration when SLURM_CONF is not set
SLURM_CONF_DEFAULTS = ("/etc/slurm/slurm.conf", "/etc/slurm-llnl/slurm.conf")
SLURM_CLIENTS = ("squeue", "srun", "sinfo", "scontrol")


def slurm_cluster_sign() -> str | None:
    """Say why this machine looks like a SLURM cluster, or None when it does not.

    Signs: the slurm.conf Slurm's tools would read (``$SLURM_CONF``, else the Debian/RHEL
    default paths) exists, or another Slurm client command is on PATH.
    """
    conf = os.environ.get("SLURM_CONF")
    for candidate in (conf,) if conf else SLURM_CONF_DEFAULTS:
        if Path(candidate).is_file():
            return f"{candidate} exists"
    for command in SLURM_CLIENTS:
        found = shutil.which(command)
        if found:
            return f"{found} is on PATH"
    return None


def default_scheduler_name() -> str:
    """``slurm`` where ``sbatch`` is on PATH, ``local`` on a machine that is not a cluster.

    A cluster whose ``sbatch`` is missing from PATH (cron without ``module load slurm``) is
    refused: running there would put the job on the login node.
    """
    if shutil.which("sbatch"):
        return "slurm"
    sign = slurm_cluster_sign()
    if sign:
        raise UsageError(
            f"scheduler = auto, but sbatch is not on PATH on what looks like a SLURM cluster "
            f"({sign}); orion will not run the job on this machine",
            "run `module load slurm` (or fix PATH), or choose --scheduler local",
        )
    return "local"


def slurm_backend(requested: str = "auto") -> tuple[str, str]:
    """Choose how to talk to SLURM: the CLI, unless pyslurm is asked for by name.

    ``auto`` means the CLI: it is what CI tests on every run, while no pyslurm wheel
    matches this Slurm and pyslurm 22.5.3 drops ``--signal`` and crashes on a user hold.
    Return the choice and why (for ``orion doctor``).
    """
    if requested not in SLURM_BACKENDS:
        raise ConfigError(
            f"unknown slurm_backend '{requested}'", f"use one of: {', '.join(SLURM_BACKENDS)}"
        )
    if requested in ("cli", "auto"):
        return "cli", f"sbatch/squeue/sacct (slurm_backend = {requested})"
    ok, why = pyslurm_status()
    if not ok:
        raise ConfigError(
            f"slurm_backend = pyslurm, but {why}",
            "install a pyslurm built for this Slurm, or set slurm_backend = cli",
        )
    return "pyslurm", why


def get_scheduler(name: str, state_dir: Path, backend: str = "auto") -> Scheduler:
    """Return the scheduler called ``name`` (``auto`` picks the default)."""
    if name == "auto":
        name = default_scheduler_name()
    if name == "slurm":
        if slurm_backend(backend)[0] == "pyslurm":
            from orion_cli.schedulers.slurm_pyslurm import SlurmPyslurm

            return SlurmPyslurm()
        from orion_cli.schedulers.slurm_cli import SlurmCli

        return SlurmCli()
    if name == "local":
        from orion_cli.schedulers.local import LocalScheduler

        return LocalScheduler(state_dir)
    if name == TEST_SCHEDULER and test_scheduler_enabled():
        from orion_cli.schedulers.scripted import scripted_scheduler

        return scripted_scheduler(state_dir)
    raise UsageError(f"unknown scheduler '{name}'", f"use one of: {', '.join(SCHEDULER_NAMES)}")


def scheduler_for(settings: Settings, name: str) -> Scheduler:
    """Return scheduler ``name`` as configured by ``settings``."""
    return get_scheduler(name, settings.home / "local-scheduler", settings.slurm_backend)


def pyslurm_status() -> tuple[bool, str]:
    """Tell whether the ``pyslurm`` backend could be used here, and why not (``orion doctor``)."""
    from orion_cli.schedulers.slurm_pyslurm import pyslurm_status as status

    return status()
