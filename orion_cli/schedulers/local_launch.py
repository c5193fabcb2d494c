"""Start one batch script as a detached background process (the local backend's launcher).

The wrapper shell writes ``started`` when the script begins and ``exit`` (its status) when it
ends, into the job's directory. Array tasks with a throttle first take one of ``throttle``
slots (``slot.<k>`` directories, made atomically with ``mkdir``) in the array's directory.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

from orion_cli.errors import SchedulerError, UsageError
from orion_cli.runner import job_environment
from orion_cli.sbatch_header import long_option

# $0 = script, $1 = job dir, $2 = seconds to wait before starting (SubmitOptions.begin),
# $3 = slot dir ("" = no throttle), $4 = number of slots, then the script's own arguments;
# it waits for its parents
# dependencies: "$1/after" holds "<afterok|afterany> <local id>" lines, read again every
# half second (set_dependency rewrites it); a sibling job's "exit" file says it ended
_WAIT_FOR_PARENTS = (
    'while [ -s "$1/after" ] && ! (while read -r k d; do '
    '[ -e "$1/../$d/exit" ] || [ -e "$1/../$d/cancelled" ] || exit 1; '
    '[ "$k" = afterany ] || [ "$(cat "$1/../$d/exit" 2>/dev/null)" = 0 ] || exit 1; '
    'done < "$1/after"); do sleep 0.5; done; '
)
_WRAPPER = (
    's=; trap \'[ -z "$s" ] || rmdir "$s"; exit 143\' TERM; sleep "$2"; '
    + _WAIT_FOR_PARENTS
    + 'while [ -n "$3" ] && [ -z "$s" ]; do k=0; while [ "$k" -lt "$4" ]; do '
    'if mkdir "$3/slot.$k" 2>/dev/null; then s="$3/slot.$k"; break; fi; k=$((k+1)); done; '
    '[ -n "$s" ] || sleep 0.2; done; '
    'j=$1; : > "$j/started"; shift 4; bash "$0" "$@"; rc=$?; [ -z "$s" ] || rmdir "$s"; '
    'printf "%s\\n" "$rc" > "$j/exit.tmp"; mv "$j/exit.tmp" "$j/exit"'
)
# the launcher backgrounds the wrapper and exits at once: the wrapper is re-parented to init
# (no zombie), and its process group (= launcher pid) survives for cancel
_LAUNCHER = 'o=$1 e=$2; shift 2; sh -c "$0" "$@" </dev/null >>"$o" 2>>"$e" & echo $!'
_SBATCH_LINE = re.compile(r"^#SBATCH\s+(?:--([a-z][a-z0-9-]*)=|-([oeJD])\s*)(.*\S)")
_SHORT_OPTION = {"o": "output", "e": "error", "J": "job-name", "D": "chdir"}
_READ = ("output", "error", "job-name", "chdir", "export")
NO_ARRAY_INDEX = "4294967294"  # what sbatch puts for %a outside arrays


def _long(name: str) -> str:
    """sbatch's option for an abbreviation (``--out`` is ``--output``); "" if ambiguous."""
    try:
        return long_option(name)
    except UsageError:
        return ""


def read_sbatch_options(script_text: str) -> dict[str, str]:
    """Read ``--output``, ``--error``, ``--job-name``, ``--chdir``, ``--export`` (header).

    >>> read_sbatch_options("#!/bin/bash\\n#SBATCH --output=run-%j.out\\n#SBATCH -J relax\\n")
    {'output': 'run-%j.out', 'job-name': 'relax'}
    """
    options: dict[str, str] = {}
    for line in script_text.splitlines():
        if line and not line.startswith("#"):
            break  # sbatch stops reading #SBATCH lines at the first command
        match = _SBATCH_LINE.match(line)
        if match:
            key = _long(match.group(1)) if match.group(1) else _SHORT_OPTION[match.group(2)]
            if key in _READ:
                options[key] = shlex.split(match.group(3))[0] if match.group(3) else ""
    return options


def expand_filename(
    pattern: str, job_id: str, job_name: str, array_id: str = "", task: str = NO_ARRAY_INDEX
) -> str:
    """Replace the ``%j``, ``%x``, ``%A``, ``%a`` and ``%%`` patterns that sbatch knows.

    >>> expand_filename("out-%x-%j.log", "L7", "relax")
    'out-relax-L7.log'
    >>> expand_filename("%A_%a.out", "L7_3", "relax", "L7", "3")
    'L7_3.out'
    """
    replacements = {"%%": "%", "%j": job_id, "%x": job_name, "%A": array_id or job_id, "%a": task}
    return re.sub(r"%[%jxAa]", lambda m: replacements[m.group(0)], pattern)


def alive(pid: int) -> bool:
    """Tell whether process ``pid`` exists (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc (macOS): trust kill(0)


def launch(
    script: Path,
    job_dir: Path,
    output_paths: tuple[Path, Path],
    delay_s: int,
    env: dict[str, str],
    slots: tuple[Path, int] | None = None,
    cwd: Path | None = None,
    args: tuple[str, ...] = (),
) -> dict[str, int]:
    """Launch the wrapper shell detached (double fork: no zombie); return pid and pgid."""
    slot_dir, slot_count = slots or (Path(), 0)
    argv = [
        "sh",
        "-c",
        _LAUNCHER,
        _WRAPPER,
        str(output_paths[0]),
        str(output_paths[1]),
        str(script),
        str(job_dir),
        str(delay_s),
        str(slot_dir) if slots else "",
        str(slot_count),
        *args,
    ]
    proc = subprocess.Popen(
        argv,
        cwd=cwd or script.parent,
        env={**job_environment(os.environ), **env},  # no database URL in a job
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the launcher leads a new process group: pgid = its pid
    )
    pid_text, error_text = proc.communicate()
    if proc.returncode != 0 or not pid_text.strip().isdigit():
        raise SchedulerError(
            f"cannot start {script}: {error_text.strip() or 'no pid'}",
            f"check that {output_paths[0].parent} is writable",
        )
    return {"pid": int(pid_text), "pgid": proc.pid}
