"""When did this user's poller last succeed? A small JSON file the poller writes each cycle.

``ls``, ``show``, ``wait`` and ``watch`` read it to say how old the listing is and, when no
poller ran for a while, how to install one in cron; ``orion metrics`` exports it. The file
lives in orion's home, one per Unix user and database (a user may point orion at several
databases), and is replaced atomically so that a reader never sees half of it.
No SQLAlchemy here: ``orion ls`` reads it on its quick path.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orion_cli.config import Settings
from orion_cli.db.urls import passwords, without_password
from orion_cli.outfile import write_output


@dataclass(frozen=True)
class PollStamp:
    """What the last cycles of this user's poller did (times are UTC ISO strings)."""

    last_ok_at: str | None = None
    last_cycle_at: str | None = None
    last_duration_s: float = 0.0
    last_errors: int = 0
    checked: int = 0

    def ok_age_s(self, now: datetime | None = None) -> float | None:
        """Seconds since the last successful cycle, None when none ever succeeded."""
        if not self.last_ok_at:
            return None
        now = now or datetime.now(UTC)
        return (now - datetime.fromisoformat(self.last_ok_at)).total_seconds()


def stamp_path(settings: Settings) -> Path:
    """``<home>/poll-<uid>-<database key>.json``: per user and database."""
    url = settings.resolved_database_url
    key = hashlib.sha256(url.encode()).hexdigest()[:12]
    return settings.home / f"poll-{os.getuid()}-{key}.json"


def read_stamp(settings: Settings) -> PollStamp:
    """The stamp, or an empty one when the poller never ran (or the file is unreadable)."""
    try:
        data = json.loads(stamp_path(settings).read_text(encoding="utf-8"))
        return PollStamp(**{k: data[k] for k in PollStamp.__dataclass_fields__ if k in data})
    except (OSError, ValueError, TypeError):
        return PollStamp()


def record_cycle(
    settings: Settings, ended: datetime, duration_s: float, errors: int, checked: int
) -> None:
    """Record one finished cycle; it counts as successful when it had no errors."""
    old = read_stamp(settings)
    at = ended.astimezone(UTC).isoformat()
    stamp = PollStamp(
        last_ok_at=at if not errors else old.last_ok_at,
        last_cycle_at=at,
        last_duration_s=round(duration_s, 4),
        last_errors=errors,
        checked=checked,
    )
    write_atomically(stamp_path(settings), json.dumps(asdict(stamp)) + "\n")


def write_atomically(path: Path, text: str, mode: int = 0o600) -> None:
    """Write ``text`` to ``path`` through the one safe writer (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_output(path, text, mode)


def cron_line(settings: Settings) -> str:
    """A crontab line that runs this user's poller every 2 minutes with these settings.

    The working directory and the ``ORION_*`` variables of this shell go in, so that cron's
    poller finds the same ``orion.toml`` and database. A password in the URL is left out
    of the line (never the URL itself: cron would poll the default SQLite file): PostgreSQL
    reads it from ``~/.pgpass``.
    """
    env = []
    for key in sorted(os.environ):
        if key.startswith("ORION_") and key not in ("ORION_DEBUG",):
            value = os.environ[key]
            if key == "ORION_DATABASE_URL" and passwords(value):
                value = without_password(value)
            env.append(f"{key}={shlex.quote(value)}")
    command = [*env, shlex.quote(sys.executable), "-m", "orion_cli", "poll", "--quiet"]
    return f"*/2 * * * * cd {shlex.quote(os.getcwd())} && {' '.join(command)}"


def as_dict(stamp: PollStamp) -> dict[str, Any]:
    return asdict(stamp)
