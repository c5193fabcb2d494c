"""The packed task's fast path (in-process engines on structures in memory), GPU slots, and
how ``--pack auto`` / ``--pack-tasks`` spread a submission over array tasks. The failure
cases of packing (kill -9, soft limit, cancel) run through the fast path too: the mock
engine computes in memory (test_packing.py, test_timeouts_slurm.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from orion_cli.taskfile import JobInputs, task_line, write_packs
from tests.helpers import job_lines, job_result, orion, orion_json, poll_until_final


def _frames(n: int) -> list[object]:
    from ase.build import bulk

    frames = []
    for seed in range(n):
        atoms = bulk("Cu", cubic=True)
        atoms.rattle(0.05, seed=seed)
        frames.append(atoms)
    return frames


def _write_pack(
    root: Path, engine: str, params: dict[str, object], frames: list[object]
) -> list[object]:
    """A tasks file and a one-task packs file, as orion submit writes them; return the
    structures as the jobs get them (extended XYZ keeps 8 decimals)."""
    import io

    from ase.io import read, write

    from orion_cli.engines.registry import get_engine

    checked = get_engine(engine).check(params, {})
    lines = []
    for n, atoms in enumerate(frames):
        text = io.StringIO()
        write(text, atoms, format="extxyz")
        lines.append(task_line(root / "jobs" / str(n), JobInputs(engine, checked, text.getvalue())))
    (root / "tasks.jsonl").write_text("".join(lines))
    write_packs(root / "packs-0.jsonl", [list(range(len(frames)))])
    return [read(io.StringIO(json.loads(line)["structure"]), format="extxyz") for line in lines]


def _run_pack(root: Path, umask: int = -1, **env: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "orion_cli.jobrun", "--pack"]
    return subprocess.run(
        [*command, str(root / "tasks.jsonl"), str(root / "packs-0.jsonl"), "0"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
        umask=umask,
    )


def _events(workdir: Path) -> list[dict[str, Any]]:
    """A job's lines: in the task's stream (beside the tasks file) and its events.jsonl."""
    return job_lines(workdir, workdir.parent.parent)


def _result(workdir: Path) -> Any:
    return job_result(workdir, workdir.parent.parent)


def test_fast_path_keeps_events_and_result_only_and_matches_ase(tmp_path: Path) -> None:
    from ase.calculators.emt import EMT

    frames = _write_pack(tmp_path, "emt", {}, _frames(3))
    _run_pack(tmp_path)
    for n, atoms in enumerate(frames):
        workdir = tmp_path / "jobs" / str(n)
        assert not workdir.exists()  # its lines are in the task's stream: no directory
        assert [e["event"] for e in _events(workdir)] == ["started", "result", "finished"]
        result = _result(workdir)
        atoms.calc = EMT()  # type: ignore[attr-defined]
        assert result["attempt"] == 1 and result["error"] is None
        assert result["energy_ev"] == pytest.approx(atoms.get_potential_energy(), abs=1e-9)  # type: ignore[attr-defined]
        assert result["forces_ev_per_a"] == pytest.approx(atoms.get_forces(), abs=1e-8)  # type: ignore[attr-defined]


def test_a_packed_job_directory_is_private_whatever_the_umask(tmp_path: Path) -> None:
    """Made on the node under umask 0, a packed job's directory (a relaxation keeps its
    trajectory there) and the task's stream are still the owner's alone (as an array job's
    or a single job's): nobody else can plant a file in them or a line in the stream."""
    _write_pack(tmp_path, "emt", {"relax": True}, _frames(2))
    _run_pack(tmp_path, umask=0)
    for n in range(2):
        workdir = tmp_path / "jobs" / str(n)
        assert (workdir.stat().st_mode & 0o777, _result(workdir)["error"]) == (0o700, None)
    assert (tmp_path / "stream-0-0.jsonl").stat().st_mode & 0o777 == 0o600


def test_fast_path_relaxation_keeps_its_trajectory_and_final_structure(tmp_path: Path) -> None:
    from ase.calculators.emt import EMT
    from ase.optimize import BFGS

    frames = _write_pack(tmp_path, "emt", {"relax": True}, _frames(1))
    _run_pack(tmp_path)
    workdir = tmp_path / "jobs" / "0"
    assert {"emt-relax.traj", "emt-relax.log"} <= {p.name for p in workdir.iterdir()}
    result = _result(workdir)
    reference = frames[0]
    reference.calc = EMT()  # type: ignore[attr-defined]
    BFGS(reference, logfile=None).run(fmax=0.05, steps=200)  # type: ignore[arg-type]
    assert result["converged"] and result["final_structure"].startswith("4\n")
    assert result["energy_ev"] == pytest.approx(reference.get_potential_energy(), abs=1e-6)  # type: ignore[attr-defined]


def test_fast_path_failure_is_the_jobs_error_and_the_pack_goes_on(tmp_path: Path) -> None:
    frames = _frames(2)
    frames[0].symbols[0] = "U"  # type: ignore[attr-defined] - EMT has no uranium
    _write_pack(tmp_path, "emt", {}, frames)
    run = _run_pack(tmp_path)
    failed = _result(tmp_path / "jobs" / "0")
    assert "U" in failed["error"]
    assert "job 0 failed:\nTraceback" in run.stderr  # the task's output: orion logs
    assert not (tmp_path / "jobs" / "0").exists()  # its log is the task's output
    assert _events(tmp_path / "jobs" / "0")[-1]["event"] == "failed"
    assert _result(tmp_path / "jobs" / "1")["error"] is None


def test_ase_session_reuses_one_calculator_with_right_results(tmp_path: Path) -> None:
    from ase.calculators.lj import LennardJones

    from orion_cli.engines.ase_calculator import AseEngine

    engine = AseEngine()
    params = engine.check({"calculator": "ase.calculators.lj.LennardJones"}, {})
    frames = _frames(2)
    with engine.session() as session:
        results = [engine.compute(a, params, tmp_path, lambda s, p: None, session) for a in frames]
        assert len(session) == 1  # one calculator for both structures
        assert frames[0].calc is frames[1].calc  # type: ignore[attr-defined]
    for atoms, result in zip(_frames(2), results, strict=True):
        atoms.calc = LennardJones()  # type: ignore[attr-defined]
        assert result.energy_ev == pytest.approx(atoms.get_potential_energy(), abs=1e-9)  # type: ignore[attr-defined]


def test_gpu_slots_run_side_by_side_one_gpu_each(tmp_path: Path) -> None:
    """No GPU here: what each slot's environment says is what the test checks."""
    _write_pack(tmp_path, "mock", {"duration_s": 0.0}, _frames(5))
    run = _run_pack(tmp_path, ORION_PACK_SLOTS="2", CUDA_VISIBLE_DEVICES="3,5")
    seen = []
    for n in range(5):
        events = _events(tmp_path / "jobs" / str(n))
        assert [e["event"] for e in events] == ["started", "result", "finished"]  # ran once
        seen.append((events[0]["slot"], events[0]["gpu"]))
    assert seen == [(0, "3"), (1, "5"), (0, "3"), (1, "5"), (0, "3")]
    assert "slot 0: ran 3 of 3" in run.stderr and "slot 1: ran 2 of 2" in run.stderr


def test_gpus_make_slots_in_the_packed_script(orion_home: Path, tmp_path: Path) -> None:
    from ase.io import write

    write(tmp_path / "many.extxyz", _frames(4), format="extxyz")
    args = ["submit", str(tmp_path / "many.extxyz"), "-e", "emt", "--scheduler", "local"]
    packed = orion(*args, "--pack", "2", "--gpus", "2", "--dry-run").stdout
    assert "export ORION_PACK_SLOTS=2" in packed
    assert "ORION_PACK_SLOTS" not in orion(*args, "--gpus", "2", "--dry-run").stdout


def test_pack_auto_spreads_over_idle_cores_or_pack_tasks(orion_home: Path, tmp_path: Path) -> None:
    from ase.io import write

    write(tmp_path / "many.extxyz", _frames(10), format="extxyz")
    args = ["submit", str(tmp_path / "many.extxyz"), "-e", "emt", "--scheduler", "local"]
    cores = min(os.cpu_count() or 1, 10)  # the local backend's idle CPUs
    tasks = -(-10 // -(-10 // cores))
    assert (
        f"one array of {tasks} tasks (packed)" in orion(*args, "--pack", "auto", "--dry-run").stdout
    )
    assert "one array of 3 tasks (packed)" in orion(*args, "--pack-tasks", "3", "--dry-run").stdout
    wrong = orion(*args, "--pack", "5", "--pack-tasks", "2", expect=2).output
    assert "give one of them" in wrong and len(wrong.strip().splitlines()) == 1


def test_packed_emt_through_orion_completes_with_ase_energies(
    orion_home: Path, tmp_path: Path
) -> None:
    from ase.calculators.emt import EMT
    from ase.io import read, write

    write(tmp_path / "many.extxyz", _frames(6), format="extxyz")
    frames = read(tmp_path / "many.extxyz", ":")  # as submitted (8 decimals)
    out = orion_json(
        "submit",
        str(tmp_path / "many.extxyz"),
        "-e",
        "emt",
        "--pack-tasks",
        "2",
        "--scheduler",
        "local",
    )
    jobs = poll_until_final(out["ids"])
    assert len({job["scheduler_job_id"] for job in jobs}) == 2
    for job, atoms in zip(jobs, frames, strict=True):
        atoms.calc = EMT()  # type: ignore[attr-defined]
        assert job["status"] == "completed"
        assert job["result"]["energy_ev"] == pytest.approx(atoms.get_potential_energy(), abs=1e-9)  # type: ignore[attr-defined]
    logs = orion("logs", str(out["ids"][4])).output  # line 4 ran in packed task 1
    assert "task-1.out" in logs and "packed task 1: ran 3 of 3 calculations" in logs


def test_poll_counts_a_packed_result_while_its_task_runs(
    database_url: str, orion_home: Path, tmp_path: Path
) -> None:
    import signal

    from ase.io import write

    write(tmp_path / "many.extxyz", _frames(3), format="extxyz")
    ids = orion_json(
        "submit", str(tmp_path / "many.extxyz"), "-e", "mock", "-p", "duration_s=1.5",
        "--pack", "3", "--scheduler", "local",
    )["ids"]  # fmt: skip
    first = Path(orion_json("show", str(ids[0]))["workdir"])
    deadline = time.monotonic() + 120
    while job_result(first) is None:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    runner = subprocess.run(
        ["pgrep", "-f", f"jobrun --pack {orion_home}"], capture_output=True, text=True
    ).stdout.split()
    assert len(runner) == 1, runner
    os.kill(int(runner[0]), signal.SIGSTOP)  # the task runs on, frozen while we look
    try:
        orion("poll")
        jobs = [orion_json("show", str(job_id)) for job_id in ids]
    finally:
        os.kill(int(runner[0]), signal.SIGCONT)
    assert jobs[0]["status"] == "completed" and jobs[0]["result"]["energy_ev"] < 0
    assert jobs[2]["status"] == "queued"  # its task still runs (on job 2): not started
    assert job_result(jobs[2]["workdir"]) is None
    final = poll_until_final(ids)
    assert [job["status"] for job in final] == ["completed"] * 3
    assert [e["to"] for e in final[0]["events"]].count("completed") == 1  # counted once


@pytest.mark.slurm
def test_wait_on_a_pack_ends_with_its_results_not_the_query_interval(
    orion_home: Path, tmp_path: Path, slurm: None, monkeypatch: pytest.MonkeyPatch
) -> None:

    from ase.io import write

    from orion_cli.config import load_settings
    from orion_cli.services.queries.waiting import wait_for

    write(tmp_path / "many.extxyz", _frames(4), format="extxyz")
    monkeypatch.setenv("ORION_MIN_QUERY_INTERVAL_S", "600")
    ids = orion_json(
        "submit", str(tmp_path / "many.extxyz"), "-e", "mock", "-p", "duration_s=0.2",
        "--pack", "4", "--scheduler", "slurm",
    )["ids"]  # fmt: skip
    start = time.monotonic()
    outcome = wait_for(load_settings(), ids, timeout_s=300)
    assert outcome.all_completed, outcome.states
    assert outcome.scheduler_calls <= 1  # squeue at most once in the 600 s interval
    assert time.monotonic() - start < 300


def test_submit_wait_on_many_jobs_ends_with_the_counts(orion_home: Path, tmp_path: Path) -> None:
    from ase.io import write

    write(tmp_path / "many.extxyz", _frames(21), format="extxyz")
    result = orion(
        "submit", str(tmp_path / "many.extxyz"), "-e", "mock", "-p", "duration_s=0",
        "--pack-tasks", "2", "--scheduler", "local", "--wait",
    )  # fmt: skip
    assert result.output.strip().splitlines()[-1] == "21 completed"
    assert "energy_ev" not in result.output  # no job rendered one by one


def test_a_retried_fast_path_job_in_a_pack_runs_its_new_attempt(tmp_path: Path) -> None:
    """A job whose first attempt took the fast path has no job.json: in a pack again at
    attempt 2 (its line says so) its attempt-1 result does not pass for attempt 2's."""
    _write_pack(tmp_path, "emt", {}, _frames(1))
    _run_pack(tmp_path)
    workdir = tmp_path / "jobs" / "0"
    assert _result(workdir)["attempt"] == 1
    line = json.loads((tmp_path / "tasks.jsonl").read_text())
    line["attempt"] = 2
    (tmp_path / "tasks.jsonl").write_text(json.dumps(line) + "\n")
    _run_pack(tmp_path)
    result = _result(workdir)
    assert result["attempt"] == 2 and result["error"] is None
    assert [e["attempt"] for e in _events(workdir) if e["event"] == "started"] == [1, 2]


def test_a_soft_limit_before_the_calculation_starts_stops_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGUSR1 between a calculation's ``started`` event and its start (the first one of a
    task imports ``ase.io`` there, up to seconds) stops that calculation and the pack: the
    signal was recorded with nothing to interrupt yet, and the calculation then ran in full,
    towards the hard limit, before orion would retry it."""
    import signal

    from orion_cli import jobrun

    _write_pack(tmp_path, "mock", {"duration_s": 0}, _frames(2))
    read = jobrun.read_structure

    def read_then_signalled(text: str) -> object:
        os.kill(os.getpid(), signal.SIGUSR1)  # the scheduler's soft limit, mid-read
        return read(text)

    monkeypatch.setattr(jobrun, "read_structure", read_then_signalled)
    saved = signal.getsignal(signal.SIGUSR1)
    try:
        assert jobrun.run_pack(tmp_path / "tasks.jsonl", tmp_path / "packs-0.jsonl", 0) == 0
    finally:
        signal.signal(signal.SIGUSR1, saved)
    first = tmp_path / "jobs" / "0"
    result = _result(first)
    assert result["error"] == "stopped at the soft time limit (SIGUSR1 from the scheduler)"
    assert [e["event"] for e in _events(first)] == ["started", "soft_limit", "result", "failed"]
    assert not (tmp_path / "jobs" / "1").exists()  # the pack stopped: left for orion poll


def _ase_reads(text: str) -> object:
    import io

    from ase.io import read

    return read(io.StringIO(text), format="extxyz", index=0)


def test_a_bare_frame_is_read_as_ase_reads_it_without_ase_io() -> None:
    """What ASE writes for a structure alone (and the same by hand: other spacing, tabs,
    exponents) gives the atoms ASE's reader gives, to the last bit."""
    import io

    import numpy as np
    from ase import Atoms
    from ase.io import write

    from orion_cli.jobrun import read_structure
    from orion_cli.taskfile import bare_atoms

    rng = np.random.default_rng(7)
    texts = []
    for n in range(40):
        symbols = rng.choice(["H", "C", "O", "Cu", "Pt", "Au", "X"], size=1 + n % 5)
        cell = rng.normal(size=(3, 3)) * 3 + np.eye(3) * 5
        atoms = Atoms(symbols, positions=rng.normal(size=(len(symbols), 3)) * 4, cell=cell)
        atoms.pbc = [bool(b) for b in rng.integers(0, 2, size=3)]
        text = io.StringIO()
        write(text, atoms, format="extxyz")
        texts.append(text.getvalue())
    texts.append(
        '2\n  pbc="T F T"   Properties=species:S:1:pos:R:3 Lattice="4 0 0 0 4.5 0 -1e0 0 6.25E+0"\n'
        "Cu\t0.5  -0.25 1e-3\n  O 1.  .5 -2.5e+1  \n"
    )
    for text in texts:
        mine, theirs = bare_atoms(text), _ase_reads(text)
        assert mine is not None, text
        assert mine.get_chemical_symbols() == theirs.get_chemical_symbols()  # type: ignore[attr-defined]
        assert np.array_equal(mine.positions, theirs.positions)  # type: ignore[attr-defined]
        assert np.array_equal(mine.cell[:], theirs.cell[:])  # type: ignore[attr-defined]
        assert mine.pbc.tolist() == theirs.pbc.tolist()  # type: ignore[attr-defined]
        assert (mine.info, sorted(mine.arrays)) == (theirs.info, sorted(theirs.arrays))  # type: ignore[attr-defined]
        assert read_structure(text).positions.tolist() == mine.positions.tolist()


@pytest.mark.parametrize(
    "text",
    [
        '1\nLattice="3 0 0 0 3 0 0 0 3" Properties=species:S:1:pos:R:3 pbc="T T T" energy=-1.5\n'
        "Cu 0 0 0\n",  # a value ASE keeps in info (and as the energy of a calculator)
        '1\nLattice="3 0 0 0 3 0 0 0 3" Properties=species:S:1:pos:R:3:initial_magmoms:R:1 '
        'pbc="T T T"\nFe 0 0 0 2.0\n',
        '1\nProperties=species:S:1:pos:R:3 pbc="F F F"\nCu 0 0 0\n',  # no Lattice
        '1\nLattice="3 0 0 0 3 0 0 0 3" Properties=species:S:1:pos:R:3 pbc="T T T"\ncu 0 0 0\n',
        '1\nLattice="3 0 0 0 3 0 0 0 3" Properties=species:S:1:pos:R:3 pbc="T T T"\nCu 1_0 0 0\n',
        '1\nLattice="3 0 0 0 3 0 0 0 3" Properties=species:S:1:pos:R:3 pbc="T T T"\nCu 0 0 0\nx\n',
        '1\nLattice="3 0 0 0 3 0 0 0 3" Properties=species:S:1:pos:R:3 pbc=T\nCu 0 0 0\n',
    ],
)
def test_any_other_frame_is_left_to_ase(text: str) -> None:
    from orion_cli.jobrun import read_structure
    from orion_cli.taskfile import bare_atoms

    assert bare_atoms(text) is None
    try:
        theirs = _ase_reads(text)
    except Exception:  # noqa: BLE001 - ASE refuses it: so does the runner, with ASE's words
        with pytest.raises(Exception):  # noqa: B017
            read_structure(text)
        return
    mine = read_structure(text)
    assert mine.get_chemical_symbols() == theirs.get_chemical_symbols()  # type: ignore[attr-defined]
    assert mine.info == theirs.info  # type: ignore[attr-defined]


def test_a_pack_of_bare_frames_never_imports_ase_io(tmp_path: Path) -> None:
    """The import ase.io would cost every packed EMT task is not made (SciPy's integrate)."""
    _write_pack(tmp_path, "emt", {}, _frames(2))
    probe = (
        "import runpy, sys, atexit\n"
        "atexit.register(lambda: print('ASE_IO', 'ase.io' in sys.modules, file=sys.stderr))\n"
        "sys.argv = ['jobrun', '--pack'] + sys.argv[1:]\n"
        "runpy.run_module('orion_cli.jobrun', run_name='__main__')\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            probe,
            str(tmp_path / "tasks.jsonl"),
            str(tmp_path / "packs-0.jsonl"),
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "ASE_IO False" in done.stderr, done.stderr
    assert _result(tmp_path / "jobs" / "1")["error"] is None


def test_a_long_pause_of_a_pack_wait_ends_when_every_result_is_there(tmp_path: Path) -> None:
    """Between two rounds the waiter looks every 0.5 s for the packed jobs' results: once
    all are written (the tasks are done) the pause ends, however long it was to be. A
    result is a file, a last event line that ends the attempt, or an end in the stream."""
    from orion_cli.jobdir import append_event, event_record
    from orion_cli.services.queries.waiting import rest
    from orion_cli.taskstream import TaskStream

    dirs = [tmp_path / str(n) for n in range(3)]
    for workdir in dirs:
        workdir.mkdir()
        append_event(workdir, "started", attempt=1)
    array = tmp_path / "arrays" / "1"
    array.mkdir(parents=True)
    stream = TaskStream(array / "stream-0-0.jsonl")
    stream.write("7", [event_record("started", attempt=1)])
    jobs = [(str(path), None) for path in dirs] + [(str(tmp_path / "7"), str(array))]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 3 and not (dirs[0] / "result.json").exists():  # in the 3rd step
            (dirs[0] / "result.json").write_text("{}")
            append_event(dirs[1], "failed", attempt=1, error="x" * 5000)
            append_event(dirs[2], "finished", attempt=1)
            stream.write("7", [event_record("finished", attempt=1)])

    rest(4.0, jobs, sleep)
    assert slept == [0.5, 0.5, 0.5]
    slept.clear()
    append_event(dirs[1], "started", attempt=2)  # one started again: not ended
    rest(2.0, jobs, sleep)
    assert slept == [0.5, 0.5, 0.5, 0.5]  # one still running: the whole pause
    slept.clear()
    rest(4.0, [], sleep)
    assert slept == [4.0]  # no packed job left: one sleep


def test_bare_atoms_are_written_as_ase_writes_them_without_ase_io() -> None:
    """The frozen input text of an emt/ase/ML job is what ``ase.io.write`` gives: written by
    hand for bare atoms (no ``import ase.io`` at submit), the same characters; anything
    else (magnetic moments, info, a constraint, no cell) is left to ASE."""
    import io

    import numpy as np
    from ase import Atoms
    from ase.build import bulk, molecule
    from ase.constraints import FixAtoms
    from ase.io import write

    from orion_cli.taskfile import bare_atoms, bare_text

    def theirs(atoms: Atoms) -> str:
        text = io.StringIO()
        write(text, atoms, format="extxyz")
        return text.getvalue()

    rng = np.random.default_rng(11)
    structures = [bulk("Cu", cubic=True), bulk("Si", "diamond", a=5.43), bulk("Mg")]
    for n in range(60):
        symbols = rng.choice(["H", "C", "O", "Cu", "Pt", "Au", "Og", "X"], size=1 + n % 6)
        cell = rng.normal(size=(3, 3)) * 3 + np.eye(3) * 5
        scale = 10.0 ** rng.integers(-3, 5)
        atoms = Atoms(symbols, positions=rng.normal(size=(len(symbols), 3)) * scale, cell=cell)
        atoms.pbc = [bool(b) for b in rng.integers(0, 2, size=3)]
        structures.append(atoms)
    structures.append(Atoms("H2", positions=[[-0.0, 0, 1e-12], [0, -1e-9, 0]], cell=[3, 4, 5]))
    rattled = bulk("Cu", cubic=True)
    rattled.rattle(0.05, seed=2)
    structures.append(rattled)
    for atoms in structures:
        assert bare_text(atoms) == theirs(atoms), atoms
        read_back = bare_atoms(theirs(atoms))  # and what a packed task reads back
        assert read_back is not None and bare_text(read_back) == theirs(read_back)
    magnetic = bulk("Fe")
    magnetic.set_initial_magnetic_moments([2.0])
    fixed = bulk("Cu", cubic=True)
    fixed.set_constraint(FixAtoms(indices=[0]))
    informed = bulk("Cu")
    informed.info["energy"] = -1.0
    for other in (magnetic, fixed, informed, molecule("H2O")):
        assert bare_text(other) is None


def test_staging_bare_frames_imports_neither_ase_io_nor_scipy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A packing submission's frames, bare as ASE writes them, are read, checked and frozen
    without ``ase.io`` (0.46 s to import) or SciPy's spatial (0.31 s; small cells need no
    tree), with the same frozen inputs as through ASE."""
    from ase.io import write

    write(tmp_path / "many.extxyz", _frames(80), format="extxyz")
    script = f"""
import sys
from pathlib import Path
from orion_cli.engines.registry import get_engine
from orion_cli.services.submission.inputs import StructureInput, split_frames
from orion_cli.services.submission.staging import StageTask, stage_paths
task = StageTask("emt", get_engine("emt").check({{}}, {{}}), {{}}, "", 1)
parts = split_frames(StructureInput(Path({str(tmp_path / "many.extxyz")!r}), frames=80), 2)
staged = [s for part in parts for s in stage_paths(task, [part])]
print(len(staged), "ase.io" in sys.modules, "scipy" in sys.modules)
print(" ".join(s.inputs.frozen["key"] for s in staged))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    counts, keys = done.stdout.splitlines()
    assert counts == "80 False False", done.stderr
    from ase.io import read

    from orion_cli.engines import _ase_run
    from orion_cli.engines.registry import get_engine
    from orion_cli.frozen import freeze

    monkeypatch.setattr(_ase_run, "bare_text", lambda atoms: None)  # ASE writes the inputs
    engine = get_engine("emt")
    frames = read(tmp_path / "many.extxyz", ":")
    by_ase = [freeze(engine, atoms, engine.check({}, {}), {}).key for atoms in frames]
    assert keys.split() == by_ase  # as frozen from ASE's own reading and writing
