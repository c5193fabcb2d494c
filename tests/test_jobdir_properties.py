"""Property-based tests of what the poller reads from job directories (hypothesis).

Whatever bytes a job leaves, the readers never raise anything but their own errors, never
read past their bounds, and what they let through is storable: finite numbers, bounded
text without control characters, strict JSON.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import asdict
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from orion_cli.ingest import BadRecord, check_event, check_result
from orion_cli.jobdir import EVENTS_FILE, MAX_EVENT_LINE_BYTES, append_event, read_events

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
event_like = st.fixed_dictionaries(
    {"event": st.sampled_from(["progress", "started", "finished", ""]) | st.integers()},
    optional={"attempt": json_values, "progress_pct": json_values, "step": json_values},
)
result_like = st.fixed_dictionaries(
    {},
    optional={
        key: json_values
        for key in (
            "attempt",
            "energy_ev",
            "forces_ev_per_a",
            "stress_ev_per_a3",
            "final_structure",
            "converged",
            "extras",
            "error",
        )
    },
)


def _no_control(text: str) -> bool:
    return not any(ord(c) < 32 and c != "\t" or 127 <= ord(c) < 160 for c in text)


@given(json_values | event_like)
def test_a_checked_event_is_storable(record: object) -> None:
    try:
        checked = check_event(record)
    except BadRecord:
        return
    assert isinstance(checked.attempt, int) and 1 <= checked.attempt
    if checked.progress_pct is not None:
        assert math.isfinite(checked.progress_pct) and 0 <= checked.progress_pct <= 100
    if checked.step is not None:
        assert len(checked.step) <= 200 and _no_control(checked.step)


@given(json_values | result_like)
def test_a_checked_result_is_strict_json(data: object) -> None:
    try:
        checked = check_result(data)
    except BadRecord:
        return
    json.dumps(asdict(checked), allow_nan=False)  # PostgreSQL's JSON refuses NaN/Infinity
    assert checked.error is None or _no_control(checked.error)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=3000), st.integers(min_value=1, max_value=700))
def test_reading_any_bytes_in_chunks_never_fails_and_always_advances(
    content: bytes, chunk: int
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        (workdir / EVENTS_FILE).write_bytes(content)
        offset, reads = 0, 0
        while True:  # lines longer than half a chunk are skipped as too long
            batch = read_events(workdir, offset, max_bytes=chunk, max_line_bytes=max(1, chunk // 2))
            assert offset <= batch.offset <= len(content)
            if batch.offset == offset:
                break
            offset, reads = batch.offset, reads + 1
            assert reads <= len(content)
        assert offset in (len(content), content.rfind(b"\n") + 1)  # only a last partial line waits


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["progress", "started"]), st.floats(0, 100), st.text(max_size=40)
        ),
        min_size=1,
        max_size=20,
    ),
    st.integers(min_value=1, max_value=4000),
)
def test_the_runners_lines_are_read_once_whatever_the_chunk(
    lines: list[tuple[str, float, str]], chunk: int
) -> None:
    """Reading in small pieces gives exactly the records one big read gives."""
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        for event, pct, step in lines:
            append_event(workdir, event, attempt=1, progress_pct=pct, step=step)
        whole = read_events(workdir).events
        pieces: list[object] = []
        offset = 0
        size = (workdir / EVENTS_FILE).stat().st_size
        while offset < size:  # small chunks: never below one whole line
            batch = read_events(workdir, offset, max_bytes=chunk)
            pieces += batch.events
            offset = batch.offset
        assert pieces == whole and len(whole) == len(lines)


def test_a_line_longer_than_the_limit_is_skipped_and_the_next_one_read() -> None:
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        with (workdir / EVENTS_FILE).open("w") as handle:
            handle.write("x" * (3 * MAX_EVENT_LINE_BYTES) + "\n")
        append_event(workdir, "started", attempt=1)
        offset, events, warnings = 0, [], []
        for _ in range(10):
            batch = read_events(workdir, offset, max_bytes=100)  # raised to a whole line
            offset, events, warnings = (
                batch.offset,
                events + batch.events,
                warnings + batch.warnings,
            )
        assert [e["event"] for e in events] == ["started"]
        assert sum("longer than" in text for text in warnings) == 1, warnings
