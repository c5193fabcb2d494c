"""LAMMPS input writing: pair_style / pair_coeff lines and the input script (metal units)."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orion_cli.engines import _command
from orion_cli.errors import UsageError

DEFAULT_POTENTIALS_DIR = "/usr/share/lammps/potentials"
DATA_NAME = "structure.data"
DUMP_NAME = "final.dump"
THERMO_COLUMNS = (
    "step",
    "temp",
    "pe",
    "ke",
    "etotal",
    "press",
    "pxx",
    "pyy",
    "pzz",
    "pyz",
    "pxz",
    "pxy",
    "vol",
)


def per_species(name: str, value: Any) -> dict[str, float]:
    """Read an lj/cut value: a number ('*' = every pair) or 'Ar=0.01,Ar-Kr=0.02' / a table.

    >>> per_species("sigma_a", "Ar=3.4, Ar-Kr=3.5")
    {'Ar': 3.4, 'Ar-Kr': 3.5}
    >>> per_species("sigma_a", 3.4)
    {'*': 3.4}
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {"*": float(value)}
    items = (
        value.items()
        if isinstance(value, Mapping)
        else (item.split("=", 1) for item in str(value).split(",") if item.strip())
    )
    table: dict[str, float] = {}
    for item in items:
        try:
            key, number = item
            table[str(key).strip()] = float(number)
        except ValueError:
            raise UsageError(
                f"engine 'lammps': {name}={value!r} cannot be read",
                f"write {name}=3.4 or {name}='Ar=3.4,Ar-Kr=3.5'",
            ) from None
    return table


def lj_pair_value(name: str, table: Mapping[str, float], a: str, b: str) -> float:
    """Return the lj/cut value for the pair a-b: explicit pair, single value or mixed."""
    for key in (f"{a}-{b}", f"{b}-{a}", "*"):
        if key in table:
            return table[key]
    if a in table and b in table:
        if name == "epsilon_ev":
            return float((table[a] * table[b]) ** 0.5)
        return (table[a] + table[b]) / 2
    raise UsageError(
        f"engine 'lammps': no {name} for the pair {a}-{b}",
        f"add {a}=..., {b}=... or {a}-{b}=... to {name}",
    )


def pair_commands(
    params: Mapping[str, Any], elements: list[str], workdir: Path, settings: Mapping[str, Any]
) -> list[str]:
    """Return the pair_style / pair_coeff lines; copy potential files into ``workdir``."""
    style = params["pair_style"]
    if style == "lj/cut":
        eps = per_species("epsilon_ev", params["epsilon_ev"])
        sigma = per_species("sigma_a", params["sigma_a"])
        pairs = [(i, j) for i in range(len(elements)) for j in range(i, len(elements))]
        sigmas = {p: lj_pair_value("sigma_a", sigma, elements[p[0]], elements[p[1]]) for p in pairs}
        cutoff_a = params["cutoff_a"] or 2.5 * max(sigmas.values())
        lines = [f"pair_style lj/cut {cutoff_a:.10g}"]
        for i, j in pairs:
            epsilon = lj_pair_value("epsilon_ev", eps, elements[i], elements[j])
            lines.append(f"pair_coeff {i + 1} {j + 1} {epsilon:.10g} {sigmas[(i, j)]:.10g}")
        return lines
    potentials_dir = _command.setting_path(settings, "potentials_dir", DEFAULT_POTENTIALS_DIR)
    assert potentials_dir is not None
    if style == "eam":
        files = eam_files(params["potential_file"], elements)
        lines = ["pair_style eam"]
        for index, element in enumerate(elements, start=1):
            if element not in files:
                raise UsageError(
                    f"engine 'lammps': no eam file for {element}",
                    f"add {element}=<file> to potential_file",
                )
            local = copy_potential(files[element], potentials_dir, workdir, [element], style)
            lines.append(f"pair_coeff {index} {index} {local}")
        return lines
    local = copy_potential(str(params["potential_file"]), potentials_dir, workdir, elements, style)
    return ["pair_style eam/alloy", f"pair_coeff * * {local} {' '.join(elements)}"]


