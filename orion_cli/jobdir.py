"""The job directory: the only channel between a running job and orion.

Compute nodes never open the database. The job runner appends JSON lines to
``events.jsonl`` and writes ``result.json`` (a packed calculation computed in memory
writes the same lines, its result as a ``result`` line, to its task's stream instead:
:mod:`orion_cli.taskstream`); the poller reads them from the shared filesystem,
remembering how many bytes it has already ingested.

Everything the poller reads here is untrusted: a job (or whoever can write its directory)
may leave a FIFO, a symlink to ``/dev/zero``, a gigabyte without a newline or lines that
are not what the runner writes. Files are opened without blocking and only when they are
regular files; reads are bounded per job and per cycle; the records are checked by
:mod:`orion_cli.ingest` before anything reaches the database.
"""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orion_cli.outfile import write_output

EVENTS_FILE = "events.jsonl"
#: the event line that carries a result in place of ``result.json`` (see
#: :func:`orion_cli.taskstream.read_outcome`)
RESULT_EVENT = "result"
RESULT_FILE = "result.json"
JOB_FILE = "job.json"
#: the copy of a user's own batch script as submitted (``orion submit --script``)
SCRIPT_COPY = "submitted.sbatch"

#: one event line longer than this is skipped (the runner's lines are a few hundred bytes)
MAX_EVENT_LINE_BYTES = 64 * 1024
#: bytes of ``events.jsonl`` read per job and poll cycle; the rest waits for the next cycle
MAX_EVENT_BYTES_PER_CYCLE = 1024 * 1024
#: a larger ``result.json`` is refused (10,000 atoms with forces and structure: ~2 MB)
MAX_RESULT_BYTES = 32 * 1024 * 1024


class JobFileError(Exception):
    """A file in a job directory that orion refuses to read (not a regular file, too big)."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def event_record(event: str, **fields: Any) -> dict[str, Any]:
    """One event as the runner writes it: its time, its name, its fields."""
    return {"time": utcnow().isoformat(), "event": event, **fields}


def append_event(workdir: Path, event: str, **fields: Any) -> dict[str, Any]:
    """Append one event line (atomic for lines under PIPE_BUF with O_APPEND)."""
    record = event_record(event, **fields)
    append_lines(workdir, [json.dumps(record, separators=(",", ":"))])
    return record


def append_lines(workdir: Path, lines: list[str]) -> None:
    """Append ready JSON lines to ``events.jsonl`` with one write (one open, one close)."""
    fd = os.open(workdir / EVENTS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        write_all(fd, "".join(line + "\n" for line in lines).encode())
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (a regular file takes it in one write; a signal may
    cut one short)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def result_record(outcome: dict[str, Any]) -> dict[str, Any] | None:
    """The ``result`` event carrying ``outcome`` (a result with its attempt), or None when
    it does not fit an event line: too long, or NaN/Infinity, which event lines refuse
    (``result.json`` takes it then).

    >>> result_record({"attempt": 1, "energy_ev": -1.5})["result"]
    {'attempt': 1, 'energy_ev': -1.5}
    >>> result_record({"attempt": 1, "energy_ev": float("nan")}) is None
    True
    """
    record = event_record(RESULT_EVENT, attempt=outcome.get("attempt", 1), result=outcome)
    try:
        line = json.dumps(record, separators=(",", ":"), allow_nan=False)
    except ValueError:
        return None
    # room for the stream's "job" field
    return record if len(line.encode()) < MAX_EVENT_LINE_BYTES - 200 else None


def events_tail(workdir: Path) -> list[Any]:
    """The last event lines of ``workdir``: enough for a result line and the line after it."""
    try:
        size = os.stat(workdir / EVENTS_FILE).st_size
    except (FileNotFoundError, NotADirectoryError):
        return []
    span = 2 * (MAX_EVENT_LINE_BYTES + 1)
    return read_events(workdir, max(size - span, 0), max_bytes=span).events


def claimed_attempt(data: Any) -> int | None:
    """The attempt a parsed result or event claims (1 when it names none), or None when
    what it names is not a number of an attempt (the result is then judged as it is).

    >>> claimed_attempt({"attempt": 2}), claimed_attempt({}), claimed_attempt({"attempt": "x"})
    (2, 1, None)
    """
    if not isinstance(data, dict):
        return None
    value = data.get("attempt", 1)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def open_regular(path: Path) -> int:
    """Open ``path`` for reading only if it is a regular file; never block, never follow a link.

    A FIFO would block the reader for ever and a device (``/dev/zero``) never ends, so both
    are refused, as is a symbolic link (it may point out of the job directory).
    Raises FileNotFoundError when there is no such file, JobFileError when it is refused.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> os.mkfifo(d / "fifo")
    >>> open_regular(d / "fifo")
    Traceback (most recent call last):
    ...
    orion_cli.jobdir.JobFileError: fifo is a FIFO, not a regular file; orion does not read it
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        if path.is_symlink():
            raise JobFileError(
                f"{path.name} is a symbolic link; orion reads only regular files in a job directory"
            ) from None
        raise JobFileError(f"cannot open {path.name}: {exc.strerror}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = (
            "a FIFO"
            if stat.S_ISFIFO(mode)
            else "a directory"
            if stat.S_ISDIR(mode)
            else "a device"
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a socket"
        )
        raise JobFileError(f"{path.name} is {kind}, not a regular file; orion does not read it")
    return fd


