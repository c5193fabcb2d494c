"""Local jobs all missing at once are taken for a wrong ORION_HOME, not lost (issue 23, B11).

The local scheduler keeps its jobs under ORION_HOME; a poll of the same database from another
home once declared 800 held jobs lost and ran them again.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import orion, orion_json


@pytest.fixture
def held_jobs(orion_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    monkeypatch.setenv("ORION_DATABASE_URL", f"sqlite:///{tmp_path}/shared.db")
    monkeypatch.setenv("ORION_LOST_GRACE_S", "0")
    monkeypatch.setenv("ORION_SUBMIT_GRACE_S", "0")
    structure = tmp_path / "Cu.xyz"
    structure.write_text("2\n\nCu 0 0 0\nCu 2.5 0 0\n")
    ids = [
        orion_json("submit", str(structure), "-e", "mock", "--hold", "--name", f"h{i}")["id"]
        for i in range(3)
    ]
    assert [orion_json("show", str(i))["status"] for i in ids] == ["queued"] * 3
    return ids


def states(ids: list[int]) -> list[tuple[str, int]]:
    return [(job["status"], job["attempt"]) for job in (orion_json("show", str(i)) for i in ids)]


def test_all_local_jobs_missing_from_another_home_are_left_alone(
    held_jobs: list[int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORION_HOME", str(tmp_path / "another-home"))
    for _ in range(2):  # missing, then past the (zero) grace period
        result = orion("poll", expect=1)
        assert "none of the 3 active local jobs is known" in result.output
        assert "ORION_HOME" in result.output and "--confirm-lost" in result.output
    assert states(held_jobs) == [("queued", 1)] * 3
    orion("poll", "--confirm-lost", expect=None)
    orion("poll", "--confirm-lost", expect=None)
    confirmed = states(held_jobs)
    assert all(state != ("queued", 1) for state in confirmed), confirmed
    assert "lost" in orion("show", str(held_jobs[0])).output


def test_the_right_home_polls_quietly(held_jobs: list[int]) -> None:
    result = orion("poll")
    assert "known" not in result.output
    assert states(held_jobs) == [("queued", 1)] * 3
