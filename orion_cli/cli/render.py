"""How ``orion show`` (and ``submit --wait``) prints one job for a person.

Every value that comes from users or files has its control characters escaped
(:func:`orion_cli.cli.output.visible`).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orion_cli.cli.output import visible
from orion_cli.jobdir import SCRIPT_COPY

Say = Callable[..., None]

#: the job's fields, in the order they are shown
FIELDS = (
    "engine",
    "formula",
    "structure_source",
    "structure_from_id",
    "study_id",
    "study_step",
    "sweep_point",
    "scheduler",
    "scheduler_job_id",
    "pack",
    "raw_state",
    "exit_code",
    "exit_signal",
    "removed_at",
    "queue",
    "partition",
    "account",
    "qos",
    "walltime_s",
    "nodes",
    "ntasks",
    "cpus_per_task",
    "mem_mb",
    "mem_per_cpu_mb",
    "gpus",
    "constraints",
    "exclusive",
    "priority",
    "attempt",
    "progress_pct",
    "current_step",
    "workdir",
    "error_message",
    "hint",
    "created_at",
    "submitted_at",
    "started_at",
    "finished_at",
    "queue_wait_s",
    "run_s",
)
_ONLY_WHEN_SET = frozenset({"pack", "mem_per_cpu_mb", "gpus", "exclusive", "account", "qos"})


def render_job(job: dict[str, Any]) -> None:
    """Print one job for a person."""
    from rich.console import Console
    from rich.text import Text

    console = Console(highlight=False)

    def say(*parts: str | tuple[str, str]) -> None:
        console.print(
            Text.assemble(
                *((visible(p[0]), p[1]) if isinstance(p, tuple) else visible(p) for p in parts)
            )
        )

    status = job["status"] + (f" ({job['failure_reason']})" if job["failure_reason"] else "")
    status += f"; {job['dependency']}" if job.get("dependency") else ""
    if job.get("held") and job["status"] == "queued":
        status += f"; held (`orion release {job['id']}` lets it start)"
    say((f"job {job['id']}", "bold"), f" {job['name']}: {status}")
    for section in (_fields, _how_it_runs, _links, _result, _attempts, _events):
        section(say, job)


def _fields(say: Say, job: dict[str, Any]) -> None:
    if job.get("tags"):
        say(f"  {'tags':17} {', '.join(job['tags'])}")
    for key in FIELDS:
        if job.get(key) not in (None, "") and (key not in _ONLY_WHEN_SET or job[key]):
            unit = " calculations per array task" if key == "pack" else ""
            say(f"  {key:17} {job[key]}{unit}")
    for n, arg in enumerate(job.get("sbatch_args") or []):
        say(f"  {'sbatch options' if n == 0 else '':17} {arg}")


def _how_it_runs(say: Say, job: dict[str, Any]) -> None:
    """The script or the parameters, the SCF policy, the site set-up."""
    if job.get("script"):
        for key, value in script_lines(job):
            say(f"  {key:17} {value}")
    else:
        say(f"  {'parameters':17} {job['parameters']}")
        for label, value in frozen_show_lines(job):
            say(f"  {label:17} {value}")
    scf = job.get("on_scf_fail") or {}
    if scf.get("change"):
        applied = scf.get("applied_at_attempt")
        when = f"applied to attempt {applied}" if applied else "not used"
        change = " ".join(f"{k}={v}" for k, v in scf["change"].items())
        say(f"  {'on scf fail':17} {change} ({when})")
    site = job.get("site") or {}
    if site.get("python"):
        say(f"  {'python':17} {site['python']}")
    for n, line in enumerate(site.get("setup") or []):
        say(f"  {'site set-up' if n == 0 else '':17} {line}")


def _links(say: Say, job: dict[str, Any]) -> None:
    for key in ("parents", "children"):
        for n, other in enumerate(job.get(key) or []):
            why = f" ({other['failure_reason']})" if other["failure_reason"] else ""
            say(
                f"  {key if n == 0 else '':17} {other['id']} {other['name']}: "
                f"{other['status']}{why} [{other['kind']}]"
            )


def _result(say: Say, job: dict[str, Any]) -> None:
    result = job.get("result")
    if not result:
        return
    say("  result:")
    for key in ("energy_ev", "converged", "error"):
        if result.get(key) is not None:
            say(f"    {key:15} {result[key]}")
    extras = result.get("extras") or {}
    if isinstance(extras.get("answer"), str):  # a study's outcome (orion eos, converge)
        say(f"    {'answer':15} {extras['answer']}")
    for value, diff in zip(  # orion converge: each value against the last
        extras.get("values") or [], extras.get("differences_mev_per_atom") or [], strict=False
    ):
        shown = "failed" if diff is None else f"{diff:+.3f} meV/atom"
        say(f"    {extras['parameter'] + ' ' + str(value):15} {shown}")
    for key, value in extras.items() if job.get("script") else ():
        say(f"    {key:15} {value}")  # `orion progress --result key=value` of a script
    _model(say, extras.get("model"))
    if result.get("forces_ev_per_a"):
        fmax = max(sum(c * c for c in f) ** 0.5 for f in result["forces_ev_per_a"])
        say(f"    {'max force':15} {fmax:.4f} eV/Å")
    _derived(say, result.get("derived") or {}, bool(result.get("final_structure")))


def _model(say: Say, model: Any) -> None:
    """The machine-learned potential a result came from (package, model, file sha256)."""
    if not isinstance(model, dict):
        return
    package = f"{model.get('package')} {model.get('package_version')}"
    say(f"    {'model':15} {model.get('model')} ({package})")
    say(f"    sha256 {model.get('model_sha256')}")  # 64 digits: one line in 80 columns
    if model.get("device"):
        threads = f", {model['torch_threads']} threads" if model.get("torch_threads") else ""
        say(f"    {'device':15} {model['device']}{threads}")


def _derived(say: Say, derived: dict[str, Any], final: bool) -> None:
    """Volume, pressure and the (final) cell, computed from the stored result."""
    if "volume_a3" in derived:
        say(f"    {'volume':15} {derived['volume_a3']:.4f} Å³")
    if "pressure_gpa" in derived:
        say(f"    {'pressure':15} {derived['pressure_gpa']:.4f} GPa")
    for n, row in enumerate(derived.get("cell_a") or []):
        label = ("final cell (Å)" if final else "cell (Å)") if n == 0 else ""
        say(f"    {label:15} {'abc'[n]}  " + "  ".join(f"{x:11.6f}" for x in row))


def _attempts(say: Say, job: dict[str, Any]) -> None:
    attempts = job.get("attempts", [])
    if len(attempts) <= 1 and not any(a["reason"] for a in attempts):
        return
    say("  attempts:")
    for a in attempts:
        reason = f" ({a['reason']})" if a["reason"] else ""
        asked = a.get("resources") or {}
        where = f" partition {asked['partition']}" if asked.get("partition") else ""
        where += f" gpus {asked['gpus']}" if asked.get("gpus") else ""
        say(
            f"    #{a['attempt']} {a['scheduler_job_id'] or '-'} {a['status']}"
            f"{reason} walltime {a['walltime_s']} s mem {a['mem_mb'] or '-'} MB{where}"
        )


def _events(say: Say, job: dict[str, Any]) -> None:
    say("  events:")
    for event in job["events"]:
        reason = f" ({event['reason']})" if event["reason"] else ""
        move = "note" if event["from"] == event["to"] else f"{event['from']} → {event['to']}"
        who = f"{event['source']}, {event['actor']}" if event.get("actor") else event["source"]
        say(f"    {event['at']} {move}{reason} [{who}] {event['message'] or ''}")


def script_lines(job: dict[str, Any]) -> list[tuple[str, str]]:
    """What ``orion show`` prints of a script job: its path, the copy, arguments, options."""
    script = job["script"]
    lines = [("script", script.get("path") or "(not kept by SLURM)")]
    if job.get("workdir") and script.get("path"):
        lines.append(("as submitted", str(Path(job["workdir"]) / SCRIPT_COPY)))
    if script.get("args"):
        lines.append(("arguments", shlex.join(script["args"])))
    if script.get("submit_dir"):
        own = f"its own #SBATCH --chdir={script['header'].get('chdir')}"
        lines.append(("runs in", own if script.get("own_chdir") else script["submit_dir"]))
    header = script.get("header") or {}
    if header:
        options = " ".join(f"--{k}={v}" if v else f"--{k}" for k, v in header.items())
        lines.append(("#SBATCH", options))
    if script.get("options"):
        label = "a retry adds" if script.get("adopted") else "orion adds"
        lines.append((label, " ".join(script["options"])))
    if script.get("adopted"):
        lines.append(("adopted", f"submitted without orion as {job['scheduler_job_id']}"))
    return lines


def frozen_file_lines(record: dict[str, Any] | None) -> list[str]:
    """One line per file the engine reads: role, name, sha256 (show, --dry-run)."""
    files = (record or {}).get("files") or []
    return [f"input {f['role']}: {f['name']} sha256 {f['sha256']}" for f in files]


def frozen_show_lines(job: dict[str, Any]) -> list[tuple[str, str]]:
    """``orion show``: what the job was frozen with at submit, as (label, value) lines."""
    record = job.get("frozen") or {}
    derived = {k: v for k, v in (record.get("derived") or {}).items() if v is not None}
    lines = [("derived", " ".join(f"{k}={v}" for k, v in derived.items()))] if derived else []
    lines += [
        ("input files" if n == 0 else "", line.removeprefix("input "))
        for n, line in enumerate(frozen_file_lines(record))
    ]
    if record.get("code_version"):
        lines.append(("code version", str(record["code_version"])))
    if job.get("calc_key"):
        lines.append(("calculation key", str(job["calc_key"])))
    if job.get("reused_from"):
        lines.append(("reused from", f"job {job['reused_from']}"))
    if job.get("reuse_invalid"):
        lines.append(("reuse", "invalidated (orion reuse invalidate)"))
    return lines
