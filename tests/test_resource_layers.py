"""One partial resources value (ResourceAsk) for flags, #SBATCH lines, queues, settings and
SLURM's answer; one resolver turns its layers into Resources. Pure and fast."""

from __future__ import annotations

from pathlib import Path

import pytest

from orion_cli.batch import sbatch_options
from orion_cli.errors import UsageError
from orion_cli.resources import ResourceAsk, Resources, resolve
from orion_cli.sbatch_header import header_resources, parse_header
from orion_cli.schedulers.slurm_adopt import parse_sacct_job, parse_scontrol_job

DATA = Path(__file__).parent / "data" / "slurm"
SCRIPT = "script 'run.sbatch'"
HEADER_TEXT = "#!/bin/bash\n#SBATCH --time=30:00 -n 8 -p debug\n#SBATCH --mem=2G -N 2\n"


def header(text: str = HEADER_TEXT) -> ResourceAsk:
    return header_resources(parse_header(text), SCRIPT)


QUEUE = ResourceAsk.of("[queues.short] in orion.toml", partition="short", qos="fast", nodes=3)
SETTINGS = ResourceAsk.of("orion.toml", walltime_s=7200, account="proj", ntasks=1, priority=12)


def test_a_flag_over_a_header_over_a_queue_over_the_settings() -> None:
    flags = ResourceAsk.of(ntasks=16, partition=None, walltime_s=None)
    resolved = resolve(flags, header(), QUEUE, SETTINGS)
    assert resolved == Resources(
        partition="debug",  # the header's, over the queue's
        account="proj",  # the settings'
        qos="fast",  # the queue's
        priority=12,
        walltime_s=1800,  # the header's 30:00, over the settings' 7200
        nodes=2,  # the header's -N 2, over the queue's 3
        ntasks=16,  # the flag, over the header's -n 8
        mem_mb=2048,
    )


def test_over_is_the_same_layering_in_either_grouping() -> None:
    flags = ResourceAsk.of(mem_per_cpu_mb=1024, nodes=4)
    left = flags.over(header()).over(QUEUE).over(SETTINGS)
    right = flags.over(header().over(QUEUE.over(SETTINGS)))
    assert dict(left.values) == dict(right.values)
    assert left.values["mem_mb"] == 0  # the flag's memory per CPU replaced the header's --mem
    assert left.origins["nodes"] == "" and left.origins["walltime_s"] == SCRIPT
    assert resolve(left) == resolve(flags, header(), QUEUE, SETTINGS)


def test_an_unset_value_falls_through_to_the_defaults() -> None:
    assert resolve(ResourceAsk(), ResourceAsk.of(walltime_s=None)) == Resources()


@pytest.mark.parametrize(
    ("layers", "needle"),
    [
        ([ResourceAsk.of(nodes=0)], "--nodes 0 is out of range"),
        ([header("#SBATCH -N 200000\n")], f"nodes = 200000 from {SCRIPT} is out of range"),
        ([header("#SBATCH -t 400-00:00:00\n")], f"walltime_s = 34560000 from {SCRIPT}"),
        ([ResourceAsk.of("orion.toml", priority=30)], "priority = 30 from orion.toml"),
        ([ResourceAsk.of(partition="a\tb")], "--partition 'a\\tb' contains a control"),
        ([header("#SBATCH -p 'a\x1bb'\n")], f"partition 'a\\x1bb' from {SCRIPT} contains"),
        (
            [ResourceAsk.of("orion.toml", sbatch_args=("--job-name=x",))],
            "sbatch_args in orion.toml '--job-name=x': orion sets --job-name itself",
        ),
    ],
)
def test_an_error_names_the_flag_the_line_or_the_setting(
    layers: list[ResourceAsk], needle: str
) -> None:
    with pytest.raises(UsageError) as raised:
        resolve(*layers, SETTINGS)
    assert needle in raised.value.one_line()


def test_a_header_value_sbatch_would_refuse_names_its_line() -> None:
    with pytest.raises(UsageError, match=r"#SBATCH --time=soon is not a SLURM time"):
        header("#SBATCH --time=soon\n")


def test_memory_kinds_from_one_layer_exclude_each_other_and_a_higher_one_replaces() -> None:
    both = ResourceAsk.of("[queues.big] in orion.toml", mem_mb=4096, mem_per_cpu_mb=1024)
    with pytest.raises(UsageError, match=r"\(\[queues.big\] in orion.toml sets both\)"):
        resolve(both, SETTINGS)
    with pytest.raises(UsageError, match="^--mem and --mem-per-cpu exclude each other$"):
        resolve(ResourceAsk.of(mem_mb=4096, mem_per_cpu_mb=1024))
    resolved = resolve(ResourceAsk.of(mem_mb=8192), both, SETTINGS)  # the flag decides
    assert (resolved.mem_mb, resolved.mem_per_cpu_mb) == (8192, 0)


def test_slurms_answer_gives_the_same_resources_by_either_command() -> None:
    default_walltime = ResourceAsk.of("orion.toml", walltime_s=7200)
    found = parse_scontrol_job((DATA / "scontrol_show_job_plain.txt").read_text())
    assert found is not None
    # sacct -o JobID,JobName,User,State,Timelimit,ReqMem,NNodes,NTasks,ReqCPUS,Partition,...
    sacct = "1783|plain|root|COMPLETED|00:02:00|200M|1|1|1|debug|root|normal|/tmp/sc-adopt\n"
    old = parse_sacct_job(sacct, "1783")
    assert old is not None
    expected = Resources(
        partition="debug", account="root", qos="normal", walltime_s=120, mem_mb=200
    )
    assert resolve(found.resources, default_walltime) == expected
    assert resolve(old.resources, default_walltime) == expected


def test_what_slurm_leaves_unusable_is_not_asked() -> None:
    sacct = "9|x|ann|PENDING|UNLIMITED|500Mc||||debug,long|||/w\n"
    found = parse_sacct_job(sacct, "9")
    assert found is not None
    assert dict(found.resources.values) == {"partition": "debug,long"}
    assert found.resources.origins["partition"] == "SLURM's record of job 9"
    resolved = resolve(found.resources, ResourceAsk.of("orion.toml", walltime_s=7200))
    assert (resolved.walltime_s, resolved.mem_mb, resolved.nodes) == (7200, 0, 1)


def test_one_builder_writes_the_options_in_the_order_given() -> None:
    flags = ResourceAsk.of(partition="gpu a", account="p", nodes=2, priority=10)
    assert sbatch_options(flags) == ["--partition=gpu a", "--account=p", "--nodes=2", "--nice=0"]
    asked = Resources(partition="debug", gpus=2, exclusive=True).asked()
    assert sbatch_options(asked.only("gpus", "partition", "exclusive", "mem_mb")) == [
        "--gres=gpu:2",
        "--partition=debug",
        "--exclusive",
    ]


def test_a_resource_ask_refuses_what_is_not_a_resource() -> None:
    with pytest.raises(TypeError):
        ResourceAsk({"walltime": 60})
    with pytest.raises(TypeError):
        ResourceAsk({"nodes": None})
