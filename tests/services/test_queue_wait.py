"""Defect 9: queue wait mixes the login node's clock (submitted) and the node's (started)."""

from __future__ import annotations

from datetime import UTC, datetime

from orion_cli.services.queries.show import seconds_between


def test_a_start_before_the_submit_is_no_negative_wait() -> None:
    submitted = datetime(2026, 12, 6, 10, 0, 2, tzinfo=UTC)  # login node, 2 s ahead
    started = datetime(2026, 12, 6, 10, 0, 0, 500000)  # compute node, naive UTC from SQLite
    assert seconds_between(submitted, started) == 0.0
    assert seconds_between(started, submitted) == 1.5
