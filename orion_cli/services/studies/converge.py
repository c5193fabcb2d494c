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
from orion_cli.services.studies.study_extend import prior_study, supersede
from orion_cli.services.submission.inputs import read_frames
from orion_cli.services.submission.plan import checked_params
from orion_cli.services.submission.submit import Submitted, submit
from orion_cli.units import plain_float

if TYPE_CHECKING:
    from orion_cli.config import Settings
    from orion_cli.services.submission.plan import SubmitRequest

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
    #: completed jobs of the extended study taken as they are (``--extend``)
    reused_ids: list[int] = field(default_factory=list)
    #: a dry run: the batch scripts that would be submitted, and what would run, in words
    scripts: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


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
        number = plain_float(word)
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
    span = (stop - start) / step  # inf for -1e308:1e308: counted as too many, not overflow
    if not math.isfinite(span) or span + 1 > MAX_VALUES:
        raise UsageError(
            f"--sweep '{text}' gives more than {MAX_VALUES} values", "use a larger step"
        )
    count = math.floor(span + 1e-9) + 1
    whole = all(isinstance(x, int) for x in (start, stop, step))
    return [start + n * step if whole else round(start + n * step, 10) for n in range(count)]


def submit_converge(
    settings: Settings,
    structure: Path,
    base: SubmitRequest,
    sweep: str,
    tol_mev_per_atom: float,
    extend: int | None = None,
) -> ConvergeSubmitted:
    """Submit one job per value as one array, then the analysis step after them.

    ``extend``: a study to extend; only its values not completed yet are submitted.
    """
    key, values = parse_sweep(sweep)
    _check_request(key, base, tol_mev_per_atom)
    frames = [_one_structure(structure)]
    prior = _prior(settings, extend, base, key, values, frames[0].atoms)
    done = ConvergeSubmitted(parameter=key, values=values)
    reused = {_key(v): job_id for job_id, v in (prior.done if prior else [])}
    todo = [v for v in values if _key(v) not in reused]
    submitted = (
        submit(
            settings,
            replace(base, structures=[structure], name="", param_sets=[{key: v} for v in todo]),
        )
        if todo
        else Submitted([], [], [])
    )
    new_ids = submitted.ids
    done.errors += submitted.errors
    if base.dry_run:
        done.scripts = submitted.scripts
        shown = ", ".join("x".join(map(str, v)) if isinstance(v, list) else str(v) for v in todo)
        done.notes = [
            f"{len(todo)} {base.engine} job(s), {key} = {shown or '(all done already)'}, "
            "then a converge analysis after them"
        ]
        return done
    if len(new_ids) != len(todo):
        done.errors.append("not every value was submitted: the analysis step was not submitted")
        done.job_ids = new_ids
        return done
    done.study_id = prior.study_id if prior else new_ids[0]
    set_study(settings, new_ids, done.study_id)
    ids = dict(reused) | dict(zip(map(_key, todo), new_ids, strict=True))
    done.values = _in_order(values, [v for _, v in prior.done] if prior else [])
    done.job_ids = [ids[_key(v)] for v in done.values]
    done.reused_ids = [ids[_key(v)] for v in done.values if _key(v) in reused]
    _submit_analysis(settings, base, structure, frames[0], done, key, tol_mev_per_atom, new_ids)
    if prior and done.analysis_id:
        supersede(settings, prior.analysis_id, done.analysis_id, f"{len(todo)} new values")
    return done


def _one_structure(structure: Path) -> Any:
    """The file's one structure (a convergence test needs exactly one)."""
    frames = read_frames(structure)
    if len(frames) != 1:
        raise UsageError(
            f"'{structure}' holds {len(frames)} structures; a convergence test needs one",
            "give a file with a single structure",
        )
    return frames[0]


def _check_request(key: str, base: SubmitRequest, tol_mev_per_atom: float) -> None:
    if key in base.params:
        raise UsageError(
            f"'{key}' is both swept and fixed (--param {key}=...)", "give it only with --sweep"
        )
    if not (math.isfinite(tol_mev_per_atom) and tol_mev_per_atom > 0):
        raise UsageError(f"--tol {tol_mev_per_atom}: must be positive", "use e.g. --tol 1")
    if base.engine in ("converge", "eos"):
        raise UsageError(f"--engine {base.engine} analyses studies", "use e.g. --engine qe")


def _prior(
    settings: Settings,
    extend: int | None,
    base: SubmitRequest,
    key: str,
    values: list[Any],
    atoms: Any,
) -> Any:
    """The study to extend (checked to be the same calculation), or None."""
    if extend is None:
        return None
    params = checked_params(settings, base.engine, {**base.params, key: values[0]})
    return prior_study(settings, extend, "converge", base.engine, params, atoms, swept=key)


def _key(value: Any) -> str:
    """A swept value as a comparable key: 40 and 40.0 are one value, meshes by their numbers.

    >>> _key(40) == _key(40.0), _key([4, 4, 4])
    (True, '4x4x4')
    """
    if isinstance(value, list):
        return "x".join(str(int(v)) for v in value)
    return repr(float(value))


def _in_order(new: list[Any], old: list[Any]) -> list[Any]:
    """Old and new values together, least to most accurate, as the new sweep goes.

    >>> _in_order([45, 50], [15, 30, 45])
    [15, 30, 45, 50]
    >>> _in_order([0.2, 0.1], [0.3])
    [0.3, 0.2, 0.1]
    >>> _in_order([[8, 8, 8]], [[2, 2, 2], [4, 4, 4]])
    [[2, 2, 2], [4, 4, 4], [8, 8, 8]]
    """
    merged = {_key(v): v for v in [*old, *new]}
    if all(isinstance(v, list) for v in merged.values()):
        return sorted(merged.values(), key=lambda m: (math.prod(m), m))
    descending = len(new) > 1 and new[-1] < new[0]
    return sorted(merged.values(), key=float, reverse=descending)


def _submit_analysis(
    settings: Settings,
    base: SubmitRequest,
    structure: Path,
    frame: Any,
    done: ConvergeSubmitted,
    key: str,
    tol_mev_per_atom: float,
    new_ids: list[int],
) -> None:
    name = base.name or frame.name
    analysis = submit(
        settings,
        replace(
            base,
            structures=[structure],
            engine="converge",
            name=f"{name}-converge-{key}",
            params={
                "jobs": done.job_ids,
                "parameter": key,
                "values": done.values,
                "n_atoms": len(frame.atoms),
                "tol_mev_per_atom": tol_mev_per_atom,
            },
            after=[],
            after_any=new_ids,
            study_id=done.study_id,
            hold=False,
            on_scf_fail=[],  # the analysis has no SCF
            resources=analysis_resources(base),
            throttle=None,
        ),
    )
    done.errors += analysis.errors
    done.analysis_id = analysis.ids[0] if analysis.ids else None
