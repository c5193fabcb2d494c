"""Strict job ids, and cancel/retry/hold/release/priority/rm on many jobs at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, use_test_scheduler
from tests.helpers import orion, orion_json, poll_until_final
from tests.test_bulk import strained_copper

CU = str(EXAMPLES / "Cu.cif")


@pytest.fixture
def local(orion_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    return orion_home


@pytest.fixture
def scripted(orion_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Jobs run by the deterministic scheduler, in this process, when orion asks about them."""
    use_test_scheduler(monkeypatch)
    return orion_home


def submit(*args: str) -> list[int]:
    return orion_json("submit", *args)["ids"]


def statuses(ids: list[int]) -> list[str]:
    return [orion_json("show", str(job_id))["status"] for job_id in ids]


def one_error_line(result: object) -> str:
    lines = result.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert "Traceback" not in result.output  # type: ignore[attr-defined]
    return lines[0]


@pytest.mark.parametrize("typed", ["1_0", "5_8", "1_[0-3]", " 10", "+10", "1e1", "١٠", "0"])
def test_job_ids_are_strict(typed: str, local: Path, tmp_path: Path) -> None:
    """With jobs 1..12 queued, an id that int() would read as 10 (or 58) acts on nothing."""
    ids = submit(*map(str, strained_copper(tmp_path / "cu", 12)), "--engine", "mock", "--hold")
    assert int("1_0") == 10 and 10 in ids  # the trap: Python reads "1_0" as ten
    for command in (
        ["cancel"],
        ["retry"],
        ["hold"],
        ["release"],
        ["priority", "3"],
        ["show"],
        ["rm", "--yes"],
    ):
        line = one_error_line(orion(*command, typed, expect=2))
        assert f"'{typed}' is not an orion job id" in line, line
        if "_" in typed:
            assert f"--slurm-id {typed}" in line
    assert set(statuses(ids)) == {"queued"}
    orion("cancel", "--tag", "", "--status", "queued")


def test_a_slurm_id_is_named_with_slurm_id(local: Path, tmp_path: Path) -> None:
    ids = submit(*map(str, strained_copper(tmp_path / "cu", 3)), "--engine", "mock", "--hold")
    second = orion_json("show", str(ids[1]))
    assert orion_json("show", "--slurm-id", second["scheduler_job_id"])["id"] == ids[1]
    orion("cancel", "--slurm-id", second["scheduler_job_id"])
    assert statuses(ids) == ["queued", "cancelled", "queued"]
    bad = one_error_line(orion("show", "--slurm-id", "12;rm", expect=2))
    assert "'12;rm' is not a SLURM job id" in bad
    orion("cancel", *map(str, ids))


def test_bulk_cancel_acts_where_it_makes_sense(scripted: Path, tmp_path: Path) -> None:
    done = submit(CU, "--engine", "mock", "-p", "duration_s=0", "--tag", "batch")
    poll_until_final(done)
    queued = submit(
        *map(str, strained_copper(tmp_path / "cu", 3)),
        "--engine",
        "mock",
        "--hold",
        "--tag",
        "batch",
    )
    other = submit(CU, "--engine", "mock", "--hold", "--tag", "other")
    result = orion("cancel", "--tag", "batch")
    assert result.stderr.strip().splitlines()[-1] == (
        f"3 cancelled ({', '.join(map(str, queued))}), 1 already finished ({done[0]})"
    )
    assert statuses(done + queued + other) == ["completed", *["cancelled"] * 3, "queued"]
    # named ids: a finished one and an unknown one do not stop the others; exit 1 for the unknown
    more = submit(CU, "--engine", "mock", "--hold")
    mixed = orion("cancel", str(done[0]), "999", str(more[0]), str(other[0]), expect=1)
    assert mixed.stderr.strip().splitlines()[-1] == (
        f"2 cancelled ({other[0]}, {more[0]}), 1 already finished ({done[0]}), 1 not found (999)"
    )
    # one job that cannot be cancelled: one line, exit 2, as before
    again = one_error_line(orion("cancel", str(done[0]), expect=2))
    assert f"job {done[0]} is already completed" in again
    # filters that match nothing: said, and nothing to do is not an error
    assert "no jobs of yours match --tag nosuch" in orion("cancel", "--tag", "nosuch").stderr
    assert "unknown status 'done'" in one_error_line(orion("cancel", "--status", "done", expect=2))
    assert "no jobs named" in one_error_line(orion("cancel", expect=2))


