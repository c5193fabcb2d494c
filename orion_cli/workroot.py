"""Where job directories go, and who may own the directories above them.

A job's batch script runs ``job.json`` from its job directory as the job's owner. Whoever
can rename or replace that directory runs code as the owner, so orion puts jobs only in a
per-database directory the caller (or root) owns and nobody else may change, inside a work
root that is the caller's or root's and, when others may write it, has the sticky bit (like
``/tmp``: nobody renames another's entries). Compute nodes run the same check before a job
starts (:func:`check_job_dir`).
"""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

from orion_cli.errors import ConfigError

OWN_HINT = "set work_root to a directory of your own, e.g. work_root = /scratch/<group>/$USER"


def owner_name(uid: int) -> str:
    """The account name of ``uid`` (``uid N`` when it has none).

    >>> owner_name(0)
    'root'
    """
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _check(path: Path, what: str, sticky_ok: bool) -> None:
    st = path.stat()
    if st.st_uid not in (os.getuid(), 0):
        raise ConfigError(
            f"{what} {path} belongs to {owner_name(st.st_uid)}, not to you or root; "
            "orion does not put your jobs in it",
            OWN_HINT,
        )
    if st.st_mode & 0o022 and not (sticky_ok and st.st_mode & stat.S_ISVTX):
        raise ConfigError(
            f"{what} {path} can be changed by others (mode {stat.S_IMODE(st.st_mode):04o}); "
            "orion does not put your jobs in it",
            f"chmod go-w {path}, or {OWN_HINT}",
        )


def job_base(work_root: Path, instance: str, mode: int) -> Path:
    """Make (if needed) and check ``<work_root>/<instance>``; return it.

    Refused with one line: a work root or per-database directory another user owns, or one
    others may change (a work root others may write needs the sticky bit).
    """
    base = work_root / instance
    try:
        work_root.mkdir(mode=0o755, parents=True, exist_ok=True)  # never 0777 under umask 0
        _check(work_root, "work root", sticky_ok=True)
        base.mkdir(mode=0o700, exist_ok=True)
        _check(base, "job directory", sticky_ok=False)
        if base.stat().st_uid == os.getuid():  # no other user reads or enters the job dirs
            os.chmod(base, mode)
    except OSError as exc:
        raise ConfigError(f"cannot use work root {work_root}: {exc.strerror}", OWN_HINT) from None
    if not os.access(base, os.W_OK | os.X_OK):
        raise ConfigError(f"you may not write in {base}", OWN_HINT)
    return base


def check_job_dir(workdir: Path, job_file: Path) -> str | None:
    """Why a job must not run from ``workdir`` (None: it may). Used by the job runner.

    The directory and its ``job.json`` must be the running user's and nobody else may write
    the directory: a planted ``job.json`` would run its command as this user.
    """
    uid = os.getuid()
    for path in (workdir, job_file):
        try:
            st = path.lstat()
        except FileNotFoundError:
            continue  # job.json's absence is reported by the runner
        if st.st_uid != uid:
            return f"{path} belongs to {owner_name(st.st_uid)}, not to {owner_name(uid)}"
        if stat.S_ISDIR(st.st_mode) and st.st_mode & 0o022:
            return f"{path} can be changed by others (mode {stat.S_IMODE(st.st_mode):04o})"
    return None
