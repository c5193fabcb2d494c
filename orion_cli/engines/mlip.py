"""Machine-learned interatomic potentials run in-process: what CHGNet and SevenNet share.

A model is named by ``-p model=NAME`` (one the installed package ships) or ``-p
model=PATH`` (a model file). Names the package would download at run time are refused at
submit: compute nodes often have no network. The job's result records the package and
its version, the model and the sha256 of the model file used, the device and the torch
threads.

A loaded model is kept for the life of the process (:data:`MODELS`), keyed by engine,
model and device: the calculations of a packed task share one load (~3 s for CHGNet,
more than a small calculation costs). The engines also offer the in-process hook of a
packed task (``session`` holding the models, ``compute`` on atoms in memory); the cache
serves both paths.

Nothing here imports torch at module level; ``orion engines`` finds the packages without
importing them (:func:`package_status`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from orion_cli.engines._ase_run import (
    RELAX_PARAMS,
    AseFiles,
    check_periodic,
    check_relax_params,
    parse_output,
    prepare_attempt,
    run_calculation,
    starting_atoms,
    structure_texts,
)
from orion_cli.engines.ase_md import (
    MD_PARAMS,
    check_md_params,
    check_md_structure,
    keep_previous_md,
    run_md,
)
from orion_cli.engines.base import (
    EngineParam,
    ProgressFn,
    Result,
    RunSpec,
    check_known_params,
    write_texts,
)
from orion_cli.errors import UsageError
from orion_cli.jobdir import write_json_atomic

if TYPE_CHECKING:
    from ase import Atoms

INSTALL_HINT = "install the extra: pip install 'orion-cli[ml]'"
DEVICES = ("auto", "cpu", "cuda")
#: CUDA_VISIBLE_DEVICES values that hide every GPU
NO_GPU_VALUES = ("", "-1", "NoDevFiles")
#: endings that make a model value a file name, not a model name
MODEL_SUFFIXES = (".pth", ".tar", ".pt", ".ckpt", ".model")


@dataclass(frozen=True)
class MlipPackage:
    """An MLIP package: its import name, its distribution, the models its wheel ships."""

    module: str
    distribution: str
    default_model: str
    #: model name -> checkpoint path inside the installed package
    bundled: Mapping[str, str]
    #: names the package knows but downloads at run time
    downloaded: tuple[str, ...] = ()
    #: spellings of a name that mean the same model (lower case)
    aliases: Mapping[str, str] = field(default_factory=dict)


def mlip_params(package: MlipPackage) -> tuple[EngineParam, ...]:
    """The parameters of an MLIP engine: model, device and those of a relaxation."""
    return (
        EngineParam(
            "model",
            package.default_model,
            f"a bundled model ({', '.join(package.bundled)}) or the path of a model file",
        ),
        EngineParam(
            "device", "auto", "where the model runs (auto: a visible GPU, else CPU)", "", DEVICES
        ),
        *RELAX_PARAMS,
        *MD_PARAMS,
    )


def package_dir(module: str) -> Path | None:
    """The installed package's directory, found without importing it (no torch import)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def distribution_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def package_status(package: MlipPackage) -> tuple[bool, str]:
    """Whether the package and torch are installed here, in one line (nothing imported)."""
    found = distribution_version(package.distribution)
    torch_version = distribution_version("torch")
    if found is None or package_dir(package.module) is None:
        return False, f"{package.distribution} is not installed — {INSTALL_HINT}"
    if torch_version is None:
        return False, f"torch is not installed — {INSTALL_HINT}"
    return True, (
        f"{package.distribution} {found}, torch {torch_version}; "
        f"bundled models: {', '.join(package.bundled)}"
    )


def resolve_model(engine: str, package: MlipPackage, model: str) -> str:
    """The model a job will use, fixed at submit: a bundled name, or a model file's
    absolute path. A name the package would download is refused, naming the fix."""
    installed, detail = package_status(package)
    if not installed:
        raise UsageError(f"{engine}: {detail.split(' — ')[0]}", INSTALL_HINT)
    key = model.strip().lower()
    name = package.aliases.get(key, key)
    if name in package.bundled:
        if not bundled_file(package, name).is_file():
            raise UsageError(
                f"{engine}: model '{name}' is missing from the installed "
                f"{package.distribution} package",
                f"reinstall it ({INSTALL_HINT}) or give -p model=PATH of a model file",
            )
        return name
    path = Path(model).expanduser()
    if path.is_file():
        return str(path.resolve())
    bundled = ", ".join(package.bundled)
    if name in package.downloaded:
        raise UsageError(
            f"{engine}: model '{name}' is not in the installed {package.distribution} package; "
            "it would be downloaded at run time, and compute nodes may have no network",
            f"download the file where there is network and give -p model=PATH (bundled: {bundled})",
        )
    if os.sep in model or path.suffix.lower() in MODEL_SUFFIXES:
        raise UsageError(f"{engine}: model file {model} not found", "give the path of a file")
    raise UsageError(
        f"{engine}: unknown model '{model}'",
        f"bundled models: {bundled}; or -p model=PATH of a model file",
    )


