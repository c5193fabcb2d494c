"""Check what a job wrote before any of it reaches the database (pure functions).

A job directory is written by the job, on a compute node, by whatever program the job
runs: its records are untrusted input. An event line that is not what the runner writes is
skipped with a warning; a ``result.json`` that is not a usable result makes the job fail
with ``engine_error`` and a message naming the field. Numbers must be finite (PostgreSQL's
JSON type refuses NaN), texts are bounded, progress is clamped to 0..100.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from orion_cli.engines.base import Result

#: attempt numbers above this are nonsense (a job retried a million times)
MAX_ATTEMPT = 1_000_000
MAX_STEP_CHARS = 200
MAX_TEXT_CHARS = 4000
MAX_EVENT_NAME_CHARS = 64


class BadRecord(ValueError):
    """A record from a job directory that does not have the shape orion expects."""


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def clean_text(value: str, limit: int) -> str:
    """Make a text safe to store and print: no control characters, at most ``limit`` chars.

    >>> clean_text("SCF\\x1b[31m step\\n 3", 200)
    'SCF?[31m step? 3'
    >>> len(clean_text("x" * 500, 200))
    200
    """
    cleaned = "".join(
        "?" if (ord(c) < 32 and c != "\t") or 127 <= ord(c) < 160 else c for c in value[:limit]
    )
    return cleaned


def as_int(value: Any, name: str, low: int, high: int) -> int:
    """An integer in ``low..high`` (booleans and floats are not integers here).

    >>> as_int(3, "attempt", 1, 10)
    3
    >>> as_int("x", "attempt", 1, 10)
    Traceback (most recent call last):
    ...
    orion_cli.ingest.BadRecord: attempt is 'x', not an integer
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRecord(f"{name} is {_describe(value)}, not an integer")
    if not low <= value <= high:
        raise BadRecord(f"{name} is {value}, outside {low}..{high}")
    return value


