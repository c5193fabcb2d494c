"""VASP progress from OSZICAR while VASP runs: electronic step of NELM with dE, ionic step of
NSW, E0 at the end of each ionic step.

VASP is licensed and cannot run here, so the `vasp_std` in the end-to-end test is a stand-in:
a script that writes a real OSZICAR (tests/data/vasp/OSZICAR.relax, from pymatgen's test
files; see tests/data/vasp/README.md) line by line over about two seconds, then leaves ASE's
real vasprun_pstress.xml as its vasprun.xml. Everything else (orion submit, the in-job
runner tailing OSZICAR, orion poll, orion show) is the real thing. The references are read
from the OSZICAR here with regexes of this test's own, not with orion's tracker.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from orion_cli.engines.progress import VaspProgress
from tests.conftest import EXAMPLES
from tests.engines.test_vasp import ase_vasprun, fake_potcar_dir
from tests.helpers import orion_json, poll_until_final

OSZICAR = Path(__file__).resolve().parent.parent / "data" / "vasp" / "OSZICAR.relax"
PARAMS = {"calculation": "relax", "ion_steps": 5, "electron_maxstep": 60, "ediff_ev": 1e-6}


def reference_steps() -> list[dict[str, Any]]:
    """Each ionic step of the OSZICAR: its electronic steps (N, dE) and its E0."""
    steps: list[dict[str, Any]] = [{"electronic": []}]
    for line in OSZICAR.read_text().splitlines():
        words = line.split()
        if len(words) > 3 and words[0] in ("DAV:", "RMM:"):
            steps[-1]["electronic"].append((int(words[1]), float(words[3])))
        elif len(words) > 4 and words[1] == "F=":
            steps[-1].update(number=int(words[0]), e0_ev=float(words[4]))
            steps.append({"electronic": []})
    return steps[:-1]


def check_step(text: str, steps: list[dict[str, Any]]) -> None:
    """A reported step names an ionic step, electronic step and dE that VASP printed."""
    if m := re.fullmatch(
        r"ionic step (\d+) of at most 5: electronic step (\d+) of at most 60, dE (\S+) eV", text
    ):
        electronic = dict(steps[int(m[1]) - 1]["electronic"])
        delta_ev = electronic[int(m[2])]
        assert float(m[3]) == pytest.approx(delta_ev, rel=0.051), (text, delta_ev)
    elif m := re.fullmatch(
        r"ionic step (\d+) of at most 5 done after (\d+) electronic steps, E0 (\S+) eV", text
    ):
        step = steps[int(m[1]) - 1]
        assert int(m[2]) == len(step["electronic"]), text
        assert float(m[3]) == pytest.approx(step["e0_ev"], abs=1e-5), text
    else:
        raise AssertionError(f"unexpected step text: {text!r}")


def test_oszicar_line_by_line_matches_what_vasp_printed() -> None:
    steps = reference_steps()
    assert [s["number"] for s in steps] == [1, 2, 3] and len(steps[0]["electronic"]) == 18
    tracker = VaspProgress(PARAMS)
    seen = []
    for line in OSZICAR.read_text().splitlines(keepends=True):
        state = tracker.feed(line)
        if state is not None:
            check_step(state[1], steps)
            seen.append(state)
    pcts = [pct for pct, _ in seen]
    assert pcts == sorted(pcts) and 5.0 <= pcts[0] and pcts[-1] == pytest.approx(5 + 90 * 3 / 5)
    assert (
        seen[-1][1] == "ionic step 3 of at most 5 done after 8 electronic steps, E0 -526.54171 eV"
    )
    # an SCF: the first ionic step alone, against NELM and EDIFF only
    lines = OSZICAR.read_text().splitlines(keepends=True)
    end = next(i for i, line in enumerate(lines) if " F= " in line)
    scf = VaspProgress({"calculation": "scf", "electron_maxstep": 18, "ediff_ev": 1e-6})
    for line in lines[:end]:
        state = scf.feed(line)
    assert state is not None and state[1] == "electronic step 18 of at most 18, dE -1.0e-06 eV"
    assert 5.0 < state[0] <= 95.0
    assert scf.feed(lines[end]) == (
        95.0,
        "SCF done after 18 electronic steps, E0 -526.36024 eV "
        "(NELM = 18 reached: check convergence)",
    )


def test_a_stale_oszicar_is_not_read_until_vasp_rewrites_it(tmp_path: Path) -> None:
    """A retry starts in the directory of the attempt before: its OSZICAR is not this run's."""
    from orion_cli.jobrun import _Follow

    path = tmp_path / "OSZICAR"
    path.write_text(OSZICAR.read_text())  # the whole earlier attempt
    reported: list[str] = []
    follow = _Follow(path, VaspProgress(PARAMS), lambda step, pct: reported.append(step))
    follow.read()
    assert reported == []
    lines = OSZICAR.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:4]))  # the new run has written its first two steps
    follow.read()
    assert reported == [
        "ionic step 1 of at most 5: electronic step 2 of at most 60, dE -4.4e+03 eV"
    ]


FAKE_VASP = """#!{python}
# A stand-in for vasp_std (VASP is licensed, not installed here): replays a real OSZICAR.
import shutil, sys, time
from pathlib import Path

print(" running on    1 total cores (stand-in for vasp_std)", flush=True)
with open("OSZICAR", "w") as out:
    for line in Path({oszicar!r}).read_text().splitlines(keepends=True):
        out.write(line)
        out.flush()
        time.sleep(0.04)
shutil.copyfile({vasprun!r}, "vasprun.xml")
"""


def test_vasp_progress_while_it_runs(
    orion_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "bin" / "vasp_std"
    fake.parent.mkdir()
    fake.write_text(
        FAKE_VASP.format(python=sys.executable, oszicar=str(OSZICAR), vasprun=str(ase_vasprun()))
    )
    fake.chmod(0o755)
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    monkeypatch.setenv("ORION_PROGRESS_INTERVAL_S", "0.2")
    monkeypatch.setenv("ORION_VASP_BINARY", str(fake))
    monkeypatch.setenv("ORION_VASP_POTCAR_DIR", str(fake_potcar_dir(tmp_path / "potpaw", "Si")))
    params = [f"-p{key}={value}" for key, value in PARAMS.items()]
    job_id = orion_json("submit", str(EXAMPLES / "Si.cif"), "-e", "vasp", *params)["id"]
    (job,) = poll_until_final([job_id], timeout_s=120)
    assert job["status"] == "completed", job["error_message"]
    workdir = Path(job["workdir"])
    assert (workdir / "OSZICAR").read_text() == OSZICAR.read_text()
    events = [json.loads(line) for line in (workdir / "events.jsonl").read_text().splitlines()]
    progress = [e for e in events if e.get("event") == "progress"]
    # the runner's own first and last steps, as for every engine, around OSZICAR's
    assert progress[0]["step"] == f"Running {fake}" and progress[-1]["step"] == "Done"
    progress = progress[1:-1]
    steps = reference_steps()
    for event in progress:
        check_step(event["step"], steps)
    ionic = {int(re.match(r"ionic step (\d+)", e["step"])[1]) for e in progress}  # type: ignore[index]
    assert ionic == {1, 2, 3}, [e["step"] for e in progress]  # read while OSZICAR grew
    assert progress[-1]["step"] == (
        "ionic step 3 of at most 5 done after 8 electronic steps, E0 -526.54171 eV"
    )
    pcts = [e["progress_pct"] for e in progress]
    assert pcts == sorted(pcts)
    assert job["result"]["energy_ev"] is not None  # vasprun.xml parsed as usual
