"""Small helpers shared by tests that drive the real CLI."""

from __future__ import annotations

import json
import time
from typing import Any

from typer.testing import CliRunner, Result

from orion_cli.cli import app

FINAL = ("completed", "failed", "cancelled")


def orion(*args: str, expect: int | None = 0) -> Result:
    result = CliRunner().invoke(app, list(args))
    if expect is not None:
        assert result.exit_code == expect, (args, result.exit_code, result.output,
                                            result.exception)
    return result


def orion_json(*args: str) -> Any:
    return json.loads(orion(*args, "--json").stdout)


def poll_until_final(job_ids: list[int], timeout_s: float = 90.0) -> list[dict[str, Any]]:
    """Run `orion poll` the way cron would, until every job has ended."""
    deadline = time.monotonic() + timeout_s
    while True:
        orion("poll", expect=None)
        jobs = [orion_json("show", str(job_id)) for job_id in job_ids]
        if all(job["status"] in FINAL for job in jobs):
            return jobs
        assert time.monotonic() < deadline, [(j["id"], j["status"], j["raw_state"]) for j in jobs]
        time.sleep(0.5)
