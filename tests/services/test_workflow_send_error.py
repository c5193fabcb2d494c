"""B9 (hostile-input probe 2026-12-06): when the scheduler could not be reached after the
study's rows were committed, `workflow submit` said "not recorded (nothing of it was kept)"
although the study was recorded and `orion poll` later ran it: a user believing it would
submit again and run the study twice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from tests.helpers import orion, orion_json


def test_a_study_recorded_but_not_sent_says_so(
    orion_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    flow = tmp_path / "wf.toml"
    flow.write_text(
        '[steps.one]\nengine = "mock"\n\n[steps.two]\nengine = "mock"\nneeds = ["one"]\n'
    )
    # the local scheduler's id counter is a directory: sending fails with an OSError
    (orion_home / "local-scheduler" / "local-jobs" / "counter").mkdir(parents=True)
    done = orion("workflow", "submit", str(flow), str(EXAMPLES / "Cu.cif"), "--json", expect=None)
    (study,) = json.loads(done.stdout)
    assert study["study_id"] is not None
    assert any(
        f"recorded as study {study['study_id']}, not submitted yet" in e and "orion poll" in e
        for e in study["errors"]
    ), study["errors"]
    assert not any("nothing of it was kept" in e for e in study["errors"])
    rows = orion_json("ls")
    assert len(rows) == 2  # the study is there, as the message says
