"""What is sent for an attempt of a user's own batch script (``orion submit --script``).

The copy of the script in the job directory, with orion's sbatch options: the first submit,
every retry and the recovery of an interrupted submit send the same thing.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from orion_cli.batch import BatchSpec, sbatch_options, slurm_filename, slurm_job_name
from orion_cli.jobdir import SCRIPT_COPY
from orion_cli.resources import ResourceAsk, Resources
from orion_cli.sbatch_header import export_option
from orion_cli.schedulers.base import SubmitOptions


def script_submission(
    job: Any,
    instance: str,
    *,
    hold: bool = False,
    begin: datetime | None = None,
    after: tuple[tuple[str, str], ...] = (),
    attempt: int | None = None,
    resources: Resources | None = None,
) -> tuple[Path, SubmitOptions]:
    """The script copy and the sbatch options of an attempt (default: the job's current one).

    Pure: reads only the row (``job.script``, resources, attempt) and the arguments.
    ``attempt``/``resources``: those of a retry not recorded yet.
    """
    script = job.script or {}
    workdir = Path(job.workdir)
    attempt = attempt or job.attempt
    walltime_s, mem_mb = (resources or job).walltime_s, (resources or job).mem_mb
    spec = BatchSpec(
        orion_id=job.id or 0,
        name=job.name,
        workdir=workdir,
        python="",
        resources=Resources(walltime_s=walltime_s),
        attempt=attempt,
        instance=instance,
    )  # the name and output path need no more
    extra = [f"--job-name={slurm_job_name(spec)}", *script.get("options", [])]
    this_attempt = ResourceAsk.of(
        # a flag, orion's default or a retry's; the script's own line otherwise
        walltime_s=walltime_s if walltime_s != script.get("own_time") else None,
        mem_mb=mem_mb if mem_mb and mem_mb != script.get("own_mem_mb") else None,
    )
    extra += sbatch_options(this_attempt)
    output = slurm_filename(spec.output_path)
    if not script.get("own_output") and output is not None:
        extra.append(f"--output={output}")
    extra.append(
        export_option(
            script.get("export"),
            {
                "ORION_JOB_ID": str(job.id),
                "ORION_ATTEMPT": str(attempt),
                "ORION_JOB_DIR": str(workdir),
            },
        )
    )
    chdir = "" if script.get("own_chdir") else str(script.get("submit_dir") or workdir)
    return workdir / SCRIPT_COPY, SubmitOptions(
        hold=hold,
        begin=begin,
        after=after,
        chdir=chdir,
        extra_args=tuple(extra),
        script_args=tuple(script.get("args", [])),
    )
