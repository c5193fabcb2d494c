"""A packed calculation computed in memory writes its records and result as lines of its
task's stream, not as a directory with ``events.jsonl`` and ``result.json``; a job run
from its own directory may carry its result as an event line: the poller stores either,
checks it as it checks a file, and anything that reads a job's result finds it."""

from __future__ import annotations

import json
import math
from pathlib import Path

from orion_cli.engines.base import Result
from orion_cli.jobdir import MAX_EVENT_LINE_BYTES
from orion_cli.jobrun import finish
from orion_cli.taskstream import read_outcome
from tests.helpers import job_lines, job_result
from tests.services.lifecycle.conftest import Bench


def _lines(workdir: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (workdir / "events.jsonl").read_text().splitlines()]


def test_a_packed_result_line_is_stored_as_the_jobs_result(bench: Bench) -> None:
    from sqlmodel import select

    from orion_cli.db.models import JobResult
    from orion_cli.db.session import session_scope

    bench.submit(2, pack="2")
    [task] = bench.scheduler.pending()
    bench.scheduler.kick(task)
    bench.poll()
    for job in bench.jobs():
        workdir = Path(job.workdir)
        assert not workdir.exists()  # computed in memory: its lines are in the task's stream
        assert [e["event"] for e in job_lines(workdir)] == ["started", "result", "finished"]
        assert job.status == "completed"
        written = job_result(workdir)
        with session_scope(bench.settings.resolved_database_url) as session:
            stored = session.exec(select(JobResult).where(JobResult.job_id == job.id)).one()
            assert (stored.energy_ev, stored.forces_ev_per_a) == (
                written["energy_ev"],
                written["forces_ev_per_a"],
            )


def _plant(workdir: Path, result_line: str) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "events.jsonl").write_text(
        '{"event":"started","attempt":1}\n' + result_line + '\n{"event":"finished","attempt":1}\n'
    )


def test_a_result_line_is_checked_as_a_result_file_is(bench: Bench) -> None:
    """A value of the wrong type fails the job with what is wrong; a line that is not JSON
    (NaN, which the runner never writes there) is skipped with a note: no result."""
    bench.submit(2, pack="2")
    [task] = bench.scheduler.pending()
    first, second = bench.jobs()
    _plant(Path(first.workdir), '{"event":"result","attempt":1,"result":{"energy_ev":"low"}}')
    _plant(Path(second.workdir), '{"event":"result","attempt":1,"result":{"energy_ev":NaN}}')
    bench.scheduler.end(task, "COMPLETED")
    bench.poll()
    first, second = bench.jobs()
    assert (first.status, first.failure_reason) == ("failed", "engine_error")
    [why] = [e for e in bench.events(first.id or 0) if e.startswith("running->failed")]
    assert "unusable" in why and "energy_ev" in why and "low" in why
    assert (second.status, second.failure_reason) == ("failed", "engine_error")
    [why] = [e for e in bench.events(second.id or 0) if e.startswith("running->failed")]
    assert "without writing result.json" in why
    assert any("not JSON" in line for line in bench.events(second.id or 0))


def test_an_earlier_attempts_result_line_is_not_this_attempts(tmp_path: Path) -> None:
    _plant(tmp_path, '{"event":"result","attempt":1,"result":{"attempt":1,"energy_ev":-1.0}}')
    assert read_outcome(tmp_path, 2) is None
    assert read_outcome(tmp_path, 1) == {"attempt": 1, "energy_ev": -1.0}


def test_a_result_that_does_not_fit_an_event_line_goes_to_result_json(tmp_path: Path) -> None:
    """NaN (event lines refuse it) and over 64 KiB: result.json as before, read the same."""
    nan = tmp_path / "nan"
    nan.mkdir()
    finish(nan, 1, Result(energy_ev=math.nan), False)
    assert [e["event"] for e in _lines(nan)] == ["finished"]
    assert math.isnan(json.loads((nan / "result.json").read_text())["energy_ev"])
    big = tmp_path / "big"
    big.mkdir()
    forces = [[0.123456789, -0.123456789, 0.5]] * 3000
    assert len(json.dumps(forces)) > MAX_EVENT_LINE_BYTES  # too long for an event line
    finish(big, 1, Result(energy_ev=-1.0, forces_ev_per_a=forces), False)
    assert [e["event"] for e in _lines(big)] == ["finished"]
    assert read_outcome(big, 1)["forces_ev_per_a"] == forces
    small = tmp_path / "small"
    small.mkdir()
    finish(small, 1, Result(energy_ev=-1.0, error=None), True)  # ended in the soft margin
    assert [e["event"] for e in _lines(small)] == ["soft_limit_ok", "result", "finished"]
    assert not (small / "result.json").exists()
    assert read_outcome(small, 1)["extras"] == {"soft_limit_reached": True}


