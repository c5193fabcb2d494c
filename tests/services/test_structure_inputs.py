"""Structures in: engine outputs give their last frame, FILE@INDEX selects, names from info.

The references are ASE's own readers (``ase.io.read(file, index=...)``) on files written by
the real engines (pw.x relax, lmp dump) or by ASE.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.io import read, write

from orion_cli.errors import UsageError
from orion_cli.services.submission import staging
from orion_cli.services.submission.inputs import StructureInput, expand_inputs, read_frames
from orion_cli.services.submission.staging import StageTask, stage_paths
from tests.engines.conftest import require_binary
from tests.helpers import orion


def same_structure(a: Atoms, b: Atoms) -> None:
    assert a.get_chemical_symbols() == b.get_chemical_symbols()
    np.testing.assert_allclose(a.positions, b.positions, atol=1e-6)
    np.testing.assert_allclose(a.cell[:], b.cell[:], atol=1e-6)
    assert list(a.pbc) == list(b.pbc)


@pytest.fixture(scope="module")
def pw_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pw.x relax of a distorted two-atom Si cell (5 ionic steps, ~3 s), run by hand."""
    from orion_cli.engines.qe import QeEngine

    require_binary("pw.x")
    workdir = tmp_path_factory.mktemp("pw-relax")
    atoms = bulk("Si", "diamond", a=5.43)
    atoms.positions[1] += [0.1, 0.05, 0.0]
    engine = QeEngine()
    params = engine.check({"calculation": "relax", "ecutwfc_ry": 15, "kpoints": [2, 2, 2]}, {})
    engine.prepare(atoms, params, workdir, {})
    with open(workdir / "pw.out", "w") as out:
        subprocess.run(
            ["pw.x", "-in", "pw.in"],
            cwd=workdir,
            stdout=out,
            check=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
            timeout=300,
        )
    assert len(read(workdir / "pw.out", index=":")) > 2  # a relaxation: several frames
    return workdir / "pw.out"


