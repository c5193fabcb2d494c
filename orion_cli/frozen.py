"""A job is its frozen inputs: resolved once at submit, stored with the job, hashed to a key.

:func:`freeze` asks the engine to resolve everything that determines the answer (QE: the
pseudopotential files, ``ecutrho``, the k-mesh), lets it prepare the inputs in a scratch
directory, and returns a :class:`Frozen`: the checked parameters, the resolved engine
settings (absolute files, no rule left to apply), what orion derived, every file the
engine reads with its sha256, the engine's code version and the calculation key.
Retries, recovery and ``--from`` children read this record plus the user's explicit
changes; never the current directory's config.

The calculation key (:func:`calculation_key`) is a sha256 over a canonical JSON of: the
engine, its code version (dropped by ``--reuse=loose``), orion's per-engine format
version, the parameters with what orion derived, the structure (atoms sorted, positions
wrapped and rounded to 1e-6 Å, cell, pbc, magnetic moments, charges) and the sha256 of
every input file. Not in it: resources, paths, names, tags, times.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ase import Atoms

#: orion's format version per engine: raise it when the same record would give other inputs
FORMAT_VERSIONS: dict[str, int] = {"qe": 2}
DEFAULT_FORMAT_VERSION = 1
#: positions and cell are rounded to this many decimals (Å) in the key
KEY_DECIMALS = 6


@lru_cache(maxsize=512)
def _sha256_cached(path: str, mtime_ns: int, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    """The sha256 of a file's contents (cached per path, modification time and size)."""
    stat = os.stat(path)
    return _sha256_cached(str(path), stat.st_mtime_ns, stat.st_size)


@dataclass(frozen=True)
class InputFile:
    """One file the engine reads: its role (``pseudo.Si``), name, absolute path, sha256."""

    role: str
    name: str
    path: str
    sha256: str

    def to_json(self) -> dict[str, str]:
        return {"role": self.role, "name": self.name, "path": self.path, "sha256": self.sha256}


@dataclass(frozen=True)
class Frozen:
    """What a job is: engine, parameters after defaults, resolved settings, files, key."""

    engine: str
    params: dict[str, Any]
    settings: dict[str, Any]
    derived: dict[str, Any] = field(default_factory=dict)
    files: tuple[InputFile, ...] = ()
    code_version: str = ""
    key: str = ""
    loose_key: str = ""
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def record(self) -> dict[str, Any]:
        """The JSON stored on the job row (``job.frozen``) and in ``job.json``."""
        return {
            "format": FORMAT_VERSIONS.get(self.engine, DEFAULT_FORMAT_VERSION),
            "engine": self.engine,
            "code_version": self.code_version,
            "params": self.params,
            "derived": self.derived,
            "settings": self.settings,
            "files": [f.to_json() for f in self.files],
            "key": self.key,
            "loose_key": self.loose_key,
        }


def freeze(
    engine: Any,
    atoms: Atoms,
    params: Mapping[str, Any],
    settings: Mapping[str, Any],
    scratch: Path | None = None,
) -> Frozen:
    """Resolve and check one job's inputs (the engine prepares them in a scratch directory).

    An engine may offer ``freeze(atoms, params, settings) -> dict`` with ``params``,
    ``settings``, ``derived``, ``files`` ({role: path}), ``notes`` and ``warnings``; without
    it the settings are kept as given and every file the engine writes is an input file.
    An engine whose inputs are texts made from the structure offers ``input_texts(atoms,
    params, settings) -> {name: bytes}`` (what its ``prepare`` writes): they are hashed in
    memory, with the same record and key as the files would give.
    ``scratch``: a directory to prepare in (a fresh one inside it); else a temporary one.
    """
    hook = getattr(engine, "freeze", None)
    resolved: dict[str, Any] = dict(hook(atoms, params, settings)) if hook else {}
    frozen_params = dict(resolved.get("params", params))
    frozen_settings = dict(resolved.get("settings", settings))
    texts = getattr(engine, "input_texts", None)
    if texts is not None and resolved.get("files") is None:
        files = _text_files(texts(atoms, frozen_params, frozen_settings))
    else:
        with tempfile.TemporaryDirectory(prefix="freeze-", dir=scratch or _scratch_root()) as at:
            engine.prepare(atoms, frozen_params, Path(at), frozen_settings)
            files = _input_files(Path(at), resolved.get("files"))
    version_of = getattr(engine, "code_version", None)
    base = Frozen(
        engine=engine.name,
        params=frozen_params,
        settings=frozen_settings,
        derived=dict(resolved.get("derived", {})),
        files=files,
        code_version=str(version_of(frozen_settings)) if version_of else "",
        notes=tuple(resolved.get("notes", ())),
        warnings=tuple(resolved.get("warnings", ())),
    )
    structure = canonical_structure(atoms)  # once for both keys
    return replace(
        base,
        key=calculation_key(base, structure),
        loose_key=calculation_key(base, structure, loose=True),
    )


