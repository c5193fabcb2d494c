"""The README's two commands are the real ones: CI runs the second verbatim."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    lines = (REPO / "README.md").read_text().splitlines()
    return [line.strip() for line in lines if line.startswith("    scripts/setup.sh")][:2]


def test_ci_runs_the_readme_test_command() -> None:
    main_job, tests = readme_commands()
    assert "orion submit" in main_job and "--services" not in main_job
    assert "pytest" in tests
    assert tests in (REPO / ".ci" / "run").read_text().splitlines()


def test_readme_example_files_exist() -> None:
    text = (REPO / "README.md").read_text()
    for word in text.split():
        if word.startswith("examples/"):
            assert (REPO / word).exists(), word
