"""Pure: read the ``#SBATCH`` header of a user's batch script, and build what orion adds.

``orion submit --script`` submits the user's script unchanged. sbatch reads ``#SBATCH``
lines from the top of the script until the first line that is neither blank nor a comment
(sbatch(1): "before any executable commands"); options given on sbatch's command line
override them. orion reads the same lines to record the job's resources, and passes its
own few options (job name, output file, ``--export`` of ``ORION_*``) on the command line.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from orion_cli.errors import UsageError
from orion_cli.resources import ResourceAsk
from orion_cli.units import clock_s, parse_mem_mb

#: short options and the long option they stand for (sbatch(1)); all take a value
_SHORT = {
    "A": "account",
    "a": "array",
    "b": "begin",
    "c": "cpus-per-task",
    "C": "constraint",
    "D": "chdir",
    "d": "dependency",
    "e": "error",
    "F": "nodefile",
    "G": "gpus",
    "i": "input",
    "J": "job-name",
    "L": "licenses",
    "M": "clusters",
    "m": "distribution",
    "N": "nodes",
    "n": "ntasks",
    "o": "output",
    "p": "partition",
    "q": "qos",
    "S": "core-spec",
    "t": "time",
    "w": "nodelist",
    "x": "exclude",
}
#: short options that take no value
_SHORT_FLAGS = {
    "H": "hold",
    "h": "help",
    "I": "immediate",
    "k": "no-kill",
    "O": "overcommit",
    "Q": "quiet",
    "s": "oversubscribe",
    "v": "verbose",
    "W": "wait",
}
#: sbatch's long options (``sbatch --help`` and sbatch(1) of Slurm 22.05); sbatch takes any
#: unambiguous prefix of one (getopt_long), so ``--arr=1-3`` is ``--array=1-3``
LONG_OPTIONS = frozenset(
    """account acctg-freq array batch bb bbf begin chdir cluster-constraint clusters comment
    constraint container contiguous core-spec cores-per-socket cpu-freq cpus-per-gpu
    cpus-per-task deadline delay-boot dependency distribution error exclude exclusive export
    export-file extra-node-info get-user-env gid gpu-bind gpu-freq gpus gpus-per-node
    gpus-per-socket gpus-per-task gres gres-flags help hint hold ignore-pbs input job-name
    kill-on-invalid-dep licenses mail-type mail-user mcs-label mem mem-bind mem-per-cpu
    mem-per-gpu mincpus network nice no-kill no-requeue nodefile nodelist nodes ntasks
    ntasks-per-core ntasks-per-gpu ntasks-per-node ntasks-per-socket open-mode output
    overcommit oversubscribe parsable partition power priority profile propagate qos quiet
    reboot requeue reservation signal sockets-per-node spread-job switches test-only
    thread-spec threads-per-core time time-min tmp uid usage use-min-nodes verbose version
    wait wait-all-nodes wckey wrap""".split()
)
_LONG = re.compile(r"[a-z][a-z0-9-]*")


def long_option(name: str) -> str:
    """The sbatch option ``--name`` stands for: itself, or the one option it abbreviates.

    >>> long_option("arr"), long_option("mem"), long_option("out"), long_option("x-made-up")
    ('array', 'mem', 'output', 'x-made-up')
    >>> long_option("gpus-per")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    orion_cli.errors.UsageError: '--gpus-per' is ambiguous in sbatch (gpus-per-node, ...
    """
    if name in LONG_OPTIONS:
        return name
    matches = sorted(option for option in LONG_OPTIONS if option.startswith(name))
    if len(matches) > 1:
        raise UsageError(
            f"'--{name}' is ambiguous in sbatch ({', '.join(matches)})",
            "write the whole option name",
        )
    return matches[0] if matches else name


#: binary files are refused: a NUL byte in the first 8 KiB
_PROBE_BYTES = 8192


@dataclass(frozen=True)
class ScriptHeader:
    """The ``#SBATCH`` options of a script, long names → value ("" for flags), in order."""

    options: dict[str, str] = field(default_factory=dict)

    def get(self, key: str) -> str | None:
        return self.options.get(key)


def header_lines(text: str) -> list[tuple[int, str]]:
    """The ``#SBATCH`` lines sbatch reads: (line number, text after ``#SBATCH``).

    >>> header_lines("#!/bin/bash\\n#SBATCH -t 5\\n\\n# note\\n#SBATCH -n 2\\necho\\n#SBATCH -N 9")
    [(2, ' -t 5'), (5, ' -n 2')]
    """
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            break
        if line.startswith("#SBATCH"):
            found.append((number, line[len("#SBATCH") :]))
    return found


def parse_header(text: str, where: str = "the script") -> ScriptHeader:
    """Read the script's ``#SBATCH`` options; a line sbatch would not read is a UsageError.

    >>> parse_header("#SBATCH --time=10 -n 4\\n#SBATCH --mem 2G  # two gig\\n#SBATCH -H").options
    {'time': '10', 'ntasks': '4', 'mem': '2G', 'hold': ''}
    """
    options: dict[str, str] = {}
    for number, rest in header_lines(text):
        bad = f"{where} line {number}: '#SBATCH{rest}'"
        fix = "write one option per #SBATCH line, e.g. #SBATCH --time=10:00"
        if rest and not rest[0].isspace():
            raise UsageError(f"{bad} is malformed (no space after #SBATCH)", fix)
        try:
            words = shlex.split(rest, comments=True)
        except ValueError as exc:
            raise UsageError(f"{bad} is malformed ({exc})", fix) from None
        _read_words(words, options, bad, fix)
    return ScriptHeader(options)


def _read_words(words: list[str], options: dict[str, str], bad: str, fix: str) -> None:
    """Add the options in ``words`` to ``options`` (a later one overrides, as in sbatch)."""
    index = 0
    while index < len(words):
        word = words[index]
        index += 1
        if word.startswith("--"):
            key, sep, value = word[2:].partition("=")
            if not _LONG.fullmatch(key):
                raise UsageError(f"{bad} has the malformed option '{word}'", fix)
            if not sep and index < len(words) and not words[index].startswith("-"):
                value, index = words[index], index + 1
            options[long_option(key)] = value  # --arr is --array to sbatch
        elif word.startswith("-") and len(word) >= 2 and word[1] in _SHORT:
            value = word[2:]
            if not value:
                if index >= len(words):
                    raise UsageError(f"{bad}: option '{word}' needs a value", fix)
                value, index = words[index], index + 1
            options[_SHORT[word[1]]] = value.removeprefix("=")
        elif len(word) == 2 and word[0] == "-" and word[1] in _SHORT_FLAGS:
            options[_SHORT_FLAGS[word[1]]] = ""
        else:
            raise UsageError(f"{bad} has '{word}', which is not an sbatch option", fix)


def _count(header: ScriptHeader, key: str, where: str) -> int | None:
    value = header.get(key)
    if value is None:
        return None
    first = value.split("-")[0]  # --nodes=2-4: at least 2
    if not first.isdigit() or int(first) < 1:
        raise UsageError(
            f"{where}: #SBATCH --{key}={value} is not a positive count",
            f"write e.g. #SBATCH --{key}=2",
        )
    return int(first)


def header_resources(header: ScriptHeader, where: str = "the script") -> ResourceAsk:
    """What the header asks for, in orion's units, from ``where``; a value sbatch would
    refuse is a UsageError.

    >>> ask = header_resources(parse_header("#SBATCH -t 1-02:00 --mem=4G -n 8 -p debug"), "s")
    >>> dict(ask.values), ask.origins["ntasks"]
    ({'walltime_s': 93600, 'mem_mb': 4096, 'ntasks': 8, 'partition': 'debug'}, 's')
    """
    walltime_s = None
    if (time := header.get("time")) is not None:
        walltime_s = clock_s(time)  # a bare number is minutes, as sbatch reads it
        if not walltime_s:
            raise UsageError(
                f"{where}: #SBATCH --time={time} is not a SLURM time",
                "write e.g. #SBATCH --time=30:00 or --time=1-02:00:00",
            )
    mem_mb = None
    if (mem := header.get("mem")) is not None:
        try:
            mem_mb = parse_mem_mb(mem)
        except UsageError:
            raise UsageError(
                f"{where}: #SBATCH --mem={mem} is not a memory size", "write e.g. #SBATCH --mem=4G"
            ) from None
    return ResourceAsk.of(
        where,
        walltime_s=walltime_s,
        mem_mb=mem_mb,
        nodes=_count(header, "nodes", where),
        ntasks=_count(header, "ntasks", where),
        cpus_per_task=_count(header, "cpus-per-task", where),
        partition=header.get("partition"),
        account=header.get("account"),
        qos=header.get("qos"),
    )


def check_script_text(raw: bytes, where: str) -> str:
    """The script's text; a binary or non-UTF-8 file is a UsageError.

    >>> check_script_text(b"#!/bin/bash\\necho hi\\n", "x")[:11]
    '#!/bin/bash'
    """
    if b"\0" in raw[:_PROBE_BYTES]:
        raise UsageError(
            f"{where} is a binary file, not a batch script",
            "give the path of a shell script with #SBATCH lines",
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(
            f"{where} is not UTF-8 text", "save the script as UTF-8 (iconv -t UTF-8)"
        ) from None


def export_option(own: str | None, env: dict[str, str]) -> str:
    """``--export`` keeping the script's own choice and adding orion's variables.

    sbatch's default (and ``ALL``) passes the submitting environment; ``NONE`` or a list
    passes only what is named. orion's variables are added in every case.

    >>> export_option(None, {"ORION_JOB_ID": "7"})
    '--export=ALL,ORION_JOB_ID=7'
    >>> export_option("NONE", {"ORION_JOB_ID": "7"}), export_option("A,B", {"X": "1"})
    ('--export=ORION_JOB_ID=7', '--export=A,B,X=1')
    """
    mine = ",".join(f"{key}={value}" for key, value in env.items())
    if own is None or own.upper() == "ALL":
        return f"--export=ALL,{mine}"
    if own.upper() == "NONE":
        return f"--export={mine}"
    return f"--export={own},{mine}"


#: slurmctld refuses a longer option value ("Pathname of a file, directory or other parameter
#: too long"): 1024 characters, 4096 (PATH_MAX) for paths; measured with ``sbatch --test-only``
#: on Slurm 22.05 (--comment/--job-name/--wckey of 1025 refused, --output of 4097 refused)
MAX_OPTION_CHARS = 1024
MAX_PATH_OPTION_CHARS = 4096
_PATH_OPTIONS = frozenset({"output", "error", "input", "chdir"})


def check_sbatch_accepts(text: str, options: dict[str, str], where: str) -> None:
    """Refuse what sbatch refuses every time: DOS line breaks, no ``#!``, an over-long option.

    Such a script can never run, so it is refused at submit rather than recorded and retried.

    >>> check_sbatch_accepts("#!/bin/sh\\n", {"comment": "x" * 1024}, "s")
    >>> check_sbatch_accepts("echo hi\\n", {}, "s")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    orion_cli.errors.UsageError: s does not start with '#!' ...
    """
    if "\r\n" in text:
        raise UsageError(
            f"{where} has DOS line breaks (\\r\\n), which sbatch refuses",
            "convert it to Unix line breaks: dos2unix <script> (or sed -i 's/\\r$//' <script>)",
        )
    if not text.startswith("#!"):
        raise UsageError(
            f"{where} does not start with '#!' (sbatch needs the interpreter on the first line)",
            "make its first line e.g. #!/bin/bash",
        )
    for key, value in options.items():
        limit = MAX_PATH_OPTION_CHARS if key in _PATH_OPTIONS else MAX_OPTION_CHARS
        if len(value) > limit:
            raise UsageError(
                f"{where}: #SBATCH --{key} is {len(value):,} characters; SLURM accepts "
                f"at most {limit:,}",
                f"shorten the value of --{key}",
            )


_PATTERN = re.compile(r"%(\d*)([%AaJjNnstux])")


def expand_output(pattern: str, job_id: str, name: str, user: str, workdir: Path) -> Path:
    """The file SLURM writes for ``#SBATCH --output=pattern`` (sbatch(1) "filename pattern").

    A relative pattern is taken from the job's working directory. ``%j``/``%J`` job id,
    ``%A`` array master id, ``%x`` job name, ``%u`` user, ``%%`` a percent sign; ``%N`` and
    the others stay as they are (orion cannot know them).

    >>> expand_output("plain-%j.out", "2323", "p", "ann", Path("/w"))
    PosixPath('/w/plain-2323.out')
    >>> expand_output("/s/%x.%u.%5j.log", "77", "run", "ann", Path("/w"))
    PosixPath('/s/run.ann.00077.log')
    """
    values = {"j": job_id, "J": job_id, "A": job_id.split("_")[0], "x": name, "u": user}

    def one(match: re.Match[str]) -> str:
        width, key = match.groups()
        if key == "%":
            return "%"
        if key not in values:
            return match.group(0)
        return values[key].zfill(int(width)) if width else values[key]

    path = Path(_PATTERN.sub(one, pattern)).expanduser()
    return path if path.is_absolute() else workdir / path
