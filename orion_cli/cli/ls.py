"""``orion ls``: a page of jobs, counts by status in the footer, and how fresh it is."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from orion_cli.cli.jobargs import NameOpt, SinceOpt, StudyOpt
from orion_cli.cli.monitor import say_freshness
from orion_cli.cli.output import age, count_of, handle_errors, print_json, table
from orion_cli.cli.root import app
from orion_cli.config import load_settings
from orion_cli.identity import current_user
from orion_cli.jobids import parse_study_id
from orion_cli.limits import check_text
from orion_cli.units import parse_walltime_s

STATUS_ORDER = ("created", "queued", "running", "completed", "failed", "cancelled")


def counts_text(counts: dict[str, int]) -> str:
    """'3 running, 2 completed, 1 failed' in lifecycle order.

    >>> counts_text({"failed": 1, "running": 3, "completed": 2})
    '3 running, 2 completed, 1 failed'
    """
    ordered = sorted(counts, key=lambda s: STATUS_ORDER.index(s) if s in STATUS_ORDER else 99)
    return ", ".join(f"{counts[s]} {s}" for s in ordered if counts[s])


def _energy(row: dict[str, Any]) -> str:
    value = row.get("energy_per_atom_ev")
    return "-" if value is None else f"{value:.4f}"


@app.command("ls")
@handle_errors
def list_cmd(
    status: Annotated[
        list[str] | None,
        typer.Option("--status", "-s", help="Filter by status (repeatable, or a,b)."),
    ] = None,
    engine: Annotated[str, typer.Option(help="Filter by engine.")] = "",
    tag: Annotated[
        list[str] | None, typer.Option(help="Jobs with this tag (repeatable: any of them).")
    ] = None,
    since: SinceOpt = "",
    study: StudyOpt = None,
    name: NameOpt = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Jobs per page.")] = 50,
    page: Annotated[int, typer.Option(min=1, help="Page number (1 = newest).")] = 1,
    count: Annotated[
        bool, typer.Option("--count", help="Only the number of matching jobs by status.")
    ] = False,
    all_users: Annotated[
        bool,
        typer.Option("--all-users", help="Every user's jobs in a shared database (read-only)."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List your jobs, newest first, a page at a time; counts by status at the foot."""
    from orion_cli.services.lifecycle.freshness import read_stamp
    from orion_cli.services.queries.listing import JobFilter, list_jobs

    since_s = parse_walltime_s(since, "--since") if since else None
    tags = tuple(t for t in tag or () if t)
    flt = JobFilter(
        tuple(s.strip() for value in status or () for s in value.split(",") if s.strip()),
        engine,
        tags,
        since_s,
        0 if count else limit,
        (page - 1) * limit,
        owner=None if all_users else current_user(),
        study_ids=tuple(dict.fromkeys(map(parse_study_id, study or ()))),
        names=tuple(check_text(n, "--name") for n in name or () if n),
    )
    settings = load_settings()
    listing = list_jobs(settings, flt)
    active = any(listing.counts.get(s) for s in ("created", "queued", "running"))
    if count:
        if as_json:
            print_json(
                {
                    "total": listing.total,
                    "counts": listing.counts,
                    "last_poll": read_stamp(settings).last_ok_at,
                }
            )
        else:
            for status_ in sorted(
                listing.counts, key=lambda s: STATUS_ORDER.index(s) if s in STATUS_ORDER else 99
            ):
                typer.echo(f"{status_:10} {listing.counts[status_]}")
            typer.echo(f"{'total':10} {listing.total}")
            say_freshness(settings, active)
        return
    rows = listing.rows
    if as_json:
        print_json(rows)
        return
    if not rows:
        filtered = bool(status or engine or tag or since or study or name)
        typer.echo(
            "no jobs match these filters"
            if filtered and not listing.total
            else "no jobs yet (orion submit adds some)"
            if not listing.total
            else f"no jobs on page {page}: {listing.total} in all"
        )
        return
    _print_rows(rows, flt.offset, listing.total, page, all_users)
    typer.echo(f"{count_of(listing.total, 'job')}: {counts_text(listing.counts)}")
    say_freshness(settings, active)


def progress_cell(row: dict[str, Any]) -> str:
    """The progress column: a failed or cancelled job's last step is not shown as current.

    >>> progress_cell({"status": "running", "progress_pct": 5.0, "current_step": "pw.x"})
    '5% pw.x'
    >>> progress_cell({"status": "failed", "progress_pct": 5.0, "current_step": "pw.x"})
    '-'
    """
    if row["status"] in ("failed", "cancelled"):
        return "-"
    return f"{row['progress_pct']:.0f}% {row['current_step']}".strip()


def _print_rows(
    rows: list[dict[str, Any]], offset: int, total: int, page: int, all_users: bool
) -> None:
    now = datetime.now(UTC)
    shown = f"{offset + 1}-{offset + len(rows)}"
    title = f"jobs {shown} of {total}" + (f" (page {page})" if page > 1 else "")
    owners = ["owner"] if all_users else []
    table(
        title,
        ["id", "name", *owners, "engine", "status", "progress", "eV/atom", "scheduler id", "age"],
        [
            (
                r["id"],
                r["name"],
                *([r["owner"]] if all_users else []),
                r["engine"],
                r["status"]
                + (" (held)" if r.get("held") and r["status"] == "queued" else "")
                + (f" ({r['failure_reason']})" if r["failure_reason"] else "")
                + (f"; {r['dependency']}" if r.get("dependency") else ""),
                progress_cell(r),
                _energy(r),
                r["scheduler_job_id"] or "-",
                age((now - datetime.fromisoformat(r["created_at"])).total_seconds()),
            )
            for r in rows
        ],
        keep=("id", "engine", "status", "eV/atom", "scheduler id", "age"),
    )
