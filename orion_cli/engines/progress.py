"""Progress read from an engine's own output while it runs (pure: text in, progress out).

The in-job runner feeds each new chunk of the output file to a tracker and writes a
``progress`` event when the step text changes. QE: SCF iteration and estimated accuracy,
ionic step of ``ion_steps``, "convergence has been achieved". LAMMPS: thermo step of the
run's total.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

#: progress_pct before the engine says anything, and the most a running engine reports
START_PCT, END_PCT = 5.0, 95.0


class LineTracker:
    """Split fed chunks into whole lines (a chunk may end mid-line)."""

    file_name = ""

    def __init__(self) -> None:
        self._partial = ""

    def feed(self, chunk: str) -> tuple[float, str] | None:
        """Read ``chunk``; return (progress_pct, step) after it, or None if nothing is known."""
        text = self._partial + chunk
        lines = text.split("\n")
        self._partial = lines.pop()
        for line in lines:
            self.line(line)
        return self.state()

    def line(self, line: str) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def state(self) -> tuple[float, str] | None:  # pragma: no cover - overridden
        raise NotImplementedError


_QE_ITERATION = re.compile(r"^\s*iteration #\s*(\d+)")
_QE_ACCURACY = re.compile(r"^\s*estimated scf accuracy\s*<\s*([0-9.Ee+-]+)\s*Ry")
_QE_CONVERGED = re.compile(r"^\s*convergence has been achieved in\s+(\d+)\s+iterations")
_QE_RELAX_DONE = re.compile(
    r"End of (BFGS Geometry Optimization|molecular dynamics)|"
    r"bfgs converged"
)


class QeProgress(LineTracker):
    r"""Follow pw.x's output.

    >>> t = QeProgress({"calculation": "scf", "conv_thr_ry": 1e-8})
    >>> t.feed("     iteration #  1     ecut=    30.00 Ry\n"
    ...        "     estimated scf accuracy    <       0.01 Ry\n")
    (5.0, 'SCF iteration 1, accuracy 1.0e-02 Ry')
    >>> t.feed("     iteration #  4\n     estimated scf accuracy    <   1.0E-05 Ry\n")
    (50.0, 'SCF iteration 4, accuracy 1.0e-05 Ry')
    >>> t.feed("     iteration #  5\n")
    (50.0, 'SCF iteration 5, accuracy 1.0e-05 Ry after 4')
    >>> t.feed("     convergence has been achieved in   7 iterations\n")
    (95.0, 'SCF converged in 7 iterations')
    """

    file_name = "pw.out"

    def __init__(self, params: Mapping[str, Any]) -> None:
        super().__init__()
        self.relax = params.get("calculation", "scf") != "scf"
        self.ion_steps = int(params.get("ion_steps") or 50)
        self.conv_thr_ry = float(params.get("conv_thr_ry") or 1e-6)
        self.iteration = 0
        self.accuracy_ry: float | None = None  # of the current iteration
        self.last_accuracy_ry: float | None = None
        self.last_accuracy_iteration = 0
        self.first_accuracy_ry: float | None = None
        self.scf_done = 0  # SCF cycles converged (one per ionic step)
        self.converged_in: int | None = None
        self.relax_done = False

    def line(self, line: str) -> None:
        if m := _QE_ITERATION.match(line):
            if self.converged_in is not None:  # a new SCF cycle: the next ionic step
                self.converged_in, self.first_accuracy_ry = None, None
            self.iteration = int(m[1])
            self.accuracy_ry = None  # this iteration's comes a few lines later
        elif m := _QE_ACCURACY.match(line):
            try:
                value = float(m[1])
            except ValueError:
                return
            if math.isfinite(value) and value > 0:
                self.accuracy_ry = self.last_accuracy_ry = value
                self.last_accuracy_iteration = self.iteration
                self.first_accuracy_ry = self.first_accuracy_ry or value
        elif m := _QE_CONVERGED.match(line):
            self.scf_done += 1
            self.converged_in = int(m[1])
        elif _QE_RELAX_DONE.search(line):
            self.relax_done = True

    def _scf_fraction(self) -> float:
        """How far the SCF is, from its first accuracy to conv_thr on a log scale."""
        if self.converged_in is not None:
            return 1.0
        first, now = self.first_accuracy_ry, self.last_accuracy_ry
        if not first or not now or first <= self.conv_thr_ry:
            return 0.0
        done = math.log10(first / now) / math.log10(first / self.conv_thr_ry)
        return min(max(done, 0.0), 1.0)

    def state(self) -> tuple[float, str] | None:
        if not self.iteration:
            return None
        if self.converged_in is not None:
            scf = f"SCF converged in {self.converged_in} iterations"
        else:
            scf = f"SCF iteration {self.iteration}"
            if self.accuracy_ry:
                scf += f", accuracy {self.accuracy_ry:.1e} Ry"
            elif self.last_accuracy_ry and self.first_accuracy_ry:  # pw.x prints it later
                scf += (
                    f", accuracy {self.last_accuracy_ry:.1e} Ry after "
                    f"{self.last_accuracy_iteration}"
                )
        if not self.relax:
            return START_PCT + (END_PCT - START_PCT) * self._scf_fraction(), scf
        if self.relax_done:
            return END_PCT, f"relaxation done after {self.scf_done} ionic steps"
        if self.converged_in is not None:
            step, done = self.scf_done, float(self.scf_done)
        else:
            step, done = self.scf_done + 1, self.scf_done + self._scf_fraction()
        fraction = min(done / self.ion_steps, 1.0)
        return (
            START_PCT + (END_PCT - START_PCT) * fraction,
            f"ionic step {step} of at most {self.ion_steps}: {scf}",
        )


class LammpsProgress(LineTracker):
    r"""Follow LAMMPS's thermo table in log.lammps.

    >>> t = LammpsProgress({"task": "md", "steps": 200})
    >>> t.feed("Step PotEng KinEng\n         0   -10.0  1.0\n       100  -10.1  1.1\n")
    (50.0, 'step 100 of 200')
    """

    file_name = "log.lammps"

    def __init__(self, params: Mapping[str, Any]) -> None:
        super().__init__()
        task = params.get("task", "energy")
        self.total = (
            int(params.get("steps") or 0)
            if task == "md"
            else int(params.get("max_iterations") or 0)
            if task == "minimize"
            else 0
        )
        self.word = "iteration" if task == "minimize" else "step"
        self.in_block = False
        self.step: int | None = None

    def line(self, line: str) -> None:
        words = line.split()
        if words[:1] == ["Step"]:
            self.in_block = True
        elif line.startswith("Loop time"):
            self.in_block = False
        elif self.in_block and words and words[0].isdigit():
            self.step = int(words[0])

    def state(self) -> tuple[float, str] | None:
        if self.step is None:
            return None
        if self.total <= 0:
            return START_PCT, f"{self.word} {self.step}"
        fraction = min(self.step / self.total, 1.0)
        return (
            START_PCT + (END_PCT - START_PCT) * fraction,
            f"{self.word} {self.step} of {self.total}",
        )


TRACKERS: dict[str, type[QeProgress] | type[LammpsProgress]] = {
    "qe": QeProgress,
    "lammps": LammpsProgress,
}


def tracker_for(engine: str, params: Mapping[str, Any]) -> QeProgress | LammpsProgress | None:
    """The progress tracker for ``engine``'s output, or None when it has none."""
    kind = TRACKERS.get(engine)
    return kind(params) if kind else None