@dataclass(frozen=True)
class EventBatch:
    """Complete lines read after an offset: parsed records, the new offset, what was skipped."""

    events: list[Any]
    offset: int
    warnings: list[str] = field(default_factory=list)


def read_events(
    workdir: Path,
    offset: int = 0,
    max_bytes: int = MAX_EVENT_BYTES_PER_CYCLE,
    max_line_bytes: int = MAX_EVENT_LINE_BYTES,
) -> EventBatch:
    """Read complete event lines after byte ``offset``; a half-written last line waits.

    At most ``max_bytes`` are read (never fewer than two whole lines of ``max_line_bytes``,
    so every call gets on). When more than that was written since ``offset``, the first and
    the last half are read and the lines between skipped with a warning: the start and the
    end of an attempt, the newest step and their times are what the poller needs. A line
    that is not JSON, or longer than ``max_line_bytes``, is skipped with a warning. The
    records are returned as parsed, unchecked: see ``ingest``.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = append_event(d, "started", attempt=1)
    >>> batch = read_events(d)
    >>> [e["event"] for e in batch.events], read_events(d, batch.offset).events
    (['started'], [])
    """
    try:
        fd = open_regular(workdir / EVENTS_FILE)
    except FileNotFoundError:
        return EventBatch([], offset)
    warnings: list[str] = []
    half = max(max_bytes, 2 * (max_line_bytes + 1)) // 2
    with os.fdopen(fd, "rb") as handle:
        size = os.fstat(fd).st_size
        if offset > size:  # the file was replaced or truncated: read it again from the start
            warnings.append(
                f"{EVENTS_FILE} shrank below the {offset} bytes already read; "
                "read again from the start"
            )
            offset = 0
        if size - offset <= 2 * half:
            events, end = _read_lines(handle, offset, 2 * half, max_line_bytes, warnings)
            return EventBatch(events, end, warnings)
        head, head_end = _read_lines(handle, offset, half, max_line_bytes, warnings)
        tail, end = _read_lines(handle, size - half, half, max_line_bytes, warnings)
    warnings.append(
        f"{EVENTS_FILE} grew by {size - offset:,} bytes since the last poll (more than "
        f"{2 * half:,} per cycle): read its first and last {half:,} bytes, skipped the "
        f"{size - half - head_end:,} bytes between"
    )
    return EventBatch(head + tail, end, warnings)