def _input_files(prepared: Path, named: Mapping[str, Any] | None) -> tuple[InputFile, ...]:
    """The engine's named files (absolute), else every file it wrote in ``prepared``."""
    if named is not None:
        return tuple(
            InputFile(role, Path(p).name, str(p), sha256_file(Path(p)))
            for role, p in sorted(named.items())
        )
    return tuple(
        InputFile(str(p.relative_to(prepared)), p.name, "", sha256_file(p))
        for p in sorted(prepared.rglob("*"))
        if p.is_file() and not p.is_symlink()
    )


def _text_files(texts: Mapping[str, bytes]) -> tuple[InputFile, ...]:
    """The input files an engine would write, from their texts (as :func:`_input_files`
    records every file of a prepared directory)."""
    return tuple(
        InputFile(str(path), path.name, "", hashlib.sha256(texts[str(path)]).hexdigest())
        for path in sorted(Path(name) for name in texts)
    )


def _scratch_root() -> str | None:
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


def canonical_structure(atoms: Atoms) -> dict[str, Any]:
    """The structure as the key sees it, independent of how a file wrote it.

    A periodic cell is its lengths (Å) and angles (°) with fractional positions wrapped
    into it (a CIF's cell is oriented otherwise than a POSCAR's); anything else keeps its
    Cartesian positions. Lengths are rounded to 1e-6 Å, fractions to 1e-7; atoms sorted.
    """
    import numpy as np

    pbc = [bool(p) for p in atoms.pbc]
    periodic = all(pbc) and atoms.cell.rank == 3
    if periodic:
        scaled = np.round(atoms.get_scaled_positions(wrap=False), 7) % 1.0
        positions = [[_rounded(x, 7) for x in row] for row in scaled]
        cell: list[Any] = [_rounded(x) for x in atoms.cell.cellpar()]
    else:
        positions = [[_rounded(x) for x in row] for row in atoms.positions]
        cell = [[_rounded(x) for x in row] for row in np.asarray(atoms.cell)]
    magmoms = atoms.get_initial_magnetic_moments()
    charges = atoms.get_initial_charges()
    rows = sorted(
        zip(
            atoms.numbers.tolist(),
            positions,
            [_rounded(m) for m in magmoms]
            if magmoms.ndim == 1
            else [",".join(_rounded(x) for x in m) for m in magmoms],
            [_rounded(q) for q in charges],
            strict=True,
        )
    )
    return {
        "numbers": [row[0] for row in rows],
        "positions": [row[1] for row in rows],
        "magmoms": [row[2] for row in rows] if magmoms.any() else [],
        "charges": [row[3] for row in rows] if charges.any() else [],
        "cell": cell,
        "fractional": periodic,
        "pbc": pbc,
    }


def _rounded(value: float, decimals: int = KEY_DECIMALS) -> str:
    """A number as fixed text with ``decimals`` decimals; -0 is 0.

    >>> _rounded(1.0000000004), _rounded(-1e-9)
    ('1.000000', '0.000000')
    """
    text = f"{float(value):.{decimals}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def calculation_key(frozen: Frozen, structure: Mapping[str, Any], loose: bool = False) -> str:
    """sha256 over the canonical frozen record (see the module docstring); ``structure``
    is :func:`canonical_structure` of the job's atoms."""
    canonical = {
        "engine": frozen.engine,
        "format": FORMAT_VERSIONS.get(frozen.engine, DEFAULT_FORMAT_VERSION),
        "code_version": "" if loose else frozen.code_version,
        "params": {**frozen.params, **frozen.derived},
        "structure": structure,
        "files": sorted([f.role, f.sha256] for f in frozen.files),
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def unkeyed(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record of a job whose inputs are known only when it starts (a parent's final
    structure, other jobs' results): no key, so never reused."""
    return {**record, "key": None, "loose_key": None}


def chained(record: Mapping[str, Any], parents: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The record of a job whose inputs are its parents' results (a ``from:`` structure, a
    fit of points): keyed by its own record (as planned on the input structure) and its
    parents' keys, in order. A parent without a key leaves it without one.

    Same parents (same keys) and same own parameters give the same key: the job is reused
    exactly when its parents were and its own inputs did not change.

    >>> a = {"key": "k", "loose_key": "l"}
    >>> chained(a, [{"key": "p", "loose_key": "q"}])["key"] == chained(a, [{"key": "p"}])["key"]
    True
    >>> chained(a, [{"key": None}])["key"] is None
    True
    """
    if not record.get("key") or not all(p.get("key") for p in parents):
        return unkeyed(record)
    return {
        **record,
        "key": _chain(record["key"], [p["key"] for p in parents]),
        "loose_key": _chain(
            record.get("loose_key") or "", [p.get("loose_key") or "" for p in parents]
        ),
        "parent_keys": [p["key"] for p in parents],
    }


def _chain(own: str, parents: Sequence[str]) -> str:
    text = json.dumps({"own": own, "parents": list(parents)}, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def job_settings(job: Any, job_file: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The engine settings a job was frozen with: its row's record, else its ``job.json``."""
    record = getattr(job, "frozen", None) or {}
    if isinstance(record.get("settings"), Mapping):
        return dict(record["settings"])
    if job_file and isinstance(job_file.get("engine_settings"), Mapping):
        return dict(job_file["engine_settings"])
    return None
