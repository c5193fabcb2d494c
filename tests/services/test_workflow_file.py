"""Workflow files: what is read from them, and every bad file refused with one line naming
file:step:key, exit 2, nothing written (no database file, no job directory)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orion_cli.errors import UsageError
from orion_cli.services.studies.workflow_file import read_workflow
from tests.conftest import EXAMPLES
from tests.helpers import orion

ENGINES = ("emt", "mock", "qe", "eos")
STUDIES = Path(__file__).resolve().parents[2] / "examples" / "studies"


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "study.toml"
    path.write_text(text)
    return path


def test_example_file_reads_in_dependency_order() -> None:
    flow = read_workflow(STUDIES / "cu-relax-eos.toml", ENGINES)
    assert [s.name for s in flow.steps] == ["relax", "energy", "points", "fit"]
    energy, points, fit = flow.step("energy"), flow.step("points"), flow.step("fit")
    assert energy.needs == ("relax",) and energy.structure_from == "relax"
    assert [p["scale"] for p in points.points()] == [0.94, 0.97, 1.0, 1.03, 1.06]
    assert fit.needs_any == ("points",) and fit.needs == ()
    assert flow.step("relax").params == {"relax": True, "fmax_ev_per_a": 0.01}
    assert flow.step("relax").walltime == "10m"


def test_qe_example_reads() -> None:
    flow = read_workflow(STUDIES / "si-relax-scf-ecut.toml", ENGINES)
    assert [p["ecutwfc_ry"] for p in flow.step("scf").points()] == [20, 30, 40]
    assert flow.step("scf").structure_from == "relax" and flow.step("relax").resources == {
        "ntasks": 2
    }


def test_resources_reach_the_jobs(
    orion_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    path = _file(
        tmp_path,
        '[steps.a]\nengine = "mock"\nmem = "2G"\nwalltime = "20m"\nretries = 0\n'
        '[steps.b]\nengine = "mock"\nneeds = ["a"]\nwalltime_s = 90\npriority = 3\n',
    )
    out = orion("workflow", "submit", str(path), str(EXAMPLES / "Cu.cif"), "--hold", "--json")
    import json

    [study] = json.loads(out.stdout)
    a, b = (json.loads(orion("show", str(study["steps"][s][0]), "--json").stdout) for s in "ab")
    assert (a["mem_mb"], a["walltime_s"], a["max_retries"]) == (2048, 1200, 0)
    assert (b["walltime_s"], b["priority"], b["held"]) == (90, 3, True)
    orion("cancel", str(a["id"]), str(b["id"]))


def test_children_listed_first_come_after_their_parents(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        """
[steps.c]
engine = "emt"
needs = ["b", "a"]
[steps.b]
engine = "emt"
needs = ["a"]
[steps.a]
engine = "emt"
[steps.a.sweep]
seed = [1, 2]
kind = ["dft", "md"]
""",
    )
    flow = read_workflow(path, ENGINES)
    assert [s.name for s in flow.steps] == ["a", "b", "c"]
    assert flow.step("a").points() == [
        {"seed": 1, "kind": "dft"},
        {"seed": 1, "kind": "md"},
        {"seed": 2, "kind": "dft"},
        {"seed": 2, "kind": "md"},
    ]


BAD = [
    ('[steps.a]\nengine = "emt"\nneeds = ["nope"]\n', "study.toml:a:needs: unknown step 'nope'"),
    ('[steps.a]\nengine = "emt"\ncolour = "red"\n', "study.toml:a:colour: unknown key"),
    ('[steps.a]\nengine = "gaussian"\n', "study.toml:a:engine: unknown engine 'gaussian'"),
    ("[steps.a]\nparams = {}\n", "study.toml:a:engine: missing"),
    (
        '[steps.a]\nengine = "emt"\nneeds = ["b"]\n[steps.b]\nengine = "emt"\nneeds = ["a"]\n',
        "study.toml:a:needs: a cycle: a → b → a",
    ),
    ('[steps.a]\nengine = "emt"\nneeds = ["a"]\n', "study.toml:a:needs: a step cannot wait"),
    (
        '[steps.a]\nengine = "emt"\n[steps.a.sweep]\nscale = []\n',
        "study.toml:a:sweep.scale: a sweep of zero values",
    ),
    (
        '[steps.a]\nengine = "emt"\n[steps.b]\nengine = "emt"\nstructure = "from:a"\n',
        "study.toml:b:structure: from:a names a step that is not a parent",
    ),
    (
        '[steps.a]\nengine = "emt"\n[steps.b]\nengine = "emt"\nneeds_any = ["a"]\n'
        'structure = "from:a"\n',
        "study.toml:b:structure: from:a names a step that is not a parent",
    ),
    (
        '[steps.a]\nengine = "emt"\n[steps.a.sweep]\nscale = [0.1]\n',
        "study.toml:a:sweep.scale: lattice factors",
    ),
    (
        '[steps.a]\nengine = "emt"\nparams = {seed = 1}\n[steps.a.sweep]\nseed = [1, 2]\n',
        "study.toml:a:sweep.seed: seed is in params too",
    ),
    ('title = "x"\n[steps.a]\nengine = "emt"\n', "study.toml:title: unknown key"),
    ('[steps.a]\nengine = "emt"\nmem = "2G"\nmem_mb = 10\n', "study.toml:a:mem: given twice"),
    ("", "study.toml: no steps"),
    ("[steps.a\n", "study.toml: not a valid TOML file"),
]


@pytest.mark.parametrize(("text", "problem"), BAD)
def test_bad_file_is_refused_naming_file_step_key(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(UsageError) as caught:
        read_workflow(_file(tmp_path, text), ENGINES)
    assert problem in caught.value.one_line()


CHECKED_LATER = [  # by the engine, the resource resolver, the hand-off: all before any write
    ('[steps.a]\nengine = "emt"\nparams = { colour = 1 }\n', "study.toml:a: "),
    ('[steps.a]\nengine = "emt"\n[steps.a.sweep]\nfmax_ev_per_a = [0.05, -1]\n', "study.toml:a: "),
    ('[steps.a]\nengine = "emt"\nntasks = "many"\n', "study.toml:a:"),
    ('[steps.a]\nengine = "emt"\nwalltime = "soon"\n', "study.toml:a:walltime"),
    ('[steps.a]\nengine = "emt"\nmem = "lots"\n', "study.toml:a:mem: memory 'lots'"),
    (
        '[steps.a]\nengine = "emt"\n[steps.a.sweep]\nfmax_ev_per_a = [0.05, 0.02]\n'
        '[steps.b]\nengine = "emt"\nneeds = ["a"]\nstructure = "from:a"\n',
        "study.toml:b:structure: from:a makes 2 jobs",
    ),
    (
        '[steps.a]\nengine = "emt"\n[steps.b]\nengine = "eos"\nneeds_any = ["a"]\n',
        "study.toml:b:needs_any: an eos step fits",
    ),
    (
        '[steps.a]\nengine = "emt"\n[steps.a.sweep]\nscale = [0.98, 1.0, 1.02]\n'
        '[steps.b]\nengine = "eos"\nneeds_any = ["a"]\n',
        "study.toml:b: engine 'eos': 3 points",
    ),
]


@pytest.mark.parametrize(("text", "problem"), BAD[:8] + CHECKED_LATER)
def test_cli_exits_2_with_one_line_and_writes_nothing(
    orion_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, problem: str
) -> None:
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    path = _file(tmp_path, text)
    result = orion("workflow", "submit", str(path), str(EXAMPLES / "Cu.cif"), expect=2)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert problem in lines[0]
    assert not (orion_home / "orion.db").exists()
    assert not any(p.is_file() for p in orion_home.rglob("*") if p.name != "orion.toml")


def test_cli_refuses_a_structure_the_engine_cannot_take(
    orion_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    path = _file(tmp_path, '[steps.a]\nengine = "mock"\n[steps.b]\nengine = "emt"\nneeds = ["a"]\n')
    result = orion("workflow", "submit", str(path), str(EXAMPLES / "Si.cif"), expect=2)
    assert "study.toml:b: emt has no parameters for Si" in result.stderr
    assert not (orion_home / "orion.db").exists()


def _first_ready_order(steps: list) -> list[str]:  # type: ignore[type-arg]
    """The definition the order follows, computed the slow way: again and again, the
    first step in the file whose parents are all placed."""
    done: list[str] = []
    left = list(steps)
    while left:
        ready = next(s for s in left if all(p in done for p in s.parents))
        done.append(ready.name)
        left.remove(ready)
    return done


@given(st.data())
@settings(max_examples=200, deadline=None)
def test_steps_are_ordered_parents_first_then_by_file_position(data: st.DataObject) -> None:
    """Random acyclic workflows (step i may need steps j < i), their steps written to the
    file in a random order, against the definition computed the slow way."""
    from orion_cli.services.studies.workflow_file import Step, _ordered

    n = data.draw(st.integers(1, 12))
    needs = [
        data.draw(st.sets(st.integers(0, i - 1), max_size=4)) if i else set() for i in range(n)
    ]
    file_order = data.draw(st.permutations(range(n)))
    steps = [
        Step(f"s{i}", "emt", needs=tuple(f"s{j}" for j in sorted(needs[i]))) for i in file_order
    ]
    assert [s.name for s in _ordered(steps)] == _first_ready_order(steps)


def test_a_long_chain_is_read_in_dependency_order(tmp_path: Path) -> None:
    """Written children first: ordering them rescanned the file for every step (1,500
    steps took 28 s; hostile-input probe B12)."""
    steps = [f'[steps.s{i}]\nengine = "mock"\nneeds = ["s{i - 1}"]\n' for i in range(2999, 0, -1)]
    path = _file(tmp_path, "".join(steps) + '[steps.s0]\nengine = "mock"\n')
    flow = read_workflow(path, ENGINES)
    assert [s.name for s in flow.steps] == [f"s{i}" for i in range(3000)]