def test_a_child_from_a_packed_parent_takes_its_final_structure(tmp_path: Path) -> None:
    """``--from`` a packed relaxation not yet done: the child's runner reads the parent's
    result from its events when the parent has no result.json."""
    from ase.io import read

    from orion_cli.handoff import HANDOFF_FILE, take_parent_structure

    parent, child = tmp_path / "1", tmp_path / "2"
    parent.mkdir()
    child.mkdir()
    structure = (
        '2\nLattice="3.6 0.0 0.0 0.0 3.6 0.0 0.0 0.0 3.6" Properties=species:S:1:pos:R:3 '
        'pbc="T T T"\nCu 0.0 0.0 0.0\nCu 1.8 1.8 0.0\n'
    )
    finish(parent, 1, Result(energy_ev=-1.0, final_structure=structure), False)
    job = {"engine": "emt", "params": {"relax": False}, "structure_from": str(parent / "x.json")}
    take_parent_structure(child, job)
    handed = read(child / HANDOFF_FILE)
    assert handed.get_chemical_symbols() == ["Cu", "Cu"]
    assert handed.positions[1].tolist() == [1.8, 1.8, 0.0]


def test_a_stream_is_read_as_untrusted_as_a_job_file(bench: Bench) -> None:
    """A FIFO or a link where a stream would be is not opened (no hang); lines that are not
    records of a job are skipped; a result of the wrong type fails its job, naming it."""
    import os

    from orion_cli.services.lifecycle.poll import array_dir

    bench.submit(2, pack="2")
    [task] = bench.scheduler.pending()
    first, second = bench.jobs()
    where = array_dir(first)
    assert where is not None
    os.mkfifo(where / "stream-9-9.jsonl")
    os.symlink("/dev/zero", where / "stream-9-8.jsonl")
    name = Path(first.workdir).name
    (where / "stream-0-0.jsonl").write_text(
        "not json\n[1]\n"
        f'{{"job":"{name}","event":"started","attempt":1}}\n'
        f'{{"job":"{name}","event":"result","attempt":1,"result":{{"energy_ev":"low"}}}}\n'
        f'{{"job":"{name}","event":"finished","attempt":1}}\n'
    )
    bench.scheduler.end(task, "COMPLETED")  # as if it ran: only those lines are there
    report = bench.poll()
    first, second = bench.jobs()
    assert (first.status, first.failure_reason) == ("failed", "engine_error")
    [why] = [e for e in bench.events(first.id or 0) if e.startswith("running->failed")]
    assert "unusable" in why and "low" in why
    assert (second.status, second.attempt) == ("queued", 1)  # never started: submitted again
    assert not report.errors


def test_a_task_that_ends_during_a_poll_is_read_after_the_schedulers_word(bench: Bench) -> None:
    """The streams are read again once the scheduler has answered: a task that it reports
    ended wrote all its lines before (seen on the real cluster: a poll read the streams,
    the last calculation of a task ended, squeue said COMPLETED, and the job was failed as
    'ended without writing result.json'; here, nothing read, it would be submitted again)."""
    bench.submit(2, pack="2")
    bench.scheduler.auto = True  # the test scheduler runs the task inside squeue's answer
    bench.poll()
    assert [job.status for job in bench.jobs()] == ["completed", "completed"]
    assert bench.scheduler.calls["submit_array"] == 1  # nothing submitted again


def test_a_requeued_task_puts_its_running_calculation_back_in_the_queue(bench: Bench) -> None:
    """SLURM requeues a packed task while a calculation runs (its ``started`` line is in the
    stream for good): the job goes back to queued in the same attempt, then runs again and
    is counted once."""
    from orion_cli.jobdir import event_record
    from orion_cli.services.lifecycle.poll import array_dir
    from orion_cli.taskstream import TaskStream

    bench.submit(2, pack="2")
    [task] = bench.scheduler.pending()
    first = bench.jobs()[0]
    where = array_dir(first)
    assert where is not None
    stream = TaskStream(where / "stream-0-0.jsonl")
    stream.write(Path(first.workdir).name, [event_record("started", attempt=1)])
    stream.close()
    bench.scheduler.jobs[task].state = "RUNNING"
    bench.poll()
    assert [job.status for job in bench.jobs()] == ["running", "queued"]
    bench.scheduler.jobs[task].state = "PENDING"  # requeued by SLURM
    bench.poll()
    assert [job.status for job in bench.jobs()] == ["queued", "queued"]
    assert bench.events(first.id or 0)[-1].startswith("running->queued: requeued by the scheduler")
    bench.scheduler.kick(task)
    bench.poll()
    assert [(job.status, job.attempt) for job in bench.jobs()] == [("completed", 1)] * 2
    lines = job_lines(first.workdir)
    assert [e["event"] for e in lines] == ["started", "started", "result", "finished"]
    assert sum("->completed:" in e for e in bench.events(first.id or 0)) == 1  # counted once
