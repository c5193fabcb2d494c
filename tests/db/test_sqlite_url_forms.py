"""Odd SQLite URLs are refused in one line before any file is made (issue 23, B24)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import orion

ODD = {
    "sqlite:relative": "sqlite:/// followed by the path",
    "sqlite:///file:{d}/y.db?uri=true": "options after '?'",
    "sqlite:///{d}/x.db?mode=ro": "options after '?'",
    "sqlite:///file:y.db": "'file:' URIs",
    "sqlite://": "in-memory",
    "sqlite+pysqlite:///{d}/p.db": "sqlite:/// followed by the path",
}


def tree(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*"))


@pytest.mark.parametrize("form", sorted(ODD))
@pytest.mark.parametrize("command", ["ls", "poll", "submit"])
def test_an_odd_sqlite_url_is_one_line_and_writes_nothing(
    form: str, command: str, orion_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "cwd"
    work.mkdir()
    (work / "Cu.xyz").write_text("2\n\nCu 0 0 0\nCu 2.5 0 0\n")
    monkeypatch.chdir(work)
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    monkeypatch.setenv("ORION_DATABASE_URL", form.format(d=work))
    before = tree(tmp_path)
    args = ["submit", "Cu.xyz", "-e", "emt"] if command == "submit" else [command]
    result = orion(*args, expect=2)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: database URL"), result.output
    assert ODD[form] in lines[0] and "sqlite:////absolute/orion.db" in lines[0]
    assert tree(tmp_path) == before


def test_the_accepted_forms_work(
    orion_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ORION_DATABASE_URL", "sqlite:///rel/orion.db")
    assert "no jobs yet" in orion("ls").stdout
    assert (tmp_path / "rel" / "orion.db").is_file()
    monkeypatch.setenv("ORION_DATABASE_URL", f"sqlite:///{tmp_path}/abs.db")
    assert "no jobs yet" in orion("ls").stdout
    assert (tmp_path / "abs.db").is_file()
