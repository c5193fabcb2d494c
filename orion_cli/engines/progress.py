"""Progress read from an engine's own output while it runs (pure: text in, progress out).

The in-job runner feeds each new chunk of the output file to a tracker and writes a
``progress`` event when the step text changes. QE: SCF iteration and estimated accuracy,
ionic step of ``ion_steps``, "convergence has been achieved". LAMMPS: thermo step of the
run's total. VASP: OSZICAR's electronic steps (of NELM) with their energy change dE, and
its ionic steps (of NSW).
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


#: an electronic step: "DAV:   5    -0.548546701358E+03   -0.83356E+00 ..." (N, E, dE first;
#: the algorithm is DAV, RMM, CG, SDA, ...; later columns may run into each other)
_VASP_ELECTRONIC = re.compile(r"^\s*([A-Z]{2,3})\s*:\s*(\d+)\s+(\S+)\s+(\S+)")
#: the end of an ionic step: "   1 F= -.52636024E+03 E0= -.52636024E+03  d E =-.526360E+03"
#: (molecular dynamics: "   1 T=   300. E= ... F= ... E0= ...")
_VASP_IONIC = re.compile(r"^\s*(\d+)\s+(?:T=.*?)?F=\s*(\S+)\s+E0=\s*(\S+)")


def _number(text: str) -> float | None:
    """A finite float, or None (VASP prints ``*****`` when a field overflows)."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


class VaspProgress(LineTracker):
    r"""Follow VASP's OSZICAR: electronic steps of NELM with dE, ionic steps of NSW.

    >>> t = VaspProgress({"calculation": "relax", "ion_steps": 10, "electron_maxstep": 60,
    ...                   "ediff_ev": 1e-6})
    >>> t.feed("DAV:   1     0.450724605593E+04    0.45072E+04   -0.17777E+05 16576\n")
    (5.0, 'ionic step 1 of at most 10: electronic step 1 of at most 60, dE 4.5e+03 eV')
    >>> t.feed("RMM:  18    -0.526360235093E+03   -0.10063E-05   -0.36187E-06 10717\n"
    ...        "   1 F= -.52636024E+03 E0= -.52636024E+03  d E =-.526360E+03  mag= 0.0000\n")
    (14.0, 'ionic step 1 of at most 10 done after 18 electronic steps, E0 -526.36024 eV')
    """

    file_name = "OSZICAR"

    def __init__(self, params: Mapping[str, Any]) -> None:
        super().__init__()
        self.relax = params.get("calculation", "scf") != "scf"
        self.ion_steps = int(params.get("ion_steps") or 50)
        self.electron_maxstep = int(params.get("electron_maxstep") or 60)
        self.ediff_ev = float(params.get("ediff_ev") or 1e-4)
        self.electronic = 0  # the current electronic step (0: none yet in this ionic step)
        self.delta_ev: float | None = None
        self.first_delta_ev: float | None = None
        self.ionic_done = 0
        self.ionic_electronic = 0  # electronic steps of the last ionic step done
        self.scf_best = 0.0
        self.e0_ev: float | None = None

    def line(self, line: str) -> None:
        if m := _VASP_ELECTRONIC.match(line):
            if self.electronic == 0 or int(m[2]) < self.electronic:
                self.first_delta_ev, self.scf_best = None, 0.0  # a new ionic step's SCF
            self.electronic = int(m[2])
            self.delta_ev = _number(m[4])
            if self.first_delta_ev is None and self.delta_ev:
                self.first_delta_ev = abs(self.delta_ev)
        elif m := _VASP_IONIC.match(line):
            self.ionic_done = int(m[1])
            self.ionic_electronic, self.electronic = self.electronic, 0
            self.e0_ev = _number(m[3])

    def _scf_fraction(self) -> float:
        """How far the SCF is: |dE| from its first value down to EDIFF, on a log scale
        (the furthest it got in this SCF: dE jumps up and down from step to step)."""
        first, now = self.first_delta_ev, self.delta_ev
        if not first or not now or first <= self.ediff_ev:
            return self.scf_best
        done = math.log10(first / abs(now)) / math.log10(first / self.ediff_ev)
        self.scf_best = max(self.scf_best, min(max(done, 0.0), 1.0))
        return self.scf_best

    def state(self) -> tuple[float, str] | None:
        if self.electronic:
            scf = f"electronic step {self.electronic} of at most {self.electron_maxstep}"
            if self.delta_ev is not None:
                scf += f", dE {self.delta_ev:.1e} eV"
            if not self.relax:
                return START_PCT + (END_PCT - START_PCT) * self._scf_fraction(), scf
            step = self.ionic_done + 1
            fraction = min((self.ionic_done + self._scf_fraction()) / self.ion_steps, 1.0)
            return (
                START_PCT + (END_PCT - START_PCT) * fraction,
                f"ionic step {step} of at most {self.ion_steps}: {scf}",
            )
        if not self.ionic_done:
            return None
        energy = "" if self.e0_ev is None else f", E0 {self.e0_ev:.5f} eV"
        scf = f"after {self.ionic_electronic} electronic steps{energy}"
        if self.ionic_electronic >= self.electron_maxstep:
            scf += f" (NELM = {self.electron_maxstep} reached: check convergence)"
        if not self.relax:
            return END_PCT, f"SCF done {scf}"
        fraction = min(self.ionic_done / self.ion_steps, 1.0)
        return (
            START_PCT + (END_PCT - START_PCT) * fraction,
            f"ionic step {self.ionic_done} of at most {self.ion_steps} done {scf}",
        )


Tracker = QeProgress | LammpsProgress | VaspProgress
TRACKERS: dict[str, type[Tracker]] = {
    "qe": QeProgress,
    "lammps": LammpsProgress,
    "vasp": VaspProgress,
}


def tracker_for(engine: str, params: Mapping[str, Any]) -> Tracker | None:
    """The progress tracker for ``engine``'s output, or None when it has none."""
    kind = TRACKERS.get(engine)
    return kind(params) if kind else None