def test_bulk_hold_release_priority_and_retry(scripted: Path, tmp_path: Path) -> None:
    done = submit(CU, "--engine", "mock", "-p", "duration_s=0", "--tag", "t")
    poll_until_final(done)
    queued = submit(
        *map(str, strained_copper(tmp_path / "cu", 2)),
        *("--engine", "mock", "-p", "duration_s=0", "--tag", "t", "--hold"),
    )
    out = orion("priority", "17", "--tag", "t", "--json")
    assert orion_json("show", str(queued[0]))["priority"] == 17
    assert (
        '"re-prioritised"' in out.stdout and f"1 not queued (completed) ({done[0]})" in out.stderr
    )
    orion("release", "--tag", "t", "--status", "queued")
    jobs = poll_until_final(queued)
    assert [j["status"] for j in jobs] == ["completed", "completed"]
    assert all("orion release" in [e["message"] for e in j["events"]] for j in jobs)
    failing = submit(
        CU, "-e", "mock", "-p", "fail=true", "-p", "duration_s=0", "--tag", "t", "--retries", "0"
    )
    poll_until_final(failing)
    result = orion("retry", "--tag", "t", "--yes")
    assert result.stderr.strip().splitlines()[-1] == (
        f"1 retried ({failing[0]}), 3 not retryable (completed) "
        f"({', '.join(map(str, sorted(done + queued)))})"
    )
    shown = orion_json("show", str(failing[0]))
    assert (shown["attempt"], shown["status"]) == (2, "queued")  # not polled since
    assert poll_until_final(failing)[0]["status"] == "failed"


def test_rm_deletes_directories_and_hides_records(
    database_url: str, local: Path, tmp_path: Path
) -> None:
    finished = submit(
        *map(str, strained_copper(tmp_path / "cu", 3)), "--engine", "emt", "--tag", "rm"
    )
    jobs = poll_until_final(finished)
    assert [j["status"] for j in jobs] == ["completed"] * 3
    held = submit(CU, "--engine", "mock", "--hold", "--tag", "rm")
    dirs = [Path(j["workdir"]) for j in jobs]
    assert all(d.is_dir() for d in dirs)
    # not on a terminal: a confirmation is needed, and nothing is touched without it
    refused = one_error_line(orion("rm", "--tag", "rm", expect=2))
    assert "not confirmed" in refused and "--yes" in refused
    assert all(d.is_dir() for d in dirs)
    # --keep-results: only the first job's directory goes; it stays listed with its energy
    orion("rm", "--keep-results", "--yes", str(finished[0]))
    kept = orion_json("show", str(finished[0]))
    assert not dirs[0].exists() and kept["removed_at"] is None
    assert kept["result"]["energy_ev"] == jobs[0]["result"]["energy_ev"]
    # the tag: finished jobs removed, the queued one reported and left alone
    result = orion("rm", "--tag", "rm", "--yes")
    assert result.stderr.strip().splitlines()[-1] == (
        f"3 removed ({', '.join(map(str, finished))}), 1 not finished (queued) ({held[0]})"
    )
    assert not any(d.exists() for d in dirs)
    assert [row["id"] for row in orion_json("ls")] == held  # hidden from ls
    gone = orion_json("show", str(finished[1]))
    assert gone["removed_at"] and gone["result"] is None
    assert "removed with orion rm" in gone["events"][-1]["message"]
    assert gone["events"][-1]["source"] == "user"
    again = one_error_line(orion("rm", "--yes", str(finished[1]), expect=2))
    assert f"job {finished[1]} was removed with orion rm" in again
    assert orion("retry", str(finished[0]), expect=2)  # its directory is gone: said, not tried
    orion("cancel", str(held[0]))


def test_rm_leaves_a_directory_outside_the_job_root_alone(local: Path, tmp_path: Path) -> None:
    """A job row whose workdir points elsewhere (a tampered row) never deletes that place."""
    from sqlmodel import Session

    from orion_cli.config import load_settings
    from orion_cli.db.models import Job
    from orion_cli.db.session import get_engine

    done = submit(CU, "--engine", "mock", "-p", "duration_s=0")
    poll_until_final(done)
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("keep me")
    with Session(get_engine(load_settings().resolved_database_url)) as session:
        job = session.get(Job, done[0])
        assert job is not None
        job.workdir = str(precious)
        session.add(job)
        session.commit()
    line = one_error_line(orion("rm", "--yes", str(done[0]), expect=1))
    assert "outside orion's job directory" in line
    assert (precious / "thesis.tex").read_text() == "keep me"
    assert orion_json("show", str(done[0]))["removed_at"] is None
