"""``orion poll | show | audit | doctor | engines | db upgrade`` (``ls`` is in ls.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from orion_cli.cli import app
from orion_cli.cli.jobargs import one_job_id
from orion_cli.cli.output import handle_errors, message, print_json, table, visible
from orion_cli.errors import UsageError

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
db_app = typer.Typer(help="Database schema management.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@app.command()
@handle_errors
def poll(
    as_json: JsonOpt = False,
    quiet: Annotated[
        bool,
        typer.Option("--quiet", "-q", help="Print only errors (for cron: no mail unless broken)."),
    ] = False,
    metrics: Annotated[
        Path | None,
        typer.Option(
            "--metrics",
            help="After the cycle, write Prometheus metrics to "
            "DIR/orion-<user>.prom (node_exporter textfile directory).",
        ),
    ] = None,
) -> None:
    """Reconcile the scheduler and job directories into the database (cron runs this)."""
    from orion_cli.config import load_settings
    from orion_cli.services.poll import poll as run_poll

    settings = load_settings()
    if metrics is not None and not metrics.is_dir():
        raise UsageError(
            f"--metrics directory '{metrics}' does not exist",
            "give node_exporter's --collector.textfile.directory",
        )
    report = run_poll(settings)
    if metrics is not None and not report.overlapped:
        from orion_cli.identity import current_user
        from orion_cli.services.metrics import textfile_in, write_textfile

        write_textfile(settings, textfile_in(metrics, current_user()))
    if report.overlapped:  # normal under cron: not an error, and cron must not mail
        if not quiet:
            message("another orion poll is running; this one did nothing")
        if as_json:
            print_json(
                {
                    "checked": 0,
                    "changed": {},
                    "notes": [],
                    "errors": [],
                    "scheduler_calls": 0,
                    "overlapped": True,
                }
            )
        return
    if as_json:
        print_json(
            {
                "checked": report.checked,
                "changed": report.changed,
                "notes": report.notes,
                "errors": report.errors,
                "scheduler_calls": report.scheduler_calls,
                "duration_s": report.duration_s,
            }
        )
    elif quiet:
        for line in report.errors:
            message(f"error: {line}")
    else:
        for job_id, status in report.changed.items():
            message(f"job {job_id}: {status}")
        for line in report.notes:
            message(line)
        message(f"checked {report.checked} active jobs, {len(report.changed)} changed")
        for line in report.errors:
            message(f"error: {line}")
    if report.errors:
        raise typer.Exit(1)


#: fields `show` prints only when set (a 0 or False says nothing)
_ONLY_WHEN_SET = frozenset({"pack", "mem_per_cpu_mb", "gpus", "exclusive", "account", "qos"})


def render_job(job: dict[str, Any]) -> None:
    """Print one job for a person; every value from users or files has its controls escaped."""
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
    say((f"job {job['id']}", "bold"), f" {job['name']}: {status}")
    if job.get("tags"):
        say(f"  {'tags':17} {', '.join(job['tags'])}")
    for key in (
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
        "created_at",
        "submitted_at",
        "started_at",
        "finished_at",
        "queue_wait_s",
        "run_s",
    ):
        if job.get(key) not in (None, "") and (key not in _ONLY_WHEN_SET or job[key]):
            say(
                f"  {key:17} {job[key]}" + (" calculations per array task" if key == "pack" else "")
            )
    for n, arg in enumerate(job.get("sbatch_args") or []):
        say(f"  {'sbatch options' if n == 0 else '':17} {arg}")
    if job.get("script"):
        from orion_cli.cli.scripts import script_lines

        for key, value in script_lines(job):
            say(f"  {key:17} {value}")
    else:
        say(f"  {'parameters':17} {job['parameters']}")
    scf = job.get("on_scf_fail") or {}
    if scf.get("change"):
        when = (
            f"applied to attempt {scf['applied_at_attempt']}"
            if scf.get("applied_at_attempt")
            else "not used"
        )
        say(
            f"  {'on scf fail':17} "
            + " ".join(f"{k}={v}" for k, v in scf["change"].items())
            + f" ({when})"
        )
    site = job.get("site") or {}
    if site.get("python"):
        say(f"  {'python':17} {site['python']}")
    for n, line in enumerate(site.get("setup") or []):
        say(f"  {'site set-up' if n == 0 else '':17} {line}")
    for key in ("parents", "children"):
        for n, other in enumerate(job.get(key) or []):
            why = f" ({other['failure_reason']})" if other["failure_reason"] else ""
            say(
                f"  {key if n == 0 else '':17} {other['id']} {other['name']}: "
                f"{other['status']}{why} [{other['kind']}]"
            )
    result = job.get("result")
    if result:
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
        for key, value in (result.get("extras") or {}).items() if job.get("script") else ():
            say(f"    {key:15} {value}")  # `orion progress --result key=value` of a script
        _render_model(say, extras.get("model"))
        if result.get("forces_ev_per_a"):
            fmax = max(sum(c * c for c in f) ** 0.5 for f in result["forces_ev_per_a"])
            say(f"    {'max force':15} {fmax:.4f} eV/Å")
        _render_derived(say, result.get("derived") or {}, bool(result.get("final_structure")))
    if len(job.get("attempts", [])) > 1 or any(a["reason"] for a in job.get("attempts", [])):
        say("  attempts:")
        for a in job["attempts"]:
            reason = f" ({a['reason']})" if a["reason"] else ""
            say(
                f"    #{a['attempt']} {a['scheduler_job_id'] or '-'} {a['status']}"
                f"{reason} walltime {a['walltime_s']} s mem {a['mem_mb'] or '-'} MB"
            )
    say("  events:")
    for event in job["events"]:
        reason = f" ({event['reason']})" if event["reason"] else ""
        move = "note" if event["from"] == event["to"] else f"{event['from']} → {event['to']}"
        who = f"{event['source']}, {event['actor']}" if event.get("actor") else event["source"]
        say(f"    {event['at']} {move}{reason} [{who}] {event['message'] or ''}")


def _render_model(say: Any, model: Any) -> None:
    """The machine-learned potential a result came from (package, model, file sha256)."""
    if not isinstance(model, dict):
        return
    package = f"{model.get('package')} {model.get('package_version')}"
    say(f"    {'model':15} {model.get('model')} ({package})")
    say(f"    sha256 {model.get('model_sha256')}")  # 64 digits: one line in 80 columns
    if model.get("device"):
        threads = f", {model['torch_threads']} threads" if model.get("torch_threads") else ""
        say(f"    {'device':15} {model['device']}{threads}")


def _render_derived(say: Any, derived: dict[str, Any], final: bool) -> None:
    """Volume, pressure and the (final) cell, computed from the stored result."""
    if "volume_a3" in derived:
        say(f"    {'volume':15} {derived['volume_a3']:.4f} Å³")
    if "pressure_gpa" in derived:
        say(f"    {'pressure':15} {derived['pressure_gpa']:.4f} GPa")
    for n, row in enumerate(derived.get("cell_a") or []):
        label = ("final cell (Å)" if final else "cell (Å)") if n == 0 else ""
        say(f"    {label:15} {'abc'[n]}  " + "  ".join(f"{x:11.6f}" for x in row))


@app.command()
@handle_errors
def show(
    job_id: Annotated[str, typer.Argument(help="orion job id")] = "",
    slurm_id: Annotated[
        str,
        typer.Option("--slurm-id", help="Name the job by its SLURM id instead (1234 or 1234_5)."),
    ] = "",
    as_json: JsonOpt = False,
) -> None:
    """Show everything about one job, including its result and events."""
    from orion_cli.cli.monitor import say_freshness
    from orion_cli.config import load_settings
    from orion_cli.services.freshness import read_stamp
    from orion_cli.services.jobs import show_job

    settings = load_settings()
    job = show_job(settings, one_job_id(settings, job_id, slurm_id))
    if as_json:
        print_json({**job, "last_poll_at": read_stamp(settings).last_ok_at})
    else:
        render_job(job)
        active = job["status"] in ("created", "queued", "running") or bool(
            job.get("next_attempt_at")
        )
        say_freshness(settings, active)


@app.command()
@handle_errors
def audit(
    user: Annotated[str, typer.Option(help="Only actions by or on the jobs of this user.")] = "",
    since: Annotated[str, typer.Option(help="Only actions within: 2h, 3d, 90m.")] = "",
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Actions shown.")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """Who did what to which job, newest first (submit, cancel, retry, hold, poll, ...)."""
    from orion_cli.config import load_settings
    from orion_cli.services.jobs import audit_events
    from orion_cli.units import parse_walltime_s

    rows = audit_events(
        load_settings(), user, parse_walltime_s(since, "--since") if since else None, limit
    )
    if as_json:
        print_json(rows)
        return
    if not rows:
        typer.echo("no recorded actions match")
        return
    table(
        f"{len(rows)} newest actions",
        ["time", "actor", "source", "job", "owner", "action", "message"],
        [
            (
                r["at"][:19].replace("T", " "),
                r["actor"] or "-",
                r["source"],
                f"{r['job_id']} {r['job_name']}",
                r["owner"],
                "note"
                if r["from"] == r["to"]
                else f"{r['from']} → {r['to']}" + (f" ({r['reason']})" if r["reason"] else ""),
                (r["message"] or "")[:80],
            )
            for r in rows
        ],
    )


@app.command()
@handle_errors
def doctor(as_json: JsonOpt = False) -> None:
    """Check database, schema, scheduler and engines; exit 1 if something is broken."""
    from orion_cli.config import load_settings
    from orion_cli.services.doctor import run_checks

    checks = run_checks(load_settings())
    if as_json:
        print_json([{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks])
    else:
        for c in checks:
            typer.echo(visible(f"{'ok  ' if c.ok else 'FAIL'} {c.name:20} {c.detail}"))
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


@app.command()
@handle_errors
def engines(as_json: JsonOpt = False) -> None:
    """List installed engines, whether their program is found, and their parameters."""
    from orion_cli.config import load_settings
    from orion_cli.engines.registry import engine_names, get_engine

    settings = load_settings()
    data: list[dict[str, Any]] = []
    for name in engine_names():
        engine = get_engine(name)
        found, detail = engine.binary_status(settings.engine_settings(name))
        data.append(
            {
                "name": name,
                "summary": engine.summary,
                "available": found,
                "detail": detail,
                "parameters": [
                    {
                        "name": p.name,
                        "default": p.default,
                        "unit": p.unit,
                        "help": p.help,
                        "choices": list(p.choices),
                    }
                    for p in engine.parameters
                ],
            }
        )
    if as_json:
        print_json(data)
        return
    for item in data:
        mark = "ok" if item["available"] else "--"
        typer.echo(visible(f"{mark} {item['name']:8} {item['summary']} [{item['detail']}]"))
        for p in item["parameters"]:
            unit = f" [{p['unit']}]" if p["unit"] else ""
            one_of = f" (one of: {', '.join(p['choices'])})" if p["choices"] else ""
            line = f"     {p['name']:16} default {p['default']!r}{unit}: {p['help']}{one_of}"
            typer.echo(visible(line))


@db_app.command("upgrade")
@handle_errors
def db_upgrade(
    as_json: JsonOpt = False,
    alongside_other_tables: Annotated[
        bool,
        typer.Option(
            "--alongside-other-tables",
            help="PostgreSQL: add orion's tables to a database that already holds other "
            "applications' tables (never to one with tables named like orion's).",
        ),
    ] = False,
) -> None:
    """Create or upgrade the database schema to the version this orion needs."""
    from orion_cli.config import load_settings
    from orion_cli.db.session import redact, upgrade_url

    settings = load_settings()
    before, after = upgrade_url(settings.resolved_database_url, alongside_other_tables)
    if as_json:
        print_json({"from": before, "to": after})
    else:
        message(f"{redact(settings.resolved_database_url)}: schema {before or 'empty'} → {after}")


@db_app.command("grant")
@handle_errors
def db_grant(
    users: Annotated[list[str], typer.Argument(help="members' Unix user names")],
    as_json: JsonOpt = False,
) -> None:
    """PostgreSQL group database: let these users use orion (run by the admin).

    Creates a login role named like each user where missing and grants orion's tables;
    row-level security then lets each change only their own jobs.
    """
    from orion_cli.config import load_settings
    from orion_cli.services.group import grant

    lines = grant(load_settings().resolved_database_url, users)
    if as_json:
        print_json({"granted": users})
    else:
        for line in lines:
            message(line)
