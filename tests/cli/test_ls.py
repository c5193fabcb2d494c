"""`orion ls` on a terminal of 80 columns, counts in the footer, --count, energy per atom,
and the line that says how fresh the statuses are (with a cron line when stale)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from tests.helpers import orion, orion_json, poll_until_final, run_in_pty

CU = str(EXAMPLES / "Cu.cif")
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@pytest.fixture
def local(orion_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    return orion_home


def test_ls_keeps_the_id_column_at_80_columns(local: Path) -> None:
    ids = orion_json(
        "submit",
        *[CU] * 12,
        "-e",
        "mock",
        "--hold",
        "--tag",
        "t" * 40,
        "--name",
        "a-rather-long-job-name-that-fills-a-screen",
    )["ids"]
    assert max(ids) >= 10
    code, out = run_in_pty(["ls"], columns=80)
    assert code == 0, out
    lines = [ANSI.sub("", line).rstrip() for line in out.splitlines()]
    header = next(line for line in lines if line.split()[:1] == ["id"])
    table = lines[lines.index(header) : lines.index(header) + 1 + len(ids)]
    assert all(len(line) <= 80 for line in table), [len(x) for x in table]
    assert "status" in header and "age" in header, header
    rows = [line.split()[0] for line in table[1:]]
    assert sorted(map(int, rows)) == sorted(ids)  # every id whole, none cut to …
    assert all("queued" in line for line in table[1:])
    orion("cancel", "--tag", "t" * 40)


def test_ls_footer_count_and_energy_per_atom(local: Path) -> None:
    from ase.io import read

    done = orion_json("submit", CU, "-e", "emt", "--tag", "f")["ids"]
    failed = orion_json(
        "submit",
        CU,
        "-e",
        "mock",
        "-p",
        "fail=true",
        "-p",
        "duration_s=0",
        "--retries",
        "0",
        "--tag",
        "f",
    )["ids"]
    held = orion_json("submit", CU, "-e", "mock", "--hold", "--tag", "f")["ids"]
    poll_until_final(done + failed)
    # reference: ASE's EMT on the same file, per atom
    atoms = read(CU)
    from ase.calculators.emt import EMT

    atoms.calc = EMT()
    per_atom = atoms.get_potential_energy() / len(atoms)
    listing = orion("ls", "--tag", "f")
    table_lines = listing.stdout.splitlines()
    row = next(line for line in table_lines if line.split()[:1] == [str(done[0])])
    assert f"{per_atom:.4f}" in row.split(), (row, per_atom)
    for job_id in failed + held:
        other = next(line for line in table_lines if line.split()[:1] == [str(job_id)])
        assert " - " in other  # no energy shown for jobs that did not complete
    assert table_lines[-1] == "3 jobs: 1 queued, 1 completed, 1 failed"
    rows = orion_json("ls", "--tag", "f")
    assert {r["id"]: r["energy_per_atom_ev"] for r in rows}[done[0]] == pytest.approx(per_atom)
    counted = orion("ls", "--count", "--tag", "f").stdout.splitlines()
    assert counted == ["queued     1", "completed  1", "failed     1", "total      3"]
    data = orion_json("ls", "--count")
    assert data["counts"] == {"queued": 1, "completed": 1, "failed": 1} and data["total"] == 3
    orion("cancel", str(held[0]))


def test_staleness_and_cron_line(local: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    job = orion_json("submit", CU, "-e", "mock", "--hold")["ids"][0]
    never = orion("ls").stderr
    assert "no successful orion poll yet" in never
    cron = next(line.strip() for line in never.splitlines() if line.strip().startswith("*/2"))
    assert "-m orion_cli poll --quiet" in cron and f"ORION_HOME={local}" in cron
    orion("poll")
    fresh = orion("show", str(job)).stderr
    assert re.search(r"last successful poll \d+s ago", fresh) and "crontab" not in fresh
    # an hour-old stamp (as if cron stopped): warning and cron line again
    stamp = next(local.glob("poll-*.json"))
    data = json.loads(stamp.read_text())
    stamp_at = time.time() - 3600
    data["last_ok_at"] = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(stamp_at))
    stamp.write_text(json.dumps(data))
    stale = orion("ls").stderr
    assert "last successful poll 1h ago" in stale and "crontab -e" in stale
    # the cron line really polls: run it the way cron would (sh -c, env from the line)
    line = next(x.strip() for x in stale.splitlines() if x.strip().startswith("*/2"))
    command = line.split(" ", 5)[5]
    result = subprocess.run(
        ["sh", "-c", command],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"]},
        timeout=60,
    )
    assert result.returncode == 0 and result.stdout == result.stderr == "", result
    # (from here on as separate processes, as a user runs them: an in-process SQLAlchemy
    # pool beside another process's writes trips a read-only SQLite quirk, see the report)
    assert "crontab" not in run_cli("ls").stderr
    # no active jobs: no warning, however old the stamp
    run_cli("cancel", str(job))
    stamp.write_text(json.dumps(data))
    quiet = run_cli("ls").stderr
    assert "last successful poll 1h ago" in quiet and "crontab" not in quiet


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "orion_cli", *args], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result
    return result


def test_status_list_with_commas_and_since_named_in_errors(local: Path) -> None:
    """`-s failed,cancelled` is the same as `-s failed -s cancelled`; a bad --since names
    --since (it said "walltime 'yesterday'" before)."""
    held = orion_json("submit", CU, CU, "-e", "mock", "--hold")["ids"]
    orion("cancel", str(held[0]))
    both = {row["id"]: row["status"] for row in orion_json("ls", "-s", "cancelled,queued")}
    apart = {
        row["id"]: row["status"] for row in orion_json("ls", "-s", "cancelled", "-s", "queued")
    }
    assert both == apart == {held[0]: "cancelled", held[1]: "queued"}
    bad = orion("ls", "--since", "yesterday", expect=2)
    assert "--since 'yesterday' is not a duration" in bad.output, bad.output
    assert "walltime" not in bad.output
    assert "unknown status 'done'" in orion("ls", "-s", "failed,done", expect=2).output
    orion("cancel", str(held[1]))


@pytest.mark.parametrize("columns", [40, 24, 12])
def test_ls_keeps_the_id_column_on_a_narrow_terminal(local: Path, columns: int) -> None:
    """Too narrow for every column: the rightmost go (said in the title), the id stays whole."""
    ids = orion_json(
        "submit", *[CU] * 11, "-e", "mock", "--hold", "--name", "a-long-name-for-a-job"
    )["ids"]
    code, out = run_in_pty(["ls"], columns=columns)
    assert code == 0 and "Traceback" not in out, out
    lines = [ANSI.sub("", line).rstrip() for line in out.splitlines()]
    header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["id"])
    rows = lines[header + 1 : header + 1 + len(ids)]
    assert sorted(int(row.split()[0]) for row in rows) == sorted(ids), lines
    assert all(len(line) <= columns for line in lines[header : header + 1 + len(ids)]), lines
    title = "".join(lines[:header]).replace(" ", "")  # wrapped at the terminal's width
    assert title.startswith("jobs1-11of11(narrowterminal:") and "hidden" in title, lines
    orion("cancel", *map(str, ids))
