"""Several tags per job: `--tag a --tag b` on submit; every filter matches any of its tags."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, empty_schema
from tests.helpers import orion, orion_json

CU = str(EXAMPLES / "Cu.cif")


@pytest.fixture
def local(orion_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    return orion_home


def test_several_tags_and_filters_that_match_any(database_url: str, local: Path) -> None:
    ab = orion_json(
        "submit", CU, CU, "-e", "mock", "--hold", "--tag", "a", "--tag", "b", "--tag", "a"
    )["ids"]
    bc = orion_json("submit", CU, "-e", "mock", "--hold", "--tag", "b", "--tag", "c")["ids"]
    d = orion_json("submit", CU, "-e", "mock", "--hold", "--tag", "d")["ids"]
    untagged = orion_json("submit", CU, "-e", "mock", "--hold")["ids"]
    shown = orion_json("show", str(ab[0]))
    assert shown["tags"] == ["a", "b"] and shown["tag"] == "a"  # once each, in order
    assert "  tags              a, b" in orion("show", str(ab[0])).stdout
    assert orion_json("show", str(untagged[0]))["tags"] == []

    def listed(*tags: str) -> list[int]:
        args = [arg for tag in tags for arg in ("--tag", tag)]
        return sorted(row["id"] for row in orion_json("ls", *args))

    assert listed("a") == sorted(ab)
    assert listed("b") == sorted(ab + bc)
    assert listed("a", "c") == sorted(ab + bc)
    assert listed("c", "d") == sorted(bc + d)
    assert listed("nothing") == []
    assert orion_json("ls", "--count", "--tag", "b", "--tag", "d")["total"] == 4
    # bulk actions: any of the tags; named ids narrowed by the tags
    held = orion("release", *map(str, ab + d), "--tag", "d").stderr
    assert held.strip().splitlines()[-1] == f"1 released ({d[0]})"
    cancelled = orion("cancel", "--tag", "c", "--tag", "d").stderr
    assert cancelled.strip().splitlines()[-1] == f"2 cancelled ({bc[0]}, {d[0]})"
    assert [orion_json("show", str(i))["status"] for i in ab + bc + d + untagged] == [
        "queued",
        "queued",
        "cancelled",
        "cancelled",
        "queued",
    ]
    orion("cancel", *map(str, ab + untagged))


def test_old_tags_are_carried_into_job_tag(database_url: str, local: Path) -> None:
    """A database at 0008 with a tagged job upgrades to 0009 and the tag filter finds it."""
    from sqlalchemy import text

    from orion_cli.db.session import SCHEMA_HEAD, get_engine, upgrade

    engine = get_engine(database_url)
    empty_schema(engine)  # start from nothing, even where a fixture made a schema
    upgrade(engine, "0008")
    with engine.begin() as conn:
        for name, tag in (("old-tagged", "screen-1"), ("old-plain", "")):
            conn.execute(
                text(
                    "INSERT INTO job (name, owner, engine, structure_source, formula, status,"
                    " scheduler, partition, account, qos, priority, walltime_s, mem_mb, nodes,"
                    " ntasks, cpus_per_task, progress_pct, current_step, workdir, attempt,"
                    " max_retries, retry_delay_s, soft_margin_s, held, events_offset, created_at,"
                    " updated_at, tag, pack) VALUES (:name, :owner, 'emt', '', 'Cu', 'completed',"
                    " 'local', '', '', '', 10, 3600, 0, 1, 1, 1, 100, '', '', 1, 3, 60, 300,"
                    " false, 0, '2026-01-01 00:00:00', '2026-01-01 00:00:00', :tag, 0)"
                ),
                {"name": name, "tag": tag, "owner": _me()},
            )
    assert upgrade(engine) == ("0008", SCHEMA_HEAD)  # through 0009, which keeps the tags
    rows = orion_json("ls", "--tag", "screen-1")
    assert [row["name"] for row in rows] == ["old-tagged"]
    assert orion_json("show", str(rows[0]["id"]))["tags"] == ["screen-1"]


def _me() -> str:
    from orion_cli.identity import current_user

    return current_user()
