"""Any ASE calculator importable on the node: ``-p calculator=ase.calculators.lj.LennardJones``.

Keyword arguments come as ``-p calc.sigma=3.4`` (or a ``[ase.calc]`` table in ``--params``);
the run is a single point, a relaxation or a cell relaxation, as for the emt engine. This
is how a site runs machine-learned potentials (MACE, CHGNet, ...) it has installed: the
calculator is imported at submit (a wrong path fails there) and again on the node.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from importlib.metadata import packages_distributions
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from orion_cli.engines._ase_run import (
    RELAX_PARAMS,
    AseFiles,
    check_periodic,
    check_relax_params,
    compute_in_memory,
    parse_output,
    prepare_attempt,
    run_calculation,
    starting_atoms,
    structure_texts,
)
from orion_cli.engines.base import (
    EngineParam,
    ProgressFn,
    Result,
    RunSpec,
    check_known_params,
    write_texts,
)
from orion_cli.engines.mlip import (
    MODELS,
    LoadedModel,
    distribution_version,
    read_run_record,
    sha256_of,
    write_run_record,
)
from orion_cli.engines.passthrough import check_scalar, gather_table
from orion_cli.errors import UsageError

if TYPE_CHECKING:
    from ase import Atoms

FILES = AseFiles("ase")
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*([.:][A-Za-z_]\w*)")


def load_calculator_class(path: str) -> Any:
    """Import ``package.module.Class`` (or ``package.module:Class``); UsageError if it fails."""
    hint = "give the dotted path of an ASE calculator class, e.g. ase.calculators.lj.LennardJones"
    if not isinstance(path, str) or not _DOTTED.fullmatch(path):
        raise UsageError(f"ase: calculator={path!r} is not a dotted path module.Class", hint)
    module_name, _, attribute = path.replace(":", ".").rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure is the user's to fix
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(
            f"ase: cannot import {module_name} for calculator {path} ({detail})",
            "install it in orion's Python here and on the nodes, or fix the path",
        ) from None
    found = getattr(module, attribute, None)
    if found is None or not callable(found):
        raise UsageError(f"ase: {module_name} has no calculator class {attribute}", hint)
    return found


def check_keywords(path: str, factory: Any, keywords: Mapping[str, Any]) -> None:
    """Refuse keyword names the calculator cannot take, where it says which it takes.

    An ASE ``Calculator`` takes ``**kwargs`` and silently keeps a misspelt ``sigam=3.4``;
    its ``default_parameters`` and the named arguments of the ``__init__`` methods along
    its class hierarchy are what it reads, so only those are let through.
    """
    names: set[str] = set()
    open_ended = False
    for owner in getattr(factory, "__mro__", (factory,)):
        init = vars(owner).get("__init__") if isinstance(owner, type) else owner
        if init is None or owner is object:
            continue
        try:
            parameters = list(inspect.signature(init).parameters.values())
        except (TypeError, ValueError):
            return
        names |= {
            p.name
            for p in parameters
            if p.name != "self"
            and p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        }
        open_ended = open_ended or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
    defaults = getattr(factory, "default_parameters", None)
    if open_ended and isinstance(defaults, Mapping) and defaults:
        names |= set(defaults)
    elif open_ended:
        return  # takes anything and does not say what: the node finds out
    unknown = sorted(set(keywords) - names)
    if unknown:
        raise UsageError(
            f"ase: {path} takes no keyword '{unknown[0]}'",
            f"it takes: {', '.join(sorted(names)) or 'none'}",
        )


class AseEngine:
    name: ClassVar[str] = "ase"
    summary: ClassVar[str] = "any ASE calculator by dotted path (LJ, Morse, EMT, MACE, ...)"
    parameters: ClassVar[tuple[EngineParam, ...]] = (
        EngineParam(
            "calculator",
            None,
            "dotted path of the calculator class, e.g. ase.calculators.lj.LennardJones",
        ),
        EngineParam(
            "calc",
            None,
            "calculator keyword arguments: -p calc.sigma=3.4, or [ase.calc] in --params",
        ),
        EngineParam(
            "model_file",
            None,
            "a model file passed to the calculator (an MLIP's weights); its sha256 is recorded",
        ),
        EngineParam(
            "model_keyword",
            "model_paths",
            "the calculator keyword that takes model_file (MACE: model_paths)",
        ),
        *RELAX_PARAMS,
    )

    def check(self, params: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
        """Complete ``params``; import the calculator here, so a wrong path fails at submit."""
        merged = check_known_params(
            self.name, self.parameters, gather_table(self.name, params, "calc")
        )
        if merged["calculator"] is None:
            raise UsageError(
                "engine 'ase' needs a calculator",
                "add e.g. -p calculator=ase.calculators.lj.LennardJones",
            )
        keywords = dict(merged["calc"] or {})
        for key, value in keywords.items():
            if not isinstance(value, Mapping):
                check_scalar(self.name, f"calc.{key}", value, lists=True)
        check_relax_params(self.name, merged)
        factory = load_calculator_class(merged["calculator"])
        if merged["model_file"] is not None:
            merged["model_file"] = resolve_model_file(merged["model_file"])
            keywords_used = {**keywords, merged["model_keyword"]: merged["model_file"]}
        check_keywords(
            merged["calculator"], factory, keywords_used if merged["model_file"] else keywords
        )
        merged["calc"] = keywords
        return merged

    def binary_status(self, settings: Mapping[str, Any]) -> tuple[bool, str]:
        return True, "built in (calculators imported from orion's Python)"

    def writes_files(self, params: Mapping[str, Any]) -> bool:
        """In memory (a packed task), only a relaxation writes files: its trajectory, log."""
        return bool(params.get("relax") or params.get("relax_cell"))

    def input_texts(
        self, atoms: Atoms, params: Mapping[str, Any], settings: Mapping[str, Any]
    ) -> dict[str, bytes]:
        """The checked structure as the input file's text (see ``freeze``)."""
        check_periodic(self.name, atoms, params)
        return structure_texts(FILES, atoms)

    def prepare(
        self,
        atoms: Atoms,
        params: Mapping[str, Any],
        workdir: Path,
        settings: Mapping[str, Any],
    ) -> RunSpec:
        write_texts(workdir, self.input_texts(atoms, params, settings))
        return RunSpec()

    def run(self, workdir: Path, params: Mapping[str, Any], report: ProgressFn) -> None:

        report("Initializing", 0.0)
        atoms = starting_atoms(FILES, workdir, report)
        if params.get("model_file"):
            loaded = model_calculator(params)
            write_run_record(workdir, FILES, loaded.record)
            loaded.calculator.reset()
            atoms.calc = loaded.calculator
        else:
            atoms.calc = load_calculator_class(params["calculator"])(**(params.get("calc") or {}))
        run_calculation(atoms, params, workdir, FILES, report)

    def session(self) -> AbstractContextManager[dict[str, Any]]:
        """What a packed task keeps between its calculations: the calculators it made."""
        return nullcontext({})

    def compute(
        self,
        atoms: Atoms,
        params: Mapping[str, Any],
        workdir: Path,
        report: ProgressFn,
        session: Any,
    ) -> Result:
        """Run on ``atoms`` in memory; one calculator per (class, keywords) for the whole
        packed task, so a machine-learned potential loads its model once."""
        record: dict[str, Any] = {}
        if params.get("model_file"):  # loaded once per process (model_calculator's cache)
            loaded = model_calculator(params)
            loaded.calculator.reset()
            atoms.calc, record = loaded.calculator, dict(loaded.record)
        else:
            keywords = dict(params.get("calc") or {})
            key = json.dumps([params["calculator"], keywords], sort_keys=True)
            calculators = session if isinstance(session, dict) else {}
            if key not in calculators:
                calculators[key] = load_calculator_class(params["calculator"])(**keywords)
            atoms.calc = calculators[key]
        result = compute_in_memory(self.name, atoms, params, workdir, FILES, report)
        result.extras["calculator"] = params.get("calculator")
        if record:
            result.extras["model"] = record
        return result

    def prepare_attempt(self, workdir: Path, attempt: int) -> None:
        """A retry keeps the earlier attempt's files and continues an interrupted relaxation."""
        prepare_attempt(FILES, workdir, attempt)

    def parse(self, workdir: Path, params: Mapping[str, Any]) -> Result:
        result = parse_output(self.name, workdir, params, FILES)
        result.extras["calculator"] = params.get("calculator")
        record = read_run_record(workdir, FILES)
        if params.get("model_file") and record:
            result.extras["model"] = record
        return result