@pytest.fixture(scope="module")
def lammps_dump(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short Lennard-Jones MD of fcc Ar in lmp, dumped every 10 steps."""
    require_binary("lmp")
    workdir = tmp_path_factory.mktemp("lmp-md")
    (workdir / "in.md").write_text(
        "units metal\natom_style atomic\nlattice fcc 5.26\nregion box block 0 2 0 2 0 2\n"
        "create_box 1 box\ncreate_atoms 1 box\nmass 1 39.948\n"
        "pair_style lj/cut 8.0\npair_coeff 1 1 0.0104 3.4\n"
        "velocity all create 60.0 4928459\nfix 1 all nve\n"
        "dump d all custom 10 traj.dump id type element x y z\ndump_modify d element Ar\n"
        "run 40\n"
    )
    subprocess.run(
        ["lmp", "-in", "in.md", "-log", "log.lammps"],
        cwd=workdir,
        check=True,
        capture_output=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=300,
    )
    return workdir / "traj.dump"


def submit_held(*args: str) -> tuple[list[dict[str, Any]], str]:
    """Submit held (nothing runs); return the jobs' rows and what was said on stderr."""
    result = orion("submit", *args, "--hold", "--json")
    ids = json.loads(result.stdout)["ids"]
    return [stored_job(job_id) for job_id in ids], result.stderr


def stored_job(job_id: int) -> dict[str, Any]:
    from orion_cli.config import load_settings
    from orion_cli.db.models import Job
    from orion_cli.db.session import session_scope

    with session_scope(load_settings().resolved_database_url) as session:
        job = session.get(Job, job_id)
        assert job is not None
        return {"name": job.name, "source": job.structure_source, "structure": job.input_structure}


def stored_atoms(job: dict[str, Any]) -> Atoms:
    import io

    atoms = read(io.StringIO(job["structure"]), format="extxyz")
    assert isinstance(atoms, Atoms)
    return atoms


@pytest.mark.engines
def test_pw_out_gives_its_last_frame_and_says_so(
    orion_home: Path, pw_out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    frames = read(pw_out, index=":")
    [job], said = submit_held(str(pw_out), "--engine", "qe")
    same_structure(stored_atoms(job), read(pw_out, index=-1))
    assert not np.allclose(frames[0].positions, frames[-1].positions)  # it did relax
    assert f"using its last frame, {len(frames) - 1}" in said and "espresso-out" in said
    assert job["name"] == "pw.out" and job["source"].endswith(f"pw.out@{len(frames) - 1}")

    [first], said = submit_held(f"{pw_out}@0", "--engine", "qe")
    same_structure(stored_atoms(first), read(pw_out, index=0))
    assert "last frame" not in said and first["name"] == "pw.out-0"  # the frame was chosen

    every_other = submit_held(f"{pw_out}@::2", "--engine", "qe")[0]
    assert [job["name"] for job in every_other] == [f"pw.out-{i}" for i in range(0, len(frames), 2)]
    for job, reference in zip(every_other, read(pw_out, index="::2"), strict=True):
        same_structure(stored_atoms(job), reference)


@pytest.mark.engines
def test_a_lammps_dump_gives_its_last_frame(lammps_dump: Path) -> None:
    [frame] = read_frames(StructureInput(lammps_dump))
    same_structure(frame.atoms, read(lammps_dump, index=-1))
    assert "lammps-dump-text" in frame.note
    assert len(read_frames(StructureInput(lammps_dump, ":"))) == len(read(lammps_dump, ":"))
    with pytest.raises(UsageError, match="LAMMPS log: it holds thermo output"):
        read_frames(StructureInput(lammps_dump.parent / "log.lammps"))


def moves(path: Path, count: int = 4, names: bool = False) -> list[Atoms]:
    frames = []
    for i in range(count):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
        atoms.positions[0, 0] += 0.05 * i
        if names:
            atoms.info["name" if i % 2 else "label"] = f"Cu-strain-{i}"
        frames.append(atoms)
    write(path, frames, format="extxyz")
    return frames


def test_a_trajectory_is_a_batch_and_selectors_pick_frames(tmp_path: Path) -> None:
    frames = moves(tmp_path / "moves.extxyz")
    write(tmp_path / "moves.traj", frames)
    for path in (tmp_path / "moves.extxyz", tmp_path / "moves.traj"):
        every = read_frames(StructureInput(path))
        assert [f.name for f in every] == [f"moves-{i}" for i in range(4)]
        assert all(not f.note for f in every)
        [last] = read_frames(StructureInput(path, "-1"))
        same_structure(last.atoms, read(path, index=-1))
        assert (last.name, last.source) == ("moves-3", f"{path.resolve()}@3")
        picked = read_frames(StructureInput(path, "1::2"))
        assert [f.name for f in picked] == ["moves-1", "moves-3"]
        for frame, reference in zip(picked, read(path, index="1::2"), strict=True):
            same_structure(frame.atoms, reference)


def test_frame_names_come_from_extxyz_info(tmp_path: Path) -> None:
    moves(tmp_path / "named.extxyz", names=True)
    assert [f.name for f in read_frames(StructureInput(tmp_path / "named.extxyz"))] == [
        f"Cu-strain-{i}" for i in range(4)
    ]


def test_selectors_on_directories_and_globs(tmp_path: Path) -> None:
    for run in ("a", "b"):
        (tmp_path / "runs" / run).mkdir(parents=True)
        moves(tmp_path / "runs" / run / "moves.extxyz", count=3)
    found = expand_inputs([f"{tmp_path / 'runs'}@-1", f"{tmp_path / 'runs' / '*'}/*.extxyz@0"])
    assert found == [
        StructureInput(tmp_path / "runs" / run / "moves.extxyz", index)
        for index in ("-1", "0")
        for run in ("a", "b")
    ]
    odd = tmp_path / "odd@name.extxyz"  # a file whose name holds @ is taken whole
    moves(odd, count=2)
    assert expand_inputs([str(odd)]) == [StructureInput(odd)]


@pytest.mark.parametrize(
    "index, expected",
    [
        ("7", "'{path}@7': no frame 7 ('{path}' has 4 frames, 0 to 3)"),
        ("-5", "'{path}@-5': no frame -5"),
        ("9:", "'{path}@9:': the index selects no frame"),
        ("x", "'{path}@x': bad frame index"),
        ("1:2:0", "'{path}@1:2:0': bad frame index"),
    ],
)
def test_a_bad_index_is_exit_2_naming_the_file(
    orion_home: Path, tmp_path: Path, index: str, expected: str
) -> None:
    path = tmp_path / "moves.extxyz"
    moves(path)
    result = orion("submit", f"{path}@{index}", "--engine", "emt", expect=2)
    assert expected.format(path=path) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not orion_home.exists()  # nothing written


def test_a_bad_frame_in_a_directory_names_file_and_frame(orion_home: Path, tmp_path: Path) -> None:
    (tmp_path / "set").mkdir()
    frames = moves(tmp_path / "set" / "a.extxyz", count=2)
    frames.append(frames[0].copy())
    frames[-1].positions[1] = frames[-1].positions[0] + [0.1, 0, 0]  # two atoms 0.1 Å apart
    write(tmp_path / "set" / "b.extxyz", frames, format="extxyz")
    result = orion("submit", str(tmp_path / "set"), "--engine", "emt", expect=2)
    assert f"'{tmp_path / 'set' / 'b.extxyz'}' frame 2" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not orion_home.exists()


def test_the_reader_process_stages_as_the_submitting_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Big batches are read in a forked reader: same frames, names, sources and notes."""
    from orion_cli.engines.emt import EmtEngine

    moves(tmp_path / "named.extxyz", names=True)
    xdatcar = tmp_path / "XDATCAR"  # an engine output (VASP MD) that ASE can write
    write(xdatcar, moves(tmp_path / "m.extxyz", count=3), format="vasp-xdatcar")
    inputs = [
        StructureInput(tmp_path / "named.extxyz"),
        StructureInput(tmp_path / "named.extxyz", "-1"),
        StructureInput(xdatcar),
    ]
    task = StageTask(
        engine="emt",
        params=EmtEngine().check({}, {}),
        engine_settings={},
        launcher="auto",
        ntasks=1,
    )
    in_process = stage_paths(task, inputs)
    monkeypatch.setattr(staging, "PARALLEL_MIN_INPUTS", 1)
    with staging.staging(task, inputs, lambda *args: None) as stager:
        assert stager.reader is not None
        forked = stager.collect()
    assert [(s.name, s.source, s.note, s.inputs.structure) for s in forked] == [
        (s.name, s.source, s.note, s.inputs.structure) for s in in_process
    ]
    assert [s.name for s in forked] == [
        *(f"Cu-strain-{i}" for i in range(4)),
        "Cu-strain-3",
        "XDATCAR",
    ]
    assert "vasp-xdatcar" in forked[-1].note
    same_structure(
        stored_atoms({"structure": forked[-1].inputs.structure}), read(xdatcar, index=-1)
    )


def test_one_many_frame_file_is_read_in_parts_as_when_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A single extxyz of many frames is split at frame boundaries and staged on every core:
    the same jobs (names, sources, structures, keys) as one process reading it whole."""
    from orion_cli.engines.emt import EmtEngine

    path = tmp_path / "many.extxyz"
    frames = moves(path, count=150, names=True)
    frames[7].info["charge"] = 1  # frames of another shape among them
    frames[9] = frames[9].repeat((1, 1, 2))
    write(path, frames, format="extxyz")
    task = StageTask("emt", EmtEngine().check({}, {}), {}, "auto", 1)
    whole = stage_paths(task, [StructureInput(path)])
    monkeypatch.setattr(staging, "worker_count", lambda n: 2 if n >= 64 else 0)
    parts = staging.split_inputs([StructureInput(path)])
    sizes = [p.frames for p in parts]  # consecutive, nearly equal, every frame once
    assert len(parts) == staging.PARTS_PER_WORKER * 2 and max(sizes) - min(sizes) <= 1
    assert [p.first for p in parts] == [sum(sizes[:n]) for n in range(len(parts))]
    assert sum(sizes) == 150
    with staging.staging(task, [StructureInput(path)], lambda *args: None) as stager:
        assert stager.reader is not None and stager.workers == 2
        split = stager.collect()
    assert len(split) == 150
    assert [(s.name, s.source, s.inputs.structure, s.inputs.frozen["key"]) for s in split] == [
        (s.name, s.source, s.inputs.structure, s.inputs.frozen["key"]) for s in whole
    ]
    assert split[9].formula == "Cu8" and split[149].source == f"{path.resolve()}@149"
    lines = path.read_text().splitlines(keepends=True)
    assert split[0].inputs.structure == "".join(lines[:6])  # the file's own lines: 4 atoms
    assert split[9].inputs.structure.startswith("8\n")
    same_structure(stored_atoms({"structure": split[9].inputs.structure}), read(path, index=9))


def test_a_bad_frame_of_a_file_read_in_parts_is_named(tmp_path: Path) -> None:
    """The error names the frame's number in the whole file, not in its part."""
    path = tmp_path / "many.extxyz"
    frames = moves(path, count=200)
    frames[170].positions[1] = frames[170].positions[0] + [0.1, 0, 0]  # 0.1 Å apart
    write(path, frames, format="extxyz")
    parts = staging.split_frames(StructureInput(path), 4)
    assert [(p.first, p.frames) for p in parts] == [(0, 50), (50, 50), (100, 50), (150, 50)]
    with pytest.raises(UsageError, match=f"'{path}' frame 170"):
        read_frames(parts[3])
    assert [f.source for f in read_frames(parts[1])][:2] == [
        f"{path.resolve()}@50",
        f"{path.resolve()}@51",
    ]


@pytest.mark.parametrize(
    "text",
    [
        "2\nc\nH 0 0 0\n",  # fewer atom lines than its count
        "1\nc\nH 0 0 0\n\n1\nc\nH 0 0 0\n",  # a blank line between frames
        "1.5\nc\nH 0 0 0\n",
    ],
)
def test_a_file_of_another_shape_is_not_split(tmp_path: Path, text: str) -> None:
    path = tmp_path / "odd.xyz"
    path.write_text(text * 100)
    assert staging.split_frames(StructureInput(path), 4) == [StructureInput(path)]
