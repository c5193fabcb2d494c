"""A packed task's stream: one append-only file of its calculations' records.

A packed task that computes in memory (emt, ase, mock, the ML potentials) keeps the
records of its calculations — ``started``, ``progress``, the ``result`` line, ``finished``
or ``failed`` — in one file of the array, ``arrays/<first id>/stream-<round>-<task>.jsonl``
(``-<slot>`` added per GPU slot), instead of a directory and an ``events.jsonl`` per
calculation: a directory and a file cost this node's file system ~0.45 ms per calculation,
the stream's lines ~0.02 ms. Each record is the job's event as it would be in its
``events.jsonl``, with ``job``: the name of the job's directory. A calculation gets a
directory only where its engine writes files (a relaxation's trajectory) or its result
does not fit a line (then ``result.json`` there).

Every line is written with one ``write`` as it happens (no buffer in the runner: what was
written is what the poller counts; a calculation cut off before its ``result`` line is
the running one, retried by policy). One writer per file (a task, or one slot of it), so a
shared file system never sees two nodes append to one file.

Readers (the poller, a waiter, ``--from``, fits, a restarted attempt) go through
:func:`read_outcome` and :func:`stream_records`; what they read is untrusted like any
job file (:mod:`orion_cli.jobdir`) and checked by :mod:`orion_cli.ingest`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orion_cli.jobdir import (
    EVENTS_FILE,
    MAX_EVENT_LINE_BYTES,
    RESULT_EVENT,
    RESULT_FILE,
    JobFileError,
    claimed_attempt,
    events_tail,
    loads_untrusted,
    open_regular,
    read_result,
    write_all,
)

STREAM_PREFIX = "stream-"
#: a stream larger than this is not read (10,000 single points of 4 atoms: ~5 MB)
MAX_STREAM_BYTES = 1024 * 1024 * 1024
#: the events that end an attempt
OUTCOME_EVENTS = frozenset({"finished", "failed"})


def stream_path(packs: Path, task: int, slot: int | None = None) -> Path:
    """The stream of packed task ``task`` (and ``slot``) of the round ``packs`` lists.

    >>> stream_path(Path("/w/arrays/5/packs-1.jsonl"), 3)
    PosixPath('/w/arrays/5/stream-1-3.jsonl')
    >>> stream_path(Path("p/packs-0.jsonl"), 0, 1)
    PosixPath('p/stream-0-0-1.jsonl')
    """
    round_ = packs.stem.rpartition("-")[2]
    tail = f"-{slot}" if slot is not None else ""
    return packs.parent / f"{STREAM_PREFIX}{round_}-{task}{tail}.jsonl"


class TaskStream:
    """The writer: one task's (or slot's) stream, opened at its first line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None
        self.ended = _ended(path)  # a requeued task: (job, attempt) it already finished

    def write(self, job: str, records: list[dict[str, Any]]) -> None:
        """Append ``records`` of job ``job`` (a directory name) with one write."""
        lines = "".join(
            json.dumps({"job": job, **record}, separators=(",", ":")) + "\n" for record in records
        )
        if self.fd is None:
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
            self.fd = os.open(self.path, flags, 0o600)
        write_all(self.fd, lines.encode())

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _ended(path: Path) -> set[tuple[str, int]]:
    """(job, attempt) of the calculations a stream already holds an end of."""
    if not path.exists():
        return set()
    return {
        (job, attempt)
        for job, records in _read_whole(path).items()
        for record in records
        if record.get("event") in OUTCOME_EVENTS
        and isinstance(attempt := claimed_attempt(record), int)
    }


def _read_whole(path: Path) -> dict[str, list[dict[str, Any]]]:
    stream = _Stream(ident=(0, 0))
    _read_new(path, stream)
    return stream.by_job


@dataclass
class _Stream:
    """What a process has read of one stream file, by job."""

    ident: tuple[int, int]
    offset: int = 0
    by_job: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


@dataclass
class _Array:
    generation: int = -1
    files: dict[str, _Stream] = field(default_factory=dict)
    by_job: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


#: what this process has read of each array's streams (read on from where it stopped)
_ARRAYS: dict[str, _Array] = {}
#: a reader looks at the files again once this has moved on (:func:`refresh`)
_GENERATION = [0]


def refresh() -> None:
    """Look at the streams again at the next read (a poll cycle, a waiter's look): until
    then, what was read stands (one look per array, not one per job)."""
    _GENERATION[0] += 1