def resolve_model_file(value: Any) -> str:
    """The model file's absolute path, fixed at submit (the job runs in its own directory)."""
    path = Path(str(value)).expanduser()
    if not path.is_file():
        raise UsageError(
            f"ase: model_file {value} not found",
            "give the path of a model file you have (e.g. a MACE .model)",
        )
    return str(path.resolve())


def model_calculator(params: Mapping[str, Any]) -> LoadedModel:
    """The calculator holding ``model_file``, loaded once per process (a packed task)."""
    path = str(params["model_file"])
    keywords = {**(params.get("calc") or {}), str(params["model_keyword"]): path}
    key = ("ase", str(params["calculator"]), json.dumps(keywords, sort_keys=True))

    def load() -> LoadedModel:
        module = str(params["calculator"]).replace(":", ".").split(".")[0]
        package = (packages_distributions().get(module) or [module])[0]
        record = {
            "package": package,
            "package_version": distribution_version(package),
            "model": Path(path).name,
            "model_file": path,
            "model_sha256": sha256_of(Path(path)),
        }
        return LoadedModel(load_calculator_class(params["calculator"])(**keywords), record)

    loaded, load_s = MODELS.get(key, load)
    counts = {"model_load_s": round(load_s, 3), "model_loads_in_process": MODELS.loads}
    return LoadedModel(loaded.calculator, {**loaded.record, **counts})
