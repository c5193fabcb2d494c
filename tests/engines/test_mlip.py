"""The MLIP engines' fast parts: model names and files checked at submit, the device and
thread choice, the per-process model cache, ``orion engines`` without importing torch.

The calculations themselves (CHGNet and SevenNet against the calculator run by hand) are
in ``test_mlip_real.py``, marked ``mlip``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from orion_cli.engines.chgnet import PACKAGE as CHGNET
from orion_cli.engines.chgnet import ChgnetEngine
from orion_cli.engines.mlip import (
    LoadedModel,
    MlipPackage,
    ModelCache,
    bundled_file,
    choose_device,
    cpu_threads,
    package_status,
    sha256_of,
)
from orion_cli.engines.sevennet import PACKAGE as SEVENNET
from orion_cli.errors import UsageError
from tests.conftest import EXAMPLES, need
from tests.helpers import orion


@pytest.fixture
def installed() -> None:
    need(package_status(CHGNET)[0] and package_status(SEVENNET)[0], "the ml extra (chgnet, sevenn)")


def test_bundled_names_stay_names_and_a_file_becomes_absolute(
    installed: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = ChgnetEngine()
    assert engine.check({}, {})["model"] == "0.3.0"
    assert engine.check({"model": "R2SCAN"}, {})["model"] == "r2scan"
    (tmp_path / "my.pth.tar").write_bytes(b"weights")
    monkeypatch.chdir(tmp_path)
    assert engine.check({"model": "my.pth.tar"}, {})["model"] == str(tmp_path / "my.pth.tar")


@pytest.mark.parametrize(
    ("engine", "model", "words"),
    [
        ("sevennet", "7net-omat", "would be downloaded at run time"),
        ("sevennet", "SevenNet-MF-ompa", "give -p model=PATH"),
        ("chgnet", "0.4.0", "unknown model '0.4.0' — bundled models: 0.3.0, 0.2.0, r2scan"),
        ("chgnet", "models/mine.pth.tar", "model file models/mine.pth.tar not found"),
        ("chgnet", "gpu-please", "unknown model"),
    ],
)
def test_a_model_that_would_be_downloaded_or_is_missing_is_refused_at_submit(
    installed: None, orion_home: Path, engine: str, model: str, words: str
) -> None:
    result = orion(
        "submit", str(EXAMPLES / "Si.cif"), "-e", engine, "-p", f"model={model}", expect=2
    )
    assert words in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert orion("ls").output.count("Si") == 0  # nothing recorded


def test_device_param_takes_only_its_choices(installed: None) -> None:
    with pytest.raises(UsageError, match="device='tpu' is not allowed") as refused:
        ChgnetEngine().check({"device": "tpu"}, {})
    assert refused.value.hint == "use one of: auto, cpu, cuda"


def test_device_choice_follows_the_visible_gpus() -> None:
    """A stand-in for torch's device count: this machine has no GPU."""
    one, none = (lambda: 1), (lambda: 0)
    assert choose_device("auto", {"CUDA_VISIBLE_DEVICES": "3"}, one) == "cuda"
    assert choose_device("auto", {"CUDA_VISIBLE_DEVICES": ""}, one) == "cpu"  # slot without
    assert choose_device("auto", {}, none) == "cpu"
    assert choose_device("cpu", {"CUDA_VISIBLE_DEVICES": "0"}, one) == "cpu"
    assert choose_device("cuda", {"CUDA_VISIBLE_DEVICES": "1"}, one) == "cuda"
    with pytest.raises(RuntimeError, match=r"no GPU is visible .*'-1'.*--gpus 1"):
        choose_device("cuda", {"CUDA_VISIBLE_DEVICES": "-1"}, one)


def test_torch_threads_follow_the_job_not_the_node() -> None:
    assert cpu_threads({"SLURM_CPUS_PER_TASK": "2", "SLURM_CPUS_ON_NODE": "16"}, 64) == 2
    assert cpu_threads({"SLURM_CPUS_ON_NODE": "1"}, 64) == 1
    assert cpu_threads({"OMP_NUM_THREADS": "3"}, 64) == 3
    assert cpu_threads({"SLURM_CPUS_PER_TASK": "x"}, 5) == 5


def test_the_cache_loads_a_model_once_per_key() -> None:
    cache = ModelCache()
    made: list[str] = []

    def load(name: str) -> LoadedModel:
        made.append(name)
        return LoadedModel(object(), {"model": name})

    first, first_s = cache.get(("chgnet", "0.3.0", "cpu"), lambda: load("a"))
    again, again_s = cache.get(("chgnet", "0.3.0", "cpu"), lambda: load("b"))
    other, _ = cache.get(("chgnet", "r2scan", "cpu"), lambda: load("c"))
    assert (made, cache.loads, again is first, again_s, other is first) == (
        ["a", "c"],
        2,
        True,
        0.0,
        False,
    )
    assert first_s >= 0.0


def test_sha256_matches_sha256sum(installed: None) -> None:
    path = bundled_file(CHGNET, "0.3.0")
    expected = subprocess.run(
        ["sha256sum", str(path)], capture_output=True, text=True, check=True
    ).stdout.split()[0]
    assert sha256_of(path) == expected


def test_orion_engines_says_which_mlips_are_usable_without_importing_torch(
    installed: None, orion_home: Path
) -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from orion_cli.cli import app\n"
        "out = CliRunner().invoke(app, ['engines']).output\n"
        "print([line for line in out.splitlines() if line.startswith(('ok', '--'))])\n"
        "print(sorted(m for m in ('torch', 'chgnet', 'sevenn') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[-1] == "[]"
    assert "ok chgnet" in out[0] and "chgnet 0.4.2, torch 2.13.0" in out[0]
    assert "bundled models: 7net-0, 7net-0_22may2024, 7net-l3i5" in out[0]


def test_a_missing_package_is_reported_with_the_install_line() -> None:
    absent = MlipPackage("no_such_mlip_pkg", "no-such-mlip", "m", {"m": "m.pth"})
    assert package_status(absent) == (
        False,
        "no-such-mlip is not installed — install the extra: pip install 'orion-cli[ml]'",
    )


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"task": "md", "relax": True}, "task=md runs from the structure as given"),
        ({"task": "md", "steps": 0}, "steps=0 must be a positive number"),
        ({"task": "md", "ensemble": "nve"}, "ensemble='nve' is not allowed"),
        ({"task": "md", "timestep_fs": -1.0}, "timestep_fs=-1.0 must be a positive number"),
    ],
)
def test_bad_md_parameters_are_refused(installed: None, params: dict, words: str) -> None:
    with pytest.raises(UsageError, match=words):
        ChgnetEngine().check(params, {})


def test_npt_needs_a_crystal(installed: None, tmp_path: Path) -> None:
    from ase.build import molecule

    engine = ChgnetEngine()
    params = engine.check({"task": "md", "ensemble": "npt"}, {})
    with pytest.raises(UsageError, match="NPT needs a structure periodic"):
        engine.prepare(molecule("H2O"), params, tmp_path, {})
