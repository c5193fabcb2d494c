"""``orion wait``, and the lines that say how fresh the statuses shown are."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Annotated, Any

import typer

from orion_cli.cli.jobargs import (
    IdsArg,
    JsonOpt,
    NameOpt,
    SinceOpt,
    SlurmIdOpt,
    StatusOpt,
    StudyOpt,
    TagOpt,
    selection,
)
from orion_cli.cli.output import age, handle_errors, message, print_json
from orion_cli.cli.render import render_job
from orion_cli.cli.root import app
from orion_cli.config import load_settings
from orion_cli.units import parse_walltime_s

if TYPE_CHECKING:
    from orion_cli.config import Settings

ACTIVE = ("created", "queued", "running")
#: per-job lines while waiting for at most this many jobs; status counts beyond
PER_JOB_LINES = 20


def freshness_lines(settings: Settings, active: bool) -> tuple[str, str | None]:
    """(when the poller last succeeded, a warning with the cron line when it is stale)."""
    from orion_cli.services.lifecycle.freshness import cron_line, read_stamp

    stamp = read_stamp(settings)
    age_s = stamp.ok_age_s()
    if age_s is None:
        line = "no successful orion poll yet"
    else:
        when = (stamp.last_ok_at or "")[:19].replace("T", " ")
        line = f"last successful poll {age(max(age_s, 0.0))} ago ({when} UTC)"
    if stamp.last_errors:
        line += f"; the last cycle had {stamp.last_errors} error(s) (run `orion poll` to see)"
    if not active or (age_s is not None and age_s <= settings.poll_stale_s):
        return line, None
    return line, (
        "warning: the statuses shown may be out of date: run `orion poll`, keep "
        "`orion poll --loop 60` running (screen/tmux, or a systemd user unit), or let "
        f"cron run it every 2 minutes (crontab -e):\n  {cron_line(settings)}"
    )


def say_freshness(settings: Settings, active: bool) -> None:
    """Say on stderr when the poller last succeeded, and how to install it when stale."""
    line, warning = freshness_lines(settings, active)
    message(line)
    if warning:
        for part in warning.split("\n"):
            message(part)


def counts_line(states: list[dict[str, Any]]) -> str:
    """'2 running, 1 completed, 1 failed (timeout)': statuses in lifecycle order.

    >>> counts_line([{"status": "running", "failure_reason": None},
    ...              {"status": "failed", "failure_reason": "timeout"},
    ...              {"status": "running", "failure_reason": None}])
    '2 running, 1 failed (timeout)'
    """
    order = ("created", "queued", "running", "completed", "failed", "cancelled")
    counts = Counter(s["status"] for s in states)
    reasons = Counter(
        s["failure_reason"] for s in states if s["status"] == "failed" and s["failure_reason"]
    )
    parts = []
    for status in sorted(counts, key=lambda s: order.index(s) if s in order else len(order)):
        text = f"{counts[status]} {status}"
        if status == "failed" and reasons:
            text += f" ({', '.join(f'{n} {r}' if n > 1 else r for r, n in reasons.items())})"
        parts.append(text)
    return ", ".join(parts) or "no jobs"


def wait_and_report(settings: Settings, ids: list[int], timeout_s: float | None) -> Any:
    """Wait for ``ids``, saying on stderr what changes; return the outcome."""
    from orion_cli.services.queries.waiting import wait_for

    last: dict[int, str] = {}
    last_counts = [""]

    def on_round(states: list[dict[str, Any]]) -> None:
        if len(states) > PER_JOB_LINES:
            line = counts_line(states)
            if line != last_counts[0]:
                message(line)
                last_counts[0] = line
            return
        for state in states:
            why = f" ({state['failure_reason']})" if state["failure_reason"] else ""
            retry = " — retry pending" if state["next_attempt_at"] is not None else ""
            line = (
                f"{state['status']}{why}{retry} {state['progress_pct']:.0f}% "
                f"{state['current_step']}"
            ).rstrip()
            if last.get(state["id"]) != line:
                message(f"job {state['id']}: {line}")
                last[state["id"]] = line

    outcome = wait_for(settings, ids, timeout_s, on_round)
    for line in outcome.poll_errors:
        message(f"warning: {line}")
    return outcome


@app.command()
@handle_errors
def wait(
    job_ids: IdsArg = None,
    slurm_id: SlurmIdOpt = None,
    tag: TagOpt = None,
    study: StudyOpt = None,
    status: StatusOpt = None,
    name: NameOpt = None,
    since: SinceOpt = "",
    timeout: Annotated[
        str, typer.Option(help="Give up after this long: 90s, 30m, 2h (exit 1).")
    ] = "",
    as_json: JsonOpt = False,
) -> None:
    """Block until the jobs end (exit 0 if all completed, 1 otherwise).

    Polls at the allowed rate (at most once per min_query_interval_s for SLURM), so many
    `orion wait` in scripts cost the controller no more than one cron poller.
    """

    from orion_cli.services.queries.waiting import iso, select_ids

    timeout_s = parse_walltime_s(timeout, "--timeout") if timeout else None
    settings = load_settings()
    chosen = selection(job_ids, slurm_id, tag, status, study, name, since)
    ids = select_ids(settings, chosen)
    if not ids:
        message(f"no jobs of yours match {chosen.describe()}; nothing to wait for")
        return
    outcome = wait_and_report(settings, ids, timeout_s)
    summary = counts_line(outcome.states)
    if as_json:
        print_json(
            {
                "ids": ids,
                "all_completed": outcome.all_completed,
                "timed_out": outcome.timed_out,
                "summary": summary,
                "rounds": outcome.rounds,
                "scheduler_calls": outcome.scheduler_calls,
                "jobs": [{k: iso(v) for k, v in s.items()} for s in outcome.states],
            }
        )
    if outcome.timed_out:
        pending = sum(
            s["status"] in ACTIVE or s["next_attempt_at"] is not None for s in outcome.states
        )
        message(
            f"timed out after {timeout}: {pending} of {len(ids)} jobs have not ended ({summary})"
        )
    else:
        message(summary)
    if not outcome.all_completed:
        raise typer.Exit(1)


def wait_and_show(settings: Settings, ids: list[int], as_json: bool) -> None:
    """Wait as ``orion wait`` does (the same loop), then print the jobs (``submit --wait``)."""
    from orion_cli.services.queries.show import show_job

    outcome = wait_and_report(settings, ids, None)
    if len(ids) > PER_JOB_LINES:  # a big submit: the counts, as `orion wait` prints them
        summary = counts_line(outcome.states)
        if as_json:
            print_json({"ids": ids, "all_completed": outcome.all_completed, "summary": summary})
        else:
            message(summary)
        if not outcome.all_completed:
            raise typer.Exit(1)
        return
    jobs = [show_job(settings, job_id) for job_id in ids]
    if as_json:
        print_json(jobs[0] if len(jobs) == 1 else jobs)
    else:
        for job in jobs:
            render_job(job)
    if any(job["status"] != "completed" for job in jobs):
        raise typer.Exit(1)