def stream_records(array_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """The records of the streams of the array in ``array_dir``, by job directory name,
    in the order written (a requeued task's lines after its earlier run's).

    A process reads each stream once and then only what was appended since, once per
    :func:`refresh`; a stream that shrank or was replaced is read again from its start.
    Lines that are not JSON objects naming their job are skipped.
    """
    key = str(array_dir)
    array = _ARRAYS.setdefault(key, _Array())
    if array.generation == _GENERATION[0]:
        return array.by_job
    array.generation = _GENERATION[0]
    try:
        names = sorted(n for n in os.listdir(array_dir) if n.startswith(STREAM_PREFIX))
    except OSError:
        return array.by_job
    for name in names:
        stream = array.files.setdefault(name, _Stream(ident=(0, 0)))
        fresh = _read_new(array_dir / name, stream)
        if fresh is None:  # shrunk or replaced: from the start, the whole array again
            _ARRAYS[key] = array = _rebuilt(array_dir, names)
            break
        for job, records in fresh.items():
            array.by_job.setdefault(job, []).extend(records)
    return array.by_job


def _rebuilt(array_dir: Path, names: list[str]) -> _Array:
    array = _Array(generation=_GENERATION[0])
    for name in names:
        stream = _Stream(ident=(0, 0))
        _read_new(array_dir / name, stream)
        array.files[name] = stream
        for job, records in stream.by_job.items():
            array.by_job.setdefault(job, []).extend(records)
    return array


def _read_new(path: Path, stream: _Stream) -> dict[str, list[dict[str, Any]]] | None:
    """Read ``path`` on from ``stream.offset``; return the new records by job, or None when
    the file is not the one read before (replaced, or shorter than what was read)."""
    try:
        fd = open_regular(path)
    except (OSError, JobFileError):
        return {}
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        ident = (info.st_dev, info.st_ino)
        if stream.ident == (0, 0):
            stream.ident = ident
        elif ident != stream.ident or info.st_size < stream.offset:
            return None
        if info.st_size > MAX_STREAM_BYTES:
            return {}
        handle.seek(stream.offset)
        data = handle.read(info.st_size - stream.offset)
    end = data.rfind(b"\n") + 1  # a half-written last line waits for the next read
    stream.offset += end
    new: dict[str, list[dict[str, Any]]] = {}
    for raw in data[:end].splitlines():
        record = _record(raw)
        if record is not None:
            new.setdefault(record["job"], []).append(record)
            stream.by_job.setdefault(record["job"], []).append(record)
    return new


def _record(raw: bytes) -> dict[str, Any] | None:
    if not raw.strip() or len(raw) > MAX_EVENT_LINE_BYTES:
        return None
    try:
        record = loads_untrusted(raw)
    except ValueError:
        return None
    job = record.get("job") if isinstance(record, dict) else None
    return record if isinstance(job, str) and 0 < len(job) <= 100 else None


def job_records(workdir: Path, array_dir: Path | None = None) -> list[dict[str, Any]]:
    """The stream records of the job in ``workdir``: from its array's streams when
    ``array_dir`` is known, else from every array of its folder (read as they are now)."""
    if array_dir is not None:
        return stream_records(array_dir).get(workdir.name, [])
    refresh()
    found: list[dict[str, Any]] = []
    try:
        arrays = sorted((workdir.parent / "arrays").iterdir())
    except OSError:
        return found
    for path in arrays:
        found += stream_records(path).get(workdir.name, [])
    return found


def read_outcome(
    workdir: Path, attempt: int | None = None, array_dir: Path | None = None, search: bool = True
) -> Any:
    """The result of ``attempt`` (None: the latest) of the job in ``workdir``, unchecked.

    ``result.json`` when it holds that attempt's; otherwise the ``result`` line the runner
    wrote with the attempt's end: in the job's ``events.jsonl``, or in its packed task's
    stream (``array_dir``: the array's folder, when known; else, unless ``search`` is
    False, every array beside the job's directory). None while there is none.
    Raises JobFileError when a file is refused (see :func:`~orion_cli.jobdir.open_regular`).

    >>> import tempfile
    >>> from orion_cli.jobdir import append_lines, result_record
    >>> d = Path(tempfile.mkdtemp())
    >>> append_lines(d, [json.dumps(result_record({"attempt": 1, "energy_ev": -2.0}))])
    >>> read_outcome(d, 1), read_outcome(d, 2), read_outcome(d)
    ({'attempt': 1, 'energy_ev': -2.0}, None, {'attempt': 1, 'energy_ev': -2.0})
    """
    data = read_result(workdir / RESULT_FILE)
    if data is not None and (attempt is None or claimed_attempt(data) in (None, attempt)):
        return data
    own = events_tail(workdir)
    for record in reversed(own):
        if _is_result(record, attempt):
            return record.get("result")
    if array_dir is None and (own or not search):
        return None  # a job with its own events keeps its result there
    for record in reversed(job_records(workdir, array_dir)):
        if _is_result(record, attempt):
            return record.get("result")
    return None


def _is_result(record: Any, attempt: int | None) -> bool:
    return (
        isinstance(record, dict)
        and record.get("event") == RESULT_EVENT
        and (attempt is None or claimed_attempt(record) == attempt)
    )


def outcome_written(workdir: str, array_dir: str | None = None) -> bool:
    """Whether the job in ``workdir`` has written its outcome: ``result.json``, a last
    event line that ends an attempt, or (packed) an end in its task's stream. A cheap
    look for a waiter; the poller reads and checks the outcome itself.

    >>> import tempfile
    >>> from orion_cli.jobdir import append_event
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = append_event(d, "started", attempt=1)
    >>> before = outcome_written(str(d))
    >>> _ = append_event(d, "finished", attempt=1)
    >>> before, outcome_written(str(d))
    (False, True)
    """
    if os.path.exists(os.path.join(workdir, RESULT_FILE)) or _events_ended(Path(workdir)):
        return True
    if array_dir is None:
        return False
    records = stream_records(Path(array_dir)).get(os.path.basename(workdir), [])
    return bool(records) and records[-1].get("event") in OUTCOME_EVENTS


def _events_ended(workdir: Path) -> bool:
    """Whether the last line of the job's ``events.jsonl`` ends an attempt."""
    try:
        fd = open_regular(workdir / EVENTS_FILE)
    except (OSError, JobFileError):
        return False
    with os.fdopen(fd, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        for look in (4096, MAX_EVENT_LINE_BYTES + 1):  # a long last line: look further
            handle.seek(max(size - look, 0))
            lines = handle.read(look).rstrip(b"\n").rsplit(b"\n", 1)
            if len(lines) > 1 or size <= look:
                break
    return any(b'"event":"%s"' % word in lines[-1][:120] for word in (b"finished", b"failed"))
