"""`orion progress` works inside an engine job too: the runner gives the engine (and what it
starts) ORION_JOB_DIR and ORION_ATTEMPT. Here the lmp binary is a site wrapper script that
reports a step before it runs the real lmp, as a site's own tooling would."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from tests.helpers import orion_json, poll_until_final

PARAMS = EXAMPLES.parent / "params" / "ar-lj-md.toml"


@pytest.mark.engines
def test_a_tool_inside_an_engine_job_reports_progress(
    orion_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lmp = shutil.which("lmp")
    if lmp is None:
        pytest.skip("lmp not installed")
    wrapper = tmp_path / "lmp-wrapper"
    wrapper.write_text(
        f"#!/bin/bash\n{sys.executable} -m orion_cli progress 50 "
        f"'site wrapper ran' || exit 9\nexec {lmp} \"$@\"\n"
    )
    wrapper.chmod(0o755)
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    monkeypatch.setenv("ORION_LAMMPS_BINARY", str(wrapper))
    job_id = orion_json(
        "submit", str(EXAMPLES / "Ar.xyz"), "--engine", "lammps", "--params", str(PARAMS)
    )["id"]
    (job,) = poll_until_final([job_id])
    assert job["status"] == "completed", job["error_message"]
    events = (Path(job["workdir"]) / "events.jsonl").read_text()
    assert '"step":"site wrapper ran"' in events and '"attempt":1' in events
