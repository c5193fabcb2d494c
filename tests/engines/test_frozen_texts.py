"""Engines whose inputs are texts made from the structure are frozen without files: the
record and the calculation key are those of the files ``prepare`` writes, hashed on disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ase.build import bulk

from orion_cli.engines.registry import get_engine
from orion_cli.frozen import freeze


class OnDisk:
    """The engine without ``input_texts``: freeze prepares its files in a scratch directory."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine

    def __getattr__(self, name: str) -> Any:
        if name == "input_texts":
            raise AttributeError(name)
        return getattr(self._engine, name)


LJ = {"calculator": "ase.calculators.lj.LennardJones", "calc.sigma": 2.3, "calc.epsilon": 0.4}


@pytest.mark.parametrize(
    ("name", "params"),
    [("emt", {}), ("emt", {"relax": True}), ("mock", {}), ("ase", LJ), ("chgnet", {})],
)
def test_inputs_frozen_from_texts_are_the_prepared_files(
    name: str, params: dict[str, Any], tmp_path: Path
) -> None:
    engine = get_engine(name)
    assert hasattr(engine, "input_texts")
    checked = engine.check(params, {})
    atoms = bulk("Cu", cubic=True)
    atoms.rattle(0.05, seed=3)
    from_texts = freeze(engine, atoms, checked, {})
    from_files = freeze(OnDisk(engine), atoms, checked, {}, tmp_path)
    assert from_texts.record() == from_files.record()
    assert from_texts.files and from_texts.key == from_files.key
    engine.prepare(atoms, checked, tmp_path, {})  # the job directory gets those very bytes
    [frozen] = from_texts.files
    assert (tmp_path / frozen.name).read_bytes() == engine.input_texts(atoms, checked, {})[
        frozen.name
    ]


def test_a_structure_the_engine_refuses_is_refused_when_frozen() -> None:
    from orion_cli.errors import UsageError

    engine = get_engine("emt")
    with pytest.raises(UsageError, match="emt has no parameters for U"):
        freeze(engine, bulk("U", "fcc", a=4.0), engine.check({}, {}), {})