def bundled_file(package: MlipPackage, name: str) -> Path:
    """The checkpoint of a bundled model inside the installed package."""
    return (package_dir(package.module) or Path(package.module)) / package.bundled[name]


def model_file(package: MlipPackage, model: str) -> Path:
    """The file a resolved model (a bundled name or an absolute path) is read from."""
    return bundled_file(package, model) if model in package.bundled else Path(model)


def sha256_of(path: Path) -> str:
    """The sha256 of a file, read in chunks.

    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "m"
    >>> _ = f.write_bytes(b"abc")
    >>> sha256_of(f)[:16]
    'ba7816bf8f01cfea'
    """
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def visible_gpus(env: Mapping[str, str], cuda_device_count: Callable[[], int]) -> int:
    """How many GPUs this process may use: none when CUDA_VISIBLE_DEVICES hides them all.

    >>> visible_gpus({"CUDA_VISIBLE_DEVICES": ""}, lambda: 4)
    0
    >>> visible_gpus({"CUDA_VISIBLE_DEVICES": "2"}, lambda: 1), visible_gpus({}, lambda: 0)
    (1, 0)
    """
    if env.get("CUDA_VISIBLE_DEVICES", "x").strip() in NO_GPU_VALUES:
        return 0
    return cuda_device_count()


def choose_device(
    requested: str, env: Mapping[str, str], cuda_device_count: Callable[[], int]
) -> str:
    """``cpu`` or ``cuda``: auto takes a visible GPU, else the CPU; cuda insists on one.

    With ``--gpus N`` a slot sees one GPU through CUDA_VISIBLE_DEVICES, which torch numbers
    0: ``cuda`` means that one.
    """
    if requested == "cpu":
        return "cpu"
    gpus = visible_gpus(env, cuda_device_count)
    if gpus:
        return "cuda"
    if requested == "cuda":
        shown = env.get("CUDA_VISIBLE_DEVICES")
        raise RuntimeError(
            "device=cuda but no GPU is visible to this job (CUDA_VISIBLE_DEVICES="
            f"{shown!r}): submit with --gpus 1, or use -p device=auto"
        )
    return "cpu"


