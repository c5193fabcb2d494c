"""Executed documentation: collect the ``console`` blocks of the pages, run them, compare.

The convention (CONTRIBUTING.md, "Executed documentation"):

- Every fenced block marked ``console`` in README.md, docs/tutorials/ and docs/how-to/ runs.
  A line starting with ``$ `` is a command (a trailing ``\\`` continues it on the next line);
  the lines after it, up to the next command, are its output: stdout and stderr together, as
  a terminal shows them.
- A command must exit 0, unless its line ends with ``# exit N``: then it must exit N.
- Each page runs in a fresh home: ``HOME`` is a new directory, commands run in ``~/project``,
  which holds the files of ``examples/structures`` and ``examples/params`` and a copy of
  ``examples/``. The local scheduler runs the jobs, unless the page holds
  ``<!-- docs-test: slurm -->`` (then the real cluster, and the test is marked ``slurm``).
  ``<!-- docs-test: engines -->`` marks a page that needs pw.x or lmp, and
  ``<!-- docs-test: slow -->`` one whose commands take a minute or more (marked ``slow``).
- ``<!-- docs-test: skip REASON -->`` on the line before a block leaves that block out.
- In the shown output, a line ``...`` stands for any number of lines and ``...`` inside a
  line for any text. Dates, times, durations, ages, the home directory (shown as ``~``) and
  the user (shown as ``ann``) are normalized on both sides, and runs of spaces count as one.
"""

from __future__ import annotations

