"""Packed arrays and retries through the deterministic scheduler: defects 1, 2, 3, 4, 8."""

from __future__ import annotations

import shutil
from pathlib import Path

from orion_cli.errors import SchedulerError, SubmitOutcomeUnknown
from orion_cli.schedulers.scripted import Scripted
from tests.helpers import job_lines, job_result
from tests.services.lifecycle.conftest import Bench


def test_scancel_of_a_pending_packed_array_cancels_its_jobs(bench: Bench) -> None:
    """Defect 1: `scancel <array>` of a held packed array is final, not a requeue."""
    bench.submit(4, pack="2", hold=True)
    [array] = {sid.split("_")[0] for sid in bench.scheduler.pending()}
    bench.scheduler.cancel([array])
    bench.poll()
    assert bench.statuses() == [("cancelled", "cancelled_externally")] * 4
    assert bench.scheduler.calls["submit_array"] == 1  # nothing submitted again
    bench.poll(later_s=3600)
    assert bench.statuses() == [("cancelled", "cancelled_externally")] * 4


def test_unstarted_packed_jobs_are_requeued_with_their_hold(bench: Bench) -> None:
    """Defect 1, the other half: a requeue keeps --hold (it never dropped to defaults)."""
    bench.submit(4, pack="2", hold=True)
    bench.scheduler.end(bench.scheduler.pending()[0], "NODE_FAIL")  # task 0 never ran
    bench.poll()
    requeued = [job for job in bench.jobs() if job.scheduler_job_id not in ("T101_0", "T101_1")]
    assert [job.status for job in requeued] == ["queued", "queued"]
    new = bench.scheduler.jobs[requeued[0].scheduler_job_id or ""]
    assert new.options.hold and new.held


def test_packed_requeue_with_unknown_outcome_looks_up_before_resubmitting(bench: Bench) -> None:
    """Defect 3: sbatch's silence on a packed requeue is not a refusal; no second array."""
    bench.submit(4, pack="2")
    first_task = bench.scheduler.pending()[0]
    lost = SubmitOutcomeUnknown("sbatch did not answer within 60 s")
    bench.scheduler.answer_next(Scripted(lost, created=True))
    bench.scheduler.end(first_task, "TIMEOUT")  # ended before any of its jobs started
    bench.poll()
    jobs = bench.jobs()[:2]
    assert [(j.status, j.failure_reason) for j in jobs] == [("queued", None)] * 2
    assert all(j.submit_unknown_since is not None for j in jobs)
    bench.poll(later_s=bench.settings.submit_grace_s + 1)
    assert bench.scheduler.calls["submit_array"] == 2  # the first array, the unanswered one
    created = [key for key in bench.scheduler.jobs if key.startswith("T102_")]
    jobs = bench.jobs()[:2]
    assert created == ["T102_0"]  # one packed task of 2
    assert [j.scheduler_job_id for j in jobs] == ["T102_0", "T102_0"]
    assert all(j.submit_unknown_since is None for j in jobs)
    for sid in created:
        bench.scheduler.kick(sid)
    bench.poll()
    assert [j.status for j in bench.jobs()[:2]] == ["completed", "completed"]
    for job in bench.jobs()[:2]:
        starts = [e for e in job_lines(job.workdir) if e["event"] == "started"]
        assert len(starts) == 1  # ran once


def test_a_refused_packed_requeue_is_retried_by_policy(bench: Bench) -> None:
    bench.submit(2, pack="2")
    bench.scheduler.answer_next(Scripted(SchedulerError("sbatch: error: Socket timed out")))
    bench.scheduler.end(bench.scheduler.pending()[0], "NODE_FAIL")
    bench.poll()
    assert bench.statuses() == [("failed", "submit_error")] * 2
    assert all(job.next_attempt_at is not None for job in bench.jobs())


def test_retried_job_in_a_requeued_pack_keeps_its_attempt(bench: Bench) -> None:
    """Defect 2: array.sh's ORION_ATTEMPT=1 made attempt 2's result look stale."""
    bench.submit(2, pack="2", max_retries=3)
    [task] = bench.scheduler.pending()
    for job in bench.jobs():  # both started, then the node failed
        Path(job.workdir).mkdir(parents=True, exist_ok=True)
        _started(bench, job.id or 0)
    bench.scheduler.end(task, "NODE_FAIL")
    bench.poll()  # failed(node_fail), retried at once, alone, as attempt 2
    retried = bench.jobs()
    assert [(j.status, j.attempt) for j in retried] == [("queued", 2)] * 2
    bench.scheduler.end(retried[0].scheduler_job_id or "", "NODE_FAIL")  # never started
    bench.poll()  # attempt 2 of job 1 lands in a requeued pack
    job = bench.jobs()[0]
    assert (job.status, job.attempt) == ("queued", 2)
    assert "_" in (job.scheduler_job_id or "")
    bench.scheduler.kick(job.scheduler_job_id or "")
    bench.poll()
    job = bench.jobs()[0]
    assert (job.status, job.attempt) == ("completed", 2), bench.events(job.id or 0)
    result = job_result(Path(job.workdir))
    assert result["attempt"] == 2


def test_a_requeued_pack_does_not_rerun_finished_calculations(bench: Bench) -> None:
    """Defect 8: SLURM requeues a packed task (preemption): finished jobs are not run again."""
    bench.submit(2, pack="2")
    [task] = bench.scheduler.pending()
    bench.scheduler.kick(task)
    first = bench.jobs()[0]
    before = job_lines(first.workdir)
    bench.scheduler.jobs[task].state = "PENDING"  # requeued by SLURM, same attempt
    bench.scheduler.kick(task)
    assert job_lines(first.workdir) == before  # not started again, no second result
    starts = [e for e in before if e["event"] == "started"]
    assert (len(starts), job_result(first.workdir)["attempt"]) == (1, 1)


def test_a_retry_whose_job_directory_is_gone_stops(bench: Bench) -> None:
    """Defect 4: a purged job directory fails the retry once, for good; polls stay quiet."""
    [job_id] = bench.submit(max_retries=3).ids
    [sid] = bench.scheduler.pending()
    bench.scheduler.end(sid, "NODE_FAIL")
    shutil.rmtree(bench.jobs()[0].workdir)  # a scratch clean-up
    report = bench.poll()  # failed(node_fail), then its retry finds no directory
    assert not report.errors
    [job] = bench.jobs()
    assert (job.status, job.failure_reason, job.next_attempt_at) == (
        "failed",
        "submit_error",
        None,
    )
    assert any("is gone" in line for line in bench.events(job_id))
    count = len(bench.events(job_id))
    for _ in range(3):
        assert not bench.poll(later_s=600).errors
    assert len(bench.events(job_id)) == count
    assert bench.scheduler.calls["submit"] == 1


def _started(bench: Bench, job_id: int) -> None:
    from orion_cli.jobdir import append_event

    [job] = [j for j in bench.jobs() if j.id == job_id]
    append_event(Path(job.workdir), "started", attempt=job.attempt)
