from pathlib import Path

from orion_cli.batch import BatchSpec, render_script
from orion_cli.resources import RESOURCE_FIELDS, Resources

GOLDEN = Path(__file__).parent / "data" / "batch" / "job.sh"


def spec(**overrides: object) -> BatchSpec:
    values: dict[str, object] = dict(
        orion_id=42,
        name="Si scf; rm -rf ~",
        workdir=Path("/scratch/my jobs/42"),
        python="/opt/orion venv/bin/python",
        walltime_s=5400,
        partition="debug",
        nodes=1,
        ntasks=4,
        cpus_per_task=2,
        mem_mb=4096,
        account="proj$1",
        qos="normal",
        priority=5,
        soft_margin_s=300,
    )
    values.update(overrides)
    return batch_spec(**values)


def batch_spec(**values: object) -> BatchSpec:
    """A BatchSpec from flat values: the resource fields go into its Resources."""
    resources = {k: values.pop(k) for k in list(values) if k in RESOURCE_FIELDS}
    return BatchSpec(resources=Resources(**resources), **values)  # type: ignore[arg-type]


def test_script_matches_golden_file() -> None:
    assert render_script(spec()) == GOLDEN.read_text()


def test_optional_lines_are_left_out_when_unset() -> None:
    text = render_script(spec(mem_mb=0, account="", qos="", partition="", soft_margin_s=0))
    for option in ("--mem", "--account", "--qos", "--partition", "--signal"):
        assert option not in text


def test_soft_limit_signal_scaled_down_for_short_walltimes() -> None:
    assert "#SBATCH --signal=B:USR1@15\n" in render_script(spec(walltime_s=60, soft_margin_s=300))
    assert "--signal" not in render_script(spec(walltime_s=60, soft_margin_s=0))
    assert "#SBATCH --signal=B:USR1@300" in render_script(spec(walltime_s=3600))


def test_user_strings_cannot_escape_quoting(tmp_path: Path) -> None:
    import subprocess

    evil = spec(workdir=tmp_path / "a'b; touch pwned", python="echo")
    (tmp_path / "a'b; touch pwned").mkdir()
    out = subprocess.run(
        ["bash", "-c", render_script(evil)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    )
    assert out.stdout.strip() == f"-m orion_cli.jobrun {tmp_path}/a'b; touch pwned"
    assert not (tmp_path / "pwned").exists()
