"""LAMMPS input writing: pair_style / pair_coeff lines and the input script (metal units)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orion_cli.engines import _command
from orion_cli.errors import UsageError

DEFAULT_POTENTIALS_DIR = "/usr/share/lammps/potentials"
DATA_NAME = "structure.data"
DUMP_NAME = "final.dump"
TRAJECTORY_NAME = "traj.dump"
BUILTIN_PAIR_STYLES = ("lj/cut", "eam", "eam/alloy")
STOP_FILE = "orion.STOP"  # the runner's request to stop (soft time limit): lammps_restart.py
RESTART_NAME = "orion.restart"
#: md / minimize look for the stop file every 10 steps; on it they stop, save and quit
STOP_CHECK = (
    f"variable orion_stop equal is_file({STOP_FILE})",
    "fix orion_halt all halt 10 v_orion_stop > 0 error soft",
)
STOP_AND_SAVE = f'if "${{orion_stop}} > 0" then "write_restart {RESTART_NAME}" "quit"'
#: commands orion's own script and parser depend on: not allowed in before_run / after_run
FORBIDDEN_COMMANDS = frozenset(
    {
        "units",
        "atom_style",
        "read_data",
        "thermo_style",
        "thermo_modify",
        "log",
        "clear",
        "write_dump",
    }
)
_PAIR_STYLE = re.compile(r"[A-Za-z0-9_/.*+-]+")
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


def command_list(name: str, value: Any) -> list[str]:
    """Read a list of LAMMPS command lines (one string is one line); refuse control characters.

    >>> command_list("before_run", "pair_modify shift yes")
    ['pair_modify shift yes']
    """
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise UsageError(
            f"engine 'lammps': {name} must be a list of command lines",
            f'write {name} = ["pair_modify shift yes"] in --params',
        )
    for item in items:
        if any(ord(c) < 32 and c != "\t" or ord(c) == 127 for c in item):
            raise UsageError(
                f"engine 'lammps': {name} holds a control character ({item!r})",
                "one command per list item",
            )
    return [item for item in items if item.strip()]


def check_custom_inputs(params: dict[str, Any]) -> None:
    """Check pair_coeff / potential_files / before_run / after_run / dump_every in place."""
    style = params["pair_style"]
    words = str(style).split()
    if not isinstance(style, str) or not words or not _PAIR_STYLE.fullmatch(words[0]):
        raise UsageError(
            f"engine 'lammps': pair_style={style!r} is not a LAMMPS pair style",
            "write e.g. -p pair_style=sw",
        )
    command_list("pair_style", style)
    custom = style not in BUILTIN_PAIR_STYLES
    if custom and params["pair_coeff"] is None:
        raise UsageError(
            f"engine 'lammps': pair_style {style} needs pair_coeff",
            "add e.g. -p 'pair_coeff=* * Si.sw {elements}' -p potential_files=Si.sw",
        )
    if not custom and (params["pair_coeff"] is not None or params["potential_files"]):
        raise UsageError(
            f"engine 'lammps': orion writes pair_coeff for {style}",
            "drop pair_coeff / potential_files, or use potential_file",
        )
    params["pair_coeff"] = command_list("pair_coeff", params["pair_coeff"]) if custom else None
    params["potential_files"] = command_list("potential_files", params["potential_files"])
    for name in ("before_run", "after_run"):
        params[name] = command_list(name, params[name])
        for line in params[name]:
            if line.split()[0] in FORBIDDEN_COMMANDS:
                raise UsageError(
                    f"engine 'lammps': {name} may not use '{line.split()[0]}'",
                    "orion's script and result reader depend on it",
                )
    dump_every = params["dump_every"]
    if isinstance(dump_every, bool) or not isinstance(dump_every, int) or dump_every < 0:
        raise UsageError(f"engine 'lammps': dump_every={dump_every!r} must be a whole number ≥ 0")
    if dump_every and params["task"] == "energy":
        raise UsageError("engine 'lammps': dump_every needs task md or minimize")


def pair_commands(
    params: Mapping[str, Any], elements: list[str], workdir: Path, settings: Mapping[str, Any]
) -> list[str]:
    """Return the pair_style / pair_coeff lines; copy potential files into ``workdir``."""
    style = params["pair_style"]
    if style not in BUILTIN_PAIR_STYLES:
        directory = _command.setting_path(settings, "potentials_dir", DEFAULT_POTENTIALS_DIR)
        assert directory is not None
        for name in params.get("potential_files") or []:
            copy_potential(name, directory, workdir, elements, style)
        lines = [f"pair_style {style}"]
        for line in params.get("pair_coeff") or []:
            line = line.replace("{elements}", " ".join(elements))
            lines.append(line if line.split()[0] == "pair_coeff" else f"pair_coeff {line}")
        return lines
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


def candidates(potentials_dir: Path, elements: list[str], style: str) -> str:
    """Name the files of ``style`` in ``potentials_dir``, those for ``elements`` first.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> for n in ("Cu_u3.eam", "Ag_u3.eam", "AlCu.eam.alloy"): (d / n).touch()
    >>> candidates(d, ["Cu"], "eam").split(": ", 1)[1]
    'Cu_u3.eam'
    >>> candidates(d, ["Ar"], "eam").split(": ", 1)[1]
    'none for Ar; its eam files: Ag_u3.eam, Cu_u3.eam'
    """
    suffix = {"eam/alloy": ".eam.alloy", "eam": ".eam"}.get(style, "")
    of_style = sorted(p.name for p in potentials_dir.glob(f"*{suffix}") if p.is_file())
    mine = [n for n in of_style if all(e in n for e in elements)] or [
        n for n in of_style if any(e in n for e in elements)
    ]
    if mine:
        return f"candidates in {potentials_dir}: {', '.join(mine[:8])}"
    listed = ", ".join(of_style[:8]) + (", ..." if len(of_style) > 8 else "")
    return (
        f"candidates in {potentials_dir}: none for {'-'.join(elements)}; "
        f"its {style or 'potential'} files: {listed or 'none'}"
    )


def copy_potential(
    name: str, potentials_dir: Path, workdir: Path, elements: list[str], style: str
) -> str:
    """Copy a potential file into ``workdir`` (so the job is self-contained); return its name."""
    source = Path(name).expanduser()
    if not source.is_absolute():
        source = potentials_dir / name
    if not source.is_file():
        raise UsageError(
            f"potential file {source} does not exist",
            f"{candidates(potentials_dir, elements, style)} — or set [engines.lammps] "
            "potentials_dir in orion.toml (ORION_LAMMPS_POTENTIALS_DIR)",
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
        *(params.get("before_run") or []),
        *with_trajectory(params, elements, task_commands(params, has_velocities)),
        *(params.get("after_run") or []),
        f"write_dump all custom {DUMP_NAME} id type element x y z vx vy vz fx fy fz "
        f"modify sort id element {' '.join(elements)} format float %.15g",
    ]
    return "\n".join(lines) + "\n"


def with_trajectory(params: Mapping[str, Any], elements: list[str], task: list[str]) -> list[str]:
    """Wrap the task's first run / minimize in a trajectory dump when ``dump_every`` is set."""
    every = int(params.get("dump_every") or 0)
    if not every:
        return task
    index = next(i for i, line in enumerate(task) if line.startswith(("run ", "minimize ")))
    return [
        *task[:index],
        f"dump orion_traj all custom {every} {TRAJECTORY_NAME} id element x y z vx vy vz fx fy fz",
        f"dump_modify orion_traj sort id element {' '.join(elements)} format float %.15g",
        task[index],
        "undump orion_traj",
        *task[index + 1 :],
    ]


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
            *STOP_CHECK,
            f"minimize {float(params['energy_tol']):.10g} "
            f"{float(params['force_tol_ev_per_a']):.10g} {iterations} {10 * iterations}",
            STOP_AND_SAVE,
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
    lines += [*STOP_CHECK, f"run {int(params['steps'])} upto", STOP_AND_SAVE]
    if params["thermostat"] == "langevin":
        # langevin adds random and drag forces to f; recompute so the dump has the potential's
        lines[-2:-2] = [  # before the run (and the stop check's save after it)
            f"fix thermostat all langevin {temperature_k:.10g} {temperature_k:.10g} "
            f"{damping_ps:.10g} {seed}"
        ]
        lines += ["unfix thermostat", "run 0 post no"]
    return lines
