"""The ``orion`` console script: ``orion progress`` without typer, everything else with it.

``orion progress`` runs inside jobs, possibly thousands of times per job; typer's parameter
handling imports pydantic (~0.2 s). The plain forms (``orion progress 40 "step"``,
``orion progress --result k=v ...``) are parsed here with the standard library; anything
else (``--help``, other options) goes to the typer command, which does the same.
"""

from __future__ import annotations

import sys


def fast_progress(args: list[str]) -> int | None:
    """Run ``orion progress ARGS``; None when typer should handle these arguments."""
    result = "--result" in args
    words = [word for word in args if word != "--result"]
    if (
        any(word.startswith("-") and not _number(word) for word in words)
        or args.count("--result") > 1
    ):
        return None
    import os

    from orion_cli.errors import OrionError, UsageError
    from orion_cli.jobprogress import (
        job_context,
        parse_pairs,
        parse_percent,
        report_progress,
        report_result,
    )

    try:
        workdir, attempt = job_context(os.environ)
        if result:
            report_result(workdir, attempt, parse_pairs(words))
        elif not words:
            raise UsageError("no progress given", 'write e.g. orion progress 40 "SCF step 12"')
        else:
            report_progress(workdir, attempt, parse_percent(words[0]), " ".join(words[1:]))
    except OrionError as exc:
        print(f"error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # an unwritable or full job directory: one line, never a traceback
        if result:  # a result that was not written is an error the script should see
            print(f"error: orion progress --result was not written: {exc}", file=sys.stderr)
            return 1
        # a progress note is advisory: a `set -e` job script must not die of it
        print(f"warning: orion progress not recorded: {exc}", file=sys.stderr)
    return 0


def _number(word: str) -> bool:
    """A negative number is a value, not an option (``orion progress -5`` is refused later).

    >>> _number("-5"), _number("--help")
    (True, False)
    """
    try:
        float(word)
    except ValueError:
        return False
    return True


def main() -> None:
    if sys.argv[1:2] == ["progress"]:
        code = fast_progress(sys.argv[2:])
        if code is not None:
            sys.exit(code)
    from orion_cli.cli import main as typer_main

    typer_main()
