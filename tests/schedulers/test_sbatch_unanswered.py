"""sbatch that submits and then never answers: the outcome is unknown, not a refusal.

The real sbatch submits the job, then a wrapper keeps the command from returning (a hung
slurmctld RPC looks the same to orion); the runner gives up after its time limit (rc 124).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from orion_cli.errors import SubmitOutcomeUnknown
from orion_cli.runner import TIMEOUT_RC, CommandResult, run
from orion_cli.schedulers.slurm_cli import SlurmCli


@pytest.mark.slurm
def test_an_unanswered_sbatch_is_an_unknown_outcome_and_the_job_is_found(
    slurm: None, tmp_path: Path
) -> None:
    wrapper = tmp_path / "sbatch"
    wrapper.write_text(f'#!/bin/bash\n{shutil.which("sbatch")} "$@" >/dev/null\nexec sleep 30\n')
    wrapper.chmod(0o755)
    seen: list[int] = []

    def runner(
        argv: Sequence[str], *, input_text: str | None = None, timeout_s: float = 60.0
    ) -> CommandResult:
        if argv[0] == "sbatch":
            argv = [str(wrapper), *argv[1:]]
            timeout_s = 3.0
        result = run(argv, input_text=input_text, timeout_s=timeout_s)
        seen.append(result.returncode)
        return result

    name = f"orion-unanswered-{tmp_path.name}"
    script = tmp_path / "job.sh"
    script.write_text(f"#!/bin/bash\n#SBATCH --job-name={name}\n#SBATCH --hold\ntrue\n")
    slurm_cli = SlurmCli(runner=runner)
    with pytest.raises(SubmitOutcomeUnknown, match="did not answer"):
        slurm_cli.submit(script)
    assert seen == [TIMEOUT_RC]
    found = slurm_cli.find_by_name([name]).get(name)
    try:
        assert found is not None and found.isdigit()  # the job exists: adopt, never resubmit
    finally:
        if found:
            subprocess.run(["scancel", found], check=False)
