"""Pseudopotentials for pw.x: explicit files, named families, the default rule, UPF headers.

Which file serves an element, first match wins:

1. ``-p pseudo.Si=FILE`` (a name in the pseudopotential directory, or a path);
2. ``-p pseudo_family=NAME`` (a family's file for the element);
3. ``[engines.qe] pseudopotentials = {Si = "FILE"}`` in orion.toml;
4. ``[engines.qe] pseudo_family = "NAME"`` in orion.toml;
5. the default rule: in ``pseudo_dir``, files named ``<El>.*.upf`` or ``<El>_*.upf`` (any
   case); prefer ``.<pseudo_functional>-`` (pbe), then not relativistic, then alphabetical.

A family is a directory plus a table of files and recommended cutoffs (Ry): the shipped
ones below describe Debian's ``quantum-espresso-data``; a site adds its own (SSSP,
PseudoDojo) as ``[engines.qe.families.NAME]`` with ``dir``, ``files`` and ``cutoffs_ry``.
The choice is resolved once, at submit, to absolute paths stored with the job.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orion_cli.engines._command import setting_mapping
from orion_cli.errors import UsageError

DEBIAN_DIR = "/usr/share/espresso/pseudo"

#: families shipped with orion: Debian's quantum-espresso-data, one file per element;
#: cutoffs (wavefunctions, charge density) in Ry are the files' own "Suggested minimum
#: cutoff" lines; None where the file suggests none
SHIPPED_FAMILIES: dict[str, dict[str, Any]] = {
    "debian-pbe": {
        "dir": DEBIAN_DIR,
        "files": {
            "B": "B.pbe-n-kjpaw_psl.1.0.0.UPF",
            "C": "C.pbe-n-kjpaw_psl.0.1.UPF",
            "Cr": "Cr.pbe-spn-kjpaw_psl.1.0.0.UPF",
            "Cu": "Cu.pbe-kjpaw.UPF",
            "Fe": "Fe.pbe-spn-rrkjus_psl.0.2.1.UPF",
            "Ge": "Ge.pbe-kjpaw.UPF",
            "H": "H.pbe-kjpaw.UPF",
            "I": "I.pbe-n-kjpaw_psl.1.0.0.UPF",
            "N": "N.pbe-n-kjpaw_psl.1.0.0.UPF",
            "Ni": "Ni.pbe-spn-kjpaw_psl.1.0.0.UPF",
            "O": "O.pbe-kjpaw.UPF",
            "Si": "Si.pbe-nl-rrkjus_psl.1.0.0.UPF",
        },
        "cutoffs_ry": {
            "B": [43, 325],
            "C": [37, 147],
            "Cr": [48, 457],
            "Cu": [47, 189],
            "Fe": [64, 782],
            "Ge": [17, 69],
            "H": [46, 201],
            "I": [36, 154],
            "N": [44, 320],
            "Ni": [75, 476],
            "O": [38, 151],
            "Si": [44, 175],
        },
    },
    "debian-lda": {
        "dir": DEBIAN_DIR,
        "files": {
            "Al": "Al.pz-vbc.UPF",
            "As": "As.pz-bhs.UPF",
            "Au": "Au.pz-rrkjus_aewfc.UPF",
            "B": "B.pz-vbc.UPF",
            "C": "C.pz-rrkjus.UPF",
            "Cu": "Cu.pz-d-rrkjus.UPF",
            "Fe": "Fe.pz-nd-rrkjus.UPF",
            "H": "H.pz-vbc.UPF",
            "Mg": "Mg.pz-n-vbc.UPF",
            "Ni": "Ni.pz-nd-rrkjus.UPF",
            "O": "O.pz-kjpaw.UPF",
            "Pb": "Pb.pz-d-van.UPF",
            "Si": "Si.pz-vbc.UPF",
            "Ti": "Ti.pz-sp-van_ak.UPF",
        },
        "cutoffs_ry": {"Au": [23, 297], "O": [38, 152]},
    },
}

_ATTRIBUTE = re.compile(r'\b(pseudo_type|functional|wfc_cutoff|rho_cutoff)\s*=\s*"([^"]*)"')
_SUGGESTED = re.compile(r"Suggested minimum cutoff for (wavefunctions|charge density):\s*([\d.]+)")
_V1_TYPE = re.compile(r"^\s*(US|NC|PAW|SL)\b.*(pseudopotential|Ultrasoft|Norm|PAW)", re.M | re.I)


@dataclass(frozen=True)
class UpfHeader:
    """What orion reads from a UPF file's header: its type, functional, suggested cutoffs."""

    pseudo_type: str  # NC, US (USPP), PAW, ...
    functional: str
    wfc_cutoff_ry: float | None
    rho_cutoff_ry: float | None

    @property
    def needs_dual_8(self) -> bool:
        """Ultrasoft and PAW need ecutrho ≈ 8–12 × ecutwfc; norm-conserving 4×."""
        return self.pseudo_type.upper() in ("US", "USPP", "PAW")


