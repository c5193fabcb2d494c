"""Which way orion talks to SLURM, and what `orion doctor` says about it."""

from __future__ import annotations

import pytest

import orion_cli.schedulers as schedulers
from orion_cli.errors import ConfigError
from orion_cli.schedulers.slurm_cli import SlurmCli


def test_auto_is_the_cli_even_where_pyslurm_works(monkeypatch: pytest.MonkeyPatch) -> None:
    """pyslurm runs in no CI run: it is opt-in, never chosen by `auto`."""
    monkeypatch.setattr(schedulers, "pyslurm_status", lambda: (True, "pyslurm 22.5 matches"))
    backend, why = schedulers.slurm_backend("auto")
    assert backend == "cli" and "slurm_backend = auto" in why
    monkeypatch.setattr(schedulers, "pyslurm_status", lambda: (False, "pyslurm is not installed"))
    assert type(schedulers.get_scheduler("slurm", __import__("pathlib").Path("."))) is SlurmCli
    with pytest.raises(ConfigError, match="slurm_backend = pyslurm, but pyslurm is not"):
        schedulers.slurm_backend("pyslurm")


def test_explicit_cli_and_unknown_backend() -> None:
    assert schedulers.slurm_backend("cli")[0] == "cli"
    with pytest.raises(ConfigError, match="unknown slurm_backend 'rpc'"):
        schedulers.slurm_backend("rpc")


def test_pyslurm_when_asked_for_where_it_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("pyslurm", reason="pyslurm is not importable (no 22.5 build)")
    backend, why = schedulers.slurm_backend("pyslurm")
    assert backend == "pyslurm" and "matches" in why
