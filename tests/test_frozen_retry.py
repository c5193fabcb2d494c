"""A job is its frozen inputs: a retry from another directory runs the same physics.

Real pw.x on the real cluster. The job is submitted from a directory whose ``orion.toml``
chooses the LDA pseudopotential ``Si.pz-vbc.UPF``; its SCF is made to fail
(``electron_maxstep=1``); ``orion retry -p electron_maxstep=100`` is run from a directory
without that file. The reference is pw.x's own output of each attempt: the pseudopotential
file it read and its ``Exchange-correlation`` line must be the same in both.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, need
from tests.helpers import orion, orion_json, poll_until_final

SI = str(EXAMPLES / "Si.cif")
LDA_CONFIG = '[engines.qe]\npseudopotentials = {Si = "Si.pz-vbc.UPF"}\n'
PSEUDO_READ = re.compile(r"PseudoPot\. #\s*\d+ for\s+\S+\s+read from file:\s*\n\s*(\S+)")
FUNCTIONAL = re.compile(r"^\s*Exchange-correlation\s*=\s*(.+?)\s*$", re.M)


def _physics(pw_out: Path) -> tuple[list[str], list[str]]:
    text = pw_out.read_text()
    return [Path(p).name for p in PSEUDO_READ.findall(text)], FUNCTIONAL.findall(text)


@pytest.mark.slurm
@pytest.mark.engines
def test_retry_elsewhere_runs_the_pseudopotential_of_attempt_one(
    database_url: str, slurm: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    need(shutil.which("pw.x") is not None, "pw.x (Debian quantum-espresso)")
    monkeypatch.setenv("ORION_SCHEDULER", "slurm")
    lda = tmp_path / "lda"
    lda.mkdir()
    (lda / "orion.toml").write_text(LDA_CONFIG)
    monkeypatch.chdir(lda)
    tiny = ["-p", "ecutwfc_ry=15", "-p", "kpoints=2,2,2", "-p", "smearing=none"]
    job_id = orion_json(
        "submit", SI, "--engine", "qe", *tiny, "-p", "electron_maxstep=1", "--retries", "0"
    )["id"]
    (failed,) = poll_until_final([job_id], timeout_s=900)
    assert failed["status"] == "failed", failed["error_message"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # no orion.toml here: the rule would pick a PBE file
    orion("retry", str(job_id), "-p", "electron_maxstep=100")
    (done,) = poll_until_final([job_id], timeout_s=900)
    assert (done["status"], done["attempt"]) == ("completed", 2), done["error_message"]
    workdir = Path(done["workdir"])
    first, second = _physics(workdir / "pw-attempt-1.out"), _physics(workdir / "pw.out")
    assert first[0] == ["Si.pz-vbc.UPF"] and len(first[1]) == 1, first
    assert first[1][0].split()[:2] == ["SLA", "PZ"], first  # LDA, as orion.toml asked
    assert second == first
    queued = [e for e in done["events"] if e["to"] == "queued" and e["attempt"] == 2]
    assert "electron_maxstep 1 → 100" in queued[0]["message"], queued
