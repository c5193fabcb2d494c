"""orion_cli.api: the Python API page's notebook snippet run as written (local backend and the real
SLURM cluster), energies compared with ASE's EMT run here on the same Atoms; errors as
exceptions; nothing written on a mistake; a cheap import."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BACKENDS, EXAMPLES, REPO, use_backend
from tests.helpers import orion, orion_json


def readme_snippet() -> str:
    section = (REPO / "docs" / "how-to" / "python-api.md").read_text()
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "docs/how-to/python-api.md has no python block"
    return match[1]


def emt_by_hand(atoms: Any) -> tuple[float, Any, Any]:
    from ase.calculators.emt import EMT

    atoms = atoms.copy()
    atoms.calc = EMT()
    return atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()


@pytest.fixture(params=BACKENDS)
def scheduler(
    request: pytest.FixtureRequest, orion_home: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    return use_backend(request, monkeypatch)


def test_readme_snippet_runs_and_matches_ase_emt(scheduler: str) -> None:
    import numpy as np

    namespace: dict[str, Any] = {}
    out = io.StringIO()
    with redirect_stdout(out):
        exec(compile(readme_snippet(), "docs/how-to/python-api.md", "exec"), namespace)  # noqa: S102
    structures, ids = namespace["structures"], namespace["ids"]
    assert len(ids) == len(structures) == 3
    api = namespace["orion"]
    states = [(i, api.show(i)["status"], api.show(i)["raw_state"]) for i in ids]
    assert all(state == "completed" for _, state, _ in states), states  # a busy cluster: queued
    done = api.results(ids)
    assert [a.info["orion_id"] for a in done] == ids
    for atoms, given in zip(done, structures, strict=True):
        energy, forces, stress = emt_by_hand(given)
        assert atoms.get_potential_energy() == pytest.approx(energy, abs=1e-9)
        np.testing.assert_allclose(atoms.get_forces(), forces, atol=1e-9)
        np.testing.assert_allclose(atoms.get_stress(), stress, atol=1e-9)
        np.testing.assert_allclose(atoms.positions, given.positions, atol=1e-6)
        assert atoms.info["status"] == "completed" and atoms.info["engine"] == "emt"
        assert atoms.info["tag"] == "cu-api" and isinstance(atoms.info["params"], dict)
    printed = out.getvalue().splitlines()
    for job_id, atoms in zip(ids, done, strict=True):  # the snippet's own lines
        assert any(
            line.split()[:2] == [str(job_id), atoms.info["name"]]
            and float(line.split()[2]) == pytest.approx(atoms.get_potential_energy())
            for line in printed
        ), printed
    assert printed[-1] == "1.0"  # the stats line: every job completed
    assert [a.info["name"] for a in done] == ["Cu-0", "Cu-1", "Cu-2"]
    # the CLI sees the same jobs
    shown = orion_json("show", str(ids[0]))
    assert shown["scheduler"] == scheduler and shown["tags"] == ["cu-api"]
    assert shown["walltime_s"] == 600


def test_api_mixes_paths_and_atoms_params_and_resources(orion_home: Path, monkeypatch) -> None:  # noqa: ANN001
    import numpy as np
    from ase.calculators.emt import EMT
    from ase.io import read
    from ase.optimize import BFGS

    import orion_cli.api as api

    monkeypatch.setenv("ORION_SCHEDULER", "local")
    rattled = read(EXAMPLES / "Cu.cif")
    rattled.rattle(0.05, seed=3)
    rattled.info["name"] = "rattled"
    before = (rattled.positions.copy(), repr(rattled.info))
    ids = api.submit(
        [EXAMPLES / "Cu.cif", rattled],
        engine="emt",
        relax=True,
        fmax_ev_per_a=0.05,
        tag=["api", "relax"],
        ntasks=1,
        mem="500M",
        retries=0,
    )
    assert len(ids) == 2
    assert api.wait(ids, timeout_s=120) is True
    rows = api.jobs(tag="relax")
    assert [r.id for r in rows] == ids and {r.status for r in rows} == {"completed"}
    assert [r.name for r in rows] == ["Cu", "rattled"]
    relaxed = api.results(tag="api")
    assert [a.info["orion_id"] for a in relaxed] == ids
    for atoms, given in zip(relaxed, [read(EXAMPLES / "Cu.cif"), rattled], strict=True):
        assert atoms.info["params"]["relax"] is True
        # the same relaxation by hand: ASE's BFGS with EMT from the same positions
        by_hand = given.copy()
        by_hand.calc = EMT()
        BFGS(by_hand, logfile=None).run(fmax=0.05, steps=200)
        assert atoms.get_potential_energy() == pytest.approx(
            by_hand.get_potential_energy(), abs=1e-8
        )
        np.testing.assert_allclose(atoms.positions, by_hand.positions, atol=1e-6)
        np.testing.assert_allclose(atoms.get_forces(), by_hand.get_forces(), atol=1e-6)
    rows = api.result_rows(ids)  # the rows `orion results -f json` prints
    assert [r["id"] for r in rows] == ids
    for row, atoms in zip(rows, relaxed, strict=True):
        assert row["energy_ev"] == pytest.approx(atoms.get_potential_energy(), abs=1e-12)
        largest = np.linalg.norm(atoms.get_forces(), axis=1).max()
        assert row["max_force_ev_per_a"] == pytest.approx(largest, abs=1e-9)
        assert row["natoms"] == len(atoms) and row["engine"] == "emt"
    # a single point on the relaxed structure of job ids[1], started after it (--from)
    child = api.submit(None, engine="emt", from_job=ids[1])
    assert api.wait(child, timeout_s=120)
    (point,) = api.results(child)
    assert point.info["name"] == "rattled"  # named after its parent
    energy, forces, _ = emt_by_hand(relaxed[1])
    assert point.get_potential_energy() == pytest.approx(energy, abs=1e-6)
    np.testing.assert_allclose(point.get_forces(), forces, atol=1e-6)
    job = api.show(ids[1])
    assert job["mem_mb"] == 500 and job["parameters"]["fmax_ev_per_a"] == 0.05
    assert Path(job["structure_source"].rsplit("@", 1)[0]).is_file()  # the Atoms, kept
    assert rattled.calc is None and repr(rattled.info) == before[1]  # the caller's untouched
    assert (rattled.positions == before[0]).all()
    stats = api.stats(tag="api")
    assert stats.total.jobs == 2 and stats.total.success_rate == 1.0


def test_api_errors_are_exceptions_and_write_nothing(orion_home: Path, monkeypatch) -> None:  # noqa: ANN001
    from ase.build import bulk

    import orion_cli.api as api
    from orion_cli.errors import OrionError, UsageError

    monkeypatch.setenv("ORION_SCHEDULER", "local")
    cu = bulk("Cu", cubic=True)
    bad_calls = [
        (lambda: api.submit(cu, engine="emt", walltime="soon"), "walltime 'soon'"),
        (lambda: api.submit(cu, engine="emt", no_such_param=1), "no_such_param"),
        (lambda: api.submit(cu, engine="nope"), "nope"),
        (lambda: api.submit(42, engine="emt"), "cannot submit a int"),
        (lambda: api.submit([], engine="emt"), "no structure given"),
        (lambda: api.submit(cu, engine="emt", after=["3"]), "not an orion job id"),
        (lambda: api.results(), "no jobs selected"),
        (lambda: api.wait([999]), "no job with id 999"),
        (lambda: api.stats(since="-1d"), "negative"),
        (lambda: api.stats(by="colour"), "cannot group by"),
    ]
    for call, needle in bad_calls:
        with pytest.raises(UsageError) as caught:
            call()
        assert needle in caught.value.one_line(), (needle, caught.value.one_line())
    assert not (orion_home / "jobs" / "api-inputs").exists() or not list(
        (orion_home / "jobs" / "api-inputs").iterdir()
    )
    assert not list(orion_home.rglob("*.extxyz"))  # no Atoms file kept for a refused submit
    assert api.jobs() == []
    held = api.submit(cu, engine="emt", hold=True)
    child = api.submit(cu, engine="emt", after=held, name="child")
    assert [p["id"] for p in api.show(child[0])["parents"]] == held
    report = api.poll()
    assert report.errors == [] and report.checked == 2  # both are active, both looked at
    assert api.cancel(held) == held
    assert api.cancel(held) == []  # already cancelled: nothing to do, no error
    with pytest.raises(OrionError):
        api.cancel([999])
    assert api.wait(held + child, timeout_s=60) is False  # cancelled, not completed
    job = api.show(child[0])  # the poll cancelled the child whose parent was cancelled
    assert (job["status"], job["failure_reason"]) == ("cancelled", "dependency_failed")
    assert orion("ls", "--count").exit_code == 0


def test_import_is_cheap() -> None:
    heavy = ("ase", "sqlalchemy", "sqlmodel", "numpy", "matplotlib", "pymatgen")
    code = (
        "import sys\nimport orion_cli.api\n"
        f"print(','.join(m for m in {heavy!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
