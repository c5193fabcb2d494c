"""pw.x's input as namelists: shared by the engine (writes pw.in) and its retries (rewrite it)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

INPUT_NAME = "pw.in"


def pw_input_data(params: Mapping[str, Any], pseudo_dir: Path) -> dict[str, dict[str, Any]]:
    """Map orion parameters onto pw.x namelists; raw ``input`` keys are added last."""
    calculation = params["calculation"]
    control: dict[str, Any] = {
        "calculation": calculation,
        "prefix": "orion",
        "outdir": "./out",
        "pseudo_dir": str(pseudo_dir),
        "tprnfor": True,
        "tstress": True,
    }
    if calculation != "scf":
        control["nstep"] = int(params["ion_steps"])
        control["forc_conv_thr"] = float(params["force_conv_thr_ry_per_bohr"])
    system: dict[str, Any] = {"ecutwfc": float(params["ecutwfc_ry"])}
    if params["ecutrho_ry"] is not None:
        system["ecutrho"] = float(params["ecutrho_ry"])
    if params["smearing"] == "none":
        system["occupations"] = "fixed"
    else:
        system.update(
            occupations="smearing", smearing=params["smearing"], degauss=float(params["degauss_ry"])
        )
    if params["spin"]:
        system["nspin"] = 2
    electrons = {
        "conv_thr": float(params["conv_thr_ry"]),
        "electron_maxstep": int(params["electron_maxstep"]),
        "mixing_beta": float(params["mixing_beta"]),
    }
    cell = {"press": float(params["press_kbar"])} if calculation == "vc-relax" else {}
    data = {"control": control, "system": system, "electrons": electrons, "ions": {}, "cell": cell}
    for namelist, keys in (params.get("input") or {}).items():
        data[namelist].update(keys)
    return data
