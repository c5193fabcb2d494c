"""The submit plan: a request is never changed; planning is pure (issue 20)."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest
from ase import Atoms
from ase.io import write

from orion_cli.config import load_settings
from orion_cli.services.submission.plan import SubmitPlan, SubmitRequest, plan_submission
from orion_cli.services.submission.submit import submit


@pytest.fixture
def structures(orion_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    monkeypatch.setenv("ORION_TEST_SCHEDULER", "1")
    monkeypatch.setenv("ORION_SCHEDULER", "test")
    files = []
    for i in range(3):
        path = tmp_path / f"cu{i}.xyz"
        write(path, Atoms("Cu2", positions=[[0, 0, 0], [0, 0, 2.0 + 0.01 * i]]))
        files.append(path)
    return files


def _request(structures: list[Path], **fields: object) -> SubmitRequest:
    """A request that leaves everything a plan resolves unset (scheduler, retries, reuse)."""
    return SubmitRequest(
        structures=structures,
        engine="mock",
        params={"duration_s": 0},
        tags=("a", "b", "a"),
        pack="2",
        **fields,  # type: ignore[arg-type]
    )


def test_a_submit_changes_neither_its_request_nor_a_from_request(
    structures: list[Path],
) -> None:
    settings = load_settings()
    request = _request(structures)
    before = copy.deepcopy(request)
    done = submit(settings, request)
    assert not done.errors and len(done.ids) == 3
    assert request == before

    child = SubmitRequest(structures=[], engine="mock", structure_from=done.ids[0])
    before = copy.deepcopy(child)
    assert not submit(settings, child).errors
    assert child == before


def test_a_request_and_a_plan_are_frozen(structures: list[Path]) -> None:
    plan = plan_submission(_request(structures), load_settings())
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.request.scheduler = "slurm"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.pack_size = 2  # type: ignore[misc]


def test_planning_is_pure(structures: list[Path], orion_home: Path) -> None:
    settings = load_settings()
    request = _request(structures)
    before = copy.deepcopy(request)
    first = plan_submission(request, settings)
    assert first == plan_submission(request, settings)  # same inputs, an equal plan
    assert request == before
    assert not orion_home.exists()  # no database, no job directory: nothing written
    assert isinstance(first, SubmitPlan)
    assert (first.scheduler, first.tags, first.tag) == ("test", ("a", "b"), "a")
    assert (first.max_retries, first.retry_delay_s) == (settings.max_retries, 60)
    assert (first.reuse, first.pack_size) == (settings.reuse, 0)  # packing: once staged
    assert first.resources.walltime_s == settings.resources.walltime_s
    assert first.params["duration_s"] == 0
