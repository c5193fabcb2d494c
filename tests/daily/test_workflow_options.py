"""Issue 26: ``workflow submit --dry-run`` (checks, says what would run, writes nothing) and
``--wait``; ``workflow retry --tag T`` over several studies (local backend, mock/EMT)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, REPO, use_test_scheduler
from tests.helpers import orion, orion_json

FLOW = str(REPO / "examples" / "studies" / "cu-relax-eos.toml")
CU = str(EXAMPLES / "Cu.cif")


@pytest.fixture
def local(orion_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    use_test_scheduler(monkeypatch)
    monkeypatch.setenv("ORION_WAIT_INTERVAL_S", "0.5")
    return orion_home


def test_dry_run_says_what_would_run_and_writes_nothing(local: Path) -> None:
    out = orion("workflow", "submit", FLOW, CU, "--dry-run")
    assert "(nothing submitted)" in out.stderr
    assert "step points: 5 emt job(s)" in out.stderr
    assert "step fit: 1 eos job(s) after points (any outcome)" in out.stderr
    assert "step energy: 1 emt job(s) after relax, from relax's final structure" in out.stderr
    assert not (local / "orion.db").exists() and not (local / "jobs").exists()
    bad = orion("workflow", "submit", FLOW, "nosuch.cif", "--dry-run", expect=2)
    assert "nosuch.cif" in bad.stderr


def test_wait_shows_the_finished_study(local: Path) -> None:
    out = orion("workflow", "submit", FLOW, CU, "--wait", "--tag", "w")
    assert "fit" in out.stdout and "completed" in out.stdout
    jobs = orion_json("ls", "--tag", "w")
    assert len(jobs) == 8 and all(j["status"] == "completed" for j in jobs)


def test_retry_by_tag_reruns_the_failures_of_every_tagged_study(local: Path) -> None:
    flow = Path("broken.toml")
    flow.write_text(
        '[steps.a]\nengine = "mock"\nparams = { fail = true, duration_s = 0 }\n'
        'walltime = "5m"\nretries = 0\n'
    )
    for _ in range(2):
        orion("workflow", "submit", str(flow), CU, "--tag", "g4", "--wait", expect=1)
    retried = orion("workflow", "retry", "--tag", "g4", "--failed", "-p", "fail=false")
    assert "2 retried" in retried.stderr
    orion("wait", "--tag", "g4")
    assert {j["status"] for j in orion_json("ls", "--tag", "g4")} == {"completed"}
    none = orion("workflow", "retry", "--tag", "nosuch", "--failed", expect=2)
    assert "no study has a job tagged nosuch" in none.stderr
