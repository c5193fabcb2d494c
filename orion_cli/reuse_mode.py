"""The ``--reuse`` modes, checked without the database stack (see services/lifecycle/reuse.py)."""

from __future__ import annotations

from orion_cli.errors import UsageError

REUSE_MODES = ("off", "strict", "loose")


def check_mode(mode: str, origin: str = "--reuse") -> str:
    """``""``/off, strict or loose (``--reuse`` alone is strict).

    >>> check_mode("loose"), check_mode("")
    ('loose', 'off')
    """
    mode = (mode or "off").strip().lower()
    if mode not in REUSE_MODES:
        raise UsageError(
            f"{origin}={mode!r} is not one of {', '.join(REUSE_MODES)}",
            'write --reuse (strict), --reuse=loose, or reuse = "strict" in orion.toml',
        )
    return mode
