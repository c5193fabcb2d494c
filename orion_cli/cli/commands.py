"""``orion poll | show | audit | doctor | engines | db upgrade`` (``ls`` is in ls.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from orion_cli.cli.jobargs import one_job_id
from orion_cli.cli.monitor import say_freshness
from orion_cli.cli.output import handle_errors, message, print_json, table, visible
from orion_cli.cli.render import render_job
from orion_cli.cli.root import app
from orion_cli.config import load_settings
from orion_cli.engines.registry import engine_names, get_engine
from orion_cli.errors import UsageError
from orion_cli.identity import current_user
from orion_cli.outfile import check_output_path
from orion_cli.units import parse_walltime_s

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
    confirm_lost: Annotated[
        bool,
        typer.Option(
            "--confirm-lost",
            help="Let local jobs that are all missing at once be declared lost (normally "
            "taken for a wrong ORION_HOME and left alone).",
        ),
    ] = False,
    loop: Annotated[
        bool,
        typer.Option(
            "--loop",
            help="Keep polling every INTERVAL (default 60 s) until SIGTERM or Ctrl-C: for a "
            "screen/tmux session or a systemd user unit where cron is not allowed.",
        ),
    ] = False,
    interval: Annotated[
        str | None,
        typer.Argument(
            metavar="[INTERVAL]", help="With --loop: 60, 90s, 2m...", show_default=False
        ),
    ] = None,
) -> None:
    """Reconcile the scheduler and job directories into the database (cron runs this)."""
    from orion_cli.services.lifecycle.poll import poll as run_poll
    from orion_cli.services.queries.metrics import textfile_in, write_textfile

    settings = load_settings()
    if interval is not None and not loop:
        raise UsageError(f"'{interval}' given without --loop", "use `orion poll --loop INTERVAL`")
    if loop:
        _poll_loop(settings, interval or "60", quiet)
        return
    if metrics is not None and not metrics.is_dir():
        raise UsageError(
            f"--metrics directory '{metrics}' does not exist",
            "give node_exporter's --collector.textfile.directory",
        )
    if metrics is not None:  # refused before the cycle, not after its work
        check_output_path(textfile_in(metrics, current_user()))
    report = run_poll(settings, confirm_lost=confirm_lost)
    if metrics is not None and not report.overlapped:
        write_textfile(settings, textfile_in(metrics, current_user()))
    _print_poll(report, as_json, quiet)
    if report.errors:
        raise typer.Exit(1)


def _poll_loop(settings: Any, interval: str, quiet: bool) -> None:
    """``orion poll --loop``: one line per cycle that changed something (errors always)."""
    from datetime import datetime

    from orion_cli.services.lifecycle.poll_loop import poll_loop

    interval_s = parse_walltime_s(interval, "--loop interval")

    def said(report: Any, error: str) -> None:
        now = datetime.now().strftime("%H:%M:%S")
        if error or (report and report.errors):
            for line in [error] if error else report.errors:
                message(f"{now} error: {line}")
        elif report and report.overlapped and not quiet:
            message(f"{now} another orion poll is running; this cycle did nothing")
        elif report and report.changed and not quiet:
            changes = ", ".join(f"job {i} {s}" for i, s in report.changed.items())
            message(f"{now} checked {report.checked} active jobs: {changes}")

    if not quiet:
        message(f"polling every {interval_s} s; stop with Ctrl-C or SIGTERM")
    outcome = poll_loop(settings, interval_s, said)
    if not quiet:
        message(f"stopped by {outcome.stopped_by or 'request'} after {outcome.cycles} cycles")


def _print_poll(report: Any, as_json: bool, quiet: bool) -> None:
    """What one poll did: JSON, only the errors (cron), or a line per change and note."""
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
    from orion_cli.services.lifecycle.freshness import read_stamp
    from orion_cli.services.queries.show import show_job

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
    from orion_cli.services.queries.show import audit_events

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
                r["at"] if "unreadable" in r["at"] else r["at"][:19].replace("T", " "),
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
    from orion_cli.services.admin.doctor import run_checks

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

    from orion_cli.services.admin.group import grant

    lines = grant(load_settings().resolved_database_url, users)
    if as_json:
        print_json({"granted": users})
    else:
        for line in lines:
            message(line)
