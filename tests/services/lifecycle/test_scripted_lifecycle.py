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


def test_stats_never_report_a_negative_queue_wait(bench: Bench) -> None:
    """Defect 9: the node's clock behind the login node's must not make waits negative."""
    from datetime import timedelta

    from orion_cli.db.models import Job
    from orion_cli.db.session import session_scope
    from orion_cli.services.queries.stats import StatsFilter, collect

    bench.submit()
    bench.scheduler.kick(bench.scheduler.pending()[0])
    bench.poll()
    with session_scope(bench.settings.resolved_database_url) as session:
        job = session.get(Job, 1)
        assert job is not None and job.started_at is not None
        job.submitted_at = job.started_at + timedelta(seconds=2)  # the login node runs ahead
        session.add(job)
        session.commit()
    stats = collect(bench.settings, StatsFilter(owner=None)).as_dict()
    assert stats["queue_wait_s"]["max"] == 0.0


def test_auto_mode_runs_what_may_start_and_keeps_what_may_not(bench: Bench) -> None:
    """``auto`` (the study tests' scheduler): a query runs every free job, then its children in
    order; a held job waits for its release; a child of a failed parent is left pending with
    SLURM's ``DependencyNeverSatisfied``, while an ``afterany`` child runs."""
    bench.scheduler.auto = True
    [ok] = bench.submit().ids
    [bad] = bench.submit(params={"fail": True}).ids
    [held] = bench.submit(hold=True).ids
    [after_ok] = bench.submit(after=[ok]).ids
    [after_bad] = bench.submit(after=[bad]).ids
    [after_any] = bench.submit(after_any=[bad]).ids
    ids = {job.id: job.scheduler_job_id for job in bench.jobs()}
    assert bench.scheduler.pending() == [
        ids[i] for i in (ok, bad, held, after_ok, after_bad, after_any)
    ]
    info = bench.scheduler.query(list(ids.values()))
    assert [info[ids[i]].raw_state for i in (ok, bad, after_ok, after_any)] == [
        "COMPLETED", "FAILED", "COMPLETED", "COMPLETED"
    ]  # fmt: skip
    assert [info[ids[i]].pending_reason for i in (held, after_bad)] == [
        None,
        "DependencyNeverSatisfied",
    ]
    ran = bench.scheduler.jobs
    assert ran[ids[after_ok]].ran[0] >= ran[ids[ok]].ran[1]  # type: ignore[index]
    bench.scheduler.release([ids[held]])
    assert bench.scheduler.query([ids[held]])[ids[held]].raw_state == "COMPLETED"
