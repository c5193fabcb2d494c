"""Every file orion writes for a user goes through one helper (hostile-input probe 2026-12-06).

B2: `results -o`, `metrics --textfile`, `poll --metrics` and `stats --plot` wrote through
predictable temporary names (`FILE.part`, `.NAME.<pid>.tmp`, `.NAME.<pid>.part`) opened with
O_CREAT|O_TRUNC, so a link planted under that name made orion overwrite the link's target
(and metrics chmod-ed it 0644 by path). B4: `-o /dev/null` replaced the device by a regular
file. B16: directories, missing directories, /proc and unwritable places gave internal errors.
The device test uses a private node made with mknod, never the real /dev/null.
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from orion_cli.identity import current_user
from orion_cli.outfile import open_output, write_output
from tests.conftest import EXAMPLES, need
from tests.helpers import orion

SECRET = "precious notes\n"


@pytest.fixture
def one_job(orion_home: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    orion("submit", str(EXAMPLES / "Cu.cif"), "--engine", "mock", "--hold")
    return "1"


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "victim.txt"
    victim.write_text(SECRET)
    victim.chmod(0o600)
    return victim


def _untouched(victim: Path) -> None:
    assert victim.read_text() == SECRET
    assert stat.S_IMODE(victim.stat().st_mode) == 0o600


def test_results_o_never_writes_through_a_planted_part_link(one_job: str, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o1777)
    victim = _victim(tmp_path)
    (shared / "r.csv.part").symlink_to(victim)
    orion("results", one_job, "-f", "csv", "-o", str(shared / "r.csv"))
    _untouched(victim)
    assert (shared / "r.csv").read_text().startswith("id,name,formula")
    assert not (shared / "r.csv").is_symlink()


def test_metrics_never_writes_or_chmods_through_a_planted_tmp_link(
    one_job: str, tmp_path: Path
) -> None:
    textdir = tmp_path / "textfiles"
    textdir.mkdir(mode=0o1777)
    victim = _victim(tmp_path)
    name = f"orion-{current_user()}.prom"
    (textdir / f".{name}.{os.getpid()}.tmp").symlink_to(victim)  # the old predictable name
    orion("poll", "--metrics", str(textdir))
    _untouched(victim)
    written = textdir / name
    assert "orion_jobs" in written.read_text()
    assert stat.S_IMODE(written.stat().st_mode) == 0o644  # node_exporter reads it
    (textdir / "m.prom").symlink_to(victim)  # a link AS the target is replaced, not followed
    orion("metrics", "--textfile", str(textdir / "m.prom"))
    _untouched(victim)
    assert not (textdir / "m.prom").is_symlink()


def test_stats_plot_never_writes_through_a_planted_part_link(one_job: str, tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    (tmp_path / f".stats.png.{os.getpid()}.part").symlink_to(victim)
    orion("stats", "--plot", str(tmp_path / "stats.png"))
    _untouched(victim)
    assert (tmp_path / "stats.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_device_is_written_not_replaced(one_job: str, tmp_path: Path) -> None:
    need(os.geteuid() == 0, "root (mknod)")
    null = tmp_path / "mynull"
    os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a private /dev/null
    orion("results", one_job, "-f", "csv", "-o", str(null))
    assert stat.S_ISCHR(null.stat().st_mode) and null.stat().st_rdev == os.makedev(1, 3)
    link = tmp_path / "link-to-null"
    link.symlink_to(null)
    orion("metrics", "--textfile", str(tmp_path / "x.prom"))  # an ordinary file still works
    orion("results", one_job, "-f", "json", "-o", str(link))
    assert link.is_symlink() and stat.S_ISCHR(null.stat().st_mode)


def test_a_fifo_is_written_not_replaced(one_job: str, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    orion("results", one_job, "-f", "csv", "-o", str(fifo))
    reader.join(timeout=60)
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert received and received[0].startswith(b"id,name,formula")


def test_dash_is_standard_output(one_job: str) -> None:
    out = orion("results", one_job, "-f", "csv", "-o", "-").stdout
    assert out.startswith("id,name,formula")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["results", "1", "-f", "csv", "-o", "{tmp}"], "is a directory"),
        (["results", "1", "-f", "csv", "-o", "{tmp}/nodir/x.csv"], "does not exist"),
        (["results", "1", "-f", "csv", "-o", "/proc/x.csv"], "no new file can be made"),
        (["metrics", "--textfile", "{tmp}/adir.prom"], "is a directory"),
        (["metrics", "--textfile", "/proc/x.prom"], "no new file can be made"),
        (["stats", "--plot", "/proc/x.png"], "no new file can be made"),
    ],
)
def test_bad_output_paths_are_one_line(
    one_job: str, tmp_path: Path, args: list[str], says: str
) -> None:
    (tmp_path / "adir.prom").mkdir()
    done = orion(*(a.replace("{tmp}", str(tmp_path)) for a in args), expect=2)
    assert says in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "internal error" not in done.stderr


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), open_output(target) as out:
        out.write("half")
        raise RuntimeError("export failed")
    assert target.read_text() == "old\n" and os.listdir(tmp_path) == ["out.txt"]
    write_output(target, "new\n", 0o640)
    assert target.read_text() == "new\n" and stat.S_IMODE(target.stat().st_mode) == 0o640
