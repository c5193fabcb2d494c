"""The job directory: the only channel between a running job and orion.

Compute nodes never open the database. The job runner appends JSON lines to
``events.jsonl`` and writes ``result.json``; the poller reads them from the shared
filesystem, remembering how many bytes it has already ingested.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

EVENTS_FILE = "events.jsonl"
RESULT_FILE = "result.json"
JOB_FILE = "job.json"


def utcnow() -> datetime:
    return datetime.now(UTC)


def append_event(workdir: Path, event: str, **fields: Any) -> dict[str, Any]:
    """Append one event line (atomic for lines under PIPE_BUF with O_APPEND)."""
    record = {"time": utcnow().isoformat(), "event": event, **fields}
    line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
    fd = os.open(workdir / EVENTS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    return record


@dataclass(frozen=True)
class EventBatch:
    events: list[dict[str, Any]]
    offset: int


def read_events(workdir: Path, offset: int = 0) -> EventBatch:
    """Read complete event lines after byte ``offset``; a half-written last line waits.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = append_event(d, "started", attempt=1)
    >>> batch = read_events(d)
    >>> [e["event"] for e in batch.events], read_events(d, batch.offset).events
    (['started'], [])
    """
    path = workdir / EVENTS_FILE
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return EventBatch([], offset)
    end = data.rfind(b"\n") + 1
    events = []
    for raw in data[:end].splitlines():
        try:
            events.append(json.loads(raw))
        except ValueError:
            continue  # a torn line from a crashed writer is skipped, not fatal
    return EventBatch(events, offset + end)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON through a temporary file and rename, so readers never see half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def read_json(path: Path) -> Any | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
