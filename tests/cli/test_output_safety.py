"""What orion prints is strict JSON, never drives the terminal, and survives a closed pipe.

Reproductions of the hostile-input review (2026-11-30, section 11): `orion show 56 --json`
printed `"energy_ev": Infinity`; job names with terminal escapes were printed raw by
`orion ls` and `orion show`; `orion doctor | head -3` ended in `internal error:
BrokenPipeError`.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from orion_cli.identity import current_user
from tests.helpers import orion

ESC = "\x1b"
NAME = f"evil{ESC}]0;pwned\x07{ESC}[31mred\u202ename"  # set title, colour, reverse text
TAG = f"t{ESC}[2J"  # clear screen
WORKDIR = f"/tmp/dir{ESC}[1mbold\nsecond line"
MESSAGE = f"boom\r{ESC}[Kerased"


def make_hostile_job(url: str) -> int:
    from orion_cli.db.models import Job, JobResult, now_utc
    from orion_cli.db.session import session_scope
    from orion_cli.services.lifecycle.state import transition
    from orion_cli.states import JobStatus

    with session_scope(url) as session:
        job = Job(
            name=NAME,
            owner=current_user(),
            engine="mock",
            scheduler="local",
            tag=TAG,
            workdir=WORKDIR,
            error_message=MESSAGE,
            progress_pct=float("inf"),
            submitted_at=now_utc(),
        )
        session.add(job)
        session.flush()
        transition(session, job, JobStatus.QUEUED, source="test", message=MESSAGE)
        session.add(JobResult(job_id=job.id or 0, energy_ev=float("inf"), converged=None))
        return job.id or 0


def test_json_output_has_no_nan_or_infinity(database_url: str) -> None:
    job_id = make_hostile_job(database_url)

    def refuse(constant: str) -> None:
        pytest.fail(f"{constant} is not JSON")

    for args in (["show", str(job_id)], ["ls"]):
        json.loads(orion(*args, "--json").stdout, parse_constant=refuse)
    shown = json.loads(orion("show", str(job_id), "--json").stdout)
    assert shown["result"]["energy_ev"] is None and shown["progress_pct"] is None
    assert shown["name"] == NAME  # JSON keeps the data; its escaping makes it harmless


def run_on_a_terminal(args: list[str]) -> str:
    """Run the console script with stdout on a pseudo-terminal (rich mode); return it."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "orion_cli", *args],
        stdout=follower,
        stderr=subprocess.PIPE,
        env={**os.environ, "COLUMNS": "400"},
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the other side closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    return b"".join(chunks).decode()


def assert_escaped(text: str, where: str) -> None:
    for raw in (f"{ESC}]0;", f"{ESC}[2J", f"{ESC}[31mred", f"{ESC}[K", "\u202e", "\x07", "\r"):
        assert raw not in text.replace("\r\n", "\n"), (where, raw, text)
    assert "evil\\x1b]0;pwned\\x07\\x1b[31mred\\u202ename" in text, (where, text)


def test_control_characters_are_made_visible_in_ls_and_show(database_url: str) -> None:
    job_id = make_hostile_job(database_url)
    assert_escaped(orion("ls").stdout, "ls plain")
    assert_escaped(orion("show", str(job_id)).stdout, "show")
    assert f"{ESC}[1mbold" not in orion("show", str(job_id)).stdout
    assert_escaped(run_on_a_terminal(["ls"]), "ls on a terminal (rich)")
    assert_escaped(run_on_a_terminal(["show", str(job_id)]), "show on a terminal")


def test_markup_in_a_name_is_printed_as_written(database_url: str) -> None:
    from orion_cli.db.models import Job
    from orion_cli.db.session import session_scope

    with session_scope(database_url) as session:
        job = Job(name="[red]x[/bold] [link=http://e.vil]y", owner=current_user(), engine="mock")
        session.add(job)
        session.flush()
        job_id = job.id
    assert "[red]x[/bold] [link=http://e.vil]y" in orion("show", str(job_id)).stdout


@pytest.mark.parametrize(
    "args",
    [
        ["doctor"],
        ["doctor", "--json"],
        ["engines"],
        ["engines", "--json"],
        ["ls"],
        ["ls", "--json"],
        ["show", "1"],
    ],
)
def test_a_closed_pipe_ends_quietly(
    args: list[str], orion_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`orion doctor | head -1`: the reader is gone before orion writes (deterministic)."""
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    make_hostile_job(f"sqlite:///{orion_home / 'orion.db'}")
    read_end, write_end = os.pipe()
    os.close(read_end)
    proc = subprocess.run(
        [sys.executable, "-m", "orion_cli", *args],
        stdout=write_end,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
    )
    os.close(write_end)
    assert proc.stderr == "", proc.stderr
    assert proc.returncode in (0, 1)


def test_head_of_a_long_listing_through_a_shell(orion_home: Path) -> None:
    url = f"sqlite:///{orion_home / 'orion.db'}"
    for _ in range(3):
        make_hostile_job(url)
    out = subprocess.run(
        f"'{sys.executable}' -m orion_cli ls | head -1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.stdout.startswith("jobs 1-3 of 3")
    # stderr may say the listing is stale (no poll yet); never a pipe error
    assert not any(
        word in out.stderr
        for word in ("BrokenPipe", "internal error", "Traceback", "Exception ignored")
    )
