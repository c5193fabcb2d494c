"""``orion stats``: how your jobs went, overall and by engine, partition or tag."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from orion_cli.cli.jobargs import NameOpt, StatusOpt, selection
from orion_cli.cli.ls import counts_text
from orion_cli.cli.output import count_of, handle_errors, message, print_json, table
from orion_cli.cli.root import app
from orion_cli.config import load_settings
from orion_cli.identity import current_user
from orion_cli.units import parse_walltime_s

if TYPE_CHECKING:
    from orion_cli.services.queries.stats import Durations, GroupStats, Stats


@app.command()
@handle_errors
def stats(
    tag: Annotated[
        list[str] | None, typer.Option(help="Jobs with this tag (repeatable: any of them).")
    ] = None,
    study: Annotated[int | None, typer.Option(help="Jobs of this study (orion eos).")] = None,
    engine: Annotated[str, typer.Option(help="Jobs of this engine.")] = "",
    since: Annotated[str, typer.Option(help="Only jobs created within: 7d, 12h, 90m.")] = "",
    name: NameOpt = None,
    status: StatusOpt = None,
    by: Annotated[
        str, typer.Option(help="Group by engine, partition, tag or user (with --all-users).")
    ] = "engine",
    plot: Annotated[
        Path | None,
        typer.Option(help="Also draw run times and outcomes into this PNG file."),
    ] = None,
    all_users: Annotated[
        bool,
        typer.Option("--all-users", help="Every user's jobs in a shared database (read-only)."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Success rate, failure reasons, queue wait and run time (p50/p90/max) and core-hours
    of your jobs, overall and by engine, partition or tag."""

    from orion_cli.services.queries.stats import StatsFilter, check_by, collect
    from orion_cli.services.queries.stats_plot import check_plot_path, write_plot

    since_s = parse_walltime_s(since, "--since") if since else None
    check_by(by)
    if plot is not None:
        check_plot_path(plot)
    common = selection(None, None, None, status, None, name)  # read strictly
    flt = StatsFilter(
        owner=None if all_users else current_user(),
        tags=tuple(t for t in tag or () if t),
        study_id=study,
        engine=engine,
        since_s=since_s,
        names=common.names,
        statuses=common.statuses,
    )
    result = collect(load_settings(), flt, by)
    if plot is not None and result.total.jobs:
        write_plot(result, plot)
    if as_json:
        print_json({**result.as_dict(), "plot": str(plot) if plot and result.total.jobs else None})
        return
    if not result.total.jobs:
        filtered = bool(tag or study is not None or engine or since or name or status)
        typer.echo(
            "no jobs match these filters" if filtered else "no jobs yet (orion submit adds some)"
        )
        return
    _print(result)
    if plot is not None:
        message(f"wrote {plot}")


def duration(seconds: float | None) -> str:
    """A duration for people: ``42s``, ``4m05s``, ``2h03m``, ``3d04h``; ``-`` for none.

    >>> duration(42.4), duration(245), duration(7380), duration(273600), duration(None)
    ('42s', '4m05s', '2h03m', '3d04h', '-')
    >>> duration(0.25)
    '0.25s'
    """
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.2f}s".replace(".00s", "s")
    whole = round(seconds)
    for big, small, big_s, small_s in (("d", "h", 86400, 3600), ("h", "m", 3600, 60)):
        if whole >= big_s:
            return f"{whole // big_s}{big}{(whole % big_s) // small_s:02d}{small}"
    if whole >= 60:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole}s"


def _rate(group: GroupStats) -> str:
    return "-" if group.success_rate is None else f"{group.success_rate * 100:.1f}%"


def _three(d: Durations) -> list[str]:
    return [duration(d.p50_s), duration(d.p90_s), duration(d.max_s)]


def _durations_line(label: str, d: Durations, what: str) -> str:
    p50, p90, longest = _three(d)
    return f"{label} p50 {p50}, p90 {p90}, max {longest} ({d.count} {what})"


def _print(result: Stats) -> None:

    total = result.total
    typer.echo(f"{count_of(total.jobs, 'job')}: {counts_text(total.counts)}")
    if total.success_rate is None:
        typer.echo("success rate: - (no job has ended yet)")
    else:
        completed = total.counts.get("completed", 0)
        typer.echo(
            f"success rate: {_rate(total)} ({completed} of {total.ended} ended jobs completed"
            f"{'; cancelled jobs left out' if total.counts.get('cancelled') else ''})"
        )
    if total.failure_reasons:
        typer.echo(
            "failed: "
            + ", ".join(f"{n} {reason}" for reason, n in total.failure_reasons.items())
            + (f" ({total.retry_pending} with a retry pending)" if total.retry_pending else "")
        )
    if result.retried_attempts:
        typer.echo(
            "retried attempts: "
            + ", ".join(f"{n} {reason}" for reason, n in result.retried_attempts.items())
        )
    typer.echo(_durations_line("queue wait:", total.queue_wait, "started"))
    typer.echo(_durations_line("run time:  ", total.run, "finished"))
    typer.echo(f"core-hours: {total.core_hours:.3f}")
    typer.echo("")
    table(
        f"by {result.by}",
        [
            result.by,
            "jobs",
            "done",
            "failed",
            "success",
            "wait p50",
            "p90",
            "max",
            "run p50",
            "p90",
            "max",
            "core-h",
        ],
        [
            [
                g.key,
                str(g.jobs),
                str(g.counts.get("completed", 0)),
                str(g.counts.get("failed", 0)),
                _rate(g),
                *_three(g.queue_wait),
                *_three(g.run),
                f"{g.core_hours:.3f}",
            ]
            for g in result.groups
        ],
        keep=("jobs", "done", "failed", "success"),
    )
