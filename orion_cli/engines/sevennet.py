"""SevenNet (an equivariant universal MLIP): single points and relaxations, offline.

SevenNet's wheel ships ``7net-0`` and a few other checkpoints; the larger models
(``7net-omat``, ``7net-mf-ompa``, ``7net-omni``) are downloaded by SevenNet at run time,
so orion takes them only as a file: ``-p model=PATH``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from orion_cli.engines.base import EngineParam
from orion_cli.engines.mlip import MlipEngine, MlipPackage, bundled_file, mlip_params

#: SevenNet 0.13.0's checkpoints (sevenn/_const.py); the multi-fidelity ``7net-mf-0`` needs
#: a ``modal`` and is left to the ase engine
PACKAGE = MlipPackage(
    module="sevenn",
    distribution="sevenn",
    default_model="7net-0",
    bundled={
        "7net-0": "pretrained_potentials/SevenNet_0__11Jul2024/checkpoint_sevennet_0.pth",
        "7net-0_22may2024": "pretrained_potentials/SevenNet_0__22May2024/checkpoint_sevennet_0.pth",
        "7net-l3i5": "pretrained_potentials/SevenNet_l3i5/checkpoint_l3i5.pth",
    },
    downloaded=("7net-mf-ompa", "7net-omat", "7net-omni", "7net-omni-i8", "7net-omni-i12"),
    aliases={
        "sevennet-0": "7net-0",
        "7net-0_11jul2024": "7net-0",
        "sevennet-0_11jul2024": "7net-0",
        "sevennet-0_22may2024": "7net-0_22may2024",
        "sevennet-l3i5": "7net-l3i5",
        "sevennet-mf-ompa": "7net-mf-ompa",
        "sevennet-omat": "7net-omat",
        "sevennet-omni": "7net-omni",
    },
)


class SevennetEngine(MlipEngine):
    name: ClassVar[str] = "sevennet"
    summary: ClassVar[str] = "SevenNet universal potential (energies, forces, stress)"
    package: ClassVar[MlipPackage] = PACKAGE
    parameters: ClassVar[tuple[EngineParam, ...]] = mlip_params(PACKAGE)
    estimate_s: ClassVar[float] = 5.0

    def load(self, model: str, device: str) -> Any:
        from sevenn.calculator import SevenNetCalculator

        # always a file, never a name SevenNet might download
        checkpoint = bundled_file(PACKAGE, model) if model in PACKAGE.bundled else model
        return SevenNetCalculator(model=str(checkpoint), device=device)