def read_upf_header(path: Path, max_bytes: int = 256 * 1024) -> UpfHeader:
    """Read a UPF (v1 or v2) header; unknown fields are empty or None.

    >>> import tempfile, os
    >>> with tempfile.NamedTemporaryFile("w", suffix=".UPF", delete=False) as f:
    ...     _ = f.write('<PP_HEADER pseudo_type="USPP" functional="PBE" wfc_cutoff="4.4e1"'
    ...                 ' rho_cutoff="1.75e2"/>')
    >>> read_upf_header(Path(f.name)); os.unlink(f.name)
    UpfHeader(pseudo_type='USPP', functional='PBE', wfc_cutoff_ry=44.0, rho_cutoff_ry=175.0)
    """
    with path.open("rb") as handle:
        text = handle.read(max_bytes).decode("utf-8", errors="replace")
    found = {key: value.strip() for key, value in _ATTRIBUTE.findall(text)}
    suggested = {kind: float(value) for kind, value in _SUGGESTED.findall(text)}
    pseudo_type = found.get("pseudo_type", "")
    if not pseudo_type:
        v1 = _V1_TYPE.search(text)
        pseudo_type = v1.group(1).upper() if v1 else ""
    return UpfHeader(
        pseudo_type=pseudo_type,
        functional=" ".join(found.get("functional", "").split()),
        wfc_cutoff_ry=_positive(found.get("wfc_cutoff")) or suggested.get("wavefunctions") or None,
        rho_cutoff_ry=_positive(found.get("rho_cutoff")) or suggested.get("charge density") or None,
    )


def _positive(text: str | None) -> float | None:
    try:
        value = float(text) if text else 0.0
    except ValueError:
        return None
    return value if value > 0 else None


def family_table(name: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The family ``name``: the site's ``[engines.qe.families.NAME]``, else a shipped one."""
    own = settings.get("families") or {}
    table = own.get(name) if isinstance(own, Mapping) else None
    if table is None:
        table = SHIPPED_FAMILIES.get(name)
    if not isinstance(table, Mapping) or not isinstance(table.get("files"), Mapping):
        known = sorted({*SHIPPED_FAMILIES, *(own if isinstance(own, Mapping) else {})})
        raise UsageError(
            f"engine 'qe': no pseudopotential family '{name}'",
            f"use one of: {', '.join(known)}, or define [engines.qe.families.{name}] with "
            "dir, files and cutoffs_ry in orion.toml",
        )
    return {
        "dir": str(table.get("dir") or DEBIAN_DIR),
        "files": {str(k): str(v) for k, v in table["files"].items()},
        "cutoffs_ry": {str(k): list(v) for k, v in (table.get("cutoffs_ry") or {}).items()},
    }


@dataclass(frozen=True)
class Choice:
    """The file chosen for one element, why, and the family's recommended cutoffs (Ry)."""

    path: Path
    why: str
    cutoffs_ry: tuple[float | None, float | None] = (None, None)


def choose(
    element: str, params: Mapping[str, Any], settings: Mapping[str, Any], pseudo_dir: Path
) -> Choice:
    """The pseudopotential file for ``element``, by the order in the module docstring."""
    explicit = (params.get("pseudo") or {}).get(element)
    if explicit:
        origin = f"-p pseudo.{element}"
        return Choice(_file(pseudo_dir, str(explicit), origin), origin)
    if params.get("pseudo_family"):
        return _from_family(element, str(params["pseudo_family"]), settings, "-p pseudo_family")
    configured = setting_mapping(settings, "qe", "pseudopotentials")  # a table or "Si=f,..."
    if configured.get(element):
        name = str(configured[element])
        origin = "[engines.qe] pseudopotentials"
        return Choice(_file(pseudo_dir, name, origin), origin)
    if settings.get("pseudo_family"):
        return _from_family(
            element, str(settings["pseudo_family"]), settings, "[engines.qe] pseudo_family"
        )
    functional = str(settings.get("pseudo_functional") or "pbe")
    return Choice(_by_rule(element, pseudo_dir, functional), "default rule")


def _from_family(element: str, name: str, settings: Mapping[str, Any], origin: str) -> Choice:
    table = family_table(name, settings)
    if element not in table["files"]:
        raise UsageError(
            f"engine 'qe': family '{name}' ({origin}) has no pseudopotential for {element}",
            f"add -p pseudo.{element}=FILE, or pick a family that covers {element}",
        )
    cutoffs = table["cutoffs_ry"].get(element) or [None, None]
    path = _file(Path(table["dir"]), table["files"][element], f"family '{name}'")
    return Choice(path, f"family {name}", (cutoffs[0], cutoffs[1]))


def _file(directory: Path, name: str, origin: str) -> Path:
    """``name`` in ``directory`` (or a path), absolute; UsageError naming ``origin``."""
    path = Path(name).expanduser()
    path = path if path.is_absolute() or "/" in name else directory / path
    path = path.absolute()
    if not path.is_file():
        raise UsageError(
            f"engine 'qe': pseudopotential {path} ({origin}) does not exist",
            "give a file in the pseudopotential directory or a path to one",
        )
    return path


def _by_rule(element: str, pseudo_dir: Path, functional: str) -> Path:
    if not pseudo_dir.is_dir():
        raise UsageError(
            f"pseudopotential directory {pseudo_dir} does not exist",
            "set [engines.qe] pseudo_dir in orion.toml (or ORION_QE_PSEUDO_DIR)",
        )
    pattern = re.compile(rf"^{re.escape(element)}[._-].*\.upf$", re.I)
    candidates = sorted(
        p.name for p in pseudo_dir.iterdir() if p.is_file() and pattern.match(p.name)
    )
    if not candidates:
        raise UsageError(
            f"no pseudopotential for element {element} in {pseudo_dir}",
            f"give -p pseudo.{element}=FILE or -p pseudo_family=NAME (orion ships debian-pbe "
            "and debian-lda)",
        )
    best = min(
        candidates,
        key=lambda n: (f".{functional.lower()}-" not in n.lower(), "rel-" in n.lower(), n),
    )
    return (pseudo_dir / best).absolute()
