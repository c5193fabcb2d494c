"""All terminal output: data on stdout, messages on stderr, one JSON document with --json."""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from functools import wraps
from typing import Any, TypeVar

import typer

from orion_cli.cli.root import debug_enabled
from orion_cli.config import load_settings
from orion_cli.db.urls import scrub
from orion_cli.errors import OrionError

F = TypeVar("F", bound=Callable[..., Any])
STATUS_STYLE = {
    "completed": "green",
    "failed": "red",
    "cancelled": "yellow",
    "running": "cyan",
    "queued": "blue",
    "created": "white",
}


def finite(data: Any) -> Any:
    """Replace NaN and infinities (not JSON) by None, in nested dicts, lists and tuples.

    >>> finite({"e": float("inf"), "f": [1.5, float("nan")], "t": (float("-inf"),)})
    {'e': None, 'f': [1.5, None], 't': [None]}
    """
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: finite(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [finite(value) for value in data]
    return data


def print_json(data: Any) -> None:
    """Print one strict JSON document on stdout (no NaN/Infinity: they become null)."""
    sys.stdout.write(json.dumps(finite(data), indent=2, default=str, allow_nan=False) + "\n")


#: C0 and C1 control characters, DEL, and the bidirectional overrides that reorder text
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def visible(text: str) -> str:
    r"""Make control characters visible as escapes, so that text from files and users
    (job names, tags, paths, messages) can never drive the terminal.

    >>> print(visible("Cu\x1b[31m red\nline\u202e"))
    Cu\x1b[31m red\nline\u202e
    """
    return _UNPRINTABLE.sub(
        lambda m: (
            _NAMED.get(m[0])
            or (f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x100 else f"\\u{ord(m[0]):04x}")
        ),
        text,
    )


def message(text: str) -> None:
    """Say something to the person (stderr), never mixed into data output."""
    sys.stderr.write(visible(text) + "\n")


def fail(exc: OrionError) -> typer.Exit:
    message(f"error: {exc.one_line()}")
    return typer.Exit(exc.exit_code)


def _scrubbed(text: str) -> str:
    """Remove the configured database password from an unexpected error's text."""
    import os

    url = os.environ.get("ORION_DATABASE_URL", "")
    try:
        url = load_settings().resolved_database_url
    except Exception:  # noqa: BLE001 - a broken config must not hide the first error
        pass
    return scrub(scrub(text, url), os.environ.get("ORION_DATABASE_URL", ""))


def handle_errors(func: F) -> F:
    """Turn OrionError into one line and its exit code; other errors only trace with --debug."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except OrionError as exc:
            if debug_enabled():
                raise
            if kwargs.get("as_json"):  # --json: one JSON document on stdout, errors too
                print_json({"error": exc.message, "hint": exc.hint, "exit_code": exc.exit_code})
            raise fail(exc) from None
        except (typer.Exit, typer.Abort, KeyboardInterrupt, BrokenPipeError):
            raise  # a closed pipe (orion ls | head -1): click ends quietly
        except Exception as exc:
            if debug_enabled():
                raise
            message(
                f"internal error: {type(exc).__name__}: {_scrubbed(str(exc))} "
                "(run with --debug or ORION_DEBUG=1 for the traceback, and report it)"
            )
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


RICH_MAX_ROWS = 200  # rich lays out a table in ~0.5 ms per row; beyond this, plain text
ANSI = {"green": "32", "red": "31", "yellow": "33", "cyan": "36", "blue": "34", "white": "37"}


def plain_table(
    title: str, columns: Sequence[str], rows: Sequence[Sequence[str]], colour: bool = False
) -> str:
    """Lay out a table as aligned plain text (for pipes, scripts and very long listings).

    >>> print(plain_table("jobs", ["id", "status"], [["7", "queued"], ["12", "failed (lost)"]]))
    jobs
    id  status
    7   queued
    12  failed (lost)
    """
    widths = [
        max(len(c), *(len(row[i]) for row in rows)) if rows else len(c)
        for i, c in enumerate(columns)
    ]

    def line(cells: Sequence[str], paint: bool) -> str:
        out = []
        for i, cell in enumerate(cells):
            text = cell.ljust(widths[i]) if i < len(cells) - 1 else cell
            style = STATUS_STYLE.get(cell.split(" ")[0]) if paint else None
            out.append(f"\033[{ANSI[style]}m{text}\033[0m" if style else text)
        return "  ".join(out).rstrip()

    return "\n".join([title, line(columns, False), *(line(row, colour) for row in rows)])


def table(
    title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], keep: Sequence[str] = ("id",)
) -> None:
    """Print a table on stdout: aligned columns, statuses coloured on a terminal.

    Rich draws it on a terminal; a pipe, or a listing longer than RICH_MAX_ROWS, gets plain
    aligned text (what ``grep``/``awk`` want, and 10× quicker for thousands of rows).
    The ``keep`` columns are never narrowed on a small terminal (others are cut with …).
    """
    cells = [[visible(str(cell)) for cell in row] for row in rows]
    terminal = sys.stdout.isatty()
    if not terminal or len(cells) > RICH_MAX_ROWS:
        sys.stdout.write(plain_table(title, columns, cells, colour=terminal) + "\n")
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(highlight=False)
    shown = fitting_columns(columns, cells, keep, console.width)
    if len(shown) < len(columns):
        hidden = [c for i, c in enumerate(columns) if i not in shown]
        title += f" (narrow terminal: {', '.join(hidden)} hidden)"
        columns = [columns[i] for i in shown]
        cells = [[row[i] for i in shown] for row in cells]
    tbl = Table(title=title, title_justify="left", box=None, pad_edge=False, highlight=False)
    for column, width in zip(columns, fit_widths(columns, cells, keep, console.width), strict=True):
        tbl.add_column(column, no_wrap=True, min_width=width, max_width=width)
    for row in cells:
        tbl.add_row(
            *[
                Text(cell, style=STATUS_STYLE.get(cell.split(" ")[0], ""), overflow="ellipsis")
                for cell in row
            ]
        )
    console.print(tbl)


def fitting_columns(
    columns: Sequence[str], cells: Sequence[Sequence[str]], keep: Sequence[str], total: int
) -> list[int]:
    """The indices of the columns that fit a terminal ``total`` wide (as :func:`fit_widths`
    lays them out): the rightmost cut-able column goes first, then the rightmost kept one;
    the first column (the id) always stays.

    >>> cols, row = ["id", "name", "status", "age"], [["12", "Cu", "queued", "3s"]]
    >>> fitting_columns(cols, row, ["id", "status", "age"], 80)
    [0, 1, 2, 3]
    >>> fitting_columns(cols, row, ["id", "status", "age"], 12), fitting_columns(cols, row, [], 1)
    ([0, 2], [0])
    """
    shown = list(range(len(columns)))

    def width() -> int:
        names = [columns[i] for i in shown]
        rows = [[row[i] for i in shown] for row in cells]
        return sum(fit_widths(names, rows, keep, total)) + 2 * (len(shown) - 1)

    while len(shown) > 1 and width() > total:
        flexible = [i for i in shown[1:] if columns[i] not in keep]
        shown.remove(flexible[-1] if flexible else shown[-1])
    return shown


def fit_widths(
    columns: Sequence[str], cells: Sequence[Sequence[str]], keep: Sequence[str], total: int
) -> list[int]:
    """Column widths for a terminal ``total`` wide: ``keep`` columns whole, the others share
    what is left (each at least 4, cut with … by rich), two spaces between columns.

    >>> fit_widths(["id", "name", "status"], [["12", "x" * 50, "queued"]], ["id", "status"], 30)
    [2, 18, 6]
    >>> fit_widths(["id", "name"], [["7", "Cu"]], ["id"], 80)
    [2, 4]
    """
    natural = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    fixed = sum(w for c, w in zip(columns, natural, strict=True) if c in keep)
    flexible = [i for i, c in enumerate(columns) if c not in keep]
    room = total - fixed - 2 * (len(columns) - 1)
    widths = list(natural)
    # give each flexible column its natural width if all fit, else an equal share (≥ 4),
    # narrow ones first so that what they do not use goes to the wide ones
    for n, i in enumerate(sorted(flexible, key=lambda i: natural[i])):
        share = max(4, room // (len(flexible) - n)) if room > 0 else 4
        widths[i] = min(natural[i], share)
        room -= widths[i]
    return widths


def count_of(n: int, noun: str) -> str:
    """``n`` and the noun, plural when ``n`` is not 1.

    >>> count_of(1, "job"), count_of(3, "job"), count_of(0, "job")
    ('1 job', '3 jobs', '0 jobs')
    """
    return f"{n} {noun}" + ("" if n == 1 else "s")


def age(seconds: float) -> str:
    """Format an age compactly.

    >>> age(42), age(300), age(7200), age(200000)
    ('42s', '5m', '2h', '2d')
    """
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"
