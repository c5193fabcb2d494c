"""Issue 26: the Python API gains eos, converge, workflow and retry (local backend; the EOS
checked against ASE's own fit of EMT energies computed here)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, REPO, use_test_scheduler
from tests.helpers import orion_json


@pytest.fixture
def api(orion_home: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    use_test_scheduler(monkeypatch)
    monkeypatch.setenv("ORION_WAIT_INTERVAL_S", "0.5")
    import orion_cli.api as orion

    return orion


def test_eos_from_atoms_matches_ase(api) -> None:  # type: ignore[no-untyped-def]
    import numpy as np
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.eos import EquationOfState

    cu = bulk("Cu", "fcc", a=3.6)
    done = api.eos(cu, "emt", points=5, strain=0.04, tag="api-eos")
    assert api.wait([done.fit_id], timeout_s=300)
    volumes, energies = [], []
    for scale in done.scales:
        atoms = cu.copy()
        atoms.set_cell(cu.cell * scale, scale_atoms=True)
        atoms.calc = EMT()
        volumes.append(atoms.get_volume())
        energies.append(atoms.get_potential_energy())
    v0, _, _ = EquationOfState(np.array(volumes), np.array(energies), eos="birchmurnaghan").fit()
    extras = api.show(done.fit_id)["result"]["extras"]
    assert extras["v0_a3"] == pytest.approx(v0, rel=1e-6)


def test_converge_and_workflow_and_retry(api) -> None:  # type: ignore[no-untyped-def]
    swept = api.converge(EXAMPLES / "Cu.cif", "emt", "fmax_ev_per_a=0.1,0.05", relax=True)
    assert len(swept.job_ids) == 2 and swept.analysis_id
    studies = api.workflow(REPO / "examples" / "studies" / "cu-relax-eos.toml", EXAMPLES / "Cu.cif")
    assert len(studies) == 1 and studies[0].study_id and studies[0].steps
    [failing] = api.submit(EXAMPLES / "Cu.cif", "mock", fail=True, retries=0)
    api.wait([failing], timeout_s=120)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert api.retry(failing) == [failing]
    assert any("fail the same way" in str(w.message) for w in caught)
    api.wait([failing], timeout_s=120)
    assert api.retry(failing, walltime="2h", fail=False) == [failing]
    job = orion_json("show", str(failing))
    assert (job["attempt"], job["walltime_s"]) == (3, 7200)
    assert api.wait(
        [failing, swept.analysis_id, *[j for s in studies for j in sum(s.steps.values(), [])]],
        timeout_s=600,
    )
