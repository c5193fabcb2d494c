"""``orion poll --loop``: the poller for a screen/tmux session or a systemd user unit, where
cron is not allowed. Each cycle is the cron poller's (same lock: a cron poller and a loop
never work at once); the loop only sleeps in between, and a stop request (SIGTERM, Ctrl-C)
ends it between cycles, never in the middle of one.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType

from orion_cli.config import Settings
from orion_cli.services.lifecycle.poll import PollReport, poll


@dataclass
class LoopOutcome:
    cycles: int = 0
    #: the signal that stopped the loop ("" when ``max_cycles`` did)
    stopped_by: str = ""


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[dict[str, str]]:
    """Turn SIGTERM and SIGINT into ``stop.set()`` while the block runs (then restore)."""
    seen: dict[str, str] = {}

    def handler(signum: int, frame: FrameType | None) -> None:
        seen["signal"] = signal.Signals(signum).name
        stop.set()

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield seen
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


def poll_loop(
    settings: Settings,
    interval_s: float,
    on_cycle: Callable[[PollReport | None, str], None],
    stop: threading.Event | None = None,
    max_cycles: int | None = None,
    cycle: Callable[[Settings], PollReport] = poll,
) -> LoopOutcome:
    """Run poll cycles every ``interval_s`` until SIGTERM/SIGINT (or ``max_cycles``).

    ``on_cycle(report, error)`` is called after each cycle; a cycle that raised gives
    ``(None, "the error")`` and the loop goes on (the database may be back next time).
    """
    stop = stop or threading.Event()
    outcome = LoopOutcome()
    with stop_on_signals(stop) as seen:
        while not stop.is_set():
            try:
                report, error = cycle(settings), ""
            except Exception as exc:  # noqa: BLE001 - a loop never dies of one cycle
                report, error = None, f"{type(exc).__name__}: {exc}"
            outcome.cycles += 1
            on_cycle(report, error)
            if max_cycles is not None and outcome.cycles >= max_cycles:
                break
            stop.wait(interval_s)
        outcome.stopped_by = seen.get("signal", "")
    return outcome
