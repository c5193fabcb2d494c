"""Site set-up lines, variables and the runner's Python: checked, rendered, run, stored."""

from __future__ import annotations

import re
import shutil
import stat
import sys
from pathlib import Path

import pytest

from orion_cli.batch import render_array_script, render_script
from orion_cli.errors import ConfigError
from orion_cli.site import site_setup
from tests.conftest import EXAMPLES, need
from tests.helpers import orion, orion_json, poll_until_final
from tests.test_batch import spec

GOLDEN = Path(__file__).parent / "data" / "batch" / "job-site.sh"
EVIL_VALUE = 'a b\'c $HOME `id` \\ "q"'


def test_script_with_site_lines_matches_golden_file() -> None:
    site = site_setup(
        {"setup": ["module purge"], "env": {"OMP_NUM_THREADS": 1}, "python": "/opt/py/bin/python"},
        "qe",
        {
            "setup": ["module load qe/7.2", "ulimit -s unlimited"],
            "env": {"ESPRESSO_TMPDIR": "/scratch/$USER tmp"},
        },
        sys.executable,
    )

    text = render_script(spec(python=site.python, setup_lines=site.lines))

    assert text == GOLDEN.read_text()


def test_array_script_runs_the_same_lines_before_the_runner(tmp_path: Path) -> None:
    site = site_setup({"setup": ["module purge"]}, "emt", {"env": {"A": "1"}}, "/usr/bin/python3")
    text = render_array_script(spec(setup_lines=site.lines), tmp_path, 3)
    lines = text.splitlines()
    assert lines.index("module purge") < lines.index("export A=1") < len(lines) - 1
    assert lines[-1].startswith("exec ")


def test_env_values_reach_bash_literally(tmp_path: Path) -> None:
    import subprocess

    site = site_setup({"env": {"MARK": EVIL_VALUE}}, "emt", {}, "python3")
    script = "\n".join([*site.lines, 'printf %s "$MARK"'])
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout == EVIL_VALUE


@pytest.mark.parametrize(
    ("global_values", "engine_values", "words"),
    [
        ({"setup": ["module load qe\nrm -rf ~"]}, {}, ["setup[0]", "control character"]),
        ({}, {"setup": "echo \x1b[31m"}, ["[engines.qe] setup[0]"]),
        ({"env": {"1BAD": "x"}}, {}, ["'1BAD'"]),
        ({}, {"env": {"A": "x\ry"}}, ["[engines.qe] env.A"]),
        ({"env": {"ORION_ATTEMPT": "7"}}, {}, ["ORION_ATTEMPT", "set by orion"]),
        ({"env": {"A": [1]}}, {}, ["env.A"]),
        ({"setup": "module load qe"}, {"python": "py\n"}, ["[engines.qe] python"]),
        ({"setup": [1]}, {}, ["list of lines"]),
    ],
)
def test_bad_site_settings_name_the_key(
    global_values: dict[str, object], engine_values: dict[str, object], words: list[str]
) -> None:
    with pytest.raises(ConfigError) as info:
        site_setup(global_values, "qe", engine_values, "python3")
    for word in words:
        assert word in info.value.one_line()


def test_bad_setup_in_orion_toml_is_one_line_exit_2_and_nothing_written(
    orion_home: Path, tmp_path: Path
) -> None:
    (tmp_path / "orion.toml").write_text('setup = ["module load a\\nb"]\n')
    result = orion(
        "submit", str(EXAMPLES / "Cu.cif"), "--engine", "emt", "--scheduler", "local", expect=2
    )
    assert "orion.toml: setup[0] holds a control character" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not orion_home.exists() or not any(orion_home.rglob("*.db"))