def eam_files(value: Any, elements: list[str]) -> dict[str, str]:
    """Return element → eam (funcfl) file: one name for one element, else 'Cu=a,Ni=b'.

    >>> eam_files("Cu_u3.eam", ["Cu"])
    {'Cu': 'Cu_u3.eam'}
    """
    if isinstance(value, Mapping) or "=" in str(value):
        return _command.setting_mapping({"potential_file": value}, "lammps", "potential_file")
    if len(elements) > 1:
        raise UsageError(
            "engine 'lammps': eam with several elements needs one file each",
            "write potential_file='Cu=Cu_u3.eam,Ni=Ni_u3.eam' (or use eam/alloy)",
        )
    return {elements[0]: str(value)}


def copy_potential(
    name: str, potentials_dir: Path, workdir: Path, elements: list[str], style: str
) -> str:
    """Copy a potential file into ``workdir`` (so the job is self-contained); return its name."""
    source = Path(name).expanduser()
    if not source.is_absolute():
        source = potentials_dir / name
    if not source.is_file():
        suffix = ".eam.alloy" if style == "eam/alloy" else ".eam"
        found = sorted(p.name for p in potentials_dir.glob(f"*{elements[0]}*{suffix}"))
        raise UsageError(
            f"potential file {source} does not exist",
            f"candidates in {potentials_dir}: {', '.join(found[:8]) or 'none'} — or set "
            "[engines.lammps] potentials_dir in orion.toml (ORION_LAMMPS_POTENTIALS_DIR)",
        )
    if style == "eam/alloy":
        lines = source.read_text(errors="replace").splitlines()
        listed = lines[3].split()[1:] if len(lines) > 3 else []
        missing = [e for e in elements if e not in listed]
        if missing:
            raise UsageError(
                f"{source.name} has no parameters for {', '.join(missing)}",
                f"it lists: {' '.join(listed)}; choose another potential_file",
            )
    shutil.copyfile(source, workdir / source.name)
    return source.name


def input_script(
    params: Mapping[str, Any],
    elements: list[str],
    pair_lines: list[str],
    pbc: Any,
    has_velocities: bool,
) -> str:
    """Return the LAMMPS input script text (metal units: eV, Å, ps, bar)."""
    boundary = " ".join("p" if periodic else "s" for periodic in pbc)
    lines = [
        "# written by orion (lammps engine); units metal: eV, Å, ps, bar, K",
        "units metal",
        "atom_style atomic",
        f"boundary {boundary}",
        f"read_data {DATA_NAME}",
        *pair_lines,
        f"thermo_style custom {' '.join(THERMO_COLUMNS)}",
        "thermo_modify norm no format float %.15g",
        f"thermo {int(params['thermo_every'])}",
        *task_commands(params, has_velocities),
        f"write_dump all custom {DUMP_NAME} id type element x y z vx vy vz fx fy fz "
        f"modify sort id element {' '.join(elements)} format float %.15g",
    ]
    return "\n".join(lines) + "\n"


def task_commands(params: Mapping[str, Any], has_velocities: bool) -> list[str]:
    """Return the commands for the task: run 0, minimize or md."""
    task = params["task"]
    if task == "energy":
        return ["run 0"]
    if task == "minimize":
        lines = []
        if params["relax_box"] != "none":
            lines.append(
                f"fix box_relax all box/relax {params['relax_box']} "
                f"{float(params['pressure_bar']):.10g}"
            )
        iterations = int(params["max_iterations"])
        lines += [
            "min_style cg",
            f"minimize {float(params['energy_tol']):.10g} "
            f"{float(params['force_tol_ev_per_a']):.10g} {iterations} {10 * iterations}",
        ]
        return lines
    temperature_k = float(params["temperature_k"])
    damping_ps = float(params["thermostat_damping_fs"]) / 1000
    seed = int(params["seed"])
    lines = [f"timestep {float(params['timestep_fs']) / 1000:.10g}"]
    if not has_velocities and temperature_k > 0:
        lines.append(f"velocity all create {temperature_k:.10g} {seed} dist gaussian mom yes")
    if params["thermostat"] == "nose-hoover":
        lines.append(
            f"fix integrate all nvt temp {temperature_k:.10g} {temperature_k:.10g} "
            f"{damping_ps:.10g}"
        )
    else:
        lines.append("fix integrate all nve")
    lines.append(f"run {int(params['steps'])}")
    if params["thermostat"] == "langevin":
        # langevin adds random and drag forces to f; recompute so the dump has the potential's
        lines[-1:-1] = [
            f"fix thermostat all langevin {temperature_k:.10g} {temperature_k:.10g} "
            f"{damping_ps:.10g} {seed}"
        ]
        lines += ["unfix thermostat", "run 0 post no"]
    return lines
