"""B21 (hostile-input probe 2026-12-06): the database URL, password included, was exported
into every job's environment (sbatch exports the submitting shell's) and stored by
slurmctld. Compute nodes never open the database: no job may see the URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import BACKENDS, use_backend
from tests.helpers import orion_json, poll_until_final

SECRET = "TopSecretZ"


@pytest.fixture(params=BACKENDS)
def backend(
    request: pytest.FixtureRequest, orion_home: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    name = use_backend(request, monkeypatch)
    if request.param[0] == "postgres":  # trust authentication ignores the password
        url = request.getfixturevalue("postgres_url")
        monkeypatch.setenv("ORION_DATABASE_URL", url.replace("postgres@", f"postgres:{SECRET}@"))
    else:
        monkeypatch.setenv("ORION_DATABASE_URL", f"sqlite:///{orion_home}/{SECRET}.db")
    monkeypatch.setenv("PGPASSWORD", SECRET)
    return name


def test_a_job_never_sees_the_database_url(backend: str, tmp_path: Path) -> None:
    seen = tmp_path / "env.txt"
    script = tmp_path / "show-env.sh"
    script.write_text(f"#!/bin/bash\n#SBATCH -t 1\nenv > {seen}\n")
    job_id = orion_json("submit", "--script", str(script))["id"]
    (job,) = poll_until_final([job_id], timeout_s=180)
    assert job["status"] == "completed", job
    environment = seen.read_text()
    assert "ORION_JOB_ID=" in environment or "SLURM_JOB_ID=" in environment  # it ran
    assert "ORION_DATABASE_URL" not in environment and SECRET not in environment
