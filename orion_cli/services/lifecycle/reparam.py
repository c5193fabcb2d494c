"""``orion retry ID -p key=value``: the next attempt runs with changed engine parameters.

The new parameters are the job's stored ones with the changes on top, checked by the engine
exactly as at submit (unknown names, types, ranges: one line, exit 2, nothing written). At
retry the engine writes its input files again from the job's stored input structure, the
job's ``job.json`` gets the new parameters, and the queued event of the new attempt says
what changed (``parameters: mixing_beta 0.7 → 0.3``), which ``orion show`` prints.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orion_cli.config import Settings
from orion_cli.engines.passthrough import engine_params
from orion_cli.engines.registry import engine_names, get_engine
from orion_cli.errors import UsageError
from orion_cli.frozen import freeze, job_settings
from orion_cli.jobdir import JOB_FILE, read_json, write_json_atomic
from orion_cli.services.structures import input_format, stored_atoms


def _drop_leaf(table: dict[str, Any], path: list[str]) -> None:
    """Remove ``path`` (keys compared without case) from a nested table, if there."""
    node: Any = table
    for key in path[:-1]:
        match = next((k for k in node if str(k).lower() == key.lower()), None)
        if match is None or not isinstance(node[match], dict):
            return
        node = node[match]
    for k in [k for k in node if str(k).lower() == path[-1].lower()]:
        del node[k]


def merged_params(stored: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """The stored parameters with ``changes`` on top, ready for the engine's check.

    A raw dotted key (``system.nbnd``, ``incar.ISYM``) replaces the same key inside the
    stored raw table instead of clashing with it.

    >>> merged_params({"mixing_beta": 0.7, "input": {"system": {"nbnd": 8}}},
    ...               {"mixing_beta": 0.3, "system.nbnd": 16})
    {'mixing_beta': 0.3, 'input': {'system': {}}, 'system.nbnd': 16}
    """
    merged = copy.deepcopy(dict(stored))
    for key in changes:
        if "." not in key:
            continue
        path = key.split(".")
        for name, value in merged.items():
            if isinstance(value, dict):
                _drop_leaf(value, path)  # head inside the table: system.nbnd in input
                if name.lower() == path[0].lower():
                    _drop_leaf(value, path[1:])  # the table named: incar.ISYM
    merged.update(changes)
    return merged


def describe_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """'mixing_beta 0.7 → 0.3, input.system.nbnd 8 → 16' (flattened, only what changed).

    >>> describe_changes({"a": 1, "t": {"x": 1}}, {"a": 2, "t": {"x": 1, "y": 3}})
    'a 1 → 2, t.y - → 3'
    """
    flat_old, flat_new = _flat(old), _flat(new)
    return ", ".join(
        f"{key} {flat_old.get(key, '-')!s} → {flat_new.get(key, '-')!s}"
        for key in sorted(set(flat_old) | set(flat_new))
        if flat_old.get(key, "-") != flat_new.get(key, "-")
    )


def _flat(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, Mapping) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        elif not isinstance(value, Mapping):
            out[f"{prefix}{key}"] = value
    return out


def frozen_settings(job: Any) -> dict[str, Any]:
    """The engine settings ``job`` was frozen with at submit; never the current config.

    A job from before orion stored them (no record on the row, none in its ``job.json``)
    cannot be rebuilt with other parameters: UsageError.
    """
    found = job_settings(job) if job.frozen else None
    if found is None:
        found = job_settings(job, read_json(Path(job.workdir) / JOB_FILE) or {})
    if found is None:
        raise UsageError(
            f"job {job.id} was submitted before orion stored engine settings with each job, "
            "so its inputs cannot be rebuilt with other parameters",
            "retry it without -p, or submit it anew with the parameters you want",
        )
    return found


def checked(
    settings: Settings, job: Any, stored: Mapping[str, Any], changes: Mapping[str, Any]
) -> dict[str, Any]:
    """The job's new parameters, checked by its engine (UsageError names a bad one)."""

    engine = get_engine(job.engine)
    new = engine.check(
        engine_params(merged_params(stored, changes), job.engine, engine_names()),
        frozen_settings(job),
    )
    if new == dict(stored):
        raise UsageError(
            f"-p {', '.join(f'{k}={v}' for k, v in changes.items())} changes nothing",
            "give a value different from the job's own (`orion show` lists its parameters)",
        )
    return new


def rewrite_inputs(settings: Settings, job: Any, new: dict[str, Any]) -> str:
    """Write the job's inputs again from its frozen record with ``new`` parameters.

    The record is frozen again with the new parameters (the same files, unless the change
    names other ones: a file whose contents changed since submit is refused); what
    changed is returned for the attempt's event.
    """

    workdir = Path(job.workdir)
    job_file = read_json(workdir / JOB_FILE) or {}
    engine_settings = frozen_settings(job)
    atoms = stored_atoms(job.input_structure, input_format(job.structure_source))
    if atoms is None:
        raise UsageError(
            f"job {job.id}'s stored input structure cannot be read again",
            "submit it anew with the parameters you want",
        )
    engine = get_engine(job.engine)
    frozen = freeze(engine, atoms, new, engine_settings)
    _same_files(job, frozen.files)
    spec = engine.prepare(atoms, frozen.params, workdir, frozen.settings)
    record = frozen.record()
    write_json_atomic(
        workdir / JOB_FILE,
        {
            **job_file,
            "params": frozen.params,
            "engine_settings": frozen.settings,
            "frozen": record,
            "run_spec": spec.to_json(),
        },
    )
    note = describe_changes(
        {**(job.parameters or {}), **((job.frozen or {}).get("derived") or {})},
        {**frozen.params, **frozen.derived},
    )
    job.parameters, job.frozen, job.calc_key = frozen.params, record, frozen.key
    return note


def _same_files(job: Any, files: Any) -> None:
    """Refuse a retry whose input file (same role, same path) changed since submit."""
    before = {f["role"]: f for f in (job.frozen or {}).get("files") or []}
    for now in files:
        old = before.get(now.role)
        if now.path and old and old.get("path") == now.path and old.get("sha256") != now.sha256:
            raise UsageError(
                f"{now.path} changed since submit (sha256 {old['sha256'][:12]}… "
                f"→ {now.sha256[:12]}…)",
                "restore the file, or submit a new job with the new file",
            )
