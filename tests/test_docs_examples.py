"""The documentation's command blocks run and print what the pages show (tests/docs_blocks.py).

``python tests/test_docs_examples.py PAGE`` prints each command's real (normalized) output,
to write a page's blocks.
"""

from __future__ import annotations

import difflib
import getpass
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docs_blocks import (
    REPO,
    blocks,
    environment,
    fresh_home,
    matches,
    normalize,
    page_markers,
    pages,
    run,
)


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A temporary directory with a short path (``/tmp/dXXXXXXXX``), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="d", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _param(page: Path) -> object:
    marks = [getattr(pytest.mark, name) for name in sorted(page_markers(page))]
    return pytest.param(page, id=str(page.relative_to(REPO)), marks=marks)


@pytest.mark.parametrize("page", [_param(p) for p in pages() if any(not b.skip for b in blocks(p))])
def test_page_commands_print_what_the_page_shows(page: Path, short_tmp: Path) -> None:
    if "slurm" in page_markers(page):
        from tests.conftest import need

        need(shutil.which("sbatch") is not None, "SLURM (sbatch)")
    home, project = fresh_home(short_tmp)
    env = environment(home, slurm="slurm" in page_markers(page))
    cwd = project
    for block in blocks(page):
        if block.skip:
            continue
        for command in block.commands:
            where = f"{block.page}:{block.line_no}: $ {command.line}"
            if command.line.startswith("cd "):
                cwd = (cwd / command.line[3:].strip()).resolve()
                continue
            code, output = run(command, cwd, env)
            actual = normalize(output, home)
            expected = normalize("\n".join(command.expected))
            assert code == command.exit_code, f"{where}\nexit {code}\n{output}"
            diff = difflib.unified_diff(expected, actual, "the page", "the command", lineterm="")
            assert matches(expected, actual), f"{where}\n" + "\n".join(diff)


def test_command_blocks_of_executed_pages_are_console_blocks() -> None:
    """A block of ``orion`` commands in another kind of fence would escape the test."""
    fence = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
    for page in pages():
        for match in fence.finditer(page.read_text()):
            kind, body = match.group(1), match.group(2)
            if kind in ("console", "toml", "python", "yaml", "json", "text", "crontab"):
                continue
            commands = [
                line for line in body.splitlines() if line.lstrip("$ ").startswith("orion ")
            ]
            assert not commands, f"{page.relative_to(REPO)}: orion commands in a ```{kind} block"


def test_the_executed_pages_have_blocks() -> None:
    counted = {str(p.relative_to(REPO)): len(blocks(p)) for p in pages()}
    assert counted["README.md"] >= 1
    assert counted["docs/tutorials/first-job.md"] >= 3


def fill(page: Path) -> None:
    """Write the real output under the commands of the page's blocks that show none yet."""
    text = page.read_text()
    with tempfile.TemporaryDirectory(prefix="d", dir="/tmp") as tmp:
        home, cwd = fresh_home(Path(tmp))
        env = environment(home, slurm="slurm" in page_markers(page))
        for block in blocks(page):
            if block.skip:
                continue
            empty = all(not c.expected for c in block.commands)
            shown = []
            for command in block.commands:
                code, output = run(command, cwd, env)
                output = output.replace(str(home), "~").replace(getpass.getuser(), "ann")
                shown += [f"$ {command.line}", *output.rstrip().splitlines()]
            if empty:
                old = "\n".join(f"$ {c.line}" for c in block.commands)
                text = text.replace(
                    f"```console\n{old}\n```", "```console\n" + "\n".join(shown) + "\n```", 1
                )
    page.write_text(text)


if __name__ == "__main__" and sys.argv[1] == "--fill":
    for name in sys.argv[2:]:
        fill((REPO / name).resolve())
elif __name__ == "__main__":  # print the real output of a page's commands
    for name in sys.argv[1:]:
        page = (REPO / name).resolve()
        with tempfile.TemporaryDirectory(prefix="d", dir="/tmp") as tmp:
            home, cwd = fresh_home(Path(tmp))
            env = environment(home, slurm="slurm" in page_markers(page))
            for block in blocks(page):
                print(
                    f"## {name}:{block.line_no}"
                    + (f" (skipped: {block.skip})" if block.skip else "")
                )
                if block.skip:
                    continue
                for command in block.commands:
                    if command.line.startswith("cd "):
                        cwd = (cwd / command.line[3:].strip()).resolve()
                        continue
                    code, output = run(command, cwd, env)
                    print(f"$ {command.line}" + (f"   [exit {code}]" if code else ""))
                    print(output.replace(str(home), "~").rstrip())
