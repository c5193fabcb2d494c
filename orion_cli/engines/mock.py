"""A deterministic stand-in engine for demos and tests: no physics, real job mechanics.

Given a seed it walks Initializing → Processing → Analyzing → Finalizing, reporting
progress, sleeps ``duration_s`` in total, and returns DFT- or MD-shaped numbers that
depend only on the seed and the structure. ``fail=true`` makes it fail at ``fail_step``.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from orion_cli.engines.base import (
    EngineParam,
    ProgressFn,
    Result,
    RunSpec,
    check_known_params,
    write_texts,
)
from orion_cli.errors import UsageError

if TYPE_CHECKING:
    from ase import Atoms

STEPS = ("Initializing", "Processing", "Analyzing", "Finalizing")
INPUT_FILE = "mock-input.json"
OUTPUT_FILE = "mock-output.json"


class MockEngine:
    name: ClassVar[str] = "mock"
    summary: ClassVar[str] = "deterministic fake calculation (demos, tests)"
    parameters: ClassVar[tuple[EngineParam, ...]] = (
        EngineParam("seed", 0, "random seed; same seed and structure give the same numbers"),
        EngineParam("duration_s", 2.0, "total time spent sleeping across the steps", "s"),
        EngineParam("kind", "dft", "shape of the result", choices=("dft", "md")),
        EngineParam("fail", False, "fail on purpose (tests of failure handling)"),
        EngineParam("fail_step", "Analyzing", "step at which to fail", choices=STEPS),
    )
    #: seconds one calculation takes with the default duration_s (orion submit --pack auto)
    estimate_s: ClassVar[float] = 2.0

    def check(self, params: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
        merged = check_known_params(self.name, self.parameters, params)
        duration = merged["duration_s"]
        if isinstance(duration, bool) or not isinstance(duration, int | float) or duration < 0:
            raise UsageError(
                f"mock: duration_s={duration!r} must be a number ≥ 0",
                "write e.g. --param duration_s=2",
            )
        return merged

    def binary_status(self, settings: Mapping[str, Any]) -> tuple[bool, str]:
        return True, "built in"

    def prepare(
        self,
        atoms: Atoms,
        params: Mapping[str, Any],
        workdir: Path,
        settings: Mapping[str, Any],
    ) -> RunSpec:
        write_texts(workdir, self.input_texts(atoms, params, settings))
        return RunSpec()

    def writes_files(self, params: Mapping[str, Any]) -> bool:
        """In memory (a packed task) it writes nothing."""
        return False

    def input_texts(
        self, atoms: Atoms, params: Mapping[str, Any], settings: Mapping[str, Any]
    ) -> dict[str, bytes]:
        """The input file's text (see ``freeze``)."""
        data = {"symbols": atoms.get_chemical_symbols(), "params": dict(params)}
        return {INPUT_FILE: json.dumps(data).encode()}

    def run(self, workdir: Path, params: Mapping[str, Any], report: ProgressFn) -> None:
        data = json.loads((workdir / INPUT_FILE).read_text())
        output = _walk(data["symbols"], params, report)
        (workdir / OUTPUT_FILE).write_text(json.dumps(output))

    def compute(
        self,
        atoms: Atoms,
        params: Mapping[str, Any],
        workdir: Path,
        report: ProgressFn,
        session: Any,
    ) -> Result:
        """The packed task's fast path: the same walk, on a structure in memory."""
        return Result.from_json(_walk(atoms.get_chemical_symbols(), params, report))

    def parse(self, workdir: Path, params: Mapping[str, Any]) -> Result:
        path = workdir / OUTPUT_FILE
        if not path.exists():
            return Result(error=f"mock: {OUTPUT_FILE} missing (the run did not finish)")
        return Result.from_json(json.loads(path.read_text()))


def _walk(symbols: list[str], params: Mapping[str, Any], report: ProgressFn) -> dict[str, Any]:
    """Walk the steps, sleeping and reporting; fail where asked; return the fake result."""
    pause_s = float(params["duration_s"]) / len(STEPS)
    for index, step in enumerate(STEPS):
        report(step, 100.0 * index / len(STEPS))
        if params["fail"] and step == params["fail_step"]:
            raise RuntimeError(f"mock engine failed at step {step} (fail=true)")
        time.sleep(pause_s)
    return fake_result(symbols, int(params["seed"]), params["kind"])


def fake_result(symbols: list[str], seed: int, kind: str) -> dict[str, Any]:
    """Make plausible numbers from the seed and the composition only.

    >>> a = fake_result(["Cu", "Cu"], 1, "dft"); b = fake_result(["Cu", "Cu"], 1, "dft")
    >>> a == b, len(a["forces_ev_per_a"]), a["energy_ev"] < 0
    (True, 2, True)
    """
    rng = random.Random(f"{seed}:{','.join(symbols)}:{kind}")
    natoms = len(symbols)
    energy_ev = sum(-3.0 - (sum(map(ord, s)) % 7) * 0.5 for s in symbols) + rng.gauss(0, 0.01)
    forces = [[round(rng.gauss(0, 0.02), 6) for _ in range(3)] for _ in range(natoms)]
    extras: dict[str, Any] = {"engine": "mock", "seed": seed, "kind": kind}
    if kind == "md":
        extras["temperature_k"] = [round(300 + rng.gauss(0, 5), 2) for _ in range(10)]
    else:
        extras["scf_steps"] = rng.randint(8, 20)
    return {
        "energy_ev": round(energy_ev, 6),
        "forces_ev_per_a": forces,
        "stress_ev_per_a3": [round(rng.gauss(0, 1e-3), 8) for _ in range(6)],
        "converged": True,
        "extras": extras,
    }
