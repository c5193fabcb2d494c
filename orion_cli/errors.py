"""Errors meant for people: what went wrong and what to do next.

Every error orion raises on purpose is an :class:`OrionError`. The CLI prints
``error: <message> — <hint>`` on one line and exits with ``exit_code``;
anything else is a bug and gets a traceback only with ``--debug``.
"""

from __future__ import annotations


class OrionError(Exception):
    """Base class: a message, a hint naming the fix, and an exit code."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __reduce__(self) -> tuple[type, tuple[str, str | None]]:
        """Keep the hint when the error crosses a process boundary (staging workers)."""
        return type(self), (self.message, self.hint)

    def one_line(self) -> str:
        """Render as the single line the CLI prints.

        >>> UsageError("priority 42 is out of range", "use 0..20").one_line()
        'priority 42 is out of range — use 0..20'
        """
        text = self.message if not self.hint else f"{self.message} — {self.hint}"
        return " ".join(text.split())


class UsageError(OrionError):
    """The user asked for something that cannot work (bad flag, bad file, bad value)."""

    exit_code = 2


class ConfigError(OrionError):
    """A setting in orion.toml, the user config or ORION_* is wrong."""

    exit_code = 2


class DatabaseError(OrionError):
    """The database cannot be reached or its schema is not what orion needs."""


class ForeignDatabaseError(DatabaseError):
    """The database belongs to something else (or to a newer orion): orion leaves it alone."""

    exit_code = 2


class SchedulerError(OrionError):
    """The scheduler refused a command or did not answer."""


class SubmitOutcomeUnknown(SchedulerError):
    """The scheduler did not answer a submission: the job may or may not exist there."""


class SubmitRefused(SchedulerError):
    """The scheduler refused a submission for a reason a retry cannot change."""


class SubmitFailed(SchedulerError):
    """The scheduler refused some or all jobs of a submit (orion_cli.api); ``ids`` holds
    the jobs that were submitted all the same (the refused ones are failed, submit_error)."""

    def __init__(self, message: str, ids: list[int] | None = None) -> None:
        super().__init__(message, "`orion ls -s failed` lists the refused jobs")
        self.ids = list(ids or [])

    def __reduce__(self) -> tuple[type, tuple[str, list[int]]]:  # type: ignore[override]
        return type(self), (self.message, self.ids)


class EngineError(OrionError):
    """An engine cannot prepare or parse a calculation."""


class IllegalTransition(OrionError):
    """A status change that the transition table forbids (a bug, or a race)."""


class RaceLost(OrionError):
    """Another orion process changed a job's status between our read and our write."""
