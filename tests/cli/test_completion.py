"""Shell completion as a shell uses it: the script `orion --show-completion bash` prints is
sourced in a real bash, which runs the installed `orion` with Typer's protocol
(COMP_WORDS, COMP_CWORD, _ORION_COMPLETE=complete_bash) when TAB is pressed.

`_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION=1` makes Typer take the shell from the
command line instead of detecting the one it runs under (what a user gets without it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ORION = Path(sys.executable).with_name("orion")
NO_DETECTION = {"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    if not ORION.is_file() or shutil.which("bash") is None:
        pytest.fail(f"needs bash and the console script {ORION} (scripts/setup.sh installs it)")
    return {
        **os.environ,
        **NO_DETECTION,
        "HOME": str(tmp_path),
        "PATH": f"{ORION.parent}:{os.environ['PATH']}",
    }


def tab(script: str, words: list[str], env: dict[str, str]) -> list[str]:
    """What bash offers after the completion script is sourced and TAB pressed on ``words``."""
    line = " ".join(words)
    bash = (
        f"{script}\n"
        f"COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}\n"
        "_orion_completion orion\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    out = subprocess.run(
        ["bash", "--norc", "-c", bash], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    return [word for word in out.stdout.splitlines() if word]


def test_the_bash_script_completes_commands_and_options(env: dict[str, str]) -> None:
    shown = subprocess.run(
        [str(ORION), "--show-completion", "bash"], capture_output=True, text=True, env=env
    )
    assert shown.returncode == 0, shown.stderr
    script = shown.stdout
    assert "complete -o default -F _orion_completion orion" in script
    assert "_ORION_COMPLETE=complete_bash" in script
    assert tab(script, ["orion", "subm"], env) == ["submit"]
    assert tab(script, ["orion", "cancel", "--stu"], env) == ["--study"]
    assert sorted(tab(script, ["orion", "wait", "--s"], env)) == [
        "--since",
        "--slurm-id",
        "--status",
        "--study",
    ]


def test_the_protocol_directly(env: dict[str, str]) -> None:
    """The exact call Typer's bash script makes (Typer's instruction style: complete_bash)."""
    out = subprocess.run(
        [str(ORION)],
        capture_output=True,
        text=True,
        env={
            **env,
            "_ORION_COMPLETE": "complete_bash",
            "COMP_WORDS": "orion sub",
            "COMP_CWORD": "1",
        },
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["submit"]


def test_install_completion_writes_the_script_and_sources_it(
    env: dict[str, str], tmp_path: Path
) -> None:
    out = subprocess.run(
        [str(ORION), "--install-completion", "bash"], capture_output=True, text=True, env=env
    )
    assert out.returncode == 0, out.stderr
    installed = tmp_path / ".bash_completions" / "orion.sh"
    assert f"bash completion installed in {installed}" in out.stdout
    assert "_ORION_COMPLETE=complete_bash" in installed.read_text()
    assert f"source '{installed}'" in (tmp_path / ".bashrc").read_text()
    # a new interactive shell reads .bashrc and completes
    assert tab(f"source {tmp_path / '.bashrc'}", ["orion", "subm"], env) == ["submit"]