def as_finite(value: Any, name: str) -> float:
    """A finite number (int or float, not bool).

    >>> as_finite(float("nan"), "energy_ev")
    Traceback (most recent call last):
    ...
    orion_cli.ingest.BadRecord: energy_ev is nan, not a finite number
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRecord(f"{name} is {_describe(value)}, not a number")
    number = float(value)
    if not math.isfinite(number):
        raise BadRecord(f"{name} is {value}, not a finite number")
    return number


@dataclass(frozen=True)
class EventRecord:
    """One checked line of ``events.jsonl``; ``time`` when the job wrote it (UTC)."""

    event: str
    attempt: int
    progress_pct: float | None = None
    step: str | None = None
    time: datetime | None = None


def as_time(value: Any) -> datetime | None:
    """An ISO time with its zone, as the runner writes it; None when there is none usable.

    >>> as_time("2026-11-30T10:00:00+00:00").isoformat(), as_time("yesterday"), as_time(3)
    ('2026-11-30T10:00:00+00:00', None, None)
    """
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else None


def check_event(record: Any) -> EventRecord:
    """Check one parsed event line; raise BadRecord saying what is wrong.

    >>> check_event({"event": "progress", "attempt": 2, "progress_pct": 250, "step": "x"})
    EventRecord(event='progress', attempt=2, progress_pct=100.0, step='x', time=None)
    >>> check_event([1])
    Traceback (most recent call last):
    ...
    orion_cli.ingest.BadRecord: an event line is [1], not an object
    """
    if not isinstance(record, dict):
        raise BadRecord(f"an event line is {_describe(record)}, not an object")
    event = record.get("event")
    if not isinstance(event, str) or not 0 < len(event) <= MAX_EVENT_NAME_CHARS:
        raise BadRecord(f"event is {_describe(event)}, not a short text")
    attempt = as_int(record.get("attempt", 1), "attempt", 1, MAX_ATTEMPT)
    if event != "progress":
        return EventRecord(event, attempt, time=as_time(record.get("time")))
    progress = as_finite(record.get("progress_pct", 0.0), "progress_pct")
    step = record.get("step", "")
    if not isinstance(step, str):
        raise BadRecord(f"step is {_describe(step)}, not a text")
    return EventRecord(
        event,
        attempt,
        min(max(progress, 0.0), 100.0),
        clean_text(step, MAX_STEP_CHARS),
        as_time(record.get("time")),
    )


def check_events(records: list[Any]) -> tuple[list[EventRecord], list[str]]:
    """Check parsed event lines: the good ones, and one warning per bad one."""
    good: list[EventRecord] = []
    warnings: list[str] = []
    for record in records:
        try:
            good.append(check_event(record))
        except BadRecord as exc:
            warnings.append(f"skipped an event line: {exc}")
    return good, warnings


@dataclass
class CheckedResult(Result):
    """A ``result.json`` whose fields all have the types and ranges orion stores."""

    attempt: int = 1


def _finite_tree(value: Any, name: str, depth: int = 0) -> Any:
    """Return a JSON value with every number checked finite (for free-form ``extras``)."""
    if depth > 20:
        raise BadRecord(f"{name} is nested more than 20 levels deep")
    if isinstance(value, float):
        return as_finite(value, name)
    if isinstance(value, dict):
        return {str(k): _finite_tree(v, f"{name}.{k}", depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_tree(v, f"{name}[{i}]", depth + 1) for i, v in enumerate(value)]
    return value


def _optional(data: dict[str, Any], key: str, check: Any) -> Any:
    value = data.get(key)
    return None if value is None else check(value, key)


def _forces(value: Any, name: str) -> list[list[float]]:
    if not isinstance(value, list) or not all(
        isinstance(row, list) and len(row) == 3 for row in value
    ):
        raise BadRecord(f"{name} is {_describe(value)}, not a list of [x, y, z] rows")
    return _finite_rows(value, name)


def _finite_rows(rows: list[list[Any]], name: str) -> list[list[float]]:
    """``rows`` of finite floats. Fast path: all floats whose sum is finite (a NaN or an
    infinity anywhere makes the sum non-finite); else element by element, naming the bad one.

    >>> _finite_rows([[0.5, -1.0, 2]], "forces")
    [[0.5, -1.0, 2.0]]
    """
    if all(type(x) is float for row in rows for x in row) and math.isfinite(
        sum(x for row in rows for x in row)
    ):
        return rows
    return [[as_finite(x, name) for x in row] for row in rows]


def _stress(value: Any, name: str) -> list[float]:
    if not isinstance(value, list) or len(value) not in (6, 9):
        raise BadRecord(f"{name} is {_describe(value)}, not 6 (Voigt) or 9 numbers")
    return [as_finite(x, name) for x in value]


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise BadRecord(f"{name} is {_describe(value)}, not a text")
    if "\x00" in value:  # PostgreSQL's text type cannot hold it
        raise BadRecord(f"{name} contains a NUL character")
    return value


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise BadRecord(f"{name} is {_describe(value)}, not true or false")
    return value


def check_result(data: Any) -> CheckedResult:
    """Check a parsed ``result.json``; raise BadRecord naming the first bad field.

    >>> check_result({"attempt": 1, "energy_ev": -3.5, "converged": True}).energy_ev
    -3.5
    >>> check_result({"attempt": 1, "energy_ev": "abc"})
    Traceback (most recent call last):
    ...
    orion_cli.ingest.BadRecord: energy_ev is 'abc', not a number
    """
    if not isinstance(data, dict):
        raise BadRecord(f"result.json holds {_describe(data)}, not an object")
    extras = data.get("extras") or {}
    if not isinstance(extras, dict):
        raise BadRecord(f"extras is {_describe(extras)}, not an object")
    error = _optional(data, "error", _text)
    return CheckedResult(
        attempt=as_int(data.get("attempt", 1), "attempt", 1, MAX_ATTEMPT),
        energy_ev=_optional(data, "energy_ev", as_finite),
        forces_ev_per_a=_optional(data, "forces_ev_per_a", _forces),
        stress_ev_per_a3=_optional(data, "stress_ev_per_a3", _stress),
        final_structure=_optional(data, "final_structure", _text),
        converged=_optional(data, "converged", _flag),
        extras=_finite_tree(extras, "extras"),
        error=None if error is None else clean_text(error, MAX_TEXT_CHARS),
    )
