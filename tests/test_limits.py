"""Property-based tests of the submit validators (orion_cli.limits, batch, engine parameters).

Each property is what the poller, the batch script and the database rely on: a value that
passes the checks is one that cannot break them.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orion_cli.batch import render_array_script, render_script, sbatch_quote
from orion_cli.engines.base import EngineParam, check_known_params
from orion_cli.errors import UsageError
from orion_cli.limits import (
    BOUNDS,
    MAX_MEM_MB,
    MAX_RETRY_DELAY_S,
    MAX_WALLTIME_S,
    bad_character,
    check_bound,
    check_text,
)
from orion_cli.resources import Resources
from orion_cli.services.lifecycle.retry import backoff_s, escalate
from orion_cli.states import FailureReason
from tests.test_batch import batch_spec

CONTROL = st.one_of(
    st.characters(min_codepoint=0, max_codepoint=0x1F),
    st.characters(min_codepoint=0x7F, max_codepoint=0x9F),
    st.sampled_from(["\u2028", "\u2029"]),
)


@given(st.text(max_size=30), CONTROL, st.text(max_size=30))
def test_any_text_with_a_control_character_is_refused(before: str, char: str, after: str) -> None:
    with pytest.raises(UsageError) as caught:
        check_text(before + char + after, "--account")
    line = caught.value.one_line()
    assert bad_character(line) is None  # the message itself is safe to print on one line


@given(st.text(max_size=200))
def test_accepted_text_has_no_line_breaks(value: str) -> None:
    try:
        check_text(value, "--qos")
    except UsageError:
        return
    assert not any(c in value for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
    assert len(value.splitlines()) <= 1


@given(st.sampled_from(sorted(BOUNDS)), st.integers(min_value=-(2**70), max_value=2**70))
def test_accepted_numbers_fit_a_32_bit_column(field: str, value: int) -> None:
    try:
        check_bound(field, value)
    except UsageError as exc:
        assert "out of range" in str(exc) and "\n" not in exc.one_line()
        return
    assert 0 <= value <= 2**31 - 1


ACCEPTED_TEXT = st.text(max_size=60).filter(lambda t: bad_character(t) is None)
RESOURCES = st.fixed_dictionaries(
    {
        "walltime_s": st.integers(1, MAX_WALLTIME_S),
        "nodes": st.integers(1, BOUNDS["nodes"].high),
        "ntasks": st.integers(1, BOUNDS["ntasks"].high),
        "cpus_per_task": st.integers(1, BOUNDS["cpus_per_task"].high),
        "mem_mb": st.integers(0, MAX_MEM_MB),
        "mem_per_cpu_mb": st.integers(0, MAX_MEM_MB),
        "gpus": st.integers(0, BOUNDS["gpus"].high),
        "constraints": ACCEPTED_TEXT,
        "exclusive": st.booleans(),
        "priority": st.integers(0, 20),
        "soft_margin_s": st.integers(0, 65535),
        "name": ACCEPTED_TEXT,
        "partition": ACCEPTED_TEXT,
        "account": ACCEPTED_TEXT,
        "qos": ACCEPTED_TEXT,
        "workdir": ACCEPTED_TEXT.map(lambda t: Path("/w") / t.replace("\0", "")),
    }
)


@settings(max_examples=300)
@given(RESOURCES)
def test_accepted_values_make_one_script_line_each(values: dict[str, Any]) -> None:
    spec = batch_spec(orion_id=7, python="/usr/bin/python3", **values)
    known = {
        "job-name",
        "comment",
        "time",
        "nodes",
        "ntasks",
        "cpus-per-task",
        "chdir",
        "output",
        "error",
        "nice",
        "partition",
        "mem",
        "mem-per-cpu",
        "gres",
        "constraint",
        "exclusive",
        "account",
        "qos",
        "signal",
    }
    for text in (render_script(spec), render_array_script(spec, spec.workdir, 3)):
        lines = text.splitlines()
        header = lines[1 : lines.index(next(x for x in lines if x.startswith("# orion")))]
        keys = [line.removeprefix("#SBATCH --").split("=", 1)[0] for line in header]
        assert all(line.startswith("#SBATCH --") for line in header)
        assert len(keys) == len(set(keys)) and set(keys) <= known, keys
        assert lines[0] == "#!/bin/bash" and text.endswith("\n")


def sbatch_read(line_value: str) -> str:
    """What sbatch's #SBATCH parser (src/sbatch/opt.c _get_argument) reads from a value."""
    out, quote, escape = [], "", False
    for char in line_value:
        if escape:
            escape = False
        elif char == "\\":
            escape = True
            continue
        elif quote:
            if char == quote:
                quote = ""
                continue
        elif char in "\"'":
            quote = char
            continue
        elif char == "#" or char.isspace():
            break
        out.append(char)
    return "".join(out)


@given(ACCEPTED_TEXT)
def test_sbatch_reads_back_exactly_what_was_quoted(value: str) -> None:
    import shlex

    assert sbatch_read(sbatch_quote(value)) == value
    if value:
        assert shlex.split(sbatch_quote(value)) == [value]  # the local backend's reader


NUMBERS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(2**80), 2**80))
DECLARED = (
    EngineParam("steps", 10, "a count"),
    EngineParam("tol", 0.5, "a threshold"),
    EngineParam("grid", None, "any form"),
    EngineParam("flag", False, "a switch"),
)


@given(st.sampled_from(["steps", "tol", "grid"]), st.one_of(NUMBERS, st.lists(NUMBERS, max_size=4)))
def test_accepted_numeric_parameters_are_finite(name: str, value: Any) -> None:
    try:
        merged = check_known_params("mock", DECLARED, {name: value})
    except UsageError as exc:
        assert "\n" not in exc.one_line()
        return
    accepted = merged[name] if isinstance(merged[name], list) else [merged[name]]
    assert all(math.isfinite(v) for v in accepted)
    if name == "steps":
        assert isinstance(merged[name], int) and abs(merged[name]) < 2**31


@given(st.one_of(st.text(max_size=5), st.integers(), st.floats(), st.lists(st.booleans())))
def test_booleans_are_strict(value: Any) -> None:
    with pytest.raises(UsageError):
        check_known_params("mock", DECLARED, {"flag": value})
    assert check_known_params("mock", DECLARED, {"flag": True})["flag"] is True


@given(st.integers(0, MAX_RETRY_DELAY_S), st.integers(1, 101))
def test_backoff_never_overflows_a_date(base_s: int, attempt: int) -> None:
    delay = backoff_s(base_s, attempt)
    assert 0 <= delay <= MAX_RETRY_DELAY_S
    datetime(9000, 1, 1, tzinfo=UTC) + timedelta(seconds=delay)


@given(
    st.integers(1, MAX_WALLTIME_S),
    st.integers(0, MAX_MEM_MB),
    st.sampled_from(list(FailureReason)),
    st.one_of(st.none(), st.integers(1, 2**40)),
)
def test_escalated_resources_stay_within_the_limits(
    walltime_s: int, mem_mb: int, reason: FailureReason, partition_max_s: int | None
) -> None:
    res = escalate(
        Resources(walltime_s=walltime_s, mem_mb=mem_mb), reason, partition_max_s
    ).resources
    assert 1 <= res.walltime_s <= MAX_WALLTIME_S and 0 <= res.mem_mb <= MAX_MEM_MB
