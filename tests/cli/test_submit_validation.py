"""Every value that reaches a batch script, the scheduler or the database is checked at submit.

The reproductions of sections 3d, 7, 8 and 11 of the hostile-input review (2026-11-30): each
must end with one ``error:`` line naming the problem and the fix, exit code 2, and nothing
written — no row, no job directory, no scheduler call.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from tests.helpers import orion

CU = str(EXAMPLES / "Cu.cif")


def refused(*args: str, needle: str) -> str:
    """Run ``orion submit *args``: one error line with ``needle``, exit 2, nothing written."""
    result = orion("submit", *args, expect=2)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert needle in lines[0], lines[0]
    assert "Traceback" not in result.output and "\x1b" not in result.output
    assert result.stdout == ""
    assert orion("ls", "--json").stdout.strip() == "[]"
    return lines[0]


def nothing_on_disk(home: Path, work_root: Path | None = None) -> None:
    for jobs in (home / "jobs", work_root):
        assert jobs is None or not jobs.exists() or not any(jobs.iterdir()), jobs
    assert not (home / "local").exists() or not any((home / "local").rglob("job.json"))


@pytest.fixture
def local(orion_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The local scheduler: a submit that got through would run at once, visibly."""
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    return orion_home


# ---------- 7: control characters in #SBATCH values ----------------------------------------


