"""Issue 26, one set of options: ``eos`` and ``converge`` take ``--dry-run`` (print what would be
submitted, write nothing, exit 0); ``workflow submit`` takes the resource and retry options and
applies them to every step that does not set its own (local backend, EMT)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, REPO
from tests.helpers import orion, orion_json

CU = str(EXAMPLES / "Cu.cif")
FLOW = str(REPO / "examples" / "studies" / "cu-relax-eos.toml")


@pytest.fixture
def local(orion_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    return orion_home


def test_eos_dry_run_prints_the_points_array_and_writes_nothing(local: Path) -> None:
    out = orion("eos", CU, "-e", "emt", "--points", "5", "--mem", "300M", "--dry-run")
    assert "as one array of 5 tasks" in out.stdout and "#SBATCH --mem=300M" in out.stdout
    assert (
        "5 emt point(s), lattice x 0.95 to 1.05, then a fit (birchmurnaghan) after them "
        "(nothing submitted)"
    ) in out.stderr
    assert not local.exists() or not any(local.iterdir())
    relax = orion("eos", CU, "-e", "emt", "--points", "5", "--relax-first", "--dry-run")
    assert relax.stdout.count("#!/bin/bash") == 2  # the relaxation, then the points' array
    assert relax.stderr.startswith("a relaxation (emt), then 5 emt point(s)")
    assert not local.exists() or not any(local.iterdir())


def test_converge_dry_run_prints_the_sweep_and_writes_nothing(local: Path) -> None:
    out = orion(
        "converge", CU, "-e", "emt", "--sweep", "fmax_ev_per_a=0.1,0.05", "-p", "relax=true",
        "--walltime", "20m", "--dry-run",
    )  # fmt: skip
    assert "as one array of 2 tasks" in out.stdout and "#SBATCH --time=00:20:00" in out.stdout
    assert "2 emt job(s), fmax_ev_per_a = 0.1, 0.05, then a converge analysis" in out.stderr
    assert not local.exists() or not any(local.iterdir())
    bad = orion("converge", CU, "-e", "emt", "--sweep", "nosuch=1,2", "--dry-run", expect=2)
    assert "nosuch" in bad.stderr


def test_workflow_options_apply_to_every_step_without_its_own(local: Path) -> None:
    flow = Path("two.toml")
    flow.write_text(
        '[steps.a]\nengine = "emt"\n\n'
        '[steps.b]\nengine = "emt"\nneeds = ["a"]\nmem = "200M"\nretries = 2\nwalltime = "5m"\n'
    )
    done = orion_json(
        "workflow", "submit", str(flow), CU, "--mem", "300M", "--walltime", "20m",
        "--retries", "1", "--ntasks", "1", "--tag", "x", "--tag", "y", "--hold",
    )  # fmt: skip
    steps = done[0]["steps"]
    a, b = (orion_json("show", str(steps[name][0])) for name in ("a", "b"))
    assert (a["mem_mb"], a["walltime_s"], a["max_retries"]) == (300, 1200, 1)
    assert (b["mem_mb"], b["walltime_s"], b["max_retries"]) == (200, 300, 2)
    assert a["tags"] == b["tags"] == ["x", "y"] and a["held"] and b["held"]
    orion("cancel", "--tag", "x")


def test_workflow_on_scf_fail_and_bad_options_are_refused_before_anything(local: Path) -> None:
    scf = orion("workflow", "submit", FLOW, CU, "--on-scf-fail", "mixing_beta=0.3", expect=2)
    assert "no step of" in scf.stderr and "(engines: emt, eos)" in scf.stderr
    mem = orion("workflow", "submit", FLOW, CU, "--mem", "lots", expect=2)
    assert "lots" in mem.stderr
    assert not (local / "orion.db").exists()


def test_retry_records_partition_and_gpus_in_the_attempt(local: Path) -> None:
    job_id = orion_json("submit", CU, "--engine", "mock", "--hold", "--walltime", "10m")["id"]
    orion("cancel", str(job_id))
    orion("retry", str(job_id), "--partition", "long", "--gpus", "1", "--mem", "300M")
    job = orion_json("show", str(job_id))
    first, second = job["attempts"]
    assert (first["resources"]["partition"], first["resources"]["gpus"]) == ("", 0)
    assert second["resources"]["partition"] == "long" and second["resources"]["gpus"] == 1
    assert (second["resources"]["mem_mb"], second["resources"]["walltime_s"]) == (300, 600)
    shown = orion("show", str(job_id)).stdout
    assert "#2 " in shown and "partition long gpus 1" in shown
    assert "#1 " in shown and "partition -" not in shown
    orion("cancel", str(job_id))