def _read_lines(
    handle: Any, offset: int, max_bytes: int, max_line_bytes: int, warnings: list[str]
) -> tuple[list[Any], int]:
    """Parse the complete lines in ``max_bytes`` from ``offset``; return them and the new offset.

    A line begun before ``offset`` (cut there) is dropped up to its end.
    """
    start = max(offset - 1, 0)  # one byte back: does ``offset`` fall mid-line?
    handle.seek(start)
    data = handle.read(max_bytes + (offset - start))
    mid_line = offset > 0 and data[:1] != b"\n"
    data = data[offset - start :]
    position = 0
    if mid_line:  # the rest of a line skipped as too long (or cut off): drop it up to its end
        newline = data.find(b"\n")
        if newline < 0:
            return [], offset + len(data)
        position = newline + 1
    end = data.rfind(b"\n") + 1
    events: list[Any] = []
    for raw in data[position:end].splitlines():
        if not raw.strip():
            continue
        if len(raw) > max_line_bytes:
            warnings.append(
                f"skipped a line of {len(raw)} bytes (limit {max_line_bytes}) in {EVENTS_FILE}"
            )
            continue
        try:
            events.append(loads_untrusted(raw))
        except ValueError as exc:
            warnings.append(f"skipped a line that is not JSON in {EVENTS_FILE} ({exc})")
    end = max(end, position)
    if len(data) - end >= max_line_bytes:  # a line too long to read whole: skip it
        warnings.append(
            f"skipped a line longer than {max_line_bytes} bytes in "
            f"{EVENTS_FILE} (at byte {offset + end})"
        )
        end = len(data)
    return events, offset + end


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def loads_untrusted(raw: bytes | str) -> Any:
    """Parse JSON that anyone could have written: NaN and Infinity are refused.

    Deep nesting and huge integers are errors (ValueError), not crashes.

    >>> loads_untrusted('{"a": 1}')
    {'a': 1}
    >>> loads_untrusted('[NaN]')
    Traceback (most recent call last):
    ...
    ValueError: NaN is not a number JSON allows
    >>> loads_untrusted("[" * 100_000)
    Traceback (most recent call last):
    ...
    ValueError: nested too deeply
    """
    try:
        return json.loads(raw, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text ({exc.reason})") from None


def read_result(path: Path) -> Any | None:
    """Read a ``result.json`` written by a job: None when absent; JobFileError when refused.

    NaN and Infinity are read (a calculation may produce them) for ``ingest`` to judge.
    """
    try:
        fd = open_regular(path)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(MAX_RESULT_BYTES + 1)
    if len(data) > MAX_RESULT_BYTES:
        raise JobFileError(
            f"{path.name} is larger than {MAX_RESULT_BYTES // 2**20} MiB; orion does not store it"
        )
    try:
        return json.loads(data)
    except RecursionError:
        raise JobFileError(f"{path.name} is nested too deeply") from None
    except ValueError as exc:
        raise JobFileError(f"{path.name} is not JSON ({exc})") from None


def write_json_atomic(path: Path, data: Any, indent: int | None = 1) -> None:
    """Write JSON through a temporary file and rename, so readers never see half a file."""
    write_output(path, json.dumps(data, indent=indent, separators=None if indent else (",", ":")))


def read_json(path: Path) -> Any | None:
    """Read a JSON file orion wrote itself (job.json); None when absent or unreadable."""
    try:
        fd = open_regular(path)
    except (FileNotFoundError, JobFileError):
        return None
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(MAX_RESULT_BYTES + 1)
    try:
        return None if len(data) > MAX_RESULT_BYTES else json.loads(data)
    except (ValueError, RecursionError):
        return None


def attempt_parts(names: list[str], name: str) -> list[str]:
    """The parts of ``name`` among ``names``: each attempt's copy in order, then ``name``.

    >>> attempt_parts(["traj.dump", "traj-attempt-2.dump", "traj-attempt-1.dump", "x"],
    ...               "traj.dump")
    ['traj-attempt-1.dump', 'traj-attempt-2.dump', 'traj.dump']
    >>> attempt_parts(["pw.out"], "pw.out"), attempt_parts([], "traj.dump")
    (['pw.out'], [])
    """
    stem, dot, ext = name.rpartition(".")
    pattern = re.compile(
        re.escape(stem if dot else name) + r"-attempt-(\d+)" + (re.escape(dot + ext) if dot else "")
    )
    numbered = sorted((int(m[1]), n) for n in names if (m := pattern.fullmatch(n)))
    return [n for _, n in numbered] + ([name] if name in names else [])
