"""Results out: one row per job (energy, per atom, max force, stress, volume, swept
parameters) as a table, CSV, JSON or extended XYZ with the results attached.

Rows are produced a page of jobs at a time, so that a study of 100,000 jobs streams.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from orion_cli.db.models import Job, JobResult, now_utc, with_any_tag
from orion_cli.db.session import session_scope
from orion_cli.errors import UsageError
from orion_cli.jobids import name_pattern
from orion_cli.services.structures import input_format, stored_atoms
from orion_cli.states import JobStatus

if TYPE_CHECKING:
    from sqlmodel import Session

    from orion_cli.config import Settings

FORMATS = ("table", "csv", "json", "extxyz")
EV_PER_A3_IN_GPA = 160.21766208  # 1 eV/Å³ in GPa (ase.units.GPa = 1 / this)
PAGE = 1000
PARAM_PREFIX = "param."  # swept parameters' columns: never confused with a result's
#: engines of a study's analysis step (orion eos, orion converge): their result says the answer
ANALYSIS_ENGINES = ("eos", "converge")
VOIGT = ("xx", "yy", "zz", "yz", "xz", "xy")
COLUMNS = (
    "id",
    "name",
    "formula",
    "status",
    "engine",
    "natoms",
    "energy_ev",
    "energy_per_atom_ev",
    "max_force_ev_per_a",
    "pressure_gpa",
    "volume_a3",
    "input_files",
    "calc_key",
)
#: the machine-learned potential of a row (``extras.model``): columns when a job has one
MODEL_COLUMNS = ("package", "package_version", "model", "model_sha256")
MLIP_ENGINES = ("chgnet", "sevennet")


@dataclass(frozen=True)
class Selection:
    ids: tuple[int, ...] = ()
    #: jobs with any of these tags
    tags: tuple[str, ...] = ()
    study_id: int | None = None
    owner: str = ""
    #: narrowing, as everywhere: statuses, studies, names (``*`` wildcards), age
    statuses: tuple[str, ...] = ()
    studies: tuple[int, ...] = ()
    names: tuple[str, ...] = ()
    since_s: int | None = None


def _query(selection: Selection) -> Any:
    from datetime import timedelta

    from sqlalchemy import or_
    from sqlmodel import col, select

    query = select(Job, JobResult).join(JobResult, col(JobResult.job_id) == Job.id, isouter=True)
    if selection.statuses:
        query = query.where(col(Job.status).in_(selection.statuses))
    if selection.studies:
        query = query.where(col(Job.study_id).in_(selection.studies))
    if selection.names:
        likes = (col(Job.name).like(name_pattern(n), escape="\\") for n in selection.names)
        query = query.where(or_(*likes))
    if selection.since_s is not None:
        query = query.where(col(Job.created_at) >= now_utc() - timedelta(seconds=selection.since_s))
    if selection.ids:
        query = query.where(col(Job.id).in_(list(selection.ids)))
    else:
        query = query.where(col(Job.owner) == selection.owner)
        if selection.tags:
            query = query.where(with_any_tag(selection.tags))
        if selection.study_id is not None:
            query = query.where(col(Job.study_id) == selection.study_id)
    return query.order_by(col(Job.id))


def check_selection(session: Session, selection: Selection) -> None:
    """Refuse an empty selection and ids that name no job (UsageError, exit 2)."""
    from sqlmodel import col, select

    narrowing = selection.tags or selection.studies or selection.statuses or selection.names
    if not (selection.ids or narrowing or selection.since_s) and selection.study_id is None:
        raise UsageError(
            "no jobs selected", "give job ids, --tag, --study, --status, --name or --since"
        )
    for status in selection.statuses:
        if status not in JobStatus.__members__.values():
            raise UsageError(
                f"unknown status '{status}'", f"use one of: {', '.join(s.value for s in JobStatus)}"
            )
    if selection.ids:
        found = set(session.exec(select(Job.id).where(col(Job.id).in_(list(selection.ids)))))
        missing = [i for i in selection.ids if i not in found]
        if missing:
            raise UsageError(f"no job with id {missing[0]}", "`orion ls` lists the jobs")


def swept_keys(session: Session, selection: Selection) -> list[str]:
    """Parameters whose values differ between the selected jobs (the swept ones)."""
    from sqlalchemy.orm import load_only

    values: dict[str, set[str]] = {}
    present: dict[str, int] = {}
    seen = 0
    query = _query(selection).options(load_only(Job.id, Job.engine, Job.parameters))  # type: ignore[arg-type]
    for job, _ in session.exec(query):
        if job.engine in ANALYSIS_ENGINES:  # a study's fit: its parameters are not swept
            continue
        seen += 1
        for key, value in (job.parameters or {}).items():
            values.setdefault(key, set()).add(json.dumps(value, sort_keys=True))
            present[key] = present.get(key, 0) + 1
    return sorted(key for key, found in values.items() if len(found) > 1 or present[key] < seen)


def with_models(session: Session, selection: Selection) -> tuple[str, ...]:
    """:data:`MODEL_COLUMNS` when a selected job ran a machine-learned potential, else ()."""
    from sqlalchemy.orm import load_only

    query = _query(selection).options(load_only(Job.id, Job.engine, Job.parameters))  # type: ignore[arg-type]
    for job, _ in session.exec(query):
        if job.engine in MLIP_ENGINES or (job.parameters or {}).get("model_file"):
            return MODEL_COLUMNS
    return ()


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _jobs(session: Session, selection: Selection) -> Iterator[tuple[Any, Any]]:
    """Yield (job, result or None) per selected job, a page of jobs at a time."""
    offset = 0
    while True:
        page = session.exec(_query(selection).offset(offset).limit(PAGE)).all()
        if not page:
            return
        yield from page
        offset += PAGE
        session.expunge_all()


def selected_jobs(session: Session, selection: Selection) -> Iterator[tuple[Any, Any]]:
    """Yield (job, result or None) per selected job, a page at a time."""
    return _jobs(session, selection)


def job_rows(
    session: Session, selection: Selection, swept: Sequence[str]
) -> Iterator[tuple[dict[str, Any], Any]]:
    """Yield (row, ase.Atoms or None) per selected job, a page of jobs at a time."""
    for job, result in _jobs(session, selection):
        yield _row(job, result, swept)


def result_rows(settings: Settings, selection: Selection) -> list[dict[str, Any]]:
    """The selected jobs' rows, as ``orion results -f json`` prints them."""

    with session_scope(settings.resolved_database_url) as session:
        check_selection(session, selection)
        swept = swept_keys(session, selection)
        return [row for row, _ in job_rows(session, selection, swept)]