import getpass
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXECUTED = ["README.md", "docs/tutorials/*.md", "docs/how-to/*.md", "docs/how-to/*/*.md"]
FENCE = re.compile(r"^```console[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
SKIP = re.compile(r"<!-- docs-test: skip ([^>]+?) -->\s*$")
EXIT = re.compile(r"\s+# exit (\d+)$")


@dataclass
class Command:
    line: str
    expected: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        match = EXIT.search(self.line)
        return int(match.group(1)) if match else 0


@dataclass
class Block:
    page: str
    line_no: int
    commands: list[Command]
    skip: str = ""


def pages() -> list[Path]:
    found: list[Path] = []
    for pattern in EXECUTED:
        found += sorted(REPO.glob(pattern))
    return found


def parse_block(text: str) -> list[Command]:
    """The commands of one console block, each with the output lines shown after it.

    >>> [(c.line, c.expected) for c in parse_block("$ orion ls \\\\\\n  --count\\nnone\\n")]
    [('orion ls --count', ['none'])]
    """
    commands: list[Command] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("$ "):
            command = line[2:]
            while command.endswith("\\") and i + 1 < len(lines):
                i += 1
                command = command[:-1].rstrip() + " " + lines[i].strip()
            commands.append(Command(command))
        elif commands:
            commands[-1].expected.append(line)
        i += 1
    return commands


def blocks(page: Path) -> list[Block]:
    text = page.read_text()
    found = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        skip = SKIP.search(before)
        line_no = text.count("\n", 0, match.start()) + 1
        found.append(
            Block(
                str(page.relative_to(REPO)),
                line_no,
                parse_block(match.group(1)),
                skip.group(1) if skip else "",
            )
        )
    return found


def page_markers(page: Path) -> set[str]:
    return set(re.findall(r"<!-- docs-test: (slurm|engines|slow|mlip) -->", page.read_text()))


_VOLATILE = [
    (re.compile(r"/jobs/[0-9a-f]{6}\b"), "/jobs/<db>"),  # first: "94871d" is no duration
    (re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(\+00:00| UTC)?"), "<time>"),
    (re.compile(r"\b\d\d:\d\d:\d\d\b"), "<time>"),
    (re.compile(r"\b\d+(\.\d+)?(ms|s|m|h|d)\b"), "<dur>"),
    (re.compile(r"\b(\w+_s|run time|queue wait)(\s+)\d+(\.\d+)?\b"), r"\1\2<n>"),
]


#: a float printed with all its digits: the last ones differ between CPUs (the order of a
#: vectorised sum), so both sides are compared to 12 significant digits
_LONG_FLOAT = re.compile(r"-?\d+\.\d{12,}(?:e[-+]?\d+)?")


def _rounded(match: re.Match[str]) -> str:
    return f"{float(match.group()):.12g}"


def normalize(text: str, home: Path | None = None) -> list[str]:
    """Lines with what changes from run to run replaced, spaces collapsed.

    >>> normalize("job 1   done at 2026-11-30T11:02:41.5+00:00 after 3.2s  ")
    ['job 1 done at <time> after <dur>']
    >>> normalize("energy_ev -0.02675507474316774") == normalize("energy_ev -0.02675507474315353")
    True
    >>> normalize("plot: ~/jobs/94871d/6/eos.png")  # a database's directory, not a duration
    ['plot: ~/jobs/<db>/6/eos.png']
    """
    if home is not None:
        text = text.replace(str(home), "~")
        user = getpass.getuser()
        if user != "ann":
            text = re.sub(rf"\b{re.escape(user)}\b", "ann", text)
    for pattern, replacement in _VOLATILE:
        text = pattern.sub(replacement, text)
    text = _LONG_FLOAT.sub(_rounded, text)
    lines = [" ".join(line.split()) for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def matches(expected: list[str], actual: list[str]) -> bool:
    """Whether ``actual`` is what ``expected`` shows (``...`` lines and parts match anything).

    >>> matches(["a", "...", "z ...x"], ["a", "b", "c", "z 1x"]), matches(["a"], ["b"])
    (True, False)
    """
    parts = []
    for line in expected:
        if line == "...":
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append(".*".join(re.escape(p) for p in line.split("...")) + r"\n")
    return re.fullmatch("".join(parts), "".join(f"{a}\n" for a in actual)) is not None


def fresh_home(base: Path) -> tuple[Path, Path]:
    """A home directory with ``~/project`` holding the example files; returns both.

    ``base`` should be short: output wider than ``COLUMNS`` wraps where the page's would not.
    """
    home = base / "home"
    project = home / "project"
    project.mkdir(parents=True)
    for folder in ("structures", "params"):
        for path in (REPO / "examples" / folder).iterdir():
            if path.is_file():
                shutil.copy(path, project / path.name)
    shutil.copytree(REPO / "examples", project / "examples")
    return home, project


def environment(home: Path, slurm: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORION_")}
    bin_dir = str(Path(sys.executable).parent)
    env.update(
        HOME=str(home),
        PATH=f"{bin_dir}:{env.get('PATH', '')}",
        COLUMNS="160",
        PYTHONUNBUFFERED="1",
        ORION_MIN_QUERY_INTERVAL_S="0",
        ORION_WAIT_INTERVAL_S="0.5",
    )
    env.pop("XDG_DATA_HOME", None)
    env.pop("XDG_CONFIG_HOME", None)
    if not slurm:
        env["ORION_SCHEDULER"] = "local"
    return env


#: a line the shell would pass to ``orion`` word for word: no pipe, redirection, variable,
#: glob, ``~``, quote, comment or second command
_PLAIN = re.compile(r"orion(?: [^|&;<>`$()*?~#\\{}\[\]'\"]+)?")


def run(command: Command, cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """Run one command line as the page's reader does: ``bash -c LINE`` in ``cwd`` with
    ``env``. A plain ``orion ARGS`` line runs the same command in this process instead
    (see ``run_in_process``).

    >>> [bool(_PLAIN.fullmatch(line)) for line in ("orion ls -n 5", "orion ls  # all",
    ...     "orion show ~/x", "orion ls | head", "orion submit 'a b'")]
    [True, False, False, False, False]
    """
    line = EXIT.sub("", command.line)
    if _PLAIN.fullmatch(line):
        return run_in_process(line.split()[1:], cwd, env)
    done = subprocess.run(
        ["bash", "-c", line],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
    )
    return done.returncode, done.stdout


def run_in_process(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """``orion ARGS`` through the console script's own entry (``orion_cli.entry.main``) in
    this process, with the line's environment, directory and argv, stdout and stderr
    together: what ``bash -c`` would show, without the 0.5 s of interpreter and imports a new
    process pays (the docs pages are the fast layer's longest test). The jobs it starts are
    separate processes as before; lines with pipes, variables or globs still go to bash,
    and tests/test_startup.py runs the installed script itself."""
    import contextlib
    import io

    from orion_cli.entry import main

    saved_env, saved_cwd, saved_argv = dict(os.environ), Path.cwd(), sys.argv
    output = io.StringIO()
    code = 0
    try:
        os.environ.clear()
        os.environ.update(env)
        os.chdir(cwd)
        sys.argv = ["orion", *args]
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            try:
                main()
            except SystemExit as exc:  # as the interpreter does: a text is printed, exit 1
                if isinstance(exc.code, str):
                    print(exc.code, file=output)
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)
        sys.argv = saved_argv
    return code, output.getvalue()