def fake_module(root: Path) -> Path:
    """A directory that 'module load' would put first on PATH: a pw.x that notes its env."""
    real = shutil.which("pw.x")
    bin_dir = root / "qe-module" / "bin"
    bin_dir.mkdir(parents=True)
    wrapper = bin_dir / "pw.x"
    wrapper.write_text(
        f'#!/bin/sh\nprintf %s "$SITE_MARK" > site-mark.txt\n'
        f'echo "$OMP_NUM_THREADS" > omp.txt\nexec {real} "$@"\n'
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    python = root / "site-python"
    python.write_text(
        f'#!/bin/sh\necho "$@" > "$PWD/python-args.txt"\nexec {sys.executable} "$@"\n'
    )
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    return bin_dir


@pytest.mark.engines
def test_site_lines_reach_pw_x_on_a_real_run(
    orion_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """orion.toml puts a 'module' first on PATH and sets variables; pw.x sees them."""
    need(shutil.which("pw.x") is not None, "pw.x (Debian quantum-espresso)")
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    bin_dir = fake_module(tmp_path)
    toml_value = EVIL_VALUE.replace("\\", "\\\\").replace('"', '\\"')
    (tmp_path / "orion.toml").write_text(
        f'python = "{tmp_path / "site-python"}"\n'
        'env = {OMP_NUM_THREADS = "1"}\n'
        "[engines.qe]\n"
        f'setup = ["export PATH={bin_dir}:$PATH"]\n'
        f'env = {{SITE_MARK = "{toml_value}"}}\n'
    )
    (tmp_path / "si.toml").write_text(
        'ecutwfc_ry = 15\nkpoints = [2, 2, 2]\nsmearing = "none"\n[qe.input.system]\nnbnd = 12\n'
    )
    args = (
        "submit",
        str(EXAMPLES / "Si.cif"),
        "--engine",
        "qe",
        "--params",
        str(tmp_path / "si.toml"),
    )

    dry = orion(*args, "--dry-run").stdout
    job_id = orion_json(*args)["id"]
    job = poll_until_final([job_id], timeout_s=120)[0]

    assert f"export PATH={bin_dir}:$PATH" in dry and "export OMP_NUM_THREADS=1" in dry
    assert job["status"] == "completed", (job["error_message"], job["events"])
    workdir = Path(job["workdir"])
    assert (workdir / "site-mark.txt").read_text() == EVIL_VALUE
    assert (workdir / "omp.txt").read_text().strip() == "1"
    assert (workdir / "python-args.txt").read_text().split()[:2] == ["-m", "orion_cli.jobrun"]
    pw_out = (workdir / "pw.out").read_text()
    assert re.search(r"number of Kohn-Sham states=\s+12\b", pw_out)
    assert job["parameters"]["input"] == {"system": {"nbnd": 12}}
    assert job["site"]["setup"][-1] == f"export SITE_MARK={__import__('shlex').quote(EVIL_VALUE)}"
    monkeypatch.setenv("COLUMNS", "1000")  # rich wraps at 80 columns otherwise
    shown = orion("show", str(job_id)).stdout
    assert "site set-up" in shown and f"export PATH={bin_dir}:$PATH" in shown
    assert "'nbnd': 12" in shown and str(tmp_path / "site-python") in shown


def test_a_retry_runs_the_lines_stored_with_the_job(
    orion_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    (tmp_path / "orion.toml").write_text(
        '[engines.mock]\nsetup = ["echo first-config > setup-ran.txt"]\n'
    )
    job_id = orion_json(
        "submit",
        str(EXAMPLES / "Cu.cif"),
        "--engine",
        "mock",
        "-p",
        "fail=true",
        "-p",
        "duration_s=0",
    )["id"]
    (job,) = poll_until_final([job_id])
    (tmp_path / "orion.toml").write_text('[engines.mock]\nsetup = ["echo changed"]\n')
    workdir = Path(job["workdir"])
    (workdir / "setup-ran.txt").unlink()

    orion("retry", str(job_id), "--yes")
    (job,) = poll_until_final([job_id])

    assert job["attempt"] == 2
    assert "echo first-config > setup-ran.txt" in (workdir / "job.sh").read_text()
    assert (workdir / "setup-ran.txt").read_text().strip() == "first-config"