def result_atoms(settings: Settings, selection: Selection, all_jobs: bool = False) -> list[Any]:
    """The selected jobs as ``ase.Atoms`` with their results attached, in id order.

    As ``orion results -f extxyz`` writes them: the final structure (else the input one),
    a SinglePointCalculator with energy, forces and stress, and ``info`` holding
    ``orion_id``, ``name``, ``status``, the swept parameters (``param.<key>``), and here
    also ``engine``, ``params`` (all engine parameters) and ``tag``. Only completed jobs
    with an energy, unless ``all_jobs`` (then the others come without a calculator and
    with ``failure_reason``).
    """

    found = []
    with session_scope(settings.resolved_database_url) as session:
        check_selection(session, selection)
        swept = swept_keys(session, selection)
        for job, result in _jobs(session, selection):
            row, atoms = _row(job, result, swept)
            done = job.status == "completed" and row["energy_ev"] is not None
            if atoms is None or not (done or all_jobs):
                continue
            atoms.info.update(
                {"engine": job.engine, "params": dict(job.parameters or {}), "tag": job.tag}
            )
            if job.failure_reason:
                atoms.info["failure_reason"] = job.failure_reason
            found.append(atoms)
    return found


def _row(job: Any, result: Any, swept: Sequence[str]) -> tuple[dict[str, Any], Any]:
    atoms = stored_atoms(result.final_structure if result is not None else None) or stored_atoms(
        job.input_structure, input_format(job.structure_source)
    )
    energy = _finite(result.energy_ev) if result is not None else None
    natoms = len(atoms) if atoms is not None else None
    forces = result.forces_ev_per_a if result is not None else None
    stress = result.stress_ev_per_a3 if result is not None else None
    volume = float(atoms.get_volume()) if atoms is not None and atoms.cell.rank == 3 else None
    fitted_v0 = (result.extras or {}).get("v0_a3") if result is not None else None
    if job.engine == "eos" and isinstance(fitted_v0, int | float):
        volume = float(fitted_v0)  # an EOS fit's row: its V0 beside its E0, not the input cell
    row: dict[str, Any] = {
        "id": job.id,
        "name": job.name,
        "formula": job.formula,
        "status": job.status,
        "engine": job.engine,
        "natoms": natoms,
        "energy_ev": energy,
        "energy_per_atom_ev": energy / natoms if energy is not None and natoms else None,
        "max_force_ev_per_a": max((math.sqrt(sum(c * c for c in f)) for f in forces), default=None)
        if forces
        else None,
        "pressure_gpa": -sum(stress[:3]) / 3 * EV_PER_A3_IN_GPA if stress else None,
        "volume_a3": volume,
        "stress_gpa": [s * EV_PER_A3_IN_GPA for s in stress] if stress else None,
        "input_files": input_files_text(job.frozen),
        "calc_key": job.calc_key,
    }
    model = (result.extras or {}).get("model") if result is not None else None
    if isinstance(model, dict):
        row.update({key: model.get(key) for key in MODEL_COLUMNS})
    for key in swept:
        row[PARAM_PREFIX + key] = (job.parameters or {}).get(key)
    if atoms is not None and result is not None and energy is not None:
        from ase.calculators.singlepoint import SinglePointCalculator

        extra: dict[str, Any] = {"energy": energy}
        if forces and len(forces) == len(atoms):
            extra["forces"] = forces
        if stress and len(stress) == 6:
            extra["stress"] = stress
        atoms.calc = SinglePointCalculator(atoms, **extra)
    if atoms is not None:
        atoms.info.update(
            {
                "orion_id": job.id,
                "name": job.name,
                "status": job.status,
                **{
                    PARAM_PREFIX + key: row[PARAM_PREFIX + key]
                    for key in swept
                    if row[PARAM_PREFIX + key] is not None
                },
            }
        )
    return row, atoms


