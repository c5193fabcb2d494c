"""One duration parser: what a user types means what SLURM means by it.

The reference is SLURM itself: the same text given to `sbatch --time` and read back from
`squeue`'s time limit (seconds since it prints [D-]HH:MM:SS).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from orion_cli.schedulers.slurm_states import parse_slurm_time_s
from orion_cli.units import clock_s, parse_walltime_s

FORMS = ["30:00", "1:30:00", "1-02", "1-02:30", "1-02:30:15", "2-0"]


@pytest.mark.parametrize("text", FORMS)
def test_user_and_slurm_forms_agree(text: str) -> None:
    assert parse_walltime_s(text) == clock_s(text) == parse_slurm_time_s(text)


def test_a_day_and_hours_and_minutes_is_not_minutes_and_seconds() -> None:
    """`1-02:30` is 1 day 2 h 30 min (it was read as 1 day 2.5 minutes)."""
    assert parse_walltime_s("1-02:30") == (24 + 2) * 3600 + 30 * 60


@pytest.mark.slurm
def test_slurm_reads_each_form_as_orion_does(slurm: None, tmp_path: Path) -> None:
    script = tmp_path / "t.sh"
    script.write_text("#!/bin/bash\ntrue\n")
    for text in FORMS:
        job_id = (
            subprocess.run(
                [
                    "sbatch",
                    "--parsable",
                    "--hold",
                    f"--time={text}",
                    f"--chdir={tmp_path}",
                    str(script),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            .stdout.strip()
            .split(";")[0]
        )
        try:
            limit = subprocess.run(
                ["squeue", "-h", "-j", job_id, "-o", "%l"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        finally:
            subprocess.run(["scancel", job_id], check=False)
        whole_minutes_s = -(-parse_walltime_s(text) // 60) * 60  # SLURM keeps minutes
        assert parse_slurm_time_s(limit) == whole_minutes_s, (text, limit)
