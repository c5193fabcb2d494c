"""Pure: the limits every submitted value must keep, and the checks that enforce them.

Values reach ``#SBATCH`` lines, sbatch's command line, the job row (PostgreSQL ``INTEGER`` is
32-bit) and the poller's date arithmetic. Each is checked here once, whether it came from a
flag, an ``ORION_*`` variable or a config file, so that SQLite and PostgreSQL accept the same
values and SLURM never silently changes one.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from orion_cli.errors import UsageError

DAY_S = 86400
INT32_MAX = 2**31 - 1
#: longest --name, --tag, account, qos, partition (SLURM names are far shorter)
MAX_TEXT_CHARS = 200
#: SLURM keeps time limits as 32-bit minutes; a year is longer than any partition's MaxTime
MAX_WALLTIME_S = 365 * DAY_S
#: 64 TiB per node: more than any node has, and fits the 32-bit column in MB
MAX_MEM_MB = 64 * 1024 * 1024
#: back-off delays double per attempt; capped here so that dates never overflow
MAX_RETRY_DELAY_S = 30 * DAY_S


@dataclass(frozen=True)
class Bound:
    """The allowed range of one integer setting; ``flag`` and ``setting`` name it to people."""

    field: str
    flag: str
    setting: str
    low: int
    high: int
    meaning: str = ""

    def describe(self, value: int) -> str:
        """Say what ``value`` is in words (durations in days, memory in TiB).

        >>> BOUNDS["walltime_s"].describe(MAX_WALLTIME_S), BOUNDS["nodes"].describe(3)
        ('31536000 s (365 days)', '3')
        """
        if self.field in ("walltime_s", "retry_delay_s", "soft_margin_s"):
            days = f" ({value / DAY_S:g} days)" if value >= DAY_S else ""
            return f"{value} s{days}"
        if self.field in ("mem_mb", "mem_per_cpu_mb"):
            tib = f" ({value / 1024 / 1024:g} TiB)" if value >= 1024 * 1024 else ""
            return f"{value} MB{tib}"
        return str(value)


BOUNDS = {
    b.field: b
    for b in (
        Bound("walltime_s", "--walltime", "walltime_s", 1, MAX_WALLTIME_S),
        Bound("mem_mb", "--mem", "mem_mb", 1, MAX_MEM_MB),
        Bound("mem_per_cpu_mb", "--mem-per-cpu", "mem_per_cpu_mb", 1, MAX_MEM_MB),
        # GPUs per node: SLURM's gres counts are 64-bit; no node has more than a few dozen
        Bound("gpus", "--gpus", "gpus", 0, 1024),
        # SLURM's node and task counts are 32-bit; cpus-per-task is 16-bit (65534)
        Bound("nodes", "--nodes", "nodes", 1, 100_000),
        Bound("ntasks", "--ntasks", "ntasks", 1, 10_000_000),
        Bound("cpus_per_task", "--cpus-per-task", "cpus_per_task", 1, 10_000),
        Bound("priority", "--priority", "priority", 0, 20, "20 = most urgent"),
        Bound("max_retries", "--retries", "max_retries", 0, 100),
        Bound("retry_delay_s", "--retry-delay", "retry_delay_s", 0, MAX_RETRY_DELAY_S),
        Bound("throttle", "--throttle", "throttle", 1, 1_000_000),
        # sbatch --signal=B:USR1@N takes 0..65535 seconds
        Bound("soft_margin_s", "", "soft_margin_s", 0, 65535),
    )
}


def check_bound(field: str, value: int, origin: str = "") -> int:
    """Return ``value`` if it is within its bound; else raise a UsageError naming the limit.

    ``origin`` is where a value that was not given as a flag came from (a file, ORION_*).

    >>> check_bound("nodes", 4)
    4
    >>> check_bound("nodes", 0)
    Traceback (most recent call last):
    ...
    orion_cli.errors.UsageError: --nodes 0 is out of range: must be at least 1
    """
    bound = BOUNDS[field]
    if bound.low <= value <= bound.high:
        return value
    side = f"at least {bound.low}" if value < bound.low else f"at most {bound.describe(bound.high)}"
    meaning = f" ({bound.meaning})" if bound.meaning else ""
    if origin or not bound.flag:
        where = origin or "the settings"
        raise UsageError(
            f"{bound.setting} = {value} from {where} is out of range: must be {side}",
            f"fix '{bound.setting}' in {where} ({bound.low}..{bound.high}{meaning})",
        )
    raise UsageError(
        f"{bound.flag} {bound.describe(value)} is out of range: must be {side}",
        f"use {bound.low}..{bound.describe(bound.high)}{meaning}",
    )


def bad_character(text: str) -> str | None:
    """Return the first control or line-separator character of ``text``, or None.

    Covers C0 (newline, tab, ESC, NUL, ...), DEL, C1 and Unicode line/paragraph separators:
    anything that can end a line of a batch script or move a terminal's cursor.

    >>> [bad_character(text) for text in ("acct-1", "a\\nb", "x\\u2028", "ü")]
    [None, '\\n', '\\u2028', None]
    """
    for char in text:
        if unicodedata.category(char) in ("Cc", "Zl", "Zp"):
            return char
    return None


def printable(text: str, max_chars: int = MAX_TEXT_CHARS) -> str:
    """``text`` with each control character replaced by ``?``, cut to ``max_chars``.

    For names orion derives itself (from file names), which must not be refused.

    >>> printable("Si\\x1b[31m.cif\\n")
    'Si?[31m.cif?'
    """
    return "".join("?" if bad_character(char) else char for char in text[:max_chars])


def shown(text: str, limit: int = 40) -> str:
    """Render a user's string safely on one line (escapes visible, long ones shortened).

    >>> shown("a\\nb"), shown("x" * 50, 5)
    ("'a\\\\nb'", "'xxxxx…' (50 characters)")
    """
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}"[:-1] + f"…' ({len(text)} characters)"


def check_text(
    value: str, flag: str, origin: str = "", setting: str = "", max_chars: int = MAX_TEXT_CHARS
) -> str:
    """Return ``value`` if it holds no control character and is at most ``max_chars`` long.

    >>> check_text("proj-1", "--account")
    'proj-1'
    >>> check_text("a\\tb", "--account")
    Traceback (most recent call last):
    ...
    orion_cli.errors.UsageError: --account 'a\\tb' contains a control character ('\\t')
    """
    if origin:
        what, fix = f"{setting} {shown(value)} from {origin}", f"fix '{setting}' in {origin}"
    else:
        what, fix = f"{flag} {shown(value)}", "remove it"
    char = bad_character(value)
    if char is not None:
        raise UsageError(f"{what} contains a control character ({char!r})", fix)
    if len(value) > max_chars:
        raise UsageError(
            f"{what} is longer than {max_chars} characters",
            fix if origin else f"use at most {max_chars} characters",
        )
    return value
