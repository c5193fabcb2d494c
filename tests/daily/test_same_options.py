"""Issue 26, one set of options: --name (with * wildcards), --status, --study and --since
select the same jobs on ls, results, stats, wait and the actions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from tests.helpers import orion, orion_json, poll_until_final

CU = str(EXAMPLES / "Cu.cif")


@pytest.fixture
def three_jobs(orion_home: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    ids = {
        name: int(orion_json("submit", CU, "--engine", "emt", "--name", name)["id"])
        for name in ("si_a", "si-b", "cu-x")
    }
    poll_until_final(list(ids.values()))
    return ids


def test_name_selects_the_same_jobs_everywhere(three_jobs: dict[str, int]) -> None:
    si = sorted(three_jobs[n] for n in ("si_a", "si-b"))
    assert sorted(r["id"] for r in orion_json("ls", "--name", "si*")) == si
    assert [r["id"] for r in orion_json("ls", "--name", "si_*")] == [three_jobs["si_a"]]  # _ is
    rows = json.loads(orion("results", "--name", "si*", "-f", "json").stdout)  # not a wildcard
    assert sorted(r["id"] for r in rows) == si
    one = json.loads(
        orion("results", "--name", "*-x", "--status", "completed", "-f", "json").stdout
    )
    assert [r["id"] for r in one] == [three_jobs["cu-x"]]
    assert orion_json("stats", "--name", "si*")["jobs"] == 2
    assert orion("wait", "--name", "si*", "--since", "1h").exit_code == 0
    nothing = orion("cancel", "--name", "si*", "--since", "1h", expect=2)
    assert f"2 already finished ({', '.join(map(str, si))})" in nothing.stderr
    unknown = orion("results", "--status", "done", "-f", "json", expect=2)
    assert "unknown status 'done'" in unknown.stderr


def test_ls_takes_study_and_name_and_says_when_nothing_matches(three_jobs: dict[str, int]) -> None:
    assert "no jobs match these filters" in orion("ls", "--name", "nothing*").stdout
    assert "no jobs match these filters" in orion("ls", "--study", str(three_jobs["cu-x"])).stdout
