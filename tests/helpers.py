"""Small helpers shared by tests that drive the real CLI."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from typer.testing import CliRunner, Result

from orion_cli.cli import app

FINAL = ("completed", "failed", "cancelled")


def orion(*args: str, expect: int | None = 0) -> Result:
    result = CliRunner().invoke(app, list(args))
    if expect is not None:
        assert result.exit_code == expect, (args, result.exit_code, result.output, result.exception)
    return result


def orion_json(*args: str) -> Any:
    return json.loads(orion(*args, "--json").stdout)


def poll_until_final(job_ids: list[int], timeout_s: float = 90.0) -> list[dict[str, Any]]:
    """Run `orion poll` the way cron would, until every job has ended."""
    deadline = time.monotonic() + timeout_s
    while True:
        orion("poll", expect=None)
        jobs = [orion_json("show", str(job_id)) for job_id in job_ids]
        if all(job["status"] in FINAL for job in jobs):
            return jobs
        assert time.monotonic() < deadline, [(j["id"], j["status"], j["raw_state"]) for j in jobs]
        time.sleep(0.5)


def slurm_nice(scheduler_job_id: str) -> int:
    """A SLURM job's Nice as ``scontrol show job`` gives it, pending, running or ended."""
    import subprocess

    words = subprocess.run(
        ["scontrol", "show", "job", scheduler_job_id], capture_output=True, text=True, check=True
    ).stdout.split()
    return int(next(w for w in words if w.startswith("Nice=")).split("=", 1)[1])


def run_in_pty(
    args: list[str],
    columns: int = 80,
    rows: int = 24,
    timeout_s: float = 60.0,
    keys: list[tuple[float, bytes]] | None = None,
    key_when: tuple[Callable[[str], bool], bytes] | None = None,
) -> tuple[int, str]:
    """Run ``python -m orion_cli ARGS`` on a pseudo-terminal of a fixed size.

    Returns (exit code, everything it wrote, escapes included). ``keys`` are (seconds after
    start, bytes) typed into the terminal, e.g. ``[(3.0, b"q")]``; ``key_when`` is (a test
    of everything written so far, bytes): typed once the test passes.
    """
    import fcntl
    import os
    import pty
    import select
    import struct
    import sys
    import termios

    pid, fd = pty.fork()
    if pid == 0:  # the child: set the size on its own terminal before orion starts
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        # an explicit environment: readline (loaded in pytest) exports COLUMNS=80 and LINES
        # into the C environment behind os.environ's back, and execv would pass them on
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        os.execve(sys.executable, [sys.executable, "-m", "orion_cli", *args], env)
    started = time.monotonic()
    pending = sorted(keys or [])
    out = b""
    while True:
        now = time.monotonic() - started
        while pending and pending[0][0] <= now:
            os.write(fd, pending.pop(0)[1])
        if key_when is not None and key_when[0](out.decode(errors="replace")):
            os.write(fd, key_when[1])
            key_when = None
        if now > timeout_s:
            os.kill(pid, 9)
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            out += data
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


def job_result(workdir: Any, streams: Any = None) -> Any:
    """A job's result as its runner left it, read by hand: ``result.json``, else the last
    ``result`` line among :func:`job_lines`; None when there is none."""
    from pathlib import Path

    workdir = Path(workdir)
    if (workdir / "result.json").exists():
        return json.loads((workdir / "result.json").read_text())
    results = [r["result"] for r in job_lines(workdir, streams) if r["event"] == "result"]
    return results[-1] if results else None


def job_lines(workdir: Any, streams: Any = None) -> list[dict[str, Any]]:
    """A job's event lines, read by hand, in time order: its lines in the streams of its
    packed tasks (``stream-*.jsonl`` in ``streams``, by default in every array folder
    beside the job's) and its own ``events.jsonl``."""
    from pathlib import Path

    workdir = Path(workdir)
    where = Path(streams) if streams is not None else workdir.parent / "arrays"
    pattern = "stream-*.jsonl" if streams is not None else "*/stream-*.jsonl"
    lines = []
    for stream in sorted(where.glob(pattern)):
        for line in stream.read_text().splitlines():
            record = json.loads(line)
            if record["job"] == workdir.name:
                lines.append(record)
    if (workdir / "events.jsonl").exists():
        text = (workdir / "events.jsonl").read_text()
        lines += [json.loads(line) for line in text.splitlines()]
    return sorted(lines, key=lambda record: record.get("time") or "")
