"""B11 (hostile-input probe 2026-12-06): a held job the poller found lost was retried unheld
(800 held jobs started at once when polled from the wrong ORION_HOME). A retried held job
stays held."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from tests.helpers import orion, orion_json


def test_a_held_job_found_lost_is_retried_held(
    orion_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    monkeypatch.setenv("ORION_LOST_GRACE_S", "0")
    monkeypatch.setenv("ORION_RETRY_DELAY_S", "0")
    job = orion_json("submit", str(EXAMPLES / "Cu.cif"), "--engine", "mock", "--hold")
    local_jobs = orion_home / "local-scheduler" / "local-jobs"
    shutil.rmtree(local_jobs / "L1")  # the scheduler forgot it: lost after the grace period
    for _ in range(3):  # missing once, then lost, then retried
        orion("poll", expect=None)
    shown = orion_json("show", str(job["id"]))
    assert shown["attempt"] == 2 and shown["status"] == "queued", shown
    assert shown["held"] is True
    record = json.loads((local_jobs / shown["scheduler_job_id"] / "job.json").read_text())
    assert record["hold"] is True  # the scheduler holds it too: nothing runs
