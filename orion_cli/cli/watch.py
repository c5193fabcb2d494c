"""``orion watch``: a live view of your jobs; plain periodic lines when not on a terminal."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from orion_cli.cli.jobargs import (
    IdsArg,
    NameOpt,
    SinceOpt,
    SlurmIdOpt,
    StatusOpt,
    StudyOpt,
    TagOpt,
    selection,
)
from orion_cli.cli.monitor import counts_line, freshness_lines
from orion_cli.cli.output import age, count_of, handle_errors, message, visible
from orion_cli.cli.root import app
from orion_cli.config import load_settings
from orion_cli.errors import OrionError

if TYPE_CHECKING:
    from orion_cli.config import Settings
    from orion_cli.services.queries.watching import Snapshot

RUNNING_SHOWN = 10
BAR_CHARS = 20


def bar(pct: float) -> str:
    """A text progress bar.

    >>> bar(50.0)
    '██████████░░░░░░░░░░  50%'
    """
    full = int(round(max(0.0, min(100.0, pct)) / 100 * BAR_CHARS))
    return "█" * full + "░" * (BAR_CHARS - full) + f" {pct:3.0f}%"


def _when(at: Any) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def event_line(event: dict[str, Any]) -> str:
    move = "note" if event["from"] == event["to"] else f"{event['from']} → {event['to']}"
    why = f" ({event['reason']})" if event["reason"] else ""
    return visible(
        f"{_when(event['at']):%H:%M:%S} job {event['job_id']} {move}{why} "
        f"{event['message']}".rstrip()
    )


def retry_lines(snap: Snapshot, now: datetime) -> list[str]:
    lines = []
    for s in snap.states:
        if s["status"] == "failed" and s["next_attempt_at"] is not None:
            due = _when(s["next_attempt_at"])
            wait_s = (due - now).total_seconds()
            lines.append(
                f"job {s['id']} ({s['failure_reason'] or 'failed'}): attempt "
                f"{s['attempt'] + 1} at {due:%H:%M:%S}"
                + (f" (in {age(wait_s)})" if wait_s > 0 else " (due: next poll)")
            )
    return lines


def render(snap: Snapshot, settings: Settings, error: str) -> Any:
    """The live view: counts and freshness, running jobs with bars, retries, newest events."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    now = datetime.now(UTC)
    fresh, _ = freshness_lines(settings, active=False)
    parts: list[Any] = [
        Text(
            f"orion watch — {count_of(len(snap.states), 'job')}: {counts_line(snap.states)}",
            style="bold",
        ),
        Text(f"{fresh} · q quits", style="dim"),
    ]
    if error:
        parts.append(Text(f"poll: {error}", style="red"))
    running = [s for s in snap.states if s["status"] == "running"]
    if running:
        tbl = Table(
            box=None, pad_edge=False, show_header=True, title="running", title_justify="left"
        )
        tbl.add_column("id", no_wrap=True, min_width=max(len(str(s["id"])) for s in running))
        tbl.add_column("name", no_wrap=True, overflow="ellipsis", max_width=24)
        tbl.add_column("progress", no_wrap=True, min_width=BAR_CHARS + 5)
        tbl.add_column("step", no_wrap=True, overflow="ellipsis")
        for s in running[:RUNNING_SHOWN]:
            tbl.add_row(
                str(s["id"]), visible(s["name"]), bar(s["progress_pct"]), visible(s["current_step"])
            )
        parts.append(tbl)
        if len(running) > RUNNING_SHOWN:
            parts.append(Text(f"... and {len(running) - RUNNING_SHOWN} more running"))
    retries = retry_lines(snap, now)
    if retries:
        parts.append(Text("retries pending", style="bold"))
        parts.extend(
            Text(line, style="yellow", overflow="ellipsis", no_wrap=True) for line in retries[:5]
        )
    if snap.events:
        parts.append(Text("newest events", style="bold"))
        for event in snap.events:
            style = "red" if event["to"] == "failed" else ""
            parts.append(Text(event_line(event), style=style, overflow="ellipsis", no_wrap=True))
    return Group(*parts)


