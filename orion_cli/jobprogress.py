"""``orion progress``: a job tells orion how far it got, or a result, from inside the job.

Runs on the compute node, inside any batch script orion submitted: it writes into the job
directory named by ``ORION_JOB_DIR`` (exported by orion, with ``ORION_ATTEMPT``), in the
same format the in-job runner writes (:func:`orion_cli.jobdir.append_event`, ``result.json``),
and never opens the database. The poller ingests both like an engine job's, through the
checks of :mod:`orion_cli.ingest`. Standard library only: it starts in a few tens of ms.
"""

from __future__ import annotations

import fcntl
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orion_cli.errors import UsageError
from orion_cli.ingest import MAX_STEP_CHARS, BadRecord, check_result
from orion_cli.jobdir import RESULT_FILE, append_event, read_json
from orion_cli.outfile import write_output
from orion_cli.units import plain_float

#: result keys that are fields of result.json; any other key goes to its ``extras``
TOP_LEVEL_KEYS = ("energy_ev", "converged")
_OUTSIDE = "run it from a batch script orion submitted (orion submit --script run.sbatch)"


def job_context(environ: Mapping[str, str]) -> tuple[Path, int]:
    """The job directory and attempt this process runs in; UsageError outside an orion job.

    >>> job_context({"ORION_JOB_DIR": "/", "ORION_ATTEMPT": "2"})
    (PosixPath('/'), 2)
    """
    text = environ.get("ORION_JOB_DIR", "")
    if not text:
        raise UsageError("not inside an orion job (ORION_JOB_DIR is not set)", _OUTSIDE)
    workdir = Path(text)
    if not workdir.is_dir():
        raise UsageError(f"ORION_JOB_DIR '{text}' is not a directory", _OUTSIDE)
    attempt_text = environ.get("ORION_ATTEMPT", "1")
    if not attempt_text.isdigit() or not 1 <= int(attempt_text) <= 10_000:
        raise UsageError(f"ORION_ATTEMPT '{attempt_text}' is not an attempt number", _OUTSIDE)
    return workdir, int(attempt_text)


def parse_percent(text: str) -> float:
    """Read a percentage 0..100.

    >>> parse_percent("40"), parse_percent("12.5%")
    (40.0, 12.5)
    """
    try:
        value = plain_float(text.strip().removesuffix("%"))  # not "1_0", not "٥٠"
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0 <= value <= 100:
        raise UsageError(
            f"progress '{text}' is not a percentage", 'write e.g. orion progress 40 "SCF step 12"'
        )
    return value


def report_progress(workdir: Path, attempt: int, percent: float, step: str) -> None:
    """Append one progress event, as the job runner writes it."""
    if any(ord(c) < 32 for c in step):
        raise UsageError(
            "the step text has a control character (newline, tab)", "write it on one line"
        )
    append_event(
        workdir, "progress", attempt=attempt, step=step[:MAX_STEP_CHARS], progress_pct=percent
    )


def parse_value(text: str) -> Any:
    """A result value: a number, true/false, or the text itself.

    >>> parse_value("-12.3"), parse_value("4"), parse_value("true"), parse_value("scf")
    (-12.3, 4, True, 'scf')
    """
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            value = kind(text)
        except ValueError:
            continue
        return value if kind is int or math.isfinite(value) else text
    return text


def parse_pairs(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` words → a dict; a word without ``=`` is a UsageError.

    >>> parse_pairs(["energy_ev=-12.3", "kpoints=4"])
    {'energy_ev': -12.3, 'kpoints': 4}
    """
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or len(key) > 100:
            raise UsageError(
                f"'{pair}' is not key=value",
                "write e.g. orion progress --result energy_ev=-12.3 steps=40",
            )
        values[key.strip()] = parse_value(value.strip())
    if not values:
        raise UsageError(
            "--result needs key=value pairs", "write e.g. orion progress --result energy_ev=-12.3"
        )
    return values


def report_result(workdir: Path, attempt: int, values: dict[str, Any]) -> dict[str, Any]:
    """Merge ``values`` into this attempt's ``result.json``, checked as the poller checks it.

    ``energy_ev`` and ``converged`` are result fields; other keys go to ``extras``. Calls
    from concurrent processes are serialised by a lock; the file is replaced atomically.
    """
    with open(workdir / ".result.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        old = read_json(workdir / RESULT_FILE)
        data = old if isinstance(old, dict) and old.get("attempt") == attempt else {}
        data = {**data, "attempt": attempt}
        extras = dict(data.get("extras") or {})
        for key, value in values.items():
            if key in TOP_LEVEL_KEYS:
                data[key] = value
            else:
                extras[key] = value
        data["extras"] = extras
        try:
            check_result(data)
        except BadRecord as exc:
            raise UsageError(
                f"result not written: {exc}", "energy_ev is a number, converged true or false"
            ) from None
        write_output(workdir / RESULT_FILE, json.dumps(data, indent=1))
    return data
