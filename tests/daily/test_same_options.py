"""Issue 26, one set of options: --name (with * wildcards), --status, --study and --since
select the same jobs on ls, results, stats, wait and the actions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, use_test_scheduler
from tests.helpers import orion, orion_json, poll_until_final

CU = str(EXAMPLES / "Cu.cif")


@pytest.fixture
def three_jobs(orion_home: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    use_test_scheduler(monkeypatch)
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


def test_from_several_parents_and_from_tag(
    orion_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_test_scheduler(monkeypatch)
    parents = [
        int(
            orion_json(
                "submit",
                CU,
                "--engine",
                "emt",
                "-p",
                "relax_cell=true",
                "--tag",
                "screen",
                "--name",
                n,
            )["id"]
        )
        for n in ("a", "b")
    ]
    poll_until_final(parents)
    two = orion("submit", "--engine", "emt", "--from", f"{parents[0]},{parents[1]}").stdout
    children = [int(line) for line in two.split()]
    assert [orion_json("show", str(c))["structure_from_id"] for c in children] == parents
    tagged = orion("submit", "--engine", "emt", "--from-tag", "screen", "--tag", "tight").stdout
    again = [int(line) for line in tagged.split()]
    assert [orion_json("show", str(c))["structure_from_id"] for c in again] == parents
    done = poll_until_final(children + again)
    assert all(job["status"] == "completed" for job in done)
    none = orion("submit", "--engine", "emt", "--from-tag", "nosuch", expect=2)
    assert "--from-tag nosuch: none of your completed jobs has this tag" in none.stderr


def test_studies_take_the_resource_and_retry_options(
    orion_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_test_scheduler(monkeypatch)
    out = orion_json(
        "eos",
        CU,
        "-e",
        "emt",
        "--points",
        "5",
        "--mem",
        "300M",
        "--retries",
        "1",
        "--tag",
        "a",
        "--tag",
        "b",
    )
    point = orion_json("show", str(out["points"][0]))
    assert (point["mem_mb"], point["max_retries"], point["tags"]) == (300, 1, ["a", "b"])
    held = orion_json(
        "converge",
        CU,
        "-e",
        "emt",
        "--sweep",
        "fmax_ev_per_a=0.1,0.05",
        "-p",
        "relax=true",
        "--hold",
    )
    jobs = [orion_json("show", str(i)) for i in held["jobs"]]
    assert all(j["held"] for j in jobs)
    orion("release", "--study", str(held["study_id"]))
    no_scf = orion("eos", CU, "-e", "emt", "--on-scf-fail", "mixing_beta=0.3", expect=2)
    assert "engine 'emt' has none" in no_scf.stderr
    assert orion("wait", "--study", str(out["study_id"]), "--study", str(held["study_id"]))
