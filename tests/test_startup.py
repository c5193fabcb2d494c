"""`orion --help` must not pay for heavy libraries."""

import subprocess
import sys

HEAVY = ("ase", "pymatgen", "sqlalchemy", "sqlmodel", "pyslurm", "numpy", "alembic", "scipy")


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
    out = subprocess.run([sys.executable, "-m", "orion_cli", "--help"], capture_output=True,
                         text=True)
    assert out.returncode == 0
    for command in ("submit", "poll", "ls", "show", "cancel", "doctor", "engines"):
        assert command in out.stdout
