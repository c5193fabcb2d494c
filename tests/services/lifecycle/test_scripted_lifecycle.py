"""The lifecycle through the deterministic scheduler: submit, run in-process, poll."""

from __future__ import annotations

import json
from pathlib import Path

from tests.services.lifecycle.conftest import Bench


def test_a_kicked_job_completes_with_its_result(bench: Bench) -> None:
    [job_id] = bench.submit().ids
    [sid] = bench.scheduler.pending()
    bench.poll()
    assert bench.statuses() == [("queued", None)]
    assert bench.scheduler.kick(sid) == 0
    bench.poll()
    [job] = bench.jobs()
    assert (job.id, job.status, job.attempt) == (job_id, "completed", 1)
    result = json.loads((Path(job.workdir) / "result.json").read_text())
    assert result["attempt"] == 1 and result["energy_ev"] is not None
