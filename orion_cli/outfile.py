"""The one way orion writes a file for a user: no planted link followed, no device replaced.

A regular file (or a name not yet taken) is written to a fresh temporary file made by
``mkstemp`` in the target's own directory (``O_CREAT|O_EXCL``: a planted link or file under a
guessed name is never opened), its mode set with ``fchmod`` on the descriptor, then renamed
over the target. A character device, a FIFO or a socket (``/dev/null``, ``/dev/stdout``, a
named pipe) is written directly, never replaced; ``-`` is standard output. Every failure is
one :class:`UsageError` naming the path.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from orion_cli.errors import UsageError

#: what a user's own output gets when nothing else is asked: read/write as umask allows
DEFAULT_MODE = 0o666


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _target_kind(path: Path) -> str:
    """'missing', 'regular' or 'stream' (written in place); refuse a directory.

    ``stat`` follows a link on purpose: ``/dev/stdout`` is a link to the caller's stream.
    A link to a regular file is replaced by the new file; its target is never touched.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        raise _refusal(path, exc) from None
    if stat.S_ISDIR(mode):
        raise UsageError(f"'{path}' is a directory", "give a file name")
    if stat.S_ISREG(mode):
        return "regular"
    if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        return "stream"
    raise UsageError(f"'{path}' is a block device; orion does not write to it", "give a file")


def check_output_path(path: Path) -> None:
    """Refuse early (before any work) a path :func:`open_output` could not write."""
    if str(path) == "-" or _target_kind(path) == "stream":
        return
    parent = path.parent
    if not parent.is_dir():
        raise _refusal(path, FileNotFoundError(errno.ENOENT, "No such file or directory"))
    if not os.access(parent, os.W_OK | os.X_OK):
        raise _refusal(path, PermissionError(errno.EACCES, "Permission denied"))


def _refusal(path: Path, exc: OSError) -> UsageError:
    """One line for an OS error on ``path`` (the hint says what to do)."""
    if exc.errno == errno.ENOENT and path.parent.is_dir():  # /proc: no new files there
        return UsageError(
            f"cannot write '{path}': no new file can be made in '{path.parent}'",
            "give a path in an ordinary directory",
        )
    if exc.errno == errno.ENOENT:
        return UsageError(
            f"cannot write '{path}': directory '{path.parent}' does not exist",
            "create it first or give another path",
        )
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return UsageError(
            f"cannot write '{path}': {exc.strerror.lower() if exc.strerror else exc}",
            "give a path in a directory you may write",
        )
    if exc.errno == errno.EISDIR:
        return UsageError(f"'{path}' is a directory", "give a file name")
    return UsageError(f"cannot write '{path}': {exc.strerror or exc}", "give another path")


@contextmanager
def open_output(
    path: Path | str, mode: int | None = None, binary: bool = False
) -> Iterator[IO[Any]]:
    """Yield a file object for ``path``; on a clean exit the file is complete and in place.

    ``mode`` is the final permission bits of a regular file (default: 0666 less the umask).
    """
    if str(path) == "-":
        yield sys.stdout.buffer if binary else sys.stdout
        return
    path = Path(path)
    kind = _target_kind(path)
    if kind == "stream":
        yield from _stream(path, binary)
        return
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:100]}.", suffix=".part", dir=path.parent)
    except OSError as exc:
        raise _refusal(path, exc) from None
    try:
        os.fchmod(fd, DEFAULT_MODE & ~_umask() if mode is None else mode)
        with _fdopen(fd, binary) as handle:
            yield handle
        _replace(Path(tmp), path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _fdopen(fd: int, binary: bool) -> IO[Any]:
    if binary:
        return os.fdopen(fd, "wb")
    return os.fdopen(fd, "w", encoding="utf-8", newline="")


def _stream(path: Path, binary: bool) -> Iterator[IO[Any]]:
    """Write into a device, FIFO or socket as it is (opened without creating anything)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise _refusal(path, exc) from None
    if stat.S_ISREG(os.fstat(fd).st_mode) or stat.S_ISDIR(os.fstat(fd).st_mode):
        os.close(fd)  # swapped for a file since we looked: do not truncate someone's file
        raise UsageError(f"'{path}' changed while orion opened it", "try again")
    with _fdopen(fd, binary) as handle:
        yield handle


def _replace(tmp: Path, path: Path) -> None:
    """Rename ``tmp`` over ``path`` only if ``path`` is still a regular file, a link or nothing."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        mode = stat.S_IFREG
    if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
        raise UsageError(f"'{path}' changed while orion wrote it; not replaced", "try again")
    try:
        os.replace(tmp, path)
    except OSError as exc:
        raise _refusal(path, exc) from None


def write_output(path: Path | str, data: str | bytes, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` through :func:`open_output`."""
    with open_output(path, mode, binary=isinstance(data, bytes)) as handle:
        handle.write(data)