def cpu_threads(env: Mapping[str, str], affinity_count: int) -> int:
    """Torch's thread count: the job's CPUs (SLURM's --cpus-per-task), not every core.

    >>> cpu_threads({"SLURM_CPUS_PER_TASK": "4", "SLURM_CPUS_ON_NODE": "8"}, 64)
    4
    >>> cpu_threads({"SLURM_CPUS_ON_NODE": "2"}, 64), cpu_threads({}, 3)
    (2, 3)
    """
    for key in ("SLURM_CPUS_PER_TASK", "SLURM_CPUS_ON_NODE", "OMP_NUM_THREADS"):
        value = env.get(key, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return max(1, affinity_count)


@dataclass
class LoadedModel:
    """A calculator with its model in memory, and what to record about it."""

    calculator: Any
    record: dict[str, Any]


class ModelCache:
    """The models loaded in this process, by key; counts the loads (a packed task: one)."""

    def __init__(self) -> None:
        self.models: dict[tuple[str, ...], LoadedModel] = {}
        self.loads = 0

    def get(
        self, key: tuple[str, ...], load: Callable[[], LoadedModel]
    ) -> tuple[LoadedModel, float]:
        """The cached model for ``key`` (loaded now if new) and the seconds spent loading."""
        found = self.models.get(key)
        if found is not None:
            return found, 0.0
        started = time.perf_counter()
        found = load()
        self.loads += 1
        self.models[key] = found
        return found, time.perf_counter() - started


#: this process's models (one compute-node process runs one job or one packed task)
MODELS = ModelCache()


def provenance(package: MlipPackage, model: str) -> dict[str, Any]:
    """Package, version, model and the model file's sha256, as recorded with the result."""
    path = model_file(package, model)
    return {
        "package": package.distribution,
        "package_version": distribution_version(package.distribution),
        "model": model,
        "model_file": str(path),
        "model_sha256": sha256_of(path),
    }


def run_record_name(files: AseFiles) -> str:
    return f"{files.prefix}-model.json"


def write_run_record(workdir: Path, files: AseFiles, record: Mapping[str, Any]) -> None:
    write_json_atomic(workdir / run_record_name(files), dict(record))


def read_run_record(workdir: Path, files: AseFiles) -> dict[str, Any]:
    try:
        data = json.loads((workdir / run_record_name(files)).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class MlipEngine:
    """An in-process MLIP engine; a subclass names its package and how to load a model."""

    name: ClassVar[str]
    summary: ClassVar[str]
    package: ClassVar[MlipPackage]
    parameters: ClassVar[tuple[EngineParam, ...]]
    #: seconds one calculation usually takes (--pack auto): a relaxation of a small cell
    estimate_s: ClassVar[float] = 3.0

    def load(self, model: str, device: str) -> Any:
        """Return an ASE calculator for the resolved ``model`` on ``device``."""
        raise NotImplementedError

    @property
    def files(self) -> AseFiles:
        return AseFiles(self.name)

    def check(self, params: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
        merged = check_known_params(self.name, self.parameters, params)
        check_relax_params(self.name, merged)
        check_md_params(self.name, merged)
        merged["model"] = resolve_model(self.name, self.package, merged["model"])
        return merged

    def binary_status(self, settings: Mapping[str, Any]) -> tuple[bool, str]:
        return package_status(self.package)

    def input_texts(
        self, atoms: Atoms, params: Mapping[str, Any], settings: Mapping[str, Any]
    ) -> dict[str, bytes]:
        """The checked structure as the input file's text (see ``freeze``)."""
        check_periodic(self.name, atoms, params)
        check_md_structure(self.name, atoms, params)
        return structure_texts(self.files, atoms)

    def prepare(
        self, atoms: Atoms, params: Mapping[str, Any], workdir: Path, settings: Mapping[str, Any]
    ) -> RunSpec:
        write_texts(workdir, self.input_texts(atoms, params, settings))
        return RunSpec()

    def run(self, workdir: Path, params: Mapping[str, Any], report: ProgressFn) -> None:
        self.calculate(starting_atoms, workdir, params, report, MODELS)

    def session(self) -> AbstractContextManager[ModelCache]:
        """What a packed task keeps between its calculations (the in-process runner's hook):
        the loaded models, which are this process's (:data:`MODELS`) — one load a task."""
        return nullcontext(MODELS)

    def compute(
        self,
        atoms: Atoms,
        params: Mapping[str, Any],
        workdir: Path,
        report: ProgressFn,
        session: Any,
    ) -> Result:
        """Run on ``atoms`` in memory (a packed task's fast path; see ``Engine`` in base),
        with the model the task's session holds; the result as :meth:`parse` gives it."""
        models = session if isinstance(session, ModelCache) else MODELS
        self.calculate(lambda _f, _w, _r: atoms, workdir, params, report, models)
        return self.parse(workdir, params)

    def calculate(
        self,
        start: Callable[[AseFiles, Path, ProgressFn], Atoms],
        workdir: Path,
        params: Mapping[str, Any],
        report: ProgressFn,
        models: ModelCache,
    ) -> None:
        """Load (or reuse) the model, record it, and run on the atoms ``start`` gives."""
        import torch

        report("Initializing", 0.0)
        device = choose_device(str(params["device"]), os.environ, torch.cuda.device_count)
        threads = cpu_threads(os.environ, len(os.sched_getaffinity(0)))
        torch.set_num_threads(threads)
        model = str(params["model"])

        def load() -> LoadedModel:
            return LoadedModel(self.load(model, device), provenance(self.package, model))

        loaded, load_s = models.get((self.name, model, device), load)
        report(f"Model {loaded.record['model']} " + ("loaded" if load_s else "reused"), 2.0)
        write_run_record(
            workdir,
            self.files,
            {
                **loaded.record,
                "device": device,
                "torch_threads": threads,
                "model_load_s": round(load_s, 3),
                "model_loads_in_process": models.loads,
            },
        )
        atoms = start(self.files, workdir, report)
        loaded.calculator.reset()
        atoms.calc = loaded.calculator
        if params.get("task") == "md":
            run_md(atoms, params, workdir, self.files, report)
        run_calculation(atoms, params, workdir, self.files, report)

    def prepare_attempt(self, workdir: Path, attempt: int) -> None:
        """A retry keeps the earlier attempt's files and continues an interrupted relaxation."""
        prepare_attempt(self.files, workdir, attempt)
        keep_previous_md(self.files, workdir, attempt)

    def parse(self, workdir: Path, params: Mapping[str, Any]) -> Result:
        result = parse_output(self.name, workdir, params, self.files)
        record = read_run_record(workdir, self.files)
        if record:
            result.extras["model"] = record
        result.extras.update(output_extras(workdir / self.files.output))
        if params.get("task") == "md" and result.error is None:
            result.final_structure = (workdir / self.files.output).read_text()
        return result


def output_extras(path: Path) -> dict[str, Any]:
    """What the output structure carries besides energy and forces: CHGNet's magnetic
    moments, the MD's step count and final temperature."""
    from ase.io import read

    try:
        atoms: Any = read(path, format="extxyz")
    except Exception:  # noqa: BLE001 - no output: parse_output already says so
        return {}
    found: dict[str, Any] = {}
    calc = getattr(atoms, "calc", None)
    magmoms = calc.results.get("magmoms") if calc is not None else None
    if magmoms is not None:
        found["magmoms_mu_b"] = [round(float(m), 6) for m in magmoms]
    if "orion_md_steps" in atoms.info:
        found["md_steps"] = int(atoms.info["orion_md_steps"])
        found["md_final_temperature_k"] = float(atoms.info["orion_md_final_temperature_k"])
    return found
