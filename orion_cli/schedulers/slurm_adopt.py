"""Pure: what SLURM says about a job submitted without orion (``orion adopt``).

``scontrol show job -o`` knows jobs the controller still holds (pending, running, and
finished ones for ``MinJobAge``, 300 s by default) including the script's path; ``sacct``
knows older ones. ``scontrol write batch_script ID -`` prints the script SLURM stored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from orion_cli.resources import ResourceAsk
from orion_cli.units import clock_s

#: sacct fields asked for, in this order
SACCT_ADOPT_FIELDS = (
    "JobID",
    "JobName",
    "User",
    "State",
    "Timelimit",
    "ReqMem",
    "NNodes",
    "NTasks",
    "ReqCPUS",
    "Partition",
    "Account",
    "QOS",
    "WorkDir",
)
_KEY = re.compile(r"(?:^|\s)([A-Za-z][A-Za-z0-9_:/]*)=")
_MEM = re.compile(r"(\d+(?:\.\d+)?)([KMGT]?)(n|c)?", re.IGNORECASE)
_MB = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024 * 1024}


@dataclass(frozen=True)
class ForeignJob:
    """A job as SLURM reports it ("" where SLURM says nothing usable)."""

    scheduler_job_id: str
    name: str
    user: str
    state: str
    #: what the job asked for, in orion's units; a value SLURM gave nothing usable for is unset
    resources: ResourceAsk = ResourceAsk()
    workdir: str = ""
    script_path: str = ""
    array: bool = False
    #: the job's stdout file as SLURM resolved it (scontrol's StdOut; sacct has none)
    stdout_path: str = ""


def scontrol_job_argv(job_id: str) -> list[str]:
    return ["scontrol", "show", "job", "-o", job_id]


def batch_script_argv(job_id: str) -> list[str]:
    return ["scontrol", "write", "batch_script", job_id, "-"]


def sacct_job_argv(job_id: str) -> list[str]:
    return ["sacct", "-j", job_id, "-X", "-n", "-P", "-o", ",".join(SACCT_ADOPT_FIELDS)]


def key_values(line: str) -> dict[str, str]:
    """Split ``scontrol -o`` output into its ``Key=value`` pairs (values may hold spaces).

    >>> key_values("JobId=7 JobName=my run UserId=ann(1000) CPUs/Task=2")
    {'JobId': '7', 'JobName': 'my run', 'UserId': 'ann(1000)', 'CPUs/Task': '2'}
    """
    matches = list(_KEY.finditer(line))
    return {
        m.group(1): line[
            m.end() : matches[i + 1].start() if i + 1 < len(matches) else len(line)
        ].strip()
        for i, m in enumerate(matches)
    }


def mem_mb(text: str) -> int:
    """Memory per node in MB from ``200M``, ``4G``, ``4000Mn``; per-CPU (``…c``) gives 0.

    >>> mem_mb("200M"), mem_mb("4G"), mem_mb("4000Mn"), mem_mb("500Mc"), mem_mb("")
    (200, 4096, 4000, 0, 0)
    """
    match = _MEM.fullmatch(text.strip())
    if not match or (match.group(3) or "").lower() == "c":
        return 0
    return round(float(match.group(1)) * _MB[match.group(2).upper()])


def _count(text: str) -> int | None:
    first = text.split("-")[0]
    return int(first) if first.isdigit() and int(first) > 0 else None


def slurm_resources(job_id: str, **values: Any) -> ResourceAsk:
    """SLURM's answer for ``job_id`` as resources: 0 and "" (nothing usable) are unset.

    >>> dict(slurm_resources("7", walltime_s=0, nodes=2, partition="").values)
    {'nodes': 2}
    """
    given = {name: value for name, value in values.items() if value not in (0, "", None)}
    return ResourceAsk.of(f"SLURM's record of job {job_id}", **given)


def parse_scontrol_job(stdout: str) -> ForeignJob | None:
    """The first job of ``scontrol show job -o`` output (None: no job)."""
    line = next((line for line in stdout.splitlines() if line.startswith("JobId=")), "")
    if not line:
        return None
    kv = {
        key: "" if value in ("(null)", "N/A", "None") else value
        for key, value in key_values(line).items()
    }
    return ForeignJob(
        scheduler_job_id=kv.get("JobId", ""),
        name=kv.get("JobName", ""),
        user=kv.get("UserId", "").split("(")[0],
        state=kv.get("JobState", ""),
        resources=slurm_resources(
            kv.get("JobId", ""),
            walltime_s=clock_s(kv.get("TimeLimit", "")),
            mem_mb=mem_mb(kv.get("MinMemoryNode", "")),
            nodes=_count(kv.get("NumNodes", "")),
            ntasks=_count(kv.get("NumTasks", "")),
            cpus_per_task=_count(kv.get("CPUs/Task", "")),
            partition=kv.get("Partition", ""),
            account=kv.get("Account", ""),
            qos=kv.get("QOS", ""),
        ),
        workdir=kv.get("WorkDir", ""),
        script_path=kv.get("Command", "") if kv.get("BatchFlag") == "1" else "",
        array="ArrayJobId" in kv,
        stdout_path=kv.get("StdOut", ""),
    )


def parse_sacct_job(stdout: str, job_id: str) -> ForeignJob | None:
    """The allocation line of ``job_id`` in :func:`sacct_job_argv` output (None: no job)."""
    for line in stdout.splitlines():
        fields = line.split("|")
        if len(fields) != len(SACCT_ADOPT_FIELDS) or fields[0] != job_id:
            continue
        row = dict(zip(SACCT_ADOPT_FIELDS, fields, strict=True))
        return ForeignJob(
            scheduler_job_id=job_id,
            name=row["JobName"],
            user=row["User"],
            state=row["State"],
            resources=slurm_resources(
                job_id,
                walltime_s=clock_s(row["Timelimit"]),
                mem_mb=mem_mb(row["ReqMem"]),
                nodes=_count(row["NNodes"]),
                ntasks=_count(row["NTasks"]),
                partition=row["Partition"],
                account=row["Account"],
                qos=row["QOS"],
            ),
            workdir=row["WorkDir"],
        )
    return None