@pytest.mark.parametrize("flag", ["--account", "--qos", "--partition", "--name", "--tag"])
@pytest.mark.parametrize("char", ["\n", "\r", "\t", "\x1b", "\x00", "\x7f", "\x85", "\u2028"])
def test_control_characters_in_flags_are_refused(
    flag: str, char: str, local: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "INJECTED"
    value = f"acct{char}echo INJECTED > {marker} #"
    line = refused(CU, "-e", "emt", flag, value, needle="control character")
    assert flag in line and "INJECTED >" not in line.split("—")[-1]
    assert not marker.exists()
    nothing_on_disk(local)


def test_injection_from_the_review_runs_nothing(local: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    refused(
        CU,
        "-e",
        "emt",
        "--scheduler",
        "local",
        "--account",
        f"acct\necho INJECTED-$(id -un) > {marker} #",
        needle="--account",
    )
    assert not marker.exists()
    nothing_on_disk(local)


@pytest.mark.parametrize("key", ["account", "qos", "partition"])
def test_control_characters_from_settings_name_their_origin(
    key: str, local: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(f"ORION_{key.upper()}", "a\nb")
    line = refused(CU, "-e", "emt", needle="control character")
    assert f"ORION_{key.upper()}" in line
    monkeypatch.delenv(f"ORION_{key.upper()}")
    (tmp_path / "orion.toml").write_text(f'{key} = "a\\u001b[2Jb"\n')
    line = refused(CU, "-e", "emt", needle="control character")
    assert "orion.toml" in line and f"'{key}'" in line
    nothing_on_disk(local)


def test_work_root_with_a_newline_is_refused(
    local: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORION_WORK_ROOT", str(tmp_path / "a\nb"))
    refused(CU, "-e", "emt", needle="ORION_WORK_ROOT")
    assert not (tmp_path / "a\nb").exists()


@pytest.mark.parametrize("flag", ["--name", "--tag"])
def test_very_long_names_and_tags_are_refused(flag: str, local: Path) -> None:
    line = refused(CU, "-e", "emt", flag, "x" * 100_000, needle="200 characters")
    assert len(line) < 400
    nothing_on_disk(local)


def test_a_name_of_200_characters_is_fine(local: Path) -> None:
    result = orion(
        "submit",
        CU,
        "-e",
        "mock",
        "-p",
        "duration_s=0",
        "--name",
        "n" * 200,
        "--tag",
        "t" * 200,
        "--dry-run",
    )
    assert "#SBATCH --job-name=orion-0-" in result.stdout


# ---------- 8 and 3d: numbers the scheduler and both databases take -----------------------


RANGES = [
    (["--walltime", "999999999999"], "walltime"),
    (["--walltime", "100000d"], "walltime"),
    (["--walltime", "9" * 400], "walltime"),
    (["--mem", "99999999T"], "--mem"),
    (["--mem", "9" * 400], "memory"),
    (["--nodes", "99999999999"], "--nodes"),
    (["--ntasks", "99999999999"], "--ntasks"),
    (["--cpus-per-task", "100000"], "--cpus-per-task"),
    (["--retries", "99999999999"], "--retries"),
    (["--retries", "-1"], "--retries"),
    (["--retry-delay", "99999999999999"], "--retry-delay"),
    (["--ntasks", "100000", "--retry-delay", "99999999999999"], "--retry-delay"),
    (["--priority", "99999999999"], "priority"),
    (["--nodes", "0"], "--nodes"),
    (["--ntasks", "0"], "--ntasks"),
    (["--cpus-per-task", "-3"], "--cpus-per-task"),
    (["--throttle", "0"], "--throttle"),
    (["--throttle", "99999999999"], "--throttle"),
]


@pytest.mark.parametrize("args, needle", RANGES, ids=[" ".join(a)[:40] for a, _ in RANGES])
def test_out_of_range_resources_are_refused_on_every_database(
    args: list[str], needle: str, database_url: str, local: Path
) -> None:
    line = refused(CU, "-e", "emt", *args, needle=needle)
    assert "DataError" not in line and "internal error" not in line
    assert any(word in line for word in ("at most", "at least", "out of range")), line
    nothing_on_disk(local)


def test_limits_are_named_in_the_message(local: Path) -> None:
    assert "365 days" in refused(CU, "-e", "emt", "--walltime", "400d", needle="walltime")
    assert "100" in refused(CU, "-e", "emt", "--retries", "101", needle="--retries")
    assert "30 days" in refused(CU, "-e", "emt", "--retry-delay", "31d", needle="--retry-delay")


def test_the_largest_allowed_values_are_accepted_on_every_database(
    database_url: str, local: Path
) -> None:
    result = orion(
        "submit",
        CU,
        "-e",
        "mock",
        "-p",
        "duration_s=0",
        "--hold",
        "--walltime",
        "365d",
        "--mem",
        "64T",
        "--retries",
        "100",
        "--retry-delay",
        "30d",
        "--priority",
        "20",
        "--json",
    )
    job = json.loads(result.stdout)
    shown = json.loads(orion("show", str(job["id"]), "--json").stdout)
    assert shown["walltime_s"] == 365 * 86400 and shown["mem_mb"] == 64 * 1024 * 1024
    orion("cancel", str(job["id"]))


def test_config_values_go_through_the_same_limits(
    local: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORION_NODES", "99999999999")
    assert "ORION_NODES" in refused(CU, "-e", "emt", needle="nodes")
    monkeypatch.delenv("ORION_NODES")
    (tmp_path / "orion.toml").write_text("retry_delay_s = 99999999999999\n")
    assert "orion.toml" in refused(CU, "-e", "emt", needle="retry_delay_s")
    (tmp_path / "orion.toml").write_text("soft_margin_s = 100000\n")
    assert "65535" in refused(CU, "-e", "emt", needle="soft_margin_s")


# ---------- 8: engine parameters -----------------------------------------------------------


BAD_PARAMS = [
    ("emt", "fmax_ev_per_a=NaN", "finite"),
    ("emt", "fmax_ev_per_a=Infinity", "finite"),
    ("emt", "fmax_ev_per_a=1e400", "finite"),
    ("emt", "max_steps=1e400", "finite"),
    ("emt", "max_steps=2.5", "whole number"),
    ("emt", "max_steps=1e26", "at most"),
    ("emt", "relax=maybe", "true or false"),
    ("mock", "seed=NaN", "finite"),
    ("mock", "seed=abc", "whole number"),
    ("mock", "seed=1,2", "whole number"),
    ("mock", "duration_s=Infinity", "finite"),
    ("mock", "duration_s=NaN", "finite"),
    ("mock", "fail=maybe", "true or false"),
    ("qe", "ecutrho_ry=NaN", "finite"),
    ("qe", "kpoints=[4,4,NaN]", "finite"),
    ("lammps", "potential_file=Cu.eam\nshell touch pwned", "control character"),
]


@pytest.mark.parametrize("engine, pair, needle", BAD_PARAMS, ids=[p for _, p, _ in BAD_PARAMS])
def test_bad_engine_parameters_are_refused(
    engine: str, pair: str, needle: str, local: Path
) -> None:
    line = refused(CU, "-e", engine, "-p", pair, needle=needle)
    assert pair.split("=")[0] in line
    nothing_on_disk(local)


@pytest.mark.parametrize(
    "text, needle",
    [
        ('{"max_steps": NaN}', "finite"),
        ('{"fmax_ev_per_a": Infinity}', "finite"),
        ('{"fmax_ev_per_a": -Infinity}', "finite"),
        ('{"max_steps": 2.5}', "whole number"),
        ('{"relax": "yes"}', "true or false"),
    ],
)
def test_bad_parameters_in_a_json_file_are_refused(
    text: str, needle: str, local: Path, tmp_path: Path
) -> None:
    params = tmp_path / "p.json"
    params.write_text(text)
    refused(CU, "-e", "emt", "--params", str(params), needle=needle)


@pytest.mark.parametrize(
    "text, needle",
    [
        ("fmax_ev_per_a = nan\n", "finite"),
        ("fmax_ev_per_a = inf\n", "finite"),
        ("max_steps = 2.5\n", "whole number"),
        ('relax = "maybe"\n', "true or false"),
    ],
)
def test_bad_parameters_in_a_toml_file_are_refused(
    text: str, needle: str, local: Path, tmp_path: Path
) -> None:
    params = tmp_path / "p.toml"
    params.write_text(text)
    refused(CU, "-e", "emt", "--params", str(params), needle=needle)


def test_good_parameters_still_pass(local: Path, tmp_path: Path) -> None:
    params = tmp_path / "p.toml"
    params.write_text("relax = true\nfmax_ev_per_a = 0.02\nmax_steps = 300.0\n")
    result = orion(
        "submit", CU, "-e", "emt", "--params", str(params), "-p", "max_steps=50", "--dry-run"
    )
    assert result.stdout.startswith("#!/bin/bash")


# ---------- 8: --params files ---------------------------------------------------------------


def test_binary_params_file(local: Path, tmp_path: Path) -> None:
    params = tmp_path / "p.toml"
    params.write_bytes(bytes(range(256)) * 4)
    refused(CU, "-e", "emt", "--params", str(params), needle="not a UTF-8 text file")


@pytest.mark.parametrize(
    "suffix, text",
    [
        (".json", "[" * 100_000 + "]" * 100_000),
        (".json", '{"a":' * 100_000 + "1" + "}" * 100_000),
        (".toml", "a = " + "[" * 100_000 + "]" * 100_000 + "\n"),
    ],
)
def test_deeply_nested_params_file(suffix: str, text: str, local: Path, tmp_path: Path) -> None:
    params = tmp_path / f"p{suffix}"
    params.write_text(text)
    refused(CU, "-e", "emt", "--params", str(params), needle="nested too deeply")


def test_deeply_nested_param_value(local: Path) -> None:
    refused(CU, "-e", "emt", "-p", "max_steps=" + "[" * 100_000, needle="nested too deeply")


def test_params_file_that_is_a_directory(local: Path, tmp_path: Path) -> None:
    (tmp_path / "pf").mkdir()
    refused(CU, "-e", "emt", "--params", str(tmp_path / "pf"), needle="is a directory")


# ---------- 8 and 3c: physically impossible structures --------------------------------------


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


OVERLAP = "2\n\nCu 0 0 0\nCu 0 0 0\n"


def test_overlapping_atoms_are_refused(local: Path, tmp_path: Path) -> None:
    path = write(tmp_path, "overlap.xyz", OVERLAP)
    line = refused(path, "-e", "emt", needle="overlap.xyz")
    assert "atoms 0 (Cu) and 1 (Cu)" in line and "0.000 Å" in line
    assert "--allow-close-atoms" in line
    nothing_on_disk(local)


def test_close_atoms_through_a_periodic_boundary(local: Path, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "wrap.xyz",
        '2\nLattice="5 0 0 0 5 0 0 0 5" Properties=species:S:1:pos:R:3 pbc="T T T"\n'
        "Cu 0.1 2 2\nCu 4.8 2 2\n",
    )
    line = refused(path, "-e", "emt", needle="wrap.xyz")
    assert "0.300 Å" in line


def test_an_atom_too_close_to_its_own_image(local: Path, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "thin.xyz",
        '1\nLattice="0.3 0 0 0 5 0 0 0 5" Properties=species:S:1:pos:R:3 pbc="T T T"\nCu 0 2 2\n',
    )
    refused(path, "-e", "emt", needle="periodic image")


def test_close_atoms_in_one_frame_of_many(local: Path, tmp_path: Path) -> None:
    good = "2\n\nCu 0 0 0\nCu 2.5 0 0\n"
    path = write(tmp_path, "frames.xyz", good + good + "2\n\nCu 0 0 0\nCu 0.2 0 0\n")
    assert "frame 2" in refused(path, "-e", "emt", needle="frames.xyz")


def test_allow_close_atoms_lets_a_deliberate_case_through(local: Path, tmp_path: Path) -> None:
    path = write(tmp_path, "close.xyz", "2\n\nCu 0 0 0\nCu 0.45 0 0\n")
    refused(path, "-e", "emt", needle="0.450 Å")
    result = orion("submit", path, "-e", "emt", "--allow-close-atoms", "--dry-run")
    assert result.stdout.startswith("#!/bin/bash")


@pytest.mark.parametrize(
    "text, needle",
    [
        (
            '1\nLattice="0 0 0 0 0 0 0 0 0" Properties=species:S:1:pos:R:3 pbc="T T T"\nCu 0 0 0\n',
            "volume",
        ),
        (
            '1\nLattice="4 0 0 4 0 0 0 0 4" Properties=species:S:1:pos:R:3 pbc="T T T"\nCu 0 0 0\n',
            "volume",
        ),
        ("2\n\nCu 0 0 0\nCu nan 0 0\n", "not finite"),
        ("2\n\nCu 0 0 0\nCu inf 0 0\n", "not finite"),
        (
            '1\nLattice="4 0 0 0 nan 0 0 0 4" Properties=species:S:1:pos:R:3 pbc="T T T"\n'
            "Cu 0 0 0\n",
            "not finite",
        ),
    ],
)
def test_impossible_cells_and_positions_are_refused(
    text: str, needle: str, local: Path, tmp_path: Path
) -> None:
    path = write(tmp_path, "bad.xyz", text)
    refused(path, "-e", "emt", needle=needle)
    # --allow-close-atoms is for close atoms only
    refused(path, "-e", "emt", "--allow-close-atoms", needle=needle)


def test_zero_volume_cif(local: Path, tmp_path: Path) -> None:
    text = (EXAMPLES / "Cu.cif").read_text()
    import re

    text = re.sub(r"_cell_length_a\s+\S+", "_cell_length_a 0", text)
    refused(write(tmp_path, "flat.cif", text), "-e", "emt", needle="flat.cif")


def test_structure_checks_run_in_the_parallel_reader(local: Path, tmp_path: Path) -> None:
    """Big batches are read in a reader process; a bad frame there is named the same way."""
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(80):
        (folder / f"s{i:03d}.xyz").write_text("2\n\nCu 0 0 0\nCu 2.5 0 0\n")
    (folder / "s050.xyz").write_text(OVERLAP)
    line = refused(str(folder), "-e", "emt", needle="s050.xyz")
    assert "atoms 0 (Cu) and 1 (Cu)" in line
    nothing_on_disk(local)


# ---------- 8: --dry-run checks what a submit checks ------------------------------------------


def test_dry_run_runs_the_engine_check(local: Path) -> None:
    refused(str(EXAMPLES / "Si.cif"), "-e", "emt", "--dry-run", needle="emt has no parameters")


def test_dry_run_runs_the_resource_checks(local: Path, tmp_path: Path) -> None:
    refused(CU, "-e", "emt", "--dry-run", "--nodes", "0", needle="--nodes")
    refused(write(tmp_path, "o.xyz", OVERLAP), "-e", "emt", "--dry-run", needle="o.xyz")


def test_job_names_from_file_names_are_made_printable(local: Path, tmp_path: Path) -> None:
    odd = tmp_path / "Cu\x1b[2J\nx.xyz"
    odd.write_text("2\n\nCu 0 0 0\nCu 2.5 0 0\n")
    job_id = orion("submit", str(odd), "-e", "mock", "-p", "duration_s=0").stdout.strip()
    listed = json.loads(orion("ls", "--json").stdout)
    assert [job["name"] for job in listed] == ["Cu?[2J?x"]
    orion("cancel", job_id, expect=None)
