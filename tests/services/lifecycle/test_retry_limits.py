"""Retries and the partitions' limits through the test scheduler: defects 5 and 6."""

from __future__ import annotations

from tests.services.lifecycle.conftest import Bench


def test_timeout_without_a_partition_caps_at_the_default_partition(bench: Bench) -> None:
    """Defect 6: a 1 h job on a 1 h default partition is not retried with 2 h."""
    bench.scheduler.partition_limits = {"short": 3600, "*": 3600, "long": 86400}
    bench.submit(resources={"walltime_s": 3600}, max_retries=2)
    bench.scheduler.end(bench.scheduler.pending()[0], "TIMEOUT")
    bench.poll()
    [job] = bench.jobs()
    assert (job.status, job.attempt, job.walltime_s) == ("queued", 2, 3600)
    assert any("already at the partition's MaxTime" in e for e in bench.events(job.id or 0))


def test_timeout_in_a_named_partition_doubles_up_to_its_limit(bench: Bench) -> None:
    bench.scheduler.partition_limits = {"short": 3600, "*": 3600, "long": 86400}
    bench.submit(resources={"walltime_s": 3600, "partition": "long"}, max_retries=2)
    bench.scheduler.end(bench.scheduler.pending()[0], "TIMEOUT")
    bench.poll()
    [job] = bench.jobs()
    assert (job.attempt, job.walltime_s) == (2, 7200)


def test_node_failures_retry_without_asking_for_partitions(bench: Bench) -> None:
    """Defect 5: only a TIMEOUT needs a partition's limit; node failures ask nothing."""
    bench.scheduler.partition_limits = {"debug": 3600, "*": 3600}
    bench.submit(3, max_retries=2)
    before = bench.scheduler.calls["partitions"]
    for sid in bench.scheduler.pending():
        bench.scheduler.end(sid, "NODE_FAIL")
    bench.poll()
    assert [job.attempt for job in bench.jobs()] == [2, 2, 2]
    assert bench.scheduler.calls["partitions"] == before
