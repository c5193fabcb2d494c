"""Fixtures for the command engines: run a prepared calculation with the real binary."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from orion_cli.engines.base import Result
from tests.conftest import need


def require_binary(name: str) -> None:
    """Skip when ``name`` is not installed, unless CI is set (then fail: CI must have it)."""
    need(shutil.which(name) is not None, f"{name} (Debian packages quantum-espresso, lammps)")


RunEngine = Callable[..., Result]


@pytest.fixture
def run_engine() -> RunEngine:
    """Return run(engine, atoms, params, workdir, settings): prepare, run the command, parse."""

    def run(
        engine: Any,
        atoms: Any,
        params: Mapping[str, Any],
        workdir: Path,
        settings: Mapping[str, Any] | None = None,
    ) -> Result:
        checked = engine.check(params, settings or {})
        spec = engine.prepare(atoms, checked, workdir, settings or {})
        assert spec.command is not None and spec.stdout_name is not None
        require_binary(spec.command[0])
        started = time.perf_counter()
        with open(workdir / spec.stdout_name, "w") as stdout:
            subprocess.run(
                spec.command,
                cwd=workdir,
                stdout=stdout,
                stderr=subprocess.STDOUT,
                env={**os.environ, "OMP_NUM_THREADS": "1", **spec.env},
                check=False,
                timeout=300,
            )
        (workdir / "runtime_s.txt").write_text(f"{time.perf_counter() - started:.3f}\n")
        return engine.parse(workdir, checked)  # type: ignore[no-any-return]

    return run