def input_files_text(record: dict[str, Any] | None, digits: int = 64) -> str:
    """The outside files a job's engine read (pseudopotentials): ``name@sha256``, ``;`` between.

    >>> input_files_text({"files": [{"name": "Si.UPF", "path": "/p/Si.UPF", "sha256": "ab12cd"}]},
    ...                  digits=4)
    'Si.UPF@ab12'
    """
    files = [f for f in (record or {}).get("files") or [] if f.get("path")]
    return ";".join(f"{f.get('name')}@{str(f.get('sha256'))[:digits]}" for f in files)


def write_results(settings: Settings, selection: Selection, fmt: str, out: IO[str]) -> int:
    """Write the selected jobs' results to ``out`` in ``fmt``; return the number of jobs."""

    if fmt not in FORMATS or fmt == "table":
        raise UsageError(f"unknown format '{fmt}'", f"use one of: {', '.join(FORMATS)}")
    with session_scope(settings.resolved_database_url) as session:
        check_selection(session, selection)
        swept = swept_keys(session, selection)
        rows = job_rows(session, selection, swept)
        if fmt == "csv":
            return _write_csv(rows, swept, out, with_models(session, selection))
        if fmt == "json":
            return _write_json(rows, out)
        return _write_extxyz(rows, out)


def _write_csv(
    rows: Iterator[tuple[dict[str, Any], Any]],
    swept: Sequence[str],
    out: IO[str],
    models: Sequence[str] = (),
) -> int:
    header = [
        *COLUMNS,
        *(f"stress_{v}_gpa" for v in VOIGT),
        *models,
        *(PARAM_PREFIX + k for k in swept),
    ]
    writer = csv.writer(out)
    writer.writerow(header)
    count = 0
    for row, _ in rows:
        stress = row["stress_gpa"] or [None] * 6
        writer.writerow(
            [_cell(row[c]) for c in COLUMNS]
            + [_cell(s) for s in stress]
            + [_cell(row.get(k)) for k in models]
            + [_cell(row[PARAM_PREFIX + k]) for k in swept]
        )
        count += 1
    return count


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (list, dict, bool)):
        return json.dumps(value)
    return value


