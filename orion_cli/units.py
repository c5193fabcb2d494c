"""Pure parsers for the values researchers type: walltimes, memory sizes, parameter values."""

from __future__ import annotations

import json
import re
from typing import Any

from orion_cli.errors import UsageError

_DURATION = re.compile(
    r"^(?P<num>\d+(?:\.\d+)?)\s*(?P<unit>s|sec|m|min|h|hr|d)?$", re.IGNORECASE | re.ASCII
)
_UNIT_S = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86400}


_CLOCK = re.compile(r"(?:(?P<days>\d+)-)?(?P<clock>\d+(?::\d+){0,2})", re.ASCII)


def clock_s(text: str, bare_unit_s: int = 60) -> int | None:
    """Seconds of a SLURM time: ``M``, ``M:S``, ``H:M:S``, ``D-H``, ``D-H:M``, ``D-H:M:S``.

    The one reading of SLURM's duration formats in orion (sbatch ``--time``, squeue's and
    sinfo's limits, and what users type). A bare number counts ``bare_unit_s`` seconds
    (minutes for SLURM). None when ``text`` has none of these forms.

    >>> clock_s("1-02:30"), clock_s("1-02"), clock_s("30:00"), clock_s("1:30:00")
    (95400, 93600, 1800, 5400)
    >>> clock_s("1-02:30:15"), clock_s("45"), clock_s("infinite")
    (95415, 2700, None)
    """
    match = _CLOCK.fullmatch(text.strip())
    if not match:
        return None
    parts = [int(p) for p in match["clock"].split(":")]
    if match["days"] is not None:  # days-hours[:minutes[:seconds]]
        hours, minutes, seconds = (parts + [0, 0])[:3]
        return ((int(match["days"]) * 24 + hours) * 60 + minutes) * 60 + seconds
    if len(parts) == 1:
        return parts[0] * bare_unit_s
    if len(parts) == 2:  # minutes:seconds
        return parts[0] * 60 + parts[1]
    return (parts[0] * 60 + parts[1]) * 60 + parts[2]


def parse_walltime_s(text: str, what: str = "walltime") -> int:
    """Parse ``90m``, ``2h``, ``1:30:00``, ``1-02:30`` (SLURM's forms) or seconds.

    A bare number is seconds; everything with ``:`` or ``-`` is read as SLURM reads it.

    >>> parse_walltime_s("90m"), parse_walltime_s("2h"), parse_walltime_s("1:30:00")
    (5400, 7200, 5400)
    >>> parse_walltime_s("3600"), parse_walltime_s("1-02:00:00"), parse_walltime_s("1-02:30")
    (3600, 93600, 95400)
    """
    raw = text.strip()
    hint = "write e.g. 90m, 2h, 1:30:00, 1-02:30 (days-hours:minutes) or a number of seconds"
    if raw.startswith("-"):
        raise UsageError(f"{what} '{text}' is negative", hint)
    if len(raw) > 40:
        raise UsageError(f"{what} '{raw[:20]}…' ({len(raw)} characters) is out of range", hint)
    if ":" in raw or "-" in raw:
        clock = clock_s(raw)
        if clock is None:
            raise UsageError(f"{what} '{text}' is not a duration", hint)
        seconds = clock
    else:
        match = _DURATION.match(raw)
        if not match:
            raise UsageError(f"{what} '{text}' is not a duration", hint)
        seconds = round(float(match["num"]) * _UNIT_S[(match["unit"] or "s").lower()])
    if seconds <= 0:
        raise UsageError(f"{what} '{text}' must be positive", hint)
    return seconds


def format_walltime(seconds: int) -> str:
    """Format seconds as SLURM's ``[D-]HH:MM:SS``, rounding up to whole minutes.

    SLURM time limits have minute granularity; rounding up never cuts a job short.

    >>> format_walltime(5400), format_walltime(61), format_walltime(90000)
    ('01:30:00', '00:02:00', '1-01:00:00')
    """
    minutes = -(-seconds // 60)
    days, minutes = divmod(minutes, 1440)
    hours, minutes = divmod(minutes, 60)
    text = f"{hours:02d}:{minutes:02d}:00"
    return f"{days}-{text}" if days else text


_MEM = re.compile(r"^(?P<num>\d+(?:\.\d+)?)\s*(?P<unit>[KMGT]?)(?:i?B)?$", re.IGNORECASE | re.ASCII)
#: a number as people write it: ASCII digits, no ``_`` (Python's float() takes "1_0", "٥٠")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)


def plain_float(text: str) -> float:
    """``float(text)`` for a plainly written number only; else ValueError.

    >>> plain_float("12.5"), plain_float("-1e3")
    (12.5, -1000.0)
    >>> plain_float("1_0")
    Traceback (most recent call last):
    ...
    ValueError: '1_0' is not a plain number
    """
    if not _PLAIN_NUMBER.fullmatch(text.strip()):
        raise ValueError(f"{text!r} is not a plain number")
    return float(text)


_UNIT_MB = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024 * 1024}


def parse_mem_mb(text: str) -> int:
    """Parse ``4G``, ``500M``, ``2GB`` or a number of MB into MB (SLURM's unit).

    >>> parse_mem_mb("4G"), parse_mem_mb("500M"), parse_mem_mb("1.5GB"), parse_mem_mb("800")
    (4096, 500, 1536, 800)
    """
    match = _MEM.match(text.strip())
    if len(text.strip()) > 40:
        raise UsageError(f"memory '{text.strip()[:20]}…' is out of range", "write e.g. 4G or 500M")
    if not match:
        raise UsageError(f"memory '{text}' is not a size", "write e.g. 4G or 500M")
    mem_mb = round(float(match["num"]) * _UNIT_MB[match["unit"].upper()])
    if mem_mb <= 0:
        raise UsageError(f"memory '{text}' must be positive", "write e.g. 4G or 500M")
    return mem_mb


def parse_param_value(text: str) -> Any:
    """Read a ``--param`` value: numbers, booleans and lists where they look like them.

    >>> parse_param_value("30"), parse_param_value("1e-8"), parse_param_value("true")
    (30, 1e-08, True)
    >>> parse_param_value("[4, 4, 4]"), parse_param_value("4,4,4"), parse_param_value("scf")
    ([4, 4, 4], [4, 4, 4], 'scf')

    A comma list of ``name=value`` items is a per-species table, kept as written for the
    engine to read (``Ar=0.0104,Kr=0.014``), not split into a list of texts:

    >>> parse_param_value("Ar=0.0104,Kr=0.014")
    'Ar=0.0104,Kr=0.014'
    """
    raw = text.strip()
    if raw.lower() in ("true", "yes", "on"):
        return True
    if raw.lower() in ("false", "no", "off"):
        return False
    if "," in raw and "=" not in raw and not raw.startswith(("[", "{", '"')):
        return [parse_param_value(part) for part in raw.split(",")]
    try:
        return json.loads(raw)
    except ValueError:
        return raw
    except RecursionError:
        raise UsageError(
            f"--param value '{raw[:20]}…' is nested too deeply",
            "write a number, true/false, a word or a flat list",
        ) from None


def parse_param_pairs(pairs: list[str]) -> dict[str, Any]:
    """Turn repeated ``key=value`` strings into a dict.

    >>> parse_param_pairs(["relax=true", "fmax_ev_per_a=0.05"])
    {'relax': True, 'fmax_ev_per_a': 0.05}
    """
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--param '{pair}' is not key=value", "write e.g. --param relax=true")
        params[key.strip()] = parse_param_value(value)
    return params
