"""``orion converge``: a convergence sweep of one engine parameter in one command.

One job per value of the swept parameter (on the same structure, with the same fixed
parameters) goes to the scheduler as one job array; an analysis step (engine ``converge``,
:mod:`orion_cli.engines.converge_fit`) runs after all of them (``--after-any``: a failed
value is left out, not fatal) and reports the first value within ``tol`` meV/atom of the
last, most accurate one. All jobs carry the study's id, the id of its first job.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orion_cli.errors import UsageError
from orion_cli.services.studies.eos import analysis_resources, set_study
from orion_cli.services.submission.inputs import read_frames
from orion_cli.services.submission.submit import submit

if TYPE_CHECKING:
    from orion_cli.config import Settings
    from orion_cli.services.submission.submit import SubmitRequest

MAX_VALUES = 30
SWEEP_HINT = "write e.g. --sweep ecutwfc_ry=20:60:10, ecutwfc_ry=20,30,40 or kpoints=2x2x2,4x4x4"


@dataclass
class ConvergeSubmitted:
    study_id: int | None = None
    job_ids: list[int] = field(default_factory=list)
    analysis_id: int | None = None
    parameter: str = ""
    values: list[Any] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def parse_sweep(text: str) -> tuple[str, list[Any]]:
    """``key=start:stop:step`` (inclusive) or ``key=v1,v2,...``; meshes as ``4x4x4``.

    >>> parse_sweep("ecutwfc_ry=20:40:10")
    ('ecutwfc_ry', [20, 30, 40])
    >>> parse_sweep("kspacing_per_a=0.3:0.2:-0.05")
    ('kspacing_per_a', [0.3, 0.25, 0.2])
    >>> parse_sweep("kpoints=2x2x2, 4x4x4")
    ('kpoints', [[2, 2, 2], [4, 4, 4]])
    """
    key, sep, raw = text.partition("=")
    key, raw = key.strip(), raw.strip()
    if not sep or not key or not raw:
        raise UsageError(f"--sweep '{text}' is not key=values", SWEEP_HINT)
    if ":" in raw:
        values: list[Any] = _range(text, raw)
    else:
        values = [_value(text, part.strip()) for part in raw.split(",")]
    if len(values) < 2:
        raise UsageError(
            f"--sweep '{text}' gives one value; a convergence test needs 2", SWEEP_HINT
        )
    if len(values) > MAX_VALUES:
        raise UsageError(
            f"--sweep '{text}' gives {len(values)} values; at most {MAX_VALUES}",
            "use a larger step",
        )
    if len({str(v) for v in values}) != len(values):
        raise UsageError(f"--sweep '{text}' repeats a value", "give each value once")
    return key, values


def _number(text: str, word: str) -> int | float:
    try:
        number = float(word)
    except ValueError:
        raise UsageError(f"--sweep '{text}': '{word}' is not a number", SWEEP_HINT) from None
    if not math.isfinite(number):
        raise UsageError(f"--sweep '{text}': '{word}' is not a finite number", SWEEP_HINT)
    return int(number) if number.is_integer() and "." not in word and "e" not in word else number


def _value(text: str, word: str) -> Any:
    """A number, or a k-point mesh ``AxBxC`` (shifted: ``AxBxC+1x1x1``) as a list.

    >>> _value("kpoints=...", "6x6x6+1x1x1")
    [6, 6, 6, 1, 1, 1]
    """
    if "+" in word and "x" in word.lower():
        mesh, _, shift = word.partition("+")
        parts = shift.lower().split("x")
        if len(parts) != 3 or not all(p.strip() in ("0", "1") for p in parts):
            raise UsageError(f"--sweep '{text}': '{word}' has no 0/1 shift per axis", SWEEP_HINT)
        return [*_value(text, mesh), *(int(p) for p in parts)]
    if "x" in word.lower():
        parts = word.lower().split("x")
        if len(parts) != 3 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
            raise UsageError(f"--sweep '{text}': '{word}' is not a k-point mesh", SWEEP_HINT)
        return [int(p) for p in parts]
    return _number(text, word)


def _range(text: str, raw: str) -> list[int | float]:
    """``start:stop:step``, stop included; the step's sign says the direction."""
    parts = raw.split(":")
    if len(parts) != 3:
        raise UsageError(f"--sweep '{text}': a range is start:stop:step", SWEEP_HINT)
    start, stop, step = (_number(text, p.strip()) for p in parts)
    if step == 0 or (stop - start) * step < 0:
        raise UsageError(
            f"--sweep '{text}': step {step} does not go from {start} to {stop}",
            "e.g. 20:60:10, or 0.4:0.2:-0.1 for a value that is more accurate smaller",
        )
    count = math.floor((stop - start) / step + 1e-9) + 1
    if count > MAX_VALUES:
        raise UsageError(
            f"--sweep '{text}' gives {count} values; at most {MAX_VALUES}", "use a larger step"
        )
    whole = all(isinstance(x, int) for x in (start, stop, step))
    return [start + n * step if whole else round(start + n * step, 10) for n in range(count)]


def submit_converge(
    settings: Settings, structure: Path, base: SubmitRequest, sweep: str, tol_mev_per_atom: float
) -> ConvergeSubmitted:
    """Submit one job per value as one array, then the analysis step after them."""

    key, values = parse_sweep(sweep)
    if key in base.params:
        raise UsageError(
            f"'{key}' is both swept and fixed (--param {key}=...)", "give it only with --sweep"
        )
    if not (math.isfinite(tol_mev_per_atom) and tol_mev_per_atom > 0):
        raise UsageError(f"--tol {tol_mev_per_atom}: must be positive", "use e.g. --tol 1")
    if base.engine in ("converge", "eos"):
        raise UsageError(f"--engine {base.engine} analyses studies", "use e.g. --engine qe")
    frames = read_frames(structure)
    if len(frames) != 1:
        raise UsageError(
            f"'{structure}' holds {len(frames)} structures; a convergence test needs one",
            "give a file with a single structure",
        )
    done = ConvergeSubmitted(parameter=key, values=values)
    name = base.name or frames[0].name
    submitted = submit(
        settings,
        replace(base, structures=[structure], name="", param_sets=[{key: v} for v in values]),
    )
    done.errors += submitted.errors
    done.job_ids = submitted.ids
    if len(submitted.ids) != len(values):
        done.errors.append("not every value was submitted: the analysis step was not submitted")
        return done
    done.study_id = submitted.ids[0]
    set_study(settings, submitted.ids, done.study_id)
    analysis = submit(
        settings,
        replace(
            base,
            structures=[structure],
            engine="converge",
            name=f"{name}-converge-{key}",
            params={
                "jobs": submitted.ids,
                "parameter": key,
                "values": values,
                "n_atoms": len(frames[0].atoms),
                "tol_mev_per_atom": tol_mev_per_atom,
            },
            after=[],
            after_any=submitted.ids,
            study_id=done.study_id,
            hold=False,
            resources=analysis_resources(base),
            throttle=None,
        ),
    )
    done.errors += analysis.errors
    done.analysis_id = analysis.ids[0] if analysis.ids else None
    return done