class Keys:
    """Read single key presses from the terminal (cbreak mode) while the view runs."""

    def __init__(self) -> None:
        self.fd = sys.stdin.fileno() if sys.stdin.isatty() else None
        self.saved: Any = None

    def __enter__(self) -> Keys:
        if self.fd is not None:
            import termios
            import tty

            self.saved = termios.tcgetattr(self.fd)
            tty.setcbreak(self.fd)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None and self.saved is not None:
            import termios

            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)

    def quit_pressed(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for a key; True if it was q (or Q)."""
        if self.fd is None:
            time.sleep(timeout_s)
            return False
        import os
        import select

        ready, _, _ = select.select([self.fd], [], [], timeout_s)
        return bool(ready) and b"q" in os.read(self.fd, 64).lower()


def _poll_if_due(settings: Settings, last: list[float]) -> str:
    """Run a poll cycle when min_query_interval_s (at least 2 s) has passed; return an error."""
    from orion_cli.services.lifecycle.poll import poll

    if time.monotonic() - last[0] < max(settings.min_query_interval_s, 2.0):
        return ""
    last[0] = time.monotonic()
    try:
        report = poll(settings)
    except OrionError as exc:
        return exc.one_line()
    return "; ".join(report.errors)


@app.command()
@handle_errors
def watch(
    job_ids: IdsArg = None,
    slurm_id: SlurmIdOpt = None,
    tag: TagOpt = None,
    study: StudyOpt = None,
    status: StatusOpt = None,
    name: NameOpt = None,
    since: SinceOpt = "",
    interval: Annotated[
        float,
        typer.Option(min=0.2, help="Seconds between screen updates (plain lines: between lines)."),
    ] = 1.0,
) -> None:
    """A live view of your jobs: counts, running jobs' progress, retries, newest events.

    Polls itself at most once per min_query_interval_s; q or Ctrl-C quits. Not on a
    terminal it prints a line when something changed and ends when all jobs have ended.
    """

    from orion_cli.services.queries.waiting import select_ids
    from orion_cli.services.queries.watching import default_ids

    settings = load_settings()
    chosen = selection(job_ids, slurm_id, tag, status, study, name, since)
    named = bool(job_ids or slurm_id or tag or status or study)
    ids = select_ids(settings, chosen) if named else default_ids(settings)
    if not ids:
        message(
            f"no jobs of yours match {chosen.describe()}; nothing to watch"
            if named
            else "no jobs to watch (orion submit adds some)"
        )
        return
    try:
        if sys.stdout.isatty():
            _live(settings, ids, interval)
        else:
            _plain(settings, ids, interval)
    except KeyboardInterrupt:
        pass


def _live(settings: Settings, ids: list[int], interval: float) -> None:
    from rich.console import Console
    from rich.live import Live

    from orion_cli.services.queries.watching import snapshot

    last = [float("-inf")]
    error = _poll_if_due(settings, last)
    with (
        Keys() as keys,
        Live(
            render(snapshot(settings, ids), settings, error),
            console=Console(highlight=False),
            auto_refresh=False,
        ) as live,
    ):
        while not keys.quit_pressed(interval):
            error = _poll_if_due(settings, last) or error
            live.update(render(snapshot(settings, ids), settings, error), refresh=True)


def _plain(settings: Settings, ids: list[int], interval: float) -> None:
    from orion_cli.services.queries.watching import snapshot

    last = [float("-inf")]
    seen: set[tuple[int, str]] = set()
    previous = ""
    while True:
        error = _poll_if_due(settings, last)
        snap = snapshot(settings, ids)
        line = counts_line(snap.states)
        new = [e for e in reversed(snap.events) if (e["job_id"], str(e["at"])) not in seen]
        seen.update((e["job_id"], str(e["at"])) for e in snap.events)
        if line != previous or new or error:
            stamp = datetime.now(UTC).strftime("%H:%M:%S")
            typer.echo(f"{stamp} {line}" + (f" (poll: {error})" if error else ""))
            for event in new:
                typer.echo(f"  {event_line(event)}")
            previous = line
        if snap.all_ended:
            return
        time.sleep(interval)
