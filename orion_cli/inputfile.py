"""Refuse, in one line, an input file that is not a regular file (a FIFO waits for ever)."""

from __future__ import annotations

import stat
from pathlib import Path

from orion_cli.errors import UsageError


def check_regular(path: Path, what: str) -> None:
    """Raise a UsageError unless ``path`` is a regular file (links are followed).

    >>> check_regular(Path("/dev/null"), "params file")
    Traceback (most recent call last):
    ...
    orion_cli.errors.UsageError: params file '/dev/null' is a device, not a regular file
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise UsageError(f"{what} '{path}' does not exist", "check the path") from None
    except OSError as exc:
        raise UsageError(f"cannot read {what} '{path}': {exc.strerror}", "check the path") from None
    if stat.S_ISDIR(mode):
        raise UsageError(f"{what} '{path}' is a directory", "give the path of a file")
    if not stat.S_ISREG(mode):
        kind = (
            "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
        )
        raise UsageError(f"{what} '{path}' is {kind}, not a regular file", "give a file")
