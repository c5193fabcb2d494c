"""`--study ID` picks a study's jobs (an `orion eos` study: its points and its fit) for
priority, hold, release, cancel, retry, rm, wait and watch, alone or with --tag, --status
and ids, as a user types it. `orion show` is the reference for what changed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from tests.helpers import orion, orion_json

CU = str(EXAMPLES / "Cu.cif")


@pytest.fixture
def local(orion_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    return orion_home


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a script runs it: a real process."""
    return subprocess.run(
        [sys.executable, "-m", "orion_cli", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=dict(os.environ),
    )


def held_study() -> list[int]:
    """An EOS study of five held EMT points and its fit; its jobs, the study id first."""
    out = orion_json("eos", CU, "-e", "emt", "--points", "5", "--hold", "--tag", "screen")
    assert out["study_id"] == out["points"][0] and out["fit"] is not None
    return [*out["points"], out["fit"]]


def last_line(result: object) -> str:
    return result.stderr.strip().splitlines()[-1]  # type: ignore[attr-defined]


def listed(ids: list[int]) -> str:
    return ", ".join(map(str, ids))


def shown(ids: list[int], key: str) -> list[object]:
    return [orion_json("show", str(i))[key] for i in ids]


def test_study_selects_its_jobs_for_every_bulk_command(local: Path) -> None:
    first, second = held_study(), held_study()
    a, b = str(first[0]), str(second[0])
    assert set(shown(first + second, "status")) == {"queued"}
    before = shown(second, "priority")

    assert last_line(orion("priority", "12", "--study", a)) == (
        f"6 re-prioritised ({listed(first)})"
    )
    assert shown(first, "priority") == [12] * 6 and shown(second, "priority") == before

    # with other filters or ids, --study narrows as --tag and --status do
    nothing = orion("cancel", "--study", b, "--tag", "other")
    assert (
        last_line(nothing) == f"no jobs of yours match --tag other --study {b}; nothing cancelled"
    )
    nothing = orion("hold", str(second[1]), "--study", a)
    assert last_line(nothing) == f"no jobs of yours match {second[1]} --study {a}; nothing held"
    assert set(shown(first + second, "status")) == {"queued"}

    assert last_line(orion("release", "--study", a, "--status", "queued")) == (
        f"6 released ({listed(first)})"
    )
    waited = run("wait", "--study", a)
    assert waited.returncode == 0, waited.stderr
    assert last_line(waited) == "6 completed"
    assert shown(first, "status") == ["completed"] * 6
    assert shown(second, "status") == ["queued"] * 6  # the other study was not started
    assert "v0_a3" in orion_json("show", str(first[-1]))["result"]["extras"]

    # one command over both studies: the finished ones are reported, not refused
    both = orion("cancel", "--study", a, "--study", b)
    assert last_line(both) == (
        f"6 cancelled ({listed(second)}), 6 already finished ({listed(first)})"
    )
    assert shown(second, "status") == ["cancelled"] * 6
    refused = orion("retry", "--study", a, expect=2)
    assert last_line(refused).startswith(
        f"error: nothing retried: 6 not retryable (completed) ({listed(first)})"
    )

    watched = run("watch", "--study", b, "--interval", "0.3")
    assert watched.returncode == 0, watched.stderr
    lines = watched.stdout.splitlines()
    assert re.fullmatch(r"\d\d:\d\d:\d\d 6 cancelled", lines[0]), lines
    named = {int(m[1]) for m in re.finditer(r"job (\d+) ", watched.stdout)}
    assert named and named <= set(second), named

    orion("rm", "--study", a, "--yes")
    assert sorted(row["id"] for row in orion_json("ls")) == second


@pytest.mark.parametrize("typed", ["1_0", "x", "0", "-3"])
def test_a_bad_study_id_is_one_line_and_changes_nothing(typed: str, local: Path) -> None:
    jobs = held_study()
    for command in (["cancel"], ["hold"], ["priority", "3"], ["wait"], ["watch"], ["rm", "--yes"]):
        result = orion(*command, f"--study={typed}", expect=2)
        lines = result.stderr.strip().splitlines()
        assert lines == [
            f"error: --study '{typed}' is not a study id — a study id is a whole number such "
            "as 12: the one `orion eos` printed ('study 12: ...')"
        ], (command, lines)
    assert set(shown(jobs, "status")) == {"queued"}
    orion("cancel", "--study", str(jobs[0]))


@pytest.mark.parametrize("args", [["1_0"], ["--study", "0_1"]])
def test_results_reads_ids_and_study_ids_strictly(args: list[str], local: Path) -> None:
    """`orion results 1_0` showed job 10 (click's int() reads "1_0" as ten)."""
    held_study()
    held_study()  # jobs 1..12: job 10 and study 1 exist
    line = orion("results", *args, expect=2).stderr.strip()
    assert line.startswith("error: ") and "'" + args[-1] + "' is not" in line, line
    orion("cancel", "--status", "queued")
