"""orion against its references, side by side in one run; prints a markdown table.

    .venv/bin/python benchmarks/run.py --jobs 1000 --poll-jobs 10000 --repeats 3

Benchmarks (``--only`` picks some, comma-separated):

* ``help``   ``orion --help`` vs a minimal two-command Typer app (benchmarks/typer_minimal.py)
* ``submit`` ``orion submit <N files> --engine mock --hold --scheduler slurm`` (SQLite, and
             PostgreSQL) vs a bash loop of ``sbatch -H --parsable`` and ``mq submit`` (MyQueue)
* ``ls``     ``orion ls`` with N jobs vs ``mq ls`` with N tasks
* ``poll``   one ``orion poll`` cycle with ``--poll-jobs`` held jobs (PostgreSQL), and
             ``orion ls`` on PostgreSQL with that many jobs vs with N. slurmctld counts
             every array task (and every cancelled job until MinJobAge has passed) against
             MaxJobCount, so the harness waits for purges and queues as many as fit.

The machine is noisy: references and orion run interleaved (the order rotates every
repeat) and the table shows medians and ratios of medians. Every SLURM job is submitted
held and cancelled right after its measurement; everything lives in one temporary
directory, throw-away PostgreSQL databases are dropped, and the whole run stops itself
after ``--max-minutes``.

MyQueue is used from its own virtual environment (``--mq``, default /tmp/mq-venv/bin/mq;
``python3 -m venv /tmp/mq-venv && /tmp/mq-venv/bin/pip install myqueue``); where it is
missing the MyQueue rows say so.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PYTHON = REPO / ".venv" / "bin" / "python"
ORION_SCRIPT = REPO / ".venv" / "bin" / "orion"
#: how orion is started: the console script, or ``python -m orion_cli`` on a --snapshot copy
ORION: list[str] = [str(ORION_SCRIPT)]
SNAPSHOT: dict[str, str] = {}
TYPER_MINIMAL = Path(__file__).resolve().parent / "typer_minimal.py"
BENCHMARKS = ("help", "submit", "ls", "poll")
RECORD_MARGIN = 200  # slurmctld job records left free for everybody else


class Skip(Exception):
    """A measurement that cannot be made here; the row says why."""


# --------------------------------------------------------------------------- helpers


@dataclass
class Row:
    benchmark: str
    orion: str = "-"
    reference: str = "-"
    ratio: str = "-"
    goal: str = "-"
    met: str = "-"


@dataclass
class Run:
    args: argparse.Namespace
    root: Path
    deadline: float
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    databases: list[str] = field(default_factory=list)
    populated: dict[str, Any] = field(default_factory=dict)
    array_mode: bool | None = None
    submit_s_per_job: float | None = None

    def left_s(self) -> float:
        return self.deadline - time.monotonic()

    def timeout(self, cap_s: float = 900.0) -> float:
        left = self.left_s()
        if left < 5:
            raise Skip("out of time (--max-minutes)")
        return min(cap_s, left)


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without ORION_* settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORION_")}
    env.update(extra)
    return env


def orion_env(**extra: str) -> dict[str, str]:
    """The environment for an orion command (with the snapshot on PYTHONPATH if asked)."""
    return clean_env(**SNAPSHOT, **extra)


def timed(
    argv: Sequence[str | Path],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout_s: float = 600,
) -> tuple[float, str]:
    """Run ``argv``; return (wall seconds, stdout). A non-zero exit raises with stderr's tail."""
    start = time.perf_counter()
    proc = subprocess.run(
        [str(a) for a in argv], env=env, cwd=cwd, timeout=timeout_s, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RuntimeError(
            f"{Path(str(argv[0])).name} {' '.join(str(a) for a in argv[1:3])}"
            f" ... exited {proc.returncode}: {' | '.join(tail)}"
        )
    return elapsed, proc.stdout


def fmt_s(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def med(values: Sequence[float]) -> float:
    return statistics.median(values)


def interleaved(
    named: dict[str, Callable[[], float]], repeats: int, run: Run
) -> dict[str, list[float]]:
    """Call each measurement ``repeats`` times, rotating the order every round."""
    names = list(named)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_no in range(repeats):
        order = names[round_no % len(names) :] + names[: round_no % len(names)]
        for name in order:
            run.timeout()
            try:
                times[name].append(named[name]())
            except (RuntimeError, subprocess.SubprocessError) as exc:
                run.notes.append(
                    f"one `{name}` measurement failed and is left out: {str(exc)[:300]}"
                )
                log(f"  {name} failed: {exc}")
    for name, values in times.items():
        if not values:
            raise RuntimeError(f"every `{name}` measurement failed (see the notes)")
    return times


# --------------------------------------------------------------------------- SLURM


def slurm_config() -> dict[str, str]:
    out = subprocess.run(
        ["scontrol", "show", "config"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    config = {}
    for line in out.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            config[key.strip()] = value.strip()
    return config


def slurm_records(under: Path | None = None) -> int:
    """Jobs slurmctld counts against MaxJobCount now (optionally only those under ``under``).

    Every task of an array counts, pending or not, and finished jobs count until they are
    purged MinJobAge seconds after they end (seen on Slurm 22.05: ten cancelled held arrays
    of 1,000 tasks, shown by squeue as ten lines, filled MaxJobCount=10000).
    """
    out = subprocess.run(
        ["squeue", "-h", "-r", "-t", "all", "-o", "%Z"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()
    if under is None:
        return len(out)
    prefix = str(under) + "/"
    return sum(1 for workdir in out if workdir.startswith(prefix))


def wait_for_capacity(records_needed: int, run: Run) -> None:
    """Wait (bounded) until slurmctld can take ``records_needed`` more jobs."""
    limit = int(run.raw["slurm"]["MaxJobCount"])
    min_age_s = int(run.raw["slurm"]["MinJobAge"].split()[0])
    give_up = time.monotonic() + min(min_age_s + 180, max(run.left_s() - 60, 0))
    while True:
        held = slurm_records()
        if held + records_needed + RECORD_MARGIN <= limit:
            return
        if time.monotonic() > give_up:
            raise Skip(
                f"slurmctld holds {held} of MaxJobCount={limit} job records; "
                f"{records_needed} more do not fit"
            )
        log(
            f"waiting for slurmctld to purge old job records ({held} held, "
            f"{records_needed} needed, MaxJobCount={limit}, MinJobAge={min_age_s}s)"
        )
        time.sleep(15)


def jobs_under(root: Path) -> list[tuple[str, str]]:
    """(job id, array job id) of every queued job whose working directory is under ``root``."""
    out = subprocess.run(
        ["squeue", "-h", "-r", "-o", "%i|%A|%Z"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    found = []
    prefix = str(root)
    for line in out.splitlines():
        job_id, array_id, workdir = (line.split("|", 2) + ["", ""])[:3]
        if workdir == prefix or workdir.startswith(prefix + "/"):
            found.append((job_id, array_id))
    return found


def cancel_under(root: Path) -> int:
    """Cancel every job that runs in a directory under ``root``; return how many there were."""
    total = 0
    for _ in range(5):
        jobs = jobs_under(root)
        if not jobs:
            return total
        total = max(total, len(jobs))
        ids = sorted({array_id or job_id for job_id, array_id in jobs})
        for start in range(0, len(ids), 500):
            subprocess.run(["scancel", *ids[start : start + 500]], capture_output=True, timeout=120)
        time.sleep(1)
    raise RuntimeError(f"jobs under {root} are still queued after five scancel rounds")


def held_job_count(root: Path) -> tuple[int, int]:
    """(jobs, distinct SLURM job records) queued under ``root``; arrays give few records."""
    jobs = jobs_under(root)
    return len(jobs), len({array_id or job_id for job_id, array_id in jobs})


# --------------------------------------------------------------------------- PostgreSQL


def pg_admin(run: Run, statement: str) -> None:
    import psycopg

    with psycopg.connect(run.args.postgres_url, autocommit=True) as conn:
        conn.execute(statement)


def pg_database(run: Run, tag: str) -> str:
    """Create a throw-away database migrated by ``orion db upgrade``; return its URL."""
    name = f"orion_bench_{os.getpid()}_{tag}"
    pg_admin(run, f'CREATE DATABASE "{name}"')
    run.databases.append(name)
    base = run.args.postgres_url.rsplit("/", 1)[0]
    url = f"{base}/{name}"
    timed(
        [*ORION, "db", "upgrade"],
        env=orion_env(ORION_HOME=str(run.root / "pg-upgrade"), ORION_DATABASE_URL=url),
        cwd=run.root,
        timeout_s=run.timeout(120),
    )
    return url


def drop_databases(run: Run) -> None:
    for name in list(run.databases):
        try:
            pg_admin(run, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            run.databases.remove(name)
        except Exception as exc:  # keep cleaning the rest
            log(f"could not drop database {name}: {exc}")


# --------------------------------------------------------------------------- inputs


def make_structures(directory: Path, count: int, seed: int = 7) -> list[Path]:
    """Write ``count`` strained cubic Cu cells (4 atoms) as extxyz files."""
    import numpy as np
    from ase.build import bulk
    from ase.io import write

    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    base = bulk("Cu", "fcc", a=3.61, cubic=True)
    paths = []
    for index in range(count):
        atoms = base.copy()
        strain = np.eye(3) + rng.uniform(-0.02, 0.02, (3, 3))
        atoms.set_cell(atoms.cell.array @ strain, scale_atoms=True)
        path = directory / f"cu-{index:05d}.xyz"
        write(path, atoms, format="extxyz")
        paths.append(path)
    return paths


def structures(run: Run, count: int) -> list[Path]:
    key = f"structures-{count}"
    if key not in run.populated:
        log(f"writing {count} structures")
        run.populated[key] = make_structures(run.root / key, count)
    return run.populated[key]


MQ_CONFIG = """\
# written by benchmarks/run.py: the SLURM scheduler as `mq config slurm` guesses it, and
# every task submitted held (extra sbatch argument) so that the node is not flooded
config = {{
    'scheduler': 'slurm',
    'nodes': [({partition!r}, {{'cores': {cores}}})],
    'extra_args': ['--hold'],
}}
"""


def mq_folder(run: Run, tag: str, count: int) -> Path:
    """A MyQueue home with ``count`` task folders, each holding a structure and relax.py."""
    folder = run.root / f"mq-{tag}"
    (folder / ".myqueue").mkdir(parents=True)
    (folder / ".myqueue" / "config.py").write_text(
        MQ_CONFIG.format(partition=run.raw["partition"], cores=run.raw["cores"])
    )
    for index, source in enumerate(structures(run, count)):
        task_dir = folder / f"t{index:05d}"
        task_dir.mkdir()
        shutil.copy(source, task_dir / "structure.xyz")
        (task_dir / "relax.py").write_text("from ase.io import read\nread('structure.xyz')\n")
    return folder


# --------------------------------------------------------------------------- measurements


def orion_submit(run: Run, home: Path, files: list[Path], db_url: str = "") -> float:
    env = orion_env(ORION_HOME=str(home), **({"ORION_DATABASE_URL": db_url} if db_url else {}))
    argv: list[str | Path] = [
        *ORION,
        "submit",
        *files,
        "--engine",
        "mock",
        "--hold",
        "--scheduler",
        "slurm",
        "--json",
    ]
    try:
        seconds, out = timed(argv, env=env, cwd=run.root, timeout_s=run.timeout())
        data = json.loads(out)
        if len(data.get("ids", [])) != len(files) or data.get("errors"):
            raise RuntimeError(
                f"orion submitted {len(data.get('ids', []))} of {len(files)} "
                f"jobs; errors: {data.get('errors', [])[:3]}"
            )
        jobs, records = held_job_count(home)
        if jobs != len(files):
            raise RuntimeError(f"squeue shows {jobs} held jobs under {home}, not {len(files)}")
        run.array_mode = records < jobs
        run.raw.setdefault("orion_slurm_records", []).append({"jobs": jobs, "records": records})
        return seconds
    finally:
        cancel_under(home)


def sbatch_loop(run: Run, tag: str, count: int) -> float:
    folder = run.root / f"sbatch-{tag}"
    folder.mkdir()
    (folder / "job.sh").write_text("#!/bin/bash\ntrue\n")
    (folder / "loop.sh").write_text(
        f"for i in $(seq 1 {count}); do\n"
        f"  sbatch -H --parsable -J bench-sbatch-$i -o /dev/null -t 10 job.sh || exit 1\n"
        f"done > ids.txt\n"
    )
    try:
        seconds, _ = timed(["bash", "loop.sh"], cwd=folder, timeout_s=run.timeout())
        jobs, _ = held_job_count(folder)
        if jobs != count:
            raise RuntimeError(f"squeue shows {jobs} held sbatch jobs, not {count}")
        return seconds
    finally:
        cancel_under(folder)


def mq_submit(run: Run, tag: str, count: int) -> float:
    folder = mq_folder(run, tag, count)
    tasks = [f"t{index:05d}" for index in range(count)]
    try:
        seconds, _ = timed(
            [run.args.mq, "submit", "relax.py", *tasks, "-R", "1:10m"],
            env=clean_env(),
            cwd=folder,
            timeout_s=run.timeout(),
        )
        jobs, _ = held_job_count(folder)
        if jobs != count:
            raise RuntimeError(f"squeue shows {jobs} held MyQueue jobs, not {count}")
        run.populated.setdefault("mq", folder)
        return seconds
    finally:
        cancel_under(folder)


def bench_help(run: Run) -> None:
    repeats = max(20, run.args.repeats)
    log(f"help: {repeats} interleaved runs each")
    env = orion_env(ORION_HOME=str(run.root / "help-home"))
    for warm in ([*ORION, "--help"], [str(PYTHON), str(TYPER_MINIMAL), "--help"]):
        timed(warm, env=env, cwd=run.root)  # warm the page cache and .pyc files
    times = interleaved(
        {
            "orion": lambda: timed([*ORION, "--help"], env=env, cwd=run.root)[0],
            "typer": lambda: timed([PYTHON, TYPER_MINIMAL, "--help"], env=env, cwd=run.root)[0],
        },
        repeats,
        run,
    )
    run.raw["help"] = times
    orion, ref = med(times["orion"]), med(times["typer"])
    ratio = orion / ref
    run.rows.append(
        Row(
            "`orion --help` vs minimal 2-command Typer app",
            fmt_s(orion),
            fmt_s(ref),
            f"{ratio:.2f}×",
            "≤ 1.2×",
            yes(ratio <= 1.2),
        )
    )
    if shutil.which("hyperfine"):
        out = run.root / "hyperfine.json"
        subprocess.run(
            [
                "hyperfine",
                "-N",
                "--warmup",
                "3",
                "--runs",
                str(repeats),
                "--export-json",
                str(out),
                " ".join([*ORION, "--help"]),
                f"{PYTHON} {TYPER_MINIMAL} --help",
            ],
            capture_output=True,
            timeout=run.timeout(300),
            env=env,
            cwd=run.root,
        )
        if out.exists():
            results = json.loads(out.read_text())["results"]
            medians = [r["median"] for r in results]
            run.raw["help_hyperfine_median_s"] = medians
            run.notes.append(
                f"hyperfine cross-check of `--help` (not interleaved, {repeats} runs): orion "
                f"{fmt_s(medians[0])}, Typer app {fmt_s(medians[1])}, "
                f"{medians[0] / medians[1]:.2f}×."
            )


def speed(orion: float, ref: float) -> str:
    """Ratio orion ÷ reference, and how many times faster or slower that is."""
    ratio = orion / ref
    words = f"{1 / ratio:.1f}× faster" if ratio < 1 else f"{ratio:.1f}× slower"
    return f"{ratio:.3f}× ({words})"


def yes(flag: bool) -> str:
    return "yes" if flag else "**no**"


def bench_submit(run: Run) -> None:
    n, repeats = run.args.jobs, run.args.repeats
    files = structures(run, n)
    have_mq = Path(run.args.mq).exists()
    log(f"submit: {n} held jobs, {repeats} interleaved repeats")
    counter = {"orion": 0, "orion-pg": 0, "sbatch": 0, "mq": 0}

    def orion_sqlite() -> float:
        home = run.root / f"orion-sqlite-{counter['orion']}"
        counter["orion"] += 1
        wait_for_capacity(n, run)
        seconds = orion_submit(run, home, files)
        run.populated.setdefault("orion-sqlite", home)
        log(f"  orion (SQLite) {fmt_s(seconds)}")
        return seconds

    def orion_pg() -> float:
        tag = f"s{counter['orion-pg']}"
        counter["orion-pg"] += 1
        url = pg_database(run, tag)
        home = run.root / f"orion-pg-{tag}"
        wait_for_capacity(n, run)
        seconds = orion_submit(run, home, files, url)
        run.populated.setdefault("orion-pg", (home, url))
        log(f"  orion (PostgreSQL) {fmt_s(seconds)}")
        return seconds

    def sbatch() -> float:
        wait_for_capacity(n, run)
        seconds = sbatch_loop(run, str(counter["sbatch"]), n)
        counter["sbatch"] += 1
        log(f"  sbatch loop {fmt_s(seconds)}")
        return seconds

    def mq() -> float:
        wait_for_capacity(n, run)
        seconds = mq_submit(run, str(counter["mq"]), n)
        counter["mq"] += 1
        log(f"  mq submit {fmt_s(seconds)}")
        return seconds

    named: dict[str, Callable[[], float]] = {"orion": orion_sqlite, "sbatch": sbatch}
    if have_mq:
        named["mq"] = mq
    if not run.args.no_postgres:
        named["orion-pg"] = orion_pg
    times = interleaved(named, repeats, run)
    run.raw["submit"] = times
    orion = med(times["orion"])
    run.submit_s_per_job = orion / n
    mode = "as job arrays" if run.array_mode else "one sbatch per job"
    run.notes.append(
        f"orion submitted the {n} jobs {mode} "
        f"(squeue records per run: {run.raw.get('orion_slurm_records', [])[:1]})."
    )
    label = f"submit {n} held jobs: orion (SQLite)"
    ref = med(times["sbatch"])
    run.rows.append(
        Row(
            f"{label} vs bash loop of `sbatch -H --parsable`",
            fmt_s(orion),
            fmt_s(ref),
            speed(orion, ref),
            "≥ 5× faster",
            yes(ref / orion >= 5),
        )
    )
    if have_mq:
        ref = med(times["mq"])
        run.rows.append(
            Row(
                f"{label} vs `mq submit` (MyQueue)",
                fmt_s(orion),
                fmt_s(ref),
                speed(orion, ref),
                "≥ 5× faster",
                yes(ref / orion >= 5),
            )
        )
    else:
        run.rows.append(
            Row(f"{label} vs `mq submit`", fmt_s(orion), f"MyQueue not found at {run.args.mq}")
        )
    if "orion-pg" in times:
        pg = med(times["orion-pg"])
        ref = med(times["sbatch"])
        run.rows.append(
            Row(
                f"submit {n} held jobs: orion (PostgreSQL) vs sbatch loop",
                fmt_s(pg),
                fmt_s(ref),
                speed(pg, ref),
                "≥ 5× faster",
                yes(ref / pg >= 5),
            )
        )


def ensure_populated(run: Run, which: str) -> Any:
    """A database/folder with ``--jobs`` jobs for ``ls`` when ``submit`` did not run."""
    if which in run.populated:
        return run.populated[which]
    n = run.args.jobs
    log(f"ls: populating {which} with {n} jobs (held, cancelled at once)")
    wait_for_capacity(n, run)
    if which == "orion-sqlite":
        home = run.root / "orion-sqlite-ls"
        orion_submit(run, home, structures(run, n))
        run.populated[which] = home
    elif which == "orion-pg":
        url = pg_database(run, "ls")
        home = run.root / "orion-pg-ls"
        orion_submit(run, home, structures(run, n), url)
        run.populated[which] = (home, url)
    else:
        mq_submit(run, "ls", n)
    return run.populated[which]


def orion_ls(run: Run, home: Path, url: str = "", limit: int | None = None) -> float:
    env = orion_env(ORION_HOME=str(home), **({"ORION_DATABASE_URL": url} if url else {}))
    argv = [*ORION, "ls"] + (["-n", str(limit)] if limit else [])
    return timed(argv, env=env, cwd=run.root, timeout_s=run.timeout(120))[0]


def bench_ls(run: Run) -> None:
    n = run.args.jobs
    rounds = max(10, 5 * run.args.repeats)
    home = ensure_populated(run, "orion-sqlite")
    named: dict[str, Callable[[], float]] = {
        "orion": lambda: orion_ls(run, home),
        "orion-all": lambda: orion_ls(run, home, limit=n),
    }
    have_mq = Path(run.args.mq).exists()
    if have_mq:
        folder = ensure_populated(run, "mq")
        named["mq"] = lambda: timed(
            [run.args.mq, "ls"], env=clean_env(), cwd=folder, timeout_s=run.timeout(120)
        )[0]
    log(f"ls: {rounds} interleaved runs each")
    for fn in named.values():
        fn()  # warm-up
    times = interleaved(named, rounds, run)
    run.raw["ls"] = times
    orion, orion_all = med(times["orion"]), med(times["orion-all"])
    if have_mq:
        ref = med(times["mq"])
        run.rows.append(
            Row(
                f"`orion ls` (newest 50, its default) with {n} jobs, SQLite, vs "
                f"`mq ls` with {n} tasks",
                fmt_s(orion),
                fmt_s(ref),
                f"{orion / ref:.2f}×",
                "≤ 2×",
                yes(orion / ref <= 2),
            )
        )
        run.rows.append(
            Row(
                f"`orion ls -n {n}` (all rows) vs `mq ls` (all rows)",
                fmt_s(orion_all),
                fmt_s(ref),
                f"{orion_all / ref:.2f}×",
                "≤ 2×",
                yes(orion_all / ref <= 2),
            )
        )
    else:
        run.rows.append(
            Row(f"`orion ls` with {n} jobs vs `mq ls`", fmt_s(orion), "MyQueue not found")
        )


def bench_poll(run: Run) -> None:
    wanted = run.args.poll_jobs
    if run.args.no_postgres:
        raise Skip("needs PostgreSQL (--no-postgres given)")
    limit = int(run.raw["slurm"]["MaxJobCount"])
    min_age_s = int(run.raw["slurm"]["MinJobAge"].split()[0])
    # cancelled jobs (this run's and earlier ones) count against MaxJobCount until slurmctld
    # purges them: wait until enough fit, or until purging stops once ours are gone
    give_up = time.monotonic() + min(min_age_s + 180, max(run.left_s() - 240, 0))
    last_total, last_change = slurm_records(), time.monotonic()
    while time.monotonic() < give_up:
        total, ours = slurm_records(), slurm_records(run.root)
        if total < last_total:
            last_total, last_change = total, time.monotonic()
        purging = time.monotonic() - last_change < min_age_s
        enough = limit - RECORD_MARGIN - total >= min(wanted, limit - 2 * RECORD_MARGIN)
        if enough or (not ours and not purging):
            break
        log(
            f"poll: waiting for slurmctld to purge cancelled jobs ({total} records, "
            f"{ours} of this run; MaxJobCount={limit}, MinJobAge={min_age_s}s)"
        )
        time.sleep(20)
    # the --jobs PostgreSQL database for the ls comparison, made while there is room
    small_home, small_url = ensure_populated(run, "orion-pg")
    fits = limit - RECORD_MARGIN - slurm_records()
    in_time = int(max(run.left_s() - 240, 0) / (run.submit_s_per_job or 0.01))
    files_needed = max(0, min(wanted, fits, in_time))
    if files_needed < wanted:
        run.notes.append(
            f"poll: only {files_needed} of {wanted} held jobs fit: slurmctld counts every "
            f"array task against MaxJobCount={limit} and held {limit - fits - RECORD_MARGIN} "
            f"job records before set-up ({RECORD_MARGIN} left free for others)."
        )
    if files_needed < 100:
        raise Skip(f"only {files_needed} held jobs could be set up")
    url = pg_database(run, "poll")
    home = run.root / "orion-pg-poll"
    files = structures(run, files_needed)
    # orion keeps min_query_interval_s (default 10 s) between two scheduler queries; the
    # benchmark wants every cycle to ask SLURM, so it sets the interval to 0
    env = orion_env(ORION_HOME=str(home), ORION_DATABASE_URL=url, ORION_MIN_QUERY_INTERVAL_S="0")
    log(f"poll: submitting {files_needed} held jobs into PostgreSQL")
    try:
        setup_s, out = timed(
            [
                *ORION,
                "submit",
                *files,
                "--engine",
                "mock",
                "--hold",
                "--scheduler",
                "slurm",
                "--json",
            ],
            env=env,
            cwd=run.root,
            timeout_s=run.timeout(1800),
        )
        submitted = len(json.loads(out).get("ids", []))
        jobs, slurm_records_used = held_job_count(home)
        run.notes.append(
            f"poll set-up: `orion submit` of {files_needed} structures (held, "
            f"PostgreSQL) took {fmt_s(setup_s)}; {submitted} jobs recorded, "
            f"{jobs} held in squeue as {slurm_records_used} SLURM job records."
        )
        run.raw["poll_setup_s"] = setup_s
        cycles: list[float] = []
        calls: list[int] = []
        checked: list[int] = []
        for _ in range(max(3, run.args.repeats)):
            seconds, out = timed(
                [*ORION, "poll", "--json"], env=env, cwd=run.root, timeout_s=run.timeout(600)
            )
            report = json.loads(out)
            cycles.append(seconds)
            calls.append(int(report.get("scheduler_calls", -1)))
            checked.append(int(report.get("checked", -1)))
            if calls[-1] < 1 or checked[-1] < 1:
                raise RuntimeError(f"`orion poll` did not ask the scheduler: {report}")
            log(f"  poll {fmt_s(seconds)}, {calls[-1]} scheduler calls, {checked[-1]} checked")
        run.raw["poll"] = {"seconds": cycles, "scheduler_calls": calls, "checked": checked}
        label = f"one `orion poll` cycle, {jobs} held jobs (PostgreSQL)"
        first, steady = cycles[0], med(cycles[1:])
        met = steady <= 1.0 and max(calls) <= 2
        run.rows.append(
            Row(
                f"{label}: first cycle",
                f"{fmt_s(first)}, {calls[0]} calls",
                "-",
                "-",
                "≤ 1 s, ≤ 2 scheduler calls",
                yes(first <= 1.0 and calls[0] <= 2),
            )
        )
        run.rows.append(
            Row(
                f"{label}: later cycles (median of {len(cycles) - 1})",
                f"{fmt_s(steady)}, {max(calls[1:])} calls",
                "-",
                "-",
                "≤ 1 s, ≤ 2 scheduler calls",
                yes(met),
            )
        )
        if jobs < wanted:
            run.rows[-1].benchmark += f" — only {jobs} of {wanted} jobs"
            run.rows[-2].benchmark += f" — only {jobs} of {wanted} jobs"
    finally:
        cancel_under(home)
    # orion ls on PostgreSQL: this big database against the --jobs one
    rounds = max(10, 5 * run.args.repeats)
    times = interleaved(
        {
            "big": lambda: orion_ls(run, home, url),
            "small": lambda: orion_ls(run, small_home, small_url),
        },
        rounds,
        run,
    )
    run.raw["ls_pg"] = times
    big, small = med(times["big"]), med(times["small"])
    run.rows.append(
        Row(
            f"`orion ls` on PostgreSQL: {submitted} jobs vs {run.args.jobs} jobs",
            fmt_s(big),
            fmt_s(small),
            f"{big / small:.2f}×",
            "≤ 1.1× (no slower; 10 % noise)",
            yes(big / small <= 1.1),
        )
    )


# --------------------------------------------------------------------------- main


def machine_facts(run: Run) -> None:
    config = slurm_config()
    run.raw["slurm"] = {
        k: config.get(k, "?") for k in ("SLURM_VERSION", "MaxJobCount", "MinJobAge", "MaxArraySize")
    }
    sinfo = subprocess.run(
        ["sinfo", "-h", "-o", "%P|%c"], capture_output=True, text=True, timeout=30, check=True
    ).stdout.split()
    default = next((p for p in sinfo if "*" in p.split("|")[0]), sinfo[0])
    run.raw["partition"] = default.split("|")[0].rstrip("*")
    run.raw["cores"] = int(default.split("|")[1].rstrip("+"))
    git = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", "orion_cli"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    run.raw["machine"] = {
        "nproc": os.cpu_count(),
        "slurm": config.get("SLURM_VERSION", "?"),
        "python": sys.version.split()[0],
        "orion_commit": git + (" + uncommitted orion_cli changes" if dirty else ""),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }


def print_table(run: Run) -> None:
    m = run.raw.get("machine", {})
    print(
        f"\norion benchmarks — {m.get('date', '')}; {m.get('nproc')} CPUs, Slurm "
        f"{m.get('slurm')}, Python {m.get('python')}, orion {m.get('orion_commit')}; "
        f"medians of interleaved runs; ratio = orion ÷ reference\n"
    )
    print("| benchmark | orion | reference | ratio | goal | met? |")
    print("|---|---|---|---|---|---|")
    for r in run.rows:
        print(f"| {r.benchmark} | {r.orion} | {r.reference} | {r.ratio} | {r.goal} | {r.met} |")
    if run.notes:
        print()
        for note in run.notes:
            print(f"- {note}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=1000, help="jobs for submit and ls")
    parser.add_argument("--poll-jobs", type=int, default=10000, help="jobs for poll")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats")
    parser.add_argument(
        "--only",
        default=",".join(BENCHMARKS),
        help=f"comma-separated subset of: {', '.join(BENCHMARKS)}",
    )
    parser.add_argument("--mq", default="/tmp/mq-venv/bin/mq", help="MyQueue's mq command")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "ORION_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="admin URL used to create and drop throw-away databases",
    )
    parser.add_argument("--no-postgres", action="store_true", help="skip PostgreSQL runs")
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=45.0,
        help="stop measuring after this long (cleanup still runs)",
    )
    parser.add_argument("--json-out", type=Path, help="also write raw figures here")
    parser.add_argument(
        "--snapshot",
        action="store_true",
        help="copy orion_cli/ first and run `python -m orion_cli` on the copy",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(only) - set(BENCHMARKS)
    if unknown:
        parser.error(
            f"unknown benchmark(s) {', '.join(sorted(unknown))}; "
            f"choose from {', '.join(BENCHMARKS)}"
        )
    args.only = only
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not ORION_SCRIPT.exists():
        print(f"error: {ORION_SCRIPT} not found — run scripts/setup.sh first", file=sys.stderr)
        return 2
    root = Path(tempfile.mkdtemp(prefix="orion-bench-"))
    if args.snapshot:  # measure one consistent copy while the work tree may be edited
        shutil.copytree(
            REPO / "orion_cli",
            root / "snapshot" / "orion_cli",
            ignore=shutil.ignore_patterns("__pycache__"),
        )
        ORION[:] = [str(PYTHON), "-m", "orion_cli"]
        SNAPSHOT["PYTHONPATH"] = str(root / "snapshot")
    run = Run(args, root, time.monotonic() + args.max_minutes * 60)

    def stop(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)
    benches = {"help": bench_help, "submit": bench_submit, "ls": bench_ls, "poll": bench_poll}
    try:
        needs_slurm = set(args.only) - {"help"}
        if needs_slurm and not shutil.which("sbatch"):
            print("error: sbatch not found — scripts/slurm-up.sh", file=sys.stderr)
            return 2
        if needs_slurm:
            machine_facts(run)
        else:
            run.raw["machine"] = {
                "nproc": os.cpu_count(),
                "python": sys.version.split()[0],
                "date": time.strftime("%Y-%m-%d %H:%M %Z"),
            }
        for name in args.only:
            try:
                benches[name](run)
            except Skip as exc:
                run.rows.append(Row(f"{name}: not measured", str(exc)))
            except (RuntimeError, subprocess.SubprocessError) as exc:
                run.rows.append(Row(f"{name}: failed", str(exc)[:300]))
                log(f"{name} failed: {exc}")
    finally:
        try:
            cancelled = cancel_under(root) if shutil.which("squeue") else 0
            if cancelled:
                log(f"cleanup: cancelled {cancelled} leftover jobs")
        finally:
            drop_databases(run)
            if args.json_out:
                args.json_out.write_text(
                    json.dumps(
                        {
                            "rows": [r.__dict__ for r in run.rows],
                            "notes": run.notes,
                            "raw": {k: v for k, v in run.raw.items()},
                        },
                        indent=1,
                        default=str,
                    )
                )
            if args.keep:
                log(f"kept {root}")
            else:
                shutil.rmtree(root, ignore_errors=True)
    print_table(run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
