"""`orion stats`: every number checked against values computed here from `orion show --json`
of each job (numpy's percentiles, our own sums), the plot decoded as a real PNG."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLES, use_test_scheduler
from tests.helpers import orion, orion_json, poll_until_final

CU = str(EXAMPLES / "Cu.cif")


@pytest.fixture
def local(orion_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    use_test_scheduler(monkeypatch)
    return orion_home


def reference(jobs: list[dict[str, Any]]) -> dict[str, Any]:
    """What stats must say about ``jobs`` (their `orion show --json`), computed independently."""
    import numpy as np

    counts = Counter(j["status"] for j in jobs)
    failed = [j for j in jobs if j["status"] == "failed" and j["next_attempt_at"] is None]
    ended = counts["completed"] + len(failed)
    waits = [j["queue_wait_s"] for j in jobs if j["queue_wait_s"] is not None]
    runs = [j["run_s"] for j in jobs if j["run_s"] is not None]

    def three(values: list[float]) -> dict[str, Any]:
        if not values:
            return {"count": 0, "p50": None, "p90": None, "max": None}
        return {
            "count": len(values),
            "p50": float(np.percentile(values, 50)),
            "p90": float(np.percentile(values, 90)),
            "max": max(values),
        }

    return {
        "jobs": len(jobs),
        "counts": dict(counts),
        "ended": ended,
        "success_rate": counts["completed"] / ended if ended else None,
        "failure_reasons": dict(
            Counter(j["failure_reason"] for j in jobs if j["status"] == "failed")
        ),
        "queue_wait_s": three(waits),
        "run_s": three(runs),
        "core_hours": sum((j["run_s"] or 0) * j["ntasks"] * j["cpus_per_task"] for j in jobs)
        / 3600,
    }


def assert_matches(got: dict[str, Any], expected: dict[str, Any]) -> None:
    for key in ("jobs", "counts", "ended", "failure_reasons"):
        assert got[key] == expected[key], key
    assert got["success_rate"] == pytest.approx(expected["success_rate"])
    for key in ("queue_wait_s", "run_s"):
        assert got[key]["count"] == expected[key]["count"], key
        for stat in ("p50", "p90", "max"):
            if expected[key][stat] is None:
                assert got[key][stat] is None
            else:  # from show's seconds (1 ms), printed to the millisecond
                assert got[key][stat] == pytest.approx(expected[key][stat], abs=6e-4), (key, stat)
    assert_printed(got["core_hours"], expected["core_hours"], decimals=6)


def assert_printed(got: float, exact: float, decimals: int) -> None:
    """``got`` is ``exact`` as printed to ``decimals``: rounded up or down (a value on the
    half, as 0.0003675, may go either way once summed in another order)."""
    unit = 10.0**-decimals
    assert abs(got - exact) <= unit / 2 * (1 + 1e-6), (got, exact)
    assert got == pytest.approx(round(got / unit) * unit, abs=unit * 1e-6)  # to that many digits


def test_a_value_on_the_rounding_half_matches_either_way() -> None:
    """Defect 10: stats printed 0.000367 for 0.0003675; abs=5e-7 sat on that boundary."""
    exact = 0.000367 + 0.0000005  # as the runs' durations summed
    for printed in (0.000367, 0.000368):
        assert_printed(printed, exact, decimals=6)
    with pytest.raises(AssertionError):
        assert_printed(0.000366, exact, decimals=6)


def test_stats_agree_with_show_on_both_databases(database_url: str, local: Path) -> None:
    emt = orion_json("submit", CU, CU, "-e", "emt", "--tag", "screen", "--ntasks", "1")["ids"]
    mock = orion_json(
        "submit",
        CU,
        CU,
        CU,
        "-e",
        "mock",
        "-p",
        "duration_s=0.3",
        "--tag",
        "screen",
        "--tag",
        "extra",
        "--cpus-per-task",
        "2",
    )["ids"]
    failing = orion_json(
        "submit",
        CU,
        "-e",
        "mock",
        "-p",
        "duration_s=0",
        "-p",
        "fail=true",
        "--retries",
        "0",
    )["ids"]
    held = orion_json("submit", CU, "-e", "mock", "--hold", "--tag", "extra")["ids"]
    poll_until_final(emt + mock + failing)
    orion("cancel", str(held[0]))
    ids = emt + mock + failing + held
    jobs = [orion_json("show", str(i)) for i in ids]

    got = orion_json("stats")
    assert_matches(got, reference(jobs))
    assert got["by"] == "engine"
    assert {g["key"] for g in got["groups"]} == {"emt", "mock"}
    for group in got["groups"]:
        assert_matches(group, reference([j for j in jobs if j["engine"] == group["key"]]))
    assert got["failure_reasons"] == {"engine_error": 1}

    by_tag = orion_json("stats", "--by", "tag")
    expected_tags = {"screen", "extra", "-"}  # a job of two tags counts in both; "-": none
    assert {g["key"] for g in by_tag["groups"]} == expected_tags
    for group in by_tag["groups"]:
        members = [j for j in jobs if group["key"] in (j["tags"] or ["-"])]
        assert_matches(group, reference(members))

    tagged = orion_json("stats", "--tag", "screen", "--engine", "mock")
    assert_matches(tagged, reference([j for j in jobs if j["id"] in mock]))

    text = orion("stats").stdout
    rate = reference(jobs)["success_rate"] * 100
    assert f"{len(jobs)} jobs: " in text
    assert f"success rate: {rate:.1f}% " in text, text
    assert "1 engine_error" in text
    assert f"core-hours: {reference(jobs)['core_hours']:.3f}" in text


def test_stats_plot_is_a_real_png(local: Path, tmp_path: Path) -> None:
    from matplotlib.image import imread

    from orion_cli.services.queries.stats_plot import HEIGHT_PX, WIDTH_PX

    ids = orion_json("submit", CU, "-e", "emt")["ids"]
    ids += orion_json(
        "submit", CU, "-e", "mock", "-p", "duration_s=0", "-p", "fail=true", "--retries", "0"
    )["ids"]
    poll_until_final(ids)
    target = tmp_path / "out" / "stats.png"
    target.parent.mkdir()
    result = orion("stats", "--plot", str(target), "--by", "engine")
    assert f"wrote {target}" in result.stderr
    data = target.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = imread(str(target))
    assert pixels.shape[:2] == (HEIGHT_PX, WIDTH_PX) == (450, 1000)
    assert pixels.std() > 0.01  # something drawn, not a blank canvas
    assert sorted(p.name for p in target.parent.iterdir()) == ["stats.png"]  # no temporary


def test_no_jobs_is_one_plain_line(local: Path, tmp_path: Path) -> None:
    result = orion("stats", "--plot", str(tmp_path / "none.png"))
    assert result.stdout.strip() == "no jobs yet (orion submit adds some)"
    assert not (tmp_path / "none.png").exists()
    assert orion("stats", "--tag", "nothing").stdout.strip() == "no jobs match these filters"
    empty = orion_json("stats")
    assert empty["jobs"] == 0 and empty["success_rate"] is None and empty["groups"] == []


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--since", "soon"], "--since 'soon' is not a duration"),
        (["--since", "-3d"], "is negative"),
        (["--by", "colour"], "cannot group by 'colour'"),
        (["--plot", "stats.txt"], "does not end in .png"),
        (["--plot", "no/such/dir/stats.png"], "does not exist"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    args: list[str], needle: str, local: Path, tmp_path: Path
) -> None:
    orion_json("submit", CU, "-e", "mock", "--hold")
    result = orion("stats", *args, expect=2)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], lines
    assert result.stdout == ""
    assert not list(tmp_path.glob("*.png")) and not list(tmp_path.glob("*.txt"))
    orion("cancel", "--status", "queued")


def test_since_and_all_users_filter_as_ls_does(local: Path) -> None:
    from sqlalchemy import text

    from orion_cli.config import load_settings
    from orion_cli.db.session import get_engine
    from orion_cli.identity import current_user

    old, other, mine = (orion_json("submit", CU, "-e", "mock", "--hold")["ids"][0] for _ in "abc")
    orion("cancel", str(old), str(other), str(mine))
    with get_engine(load_settings().resolved_database_url).begin() as conn:
        conn.execute(
            text("UPDATE job SET created_at = :at WHERE id = :id"),
            {"at": "2020-01-01 00:00:00.000000", "id": old},
        )
        conn.execute(text("UPDATE job SET owner = 'someone-else' WHERE id = :id"), {"id": other})
    assert orion_json("stats")["jobs"] == 2  # old and mine
    assert orion_json("stats", "--since", "7d")["jobs"] == 1
    assert orion_json("stats", "--all-users")["jobs"] == 3
    by_user = orion_json("stats", "--all-users", "--by", "user")["groups"]
    assert {g["key"]: g["jobs"] for g in by_user} == {current_user(): 2, "someone-else": 1}
    assert orion_json("ls", "--count", "--since", "7d")["total"] == 1  # the same rule as ls


def test_study_selects_the_jobs_of_one_eos(local: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import orion_cli.api as api

    monkeypatch.setenv("ORION_WAIT_INTERVAL_S", "0.5")
    other = orion_json("submit", CU, "-e", "emt")["ids"]
    study = orion_json("eos", CU, "--engine", "emt", "--points", "5", "--wait")
    members = [*study["points"], study["fit"]]
    poll_until_final(other)
    got = orion_json("stats", "--study", str(study["study_id"]), "--by", "engine")
    jobs = [orion_json("show", str(i)) for i in members]
    assert_matches(got, reference(jobs))
    assert {g["key"] for g in got["groups"]} == {"emt", "eos"}
    # the Python API selects the same jobs
    assert [j.id for j in api.jobs(study=study["study_id"])] == members
    from_api = api.stats(study=study["study_id"], by="engine").as_dict()
    assert from_api == {key: value for key, value in got.items() if key != "plot"}
    assert [a.info["orion_id"] for a in api.results(study=study["study_id"])] == [
        i for i in members if orion_json("show", str(i))["result"]["energy_ev"] is not None
    ]


@pytest.mark.slurm
def test_stats_by_partition_on_the_real_cluster(
    orion_home: Path, slurm: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real queue waits and partitions; a submit sbatch refuses counts as submit_error."""
    import orion_cli.api as api
    from orion_cli.errors import SubmitFailed

    monkeypatch.setenv("ORION_SCHEDULER", "slurm")
    debug = orion_json("submit", CU, CU, "-e", "emt", "--partition", "debug", "--tag", "p")["ids"]
    long = orion_json("submit", CU, "-e", "emt", "--partition", "long", "--tag", "p")["ids"]
    with pytest.raises(SubmitFailed) as refused:
        api.submit(CU, engine="emt", constraint="no-such-feature", tag="p")
    assert refused.value.ids == [] and "Invalid feature specification" in refused.value.message
    assert api.wait(debug + long, timeout_s=240)
    jobs = [orion_json("show", str(j.id)) for j in api.jobs(tag="p")]
    assert len(jobs) == 4
    got = orion_json("stats", "--tag", "p", "--by", "partition")
    assert_matches(got, reference(jobs))
    assert got["failure_reasons"] == {"submit_error": 1}
    groups = {g["key"]: g for g in got["groups"]}
    assert {"debug", "long"} <= set(groups) == {j["partition"] or "-" for j in jobs}
    for key, group in groups.items():
        assert_matches(group, reference([j for j in jobs if (j["partition"] or "-") == key]))
    assert groups["debug"]["jobs"] == 2 and groups["long"]["jobs"] == 1


def test_a_retried_job_has_its_new_attempts_times(local: Path) -> None:
    """A new attempt starts afresh: until it runs, it has no start (no negative queue wait
    from the previous attempt's start), and afterwards its own times."""
    (job_id,) = orion_json(
        "submit", CU, "-e", "mock", "-p", "duration_s=0.2", "-p", "fail=true", "--retries", "0"
    )["ids"]
    (first,) = poll_until_final([job_id])
    assert first["status"] == "failed" and first["queue_wait_s"] >= 0
    orion("retry", str(job_id), "-p", "fail=false")
    again = orion_json("show", str(job_id))
    assert again["status"] == "queued" and again["attempt"] == 2
    assert again["started_at"] is None and again["queue_wait_s"] is None, again["started_at"]
    assert orion_json("stats")["queue_wait_s"]["count"] == 0
    (done,) = poll_until_final([job_id])
    assert done["status"] == "completed"
    assert done["started_at"] > first["finished_at"]  # the second attempt's own start
    assert 0 <= done["queue_wait_s"] and 0 < done["run_s"] < 30
