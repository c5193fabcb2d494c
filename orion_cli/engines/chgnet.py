"""CHGNet (a universal MLIP with magnetic moments): single points and relaxations, offline.

CHGNet's wheel ships its pretrained checkpoints; ``-p model=PATH`` takes any CHGNet model
file. The result has CHGNet's magnetic moments (``extras.magmoms_mu_b``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from orion_cli.engines.base import EngineParam
from orion_cli.engines.mlip import MlipEngine, MlipPackage, mlip_params

#: CHGNet 0.4.2's ``CHGNet.load`` table: model name -> checkpoint inside the package
PACKAGE = MlipPackage(
    module="chgnet",
    distribution="chgnet",
    default_model="0.3.0",
    bundled={
        "0.3.0": "pretrained/0.3.0/chgnet_0.3.0_e29f68s314m37.pth.tar",
        "0.2.0": "pretrained/0.2.0/chgnet_0.2.0_e30f77s348m32.pth.tar",
        "r2scan": "pretrained/r2scan/chgnet_r2scan_transfer_learning_e15f36s161m23.pth.tar",
    },
)


class ChgnetEngine(MlipEngine):
    name: ClassVar[str] = "chgnet"
    summary: ClassVar[str] = "CHGNet universal potential (energies, forces, stress, magmoms)"
    package: ClassVar[MlipPackage] = PACKAGE
    parameters: ClassVar[tuple[EngineParam, ...]] = mlip_params(PACKAGE)

    def load(self, model: str, device: str) -> Any:
        from chgnet.model import CHGNet
        from chgnet.model.dynamics import CHGNetCalculator

        if model in PACKAGE.bundled:
            loaded = CHGNet.load(model_name=model, use_device=device, verbose=False)
        else:
            loaded = CHGNet.from_file(model)
        return CHGNetCalculator(model=loaded, use_device=device)
