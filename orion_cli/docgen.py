"""Reference pages generated from the code that holds the truth (run by the docs build).

Each function returns Markdown. The documentation site's build hook replaces a marker
``<!-- generated: NAME -->`` in a page with ``GENERATORS[NAME]()``, so the command-line,
status, configuration and job-directory references cannot drift from the code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any

import typer.main

from orion_cli import (
    batch,
    config,
    ingest,
    jobdir,
    limits,
    resources,
    states,
    taskfile,
    taskstream,
)
from orion_cli.cli import app
from orion_cli.cli.help import EXAMPLES, PANELS


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell.

    >>> _cell("a | b\\nc")
    'a \\\\| b c'
    """
    return " ".join(text.replace("|", "\\|").split())


def _option_row(param: Any) -> str:
    names = ", ".join(f"`{name}`" for name in (*param.opts, *param.secondary_opts))
    if param.param_type_name == "argument":
        names = f"`{(param.name or '').upper()}`"
    default = param.default
    shown = "" if default in (None, False, "", (), []) or callable(default) else f"`{default}`"
    return f"| {names} | {_cell(getattr(param, 'help', None) or '')} | {shown} |"


def _command_section(path: str, command: Any) -> list[str]:
    lines = [f"### orion {path}", "", _cell(command.help or "").split("\b")[0], ""]
    params = [p for p in command.params if p.name != "help"]
    if params:
        lines += ["| argument / option | meaning | default |", "|---|---|---|"]
        lines += [_option_row(p) for p in params]
        lines.append("")
    if path in EXAMPLES:
        lines += ["```sh", *EXAMPLES[path], "```", ""]
    return lines


def cli_reference() -> str:
    """Every command, in ``orion --help``'s panels: help, arguments, options, examples."""
    root: Any = typer.main.get_command(app)
    lines: list[str] = []
    for panel, names in PANELS.items():
        lines += [f"## {panel}", ""]
        for name in names:
            command = root.commands[name]
            lines += _command_section(name, command)
            for sub_name, sub in getattr(command, "commands", {}).items():
                lines += _command_section(f"{name} {sub_name}", sub)
    return "\n".join(lines)


def statuses() -> str:
    """The statuses, the transition table and the failure reasons, from ``states.py``."""
    retried = states.RETRYABLE_REASONS
    lines = ["## Statuses", "", "| status | final | watched by the poller |", "|---|---|---|"]
    for status in states.JobStatus:
        final, active = ("yes" if status.is_final else ""), ("yes" if status.is_active else "")
        lines.append(f"| `{status.value}` | {final} | {active} |")
    lines += ["", "## Transitions", "", "```text", states.transition_table(), "```", ""]
    lines += ["## Failure reasons", "", "| reason | retried by policy |", "|---|---|"]
    for reason in states.FailureReason:
        lines.append(f"| `{reason.value}` | {'yes' if reason in retried else 'no'} |")
    return "\n".join(lines) + "\n"


def configuration() -> str:
    """Every setting with its default and ``ORION_*`` variable, and the limits on values."""
    defaults = config.Settings()
    lines = ["## Settings", "", "| key | default | environment |", "|---|---|---|"]
    skipped = {"resources", "sources", "queue_sources", "engines", "queues", "setup", "env"}
    for field in fields(defaults):
        if field.name not in skipped:
            value = getattr(defaults, field.name)
            lines.append(f"| `{field.name}` | `{value!r}` | `ORION_{field.name.upper()}` |")
    lines += ["", "## Resources", "", "Flat keys at the top level, in `[queues.NAME]` tables, "]
    lines += ["and as flags of `orion submit`.", ""]
    lines += ["| key | flag | default |", "|---|---|---|"]
    for field in fields(resources.Resources):
        default = getattr(resources.Resources(), field.name)
        lines.append(f"| `{field.name}` | `{field.metadata['flag']}` | `{default!r}` |")
    lines += ["", "## Limits", "", "The same for flags, `ORION_*` and `orion.toml`."]
    lines += ["", "| setting | flag | lowest | highest |", "|---|---|---|---|"]
    for bound in limits.BOUNDS.values():
        flag = f"`{bound.flag}`" if bound.flag else ""
        high = bound.describe(bound.high)
        lines.append(f"| `{bound.setting}` | {flag} | {bound.low} | {high} |")
    lines += ["", f"Names, tags, account, qos and partition: at most {limits.MAX_TEXT_CHARS}"]
    lines += ["characters, no control characters.", ""]
    return "\n".join(lines)


def job_directory() -> str:
    """The files and limits of the job-directory contract, from the modules that use them."""
    kib = 1024
    rows = [
        (
            jobdir.JOB_FILE,
            "orion, at submit (or the array task, from its line)",
            "the job's inputs",
        ),
        (jobdir.EVENTS_FILE, "the job", "one JSON object a line, appended"),
        (jobdir.RESULT_FILE, "the job", "the parsed result of the latest attempt"),
        (
            f"arrays/<id>/{taskstream.STREAM_PREFIX}<round>-<task>.jsonl",
            "a packed task computing in memory",
            "its calculations' event lines, each with `job` (the job's directory name), "
            f"a result as a `{jobdir.RESULT_EVENT}` line: in place of their "
            f"`{jobdir.EVENTS_FILE}` and `{jobdir.RESULT_FILE}`",
        ),
        (batch.TASKS_FILE, "orion, at submit", "an array's jobs, a line each"),
        (taskfile.CANCEL_MARKER, "orion cancel", "a packed job its task must skip"),
    ]
    lines = ["## Files", "", "| file | written by | holds |", "|---|---|---|"]
    lines += [f"| `{name}` | {who} | {what} |" for name, who, what in rows]
    limits_rows = [
        ("an event line", f"{jobdir.MAX_EVENT_LINE_BYTES // kib} KiB", "skipped, noted"),
        (
            f"`{jobdir.EVENTS_FILE}` read per job and poll cycle",
            f"{jobdir.MAX_EVENT_BYTES_PER_CYCLE // kib // kib} MiB",
            "more: its first and last half, the middle skipped (noted)",
        ),
        (f"`{jobdir.RESULT_FILE}`", f"{jobdir.MAX_RESULT_BYTES // kib // kib} MiB", "job fails"),
        ("an event name", f"{ingest.MAX_EVENT_NAME_CHARS} characters", "line skipped"),
        ("a progress step text", f"{ingest.MAX_STEP_CHARS} characters", "cut"),
        ("an error text", f"{ingest.MAX_TEXT_CHARS} characters", "cut"),
        ("an attempt number", f"{ingest.MAX_ATTEMPT:,}", "line skipped / job fails"),
    ]
    lines += [
        "",
        "## Limits the poller enforces",
        "",
        "| what | at most | beyond |",
        "|---|---|---|",
    ]
    lines += [f"| {what} | {most} | {beyond} |" for what, most, beyond in limits_rows]
    return "\n".join(lines) + "\n"


GENERATORS: dict[str, Callable[[], str]] = {
    "cli": cli_reference,
    "statuses": statuses,
    "configuration": configuration,
    "job-directory": job_directory,
}
