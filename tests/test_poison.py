"""Fault suite: poisons planted in real job directories never stop the poller.

Real jobs run (mock engine, local scheduler; SQLite and PostgreSQL); after each has
written its files, one poison from the hostile-input probe is planted in each job's
directory, and one job is left healthy. One `orion poll` must then finish every job:
the healthy one and those whose poison is only in events.jsonl complete, with a warning
noted on the poisoned ones; those with an unusable result.json fail (engine_error) with a
message naming what is wrong. Before the hardening each of these stopped the whole cycle.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import BACKENDS, EXAMPLES, use_backend
from tests.helpers import orion, orion_json


def _append(line: str) -> Callable[[Path], None]:
    def plant(workdir: Path) -> None:
        with (workdir / "events.jsonl").open("a") as handle:
            handle.write(line + "\n")

    return plant


def _result(**fields: object) -> Callable[[Path], None]:
    def plant(workdir: Path) -> None:
        data = json.loads((workdir / "result.json").read_text())
        data.update(fields)
        (workdir / "result.json").write_text(json.dumps(data))  # NaN written as JSON's NaN

    return plant


def _raw_result(text: str) -> Callable[[Path], None]:
    def plant(workdir: Path) -> None:
        (workdir / "result.json").write_text(text)

    return plant


def _fifo(name: str) -> Callable[[Path], None]:
    def plant(workdir: Path) -> None:
        (workdir / name).unlink()
        os.mkfifo(workdir / name)

    return plant


def _zero(name: str) -> Callable[[Path], None]:
    def plant(workdir: Path) -> None:
        (workdir / name).unlink()
        (workdir / name).symlink_to("/dev/zero")

    return plant


def _big_events(workdir: Path) -> None:
    with (workdir / "events.jsonl").open("ab") as handle:
        handle.truncate(handle.tell() + 3 * 2**20)  # 3 MiB of NUL bytes, no newline


def _big_result(workdir: Path) -> None:
    data = json.loads((workdir / "result.json").read_text())
    data["final_structure"] = "x" * (40 * 2**20)
    (workdir / "result.json").write_text(json.dumps(data))


DEEP = "[" * 100_000 + "]" * 100_000
#: (poison, planted how, the job ends as)
EVENT_POISONS = [
    ("list line", _append("[1,2,3]")),
    ("string line", _append('"hello"')),
    ("number line", _append("42")),
    ("null line", _append("null")),
    ("attempt 'x'", _append('{"event":"progress","attempt":"x","progress_pct":5}')),
    ("attempt null", _append('{"event":"progress","attempt":null}')),
    ("attempt 1e400", _append('{"event":"progress","attempt":1e400}')),
    ("progress 'abc'", _append('{"event":"progress","attempt":1,"progress_pct":"abc"}')),
    ("progress NaN", _append('{"event":"progress","attempt":1,"progress_pct":NaN}')),
    ("nested 100,000 deep", _append(DEEP)),
    ("step of 1 MB", _append(json.dumps({"event": "progress", "attempt": 1, "step": "s" * 2**20}))),
    ("events FIFO", _fifo("events.jsonl")),
    ("events -> /dev/zero", _zero("events.jsonl")),
    ("3 MiB without newline", _big_events),
]
RESULT_POISONS = [
    ("result attempt 'x'", _result(attempt="x")),
    ("extras a list", _result(extras=[1, 2])),
    ("extras a string", _result(extras="ab")),
    ("energy 'abc'", _result(energy_ev="abc")),
    ("error an object", _result(error={"a": 1})),
    ("structure an object", _result(final_structure={"a": 1})),
    ("converged 'yes'", _result(converged="yes")),
    ("energy NaN", _result(energy_ev=float("nan"))),
    ("energy 1e400", _raw_result('{"attempt": 1, "energy_ev": 1e400}')),
    ("forces 'abc'", _result(forces_ev_per_a="abc")),
    ("forces NaN", _result(forces_ev_per_a=[[float("nan"), 0.0, 0.0]])),
    ("structure with NUL", _result(final_structure="1\n\nCu 0 0 0\x00")),
    ("result FIFO", _fifo("result.json")),
    ("result -> /dev/zero", _zero("result.json")),
    ("result of 40 MiB", _big_result),
]


def _runner_done(workdir: Path) -> bool:
    """The runner wrote its last file: ``result.json``, then the finished or failed event."""
    events = workdir / "events.jsonl"
    if not (workdir / "result.json").exists() or not events.exists():
        return False
    lines = events.read_text().splitlines()
    return bool(lines) and json.loads(lines[-1])["event"] in ("finished", "failed")


def _wait_for_results(workdirs: list[Path], timeout_s: float = 300) -> None:
    """Until every runner is done (on SLURM the array may queue behind other tests' jobs)."""
    deadline = time.monotonic() + timeout_s
    while not all(_runner_done(d) for d in workdirs):
        assert time.monotonic() < deadline, [d for d in workdirs if not _runner_done(d)]
        time.sleep(0.3)


@pytest.fixture
def local(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    return database_url


@pytest.fixture(params=BACKENDS)
def backend(
    request: pytest.FixtureRequest, orion_home: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    return use_backend(request, monkeypatch)


def _poll_until_none_active(timeout_s: float = 60) -> list:  # type: ignore[type-arg]
    """Poll as cron would until no job is queued or running; return the last results."""
    deadline = time.monotonic() + timeout_s
    results = []
    while True:
        results.append(orion("poll", expect=None))
        if not [j for j in orion_json("ls", "-n", "1000") if j["status"] in ("queued", "running")]:
            return results
        assert time.monotonic() < deadline
        time.sleep(0.5)


def test_every_poison_is_confined_to_its_job(backend: str, tmp_path: Path) -> None:
    poisons = EVENT_POISONS + RESULT_POISONS
    folder = tmp_path / "set"
    folder.mkdir()
    for i in range(len(poisons) + 1):
        (folder / f"cu-{i:03d}.cif").write_bytes((EXAMPLES / "Cu.cif").read_bytes())
    orion("submit", str(folder), "--engine", "mock", "-p", "duration_s=0")
    jobs = sorted(orion_json("ls", "-n", "1000"), key=lambda j: j["id"])
    assert len(jobs) == len(poisons) + 1
    workdirs = [Path(orion_json("show", str(job["id"]))["workdir"]) for job in jobs]
    _wait_for_results(workdirs)
    for (_, plant), workdir in zip(poisons, workdirs, strict=False):
        plant(workdir)

    started = time.monotonic()
    polls = _poll_until_none_active()  # SLURM may take a cycle or two to report them ended
    assert time.monotonic() - started < 60  # no hang on a FIFO, no endless read of /dev/zero
    assert all("Traceback" not in r.output for r in polls)
    shown = [orion_json("show", str(job["id"])) for job in jobs]
    healthy = shown[-1]
    assert healthy["status"] == "completed", healthy

    for (name, _), job in zip(EVENT_POISONS, shown, strict=False):
        assert job["status"] == "completed", (name, job["status"], job["error_message"])
        notes = [e["message"] for e in job["events"] if e["from"] == e["to"]]
        assert notes and notes[0].startswith("warning:"), (name, job["events"])
        assert 0 <= job["progress_pct"] <= 100
    for (name, _), job in zip(RESULT_POISONS, shown[len(EVENT_POISONS) :], strict=False):
        assert (job["status"], job["failure_reason"]) == ("failed", "engine_error"), name
        assert "result" in job["error_message"], (name, job["error_message"])
    assert all(r.exit_code == 0 for r in polls), [r.output for r in polls]  # cron mails none


def test_a_result_too_big_is_not_copied_into_the_database(local: str, tmp_path: Path) -> None:
    job_id = orion_json(
        "submit", str(EXAMPLES / "Cu.cif"), "--engine", "mock", "-p", "duration_s=0"
    )["id"]
    workdir = Path(orion_json("show", str(job_id))["workdir"])
    _wait_for_results([workdir])
    _big_result(workdir)
    orion("poll")
    job = orion_json("show", str(job_id))
    assert job["status"] == "failed" and "larger than 32 MiB" in job["error_message"]
    assert len(json.dumps(job)) < 2**20
