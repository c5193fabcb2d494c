"""`orion --help` must not pay for heavy libraries."""

import subprocess
import sys

HEAVY = (
    "ase",
    "pymatgen",
    "sqlalchemy",
    "sqlmodel",
    "pyslurm",
    "numpy",
    "alembic",
    "scipy",
    "torch",
)


def test_cli_import_and_help_load_no_heavy_module() -> None:
    code = (
        "import sys\n"
        "from orion_cli.cli import app\n"
        "from typer.testing import CliRunner\n"
        "result = CliRunner().invoke(app, ['--help'])\n"
        "assert result.exit_code == 0, result.output\n"
        "assert 'submit' in result.output\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_console_script_help_exits_zero() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "orion_cli", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0
    for command in ("submit", "poll", "ls", "show", "cancel", "doctor", "engines"):
        assert command in out.stdout


def test_progress_inside_a_job_loads_no_heavy_module(tmp_path) -> None:  # noqa: ANN001
    """`orion progress` runs on compute nodes, many times per job: no database, no ASE."""
    code = (
        "import sys\n"
        "from orion_cli.cli import app\n"
        "from typer.testing import CliRunner\n"
        "for args in (['progress', '40', 'SCF step 12'], ['progress', '--result', 'e=1']):\n"
        "    result = CliRunner().invoke(app, args)\n"
        "    assert result.exit_code == 0, result.output\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    env = {"ORION_JOB_DIR": str(tmp_path), "ORION_ATTEMPT": "1", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == ""
    assert (tmp_path / "events.jsonl").read_text().count("\n") == 1


def test_progress_console_script_skips_typer(tmp_path) -> None:  # noqa: ANN001
    """The console script's plain `orion progress` forms load neither typer nor pydantic."""
    code = (
        "import sys\n"
        "from orion_cli.entry import fast_progress\n"
        "assert fast_progress(['40', 'SCF', 'step']) == 0\n"
        "assert fast_progress(['--result', 'energy_ev=-1.5']) == 0\n"
        "assert fast_progress(['--help']) is None  # typer's help\n"
        f"print(','.join(m for m in {HEAVY + ('typer', 'pydantic', 'rich')!r}"
        " if m in sys.modules))\n"
    )
    env = {"ORION_JOB_DIR": str(tmp_path), "ORION_ATTEMPT": "1", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == ""
    assert '"step":"SCF step"' in (tmp_path / "events.jsonl").read_text()


def test_completion_on_tab_loads_no_heavy_module() -> None:
    """Each TAB runs `orion` with _ORION_COMPLETE set: it must start as fast as --help."""
    code = (
        "import os, sys\n"
        "os.environ.update(_ORION_COMPLETE='complete_bash', COMP_WORDS='orion cancel --stu',"
        " COMP_CWORD='2')\n"
        "sys.argv = ['orion']\n"
        "from orion_cli.entry import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    assert exc.code in (0, None), exc.code\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["--study"]
    assert out.stderr.strip() == ""


def test_version_is_the_one_installed_and_declared() -> None:
    """`orion --version` prints the version pip installed, which is pyproject.toml's."""
    import tomllib
    from importlib.metadata import version
    from pathlib import Path

    out = subprocess.run(
        [sys.executable, "-m", "orion_cli", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0 and out.stderr == ""
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    declared = tomllib.loads(pyproject.read_text())["project"]["version"]
    assert out.stdout == f"orion {version('orion-cli')}\n" == f"orion {declared}\n"