def _write_json(rows: Iterator[tuple[dict[str, Any], Any]], out: IO[str]) -> int:
    count = 0
    out.write("[")
    for row, _ in rows:
        out.write(("," if count else "") + "\n" + json.dumps(row, allow_nan=False))
        count += 1
    out.write("\n]\n")
    return count


def _write_extxyz(rows: Iterator[tuple[dict[str, Any], Any]], out: IO[str]) -> int:
    from ase.io import write

    count = 0
    for _, atoms in rows:
        if atoms is None:
            continue
        write(out, atoms, format="extxyz")
        count += 1
    return count


TABLE_HEADER = (
    "id",
    "name",
    "formula",
    "status",
    "E (eV)",
    "E/atom (eV)",
    "Fmax (eV/Å)",
    "P (GPa)",
    "V (Å³)",
)


def table_rows(settings: Settings, selection: Selection) -> tuple[list[str], list[list[str]]]:
    """The header and rows of the results table (``orion results``' default format)."""

    with session_scope(settings.resolved_database_url) as session:
        check_selection(session, selection)
        swept = swept_keys(session, selection)
        models = with_models(session, selection)
        body = [
            [
                str(row["id"]),
                row["name"],
                row["formula"],
                row["status"],
                _num(row["energy_ev"], 6),
                _num(row["energy_per_atom_ev"], 6),
                _num(row["max_force_ev_per_a"], 4),
                _num(row["pressure_gpa"], 3),
                _num(row["volume_a3"], 3),
                *(_model_cell(row, k) for k in models),
                *(str(_cell(row[PARAM_PREFIX + k])) for k in swept),
                input_files_text(frozen, digits=12),
            ]
            for (row, _), frozen in _with_records(session, selection, swept)
        ]
    header = [*TABLE_HEADER, *models, *(PARAM_PREFIX + k for k in swept), "inputs (sha256)"]
    if not any(line[-1] for line in body):  # no engine read outside files: no column
        header, body = header[:-1], [line[:-1] for line in body]
    return header, body


def _with_records(
    session: Session, selection: Selection, swept: Sequence[str]
) -> Iterator[tuple[tuple[dict[str, Any], Any], dict[str, Any] | None]]:
    for job, result in _jobs(session, selection):
        yield _row(job, result, swept), job.frozen


def _model_cell(row: dict[str, Any], key: str) -> str:
    """A model column of the table: the sha256 shortened to 12 digits (CSV/JSON: in full)."""
    value = row.get(key)
    if value is None:
        return "-"
    return str(value)[:12] if key == "model_sha256" else str(value)


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def answers(settings: Settings, selection: Selection) -> list[tuple[int, str]]:
    """(job id, answer) of the selected analysis steps that have one (the study's outcome)."""
    from sqlmodel import col

    with session_scope(settings.resolved_database_url) as session:
        query = _query(selection).where(col(Job.engine).in_(ANALYSIS_ENGINES))
        return [
            (job.id, result.extras["answer"] + _superseded(result.extras))
            for job, result in session.exec(query)
            if result is not None and isinstance((result.extras or {}).get("answer"), str)
        ]


def _superseded(extras: dict[str, Any]) -> str:
    """`` (superseded by job N)`` for an analysis an ``--extend`` replaced.

    >>> _superseded({"superseded_by": 12}), _superseded({})
    (' (superseded by job 12)', '')
    """
    newer = extras.get("superseded_by")
    return f" (superseded by job {newer})" if isinstance(newer, int) else ""
