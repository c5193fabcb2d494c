"""Times PostgreSQL can hold and Python cannot: ``'infinity'`` and ``'-infinity'``.

A member of a group database may write such a time into their own rows (an event's ``at``,
a job's ``submitted_at``); psycopg then refuses the whole result ("timestamp too large
(after year 10K)") and every reader of the shared tables failed with it (audit, stats
--all-users, show). Such values are read as :data:`UNREADABLE_AFTER` / :data:`UNREADABLE_BEFORE`
(far enough from Python's limits that arithmetic and time zones still work) and shown as
"unreadable time" by :func:`shown_time`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

#: what ``'infinity'`` is read as (a year's margin below ``datetime.max``)
UNREADABLE_AFTER = datetime(9999, 1, 1, tzinfo=UTC)
#: what ``'-infinity'`` is read as
UNREADABLE_BEFORE = datetime(1, 1, 2, tzinfo=UTC)
_CLAMPED = {b"infinity": UNREADABLE_AFTER, b"-infinity": UNREADABLE_BEFORE}


def is_unreadable(at: datetime | None) -> bool:
    """Whether ``at`` stands for a time the database held but Python cannot.

    >>> is_unreadable(UNREADABLE_AFTER), is_unreadable(datetime(2026, 1, 1))
    (True, False)
    """
    if at is None:
        return False
    aware = at if at.tzinfo else at.replace(tzinfo=UTC)
    return aware >= UNREADABLE_AFTER or aware <= UNREADABLE_BEFORE


def shown_time(at: datetime | None) -> str | None:
    """``at`` as ISO text, or a marked "unreadable time" for a clamped infinity.

    >>> shown_time(UNREADABLE_AFTER)
    'infinity (unreadable time)'
    >>> shown_time(datetime(2026, 1, 1, tzinfo=UTC))
    '2026-01-01T00:00:00+00:00'
    """
    if at is None:
        return None
    if is_unreadable(at):
        aware = at if at.tzinfo else at.replace(tzinfo=UTC)
        return f"{'' if aware >= UNREADABLE_AFTER else '-'}infinity (unreadable time)"
    return at.isoformat()


def clamp_infinite_times(dbapi_connection: Any, _record: Any = None) -> None:
    """Make a psycopg connection read (-)infinity timestamps as the clamped values.

    Used as SQLAlchemy's ``connect`` event on PostgreSQL engines.
    """
    from psycopg.types.datetime import TimestampLoader, TimestamptzLoader

    class ClampedTimestamptz(TimestamptzLoader):
        def load(self, data: Any) -> datetime:
            return _CLAMPED.get(bytes(data)) or super().load(data)

    class ClampedTimestamp(TimestampLoader):
        def load(self, data: Any) -> datetime:
            clamped = _CLAMPED.get(bytes(data))
            return clamped.replace(tzinfo=None) if clamped else super().load(data)

    dbapi_connection.adapters.register_loader("timestamptz", ClampedTimestamptz)
    dbapi_connection.adapters.register_loader("timestamp", ClampedTimestamp)
