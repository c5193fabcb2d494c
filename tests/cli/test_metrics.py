"""`orion metrics` / `orion poll --metrics`: a node_exporter textfile that Prometheus' own
parser reads back, with values checked against `orion show` of every job."""

from __future__ import annotations

import stat
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from tests.helpers import orion, orion_json, poll_until_final

CU = str(EXAMPLES / "Cu.cif")


@pytest.fixture
def local(orion_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    return orion_home


def parse(text: str) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    from prometheus_client.parser import text_string_to_metric_families

    return {
        family.name: [(s.name, s.labels, s.value) for s in family.samples]
        for family in text_string_to_metric_families(text)
    }


def test_poll_writes_metrics_prometheus_can_read(
    database_url: str, local: Path, tmp_path: Path
) -> None:
    from orion_cli.identity import current_user

    emt = orion_json("submit", CU, "-e", "emt")["ids"]
    mock = orion_json("submit", CU, CU, "-e", "mock", "-p", "duration_s=0.2")["ids"]
    failing = orion_json(
        "submit", CU, "-e", "mock", "-p", "duration_s=0", "-p", "fail=true", "--retries", "0"
    )["ids"]
    held = orion_json("submit", CU, "-e", "mock", "--hold")["ids"]
    poll_until_final(emt + mock + failing)
    retried = orion_json(
        "submit", CU, "-e", "mock", "-p", "duration_s=0", "-p", "fail=true", "--retries", "0"
    )["ids"]
    poll_until_final(retried)
    orion("retry", str(retried[0]), "-p", "fail=false")
    poll_until_final(retried)
    orion("cancel", str(held[0]))
    directory = tmp_path / "textfile"
    directory.mkdir()
    orion("poll", "--quiet", "--metrics", str(directory))
    me = current_user()
    path = directory / f"orion-{me}.prom"
    assert sorted(p.name for p in directory.iterdir()) == [path.name]  # no temporary left
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    families = parse(path.read_text())

    jobs = [orion_json("show", str(i)) for i in emt + mock + failing + held + retried]
    expected = Counter((j["status"], j["engine"]) for j in jobs)
    got = {
        (labels["status"], labels["engine"]): value for _, labels, value in families["orion_jobs"]
    }
    assert got == expected
    failed_events = sum(
        e["to"] == "failed" and e["from"] != "failed" and e["reason"] == "engine_error"
        for j in jobs
        for e in j["events"]
    )
    transitions = {
        (labels["to"], labels["reason"]): value
        for _, labels, value in families["orion_job_transitions"]
    }
    assert transitions[("failed", "engine_error")] == failed_events == 2
    retries = {labels["reason"]: value for _, labels, value in families["orion_job_retries"]}
    assert retries == {"engine_error": 1}
    for family, key in (
        ("orion_queue_wait_seconds", "queue_wait_s"),
        ("orion_run_seconds", "run_s"),
    ):
        for engine in ("emt", "mock"):
            values = [j[key] for j in jobs if j["engine"] == engine and j[key] is not None]
            samples = {
                (name, labels.get("le")): value
                for name, labels, value in families[family]
                if labels["engine"] == engine
            }
            assert samples[(f"{family}_count", None)] == len(values)
            assert samples[(f"{family}_bucket", "+Inf")] == len(values)
            # `show` rounds each job's seconds to 1 ms: the sum may differ by 0.5 ms a job
            assert samples[(f"{family}_sum", None)] == pytest.approx(
                sum(values), abs=5e-4 * max(len(values), 1) + 1e-6
            )
            assert samples[(f"{family}_bucket", "10.0")] == sum(v <= 10 for v in values)
    ((_, _, last_ok),) = families["orion_last_successful_poll_timestamp_seconds"]
    assert abs(time.time() - last_ok) < 60
    ((_, _, errors),) = families["orion_poll_errors"]
    assert errors == 0
    labels_used = {k for samples in families.values() for _, labels, _ in samples for k in labels}
    assert labels_used <= {"user", "status", "engine", "to", "reason", "le"}  # no job ids


@pytest.mark.parametrize(
    "args, needle",
    [
        (["metrics", "--textfile", "metrics.txt"], "does not end in .prom"),
        (["metrics", "--textfile", "no/such/dir/orion.prom"], "does not exist"),
        (["poll", "--metrics", "no/such/dir"], "does not exist"),
    ],
)
def test_bad_metrics_paths_are_one_line(args: list[str], needle: str, local: Path) -> None:
    result = orion(*args, expect=2)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], lines


def test_metrics_on_stdout_and_textfile(local: Path, tmp_path: Path) -> None:
    orion_json("submit", CU, "-e", "mock", "--hold")
    families = parse(orion("metrics").stdout)
    assert [labels["status"] for _, labels, _ in families["orion_jobs"]] == ["queued"]
    assert "orion_last_successful_poll_timestamp_seconds" not in families  # never polled
    target = tmp_path / "orion.prom"
    orion("metrics", "--textfile", str(target))
    assert parse(target.read_text())["orion_jobs"] == families["orion_jobs"]
    orion("cancel", "--status", "queued")
