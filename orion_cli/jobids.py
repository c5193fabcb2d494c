"""Strict parsing of the job ids people type (pure, cheap to import).

Python's ``int()`` accepts ``"1_0"`` (ten), ``" 7 "`` and non-ASCII digits; a SLURM array
task id such as ``103_29`` must never be read as orion job 10329. An orion id is ASCII
digits only; a SLURM id goes with ``--slurm-id``.
"""

from __future__ import annotations

import re

from orion_cli.errors import UsageError

_ORION_ID = re.compile(r"[0-9]{1,18}")
_SLURM_ID = re.compile(r"L?[0-9]{1,18}(_[0-9]{1,9})?")  # L: the local scheduler's ids
_LOOKS_SLURM = re.compile(r"[0-9]+_(\[)?[0-9\[\]\-,%]+")


def parse_job_id(text: str) -> int:
    """Read one orion job id, refusing anything but plain ASCII digits.

    >>> parse_job_id("42")
    42
    >>> parse_job_id("5_8")
    Traceback (most recent call last):
    ...
    orion_cli.errors.UsageError: '5_8' is not an orion job id
    """
    if _ORION_ID.fullmatch(text) and int(text) > 0:
        return int(text)
    if _LOOKS_SLURM.fullmatch(text):
        raise UsageError(
            f"'{text}' is not an orion job id",
            f"it looks like a SLURM array task id: use --slurm-id {text}, "
            "or `orion ls` for orion ids",
        )
    raise UsageError(
        f"'{text}' is not an orion job id",
        "orion ids are whole numbers such as 42 (`orion ls` lists them)",
    )


def parse_job_ids(texts: list[str] | None) -> list[int]:
    """Read many orion job ids strictly, keeping their order and dropping repeats.

    >>> parse_job_ids(["3", "1", "3"])
    [3, 1]
    """
    return list(dict.fromkeys(parse_job_id(text) for text in texts or []))


def parse_study_id(text: str) -> int:
    """Read a ``--study`` id as strictly as a job id (a study's id is its first job's).

    >>> parse_study_id("12")
    12
    >>> parse_study_id("1_2")
    Traceback (most recent call last):
    ...
    orion_cli.errors.UsageError: --study '1_2' is not a study id
    """
    if _ORION_ID.fullmatch(text) and int(text) > 0:
        return int(text)
    raise UsageError(
        f"--study '{text}' is not a study id",
        "a study id is a whole number such as 12: the one `orion eos` printed ('study 12: ...')",
    )


def check_slurm_id(text: str) -> str:
    """Check a scheduler job id as typed for ``--slurm-id`` (``1234``, ``1234_5``; the
    local scheduler's ``L12_3``).

    >>> check_slurm_id("103_29"), check_slurm_id("L4_1")
    ('103_29', 'L4_1')
    """
    if not _SLURM_ID.fullmatch(text):
        raise UsageError(
            f"'{text}' is not a SLURM job id",
            "use a job id such as 1234, or 1234_5 for an array task",
        )
    return text


def name_pattern(name: str) -> str:
    """A ``--name`` with ``*`` wildcards as an SQL LIKE pattern (``\\`` escapes).

    >>> name_pattern("si-*"), name_pattern("a_b%")
    ('si-%', 'a\\\\_b\\\\%')
    """
    escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%")
